"""CLI cold start: ``zoo --help`` and ``zoo list`` against ``python -c pass`` and ``import torch``.

Each command is a fresh process (``subprocess.run``), so every figure includes
the interpreter's start. The commands are interleaved round by round (order
reversed every other round) and reported as medians and as ratios to
``python -c "import torch"`` (target for ``zoo list``: at most 0.3x) and to
``python -c pass``. ``zoo`` is run as ``python -m zoo`` so that no console-script
wrapper is timed and the same interpreter runs everything.

Usage::

    python bench/cold_start.py            # 7 rounds, K 5
    python bench/cold_start.py --quick    # 3 rounds, K 2

Results: ``bench/results/cold_start.json`` (``--quick``: ``.quick.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

from benchlib import add_round_options, machine_info, run_rounds, settle_round_options, warm_up

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "import torch": [sys.executable, "-c", "import torch"],
    "zoo --help": [sys.executable, "-m", "zoo", "--help"],
    "zoo list": [sys.executable, "-m", "zoo", "list"],
}


def runner(argv: list[str]):
    """A call that runs ``argv`` to completion and fails loudly if it fails."""
    env = dict(os.environ, COLUMNS="100")

    def call() -> None:
        done = subprocess.run(argv, capture_output=True, env=env)
        if done.returncode:
            raise SystemExit(f"{argv} failed: {done.stderr.decode()[-500:]}")

    return call


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_round_options(p)
    args = settle_round_options(p.parse_args(argv), "cold_start")
    calls = {name: runner(cmd) for name, cmd in COMMANDS.items()}
    warm_up(calls, args.warmup)  # file-system caches warm for every command alike
    timings = run_rounds(calls, args.rounds, args.k, 1)
    median_ms = {n: 1000 * statistics.median(t for r in rounds for t in r)
                 for n, rounds in timings.items()}
    torch_ms, pass_ms = median_ms["import torch"], median_ms["python -c pass"]
    ratios = {n: {"vs_import_torch": round(ms / torch_ms, 3),
                  "vs_python_pass": round(ms / pass_ms, 2)} for n, ms in median_ms.items()}
    for name, ms in median_ms.items():
        print(f"cold start {name}: {ms:.0f} ms ({ratios[name]['vs_import_torch']:.2f}x import "
              f"torch, {ratios[name]['vs_python_pass']:.1f}x python -c pass)")
    result = {"benchmark": "CLI cold start, one fresh process per call",
              "machine": machine_info(),
              "settings": {"rounds": args.rounds, "k": args.k, "warmup": args.warmup,
                           "quick": args.quick, "commands": COMMANDS},
              "median_ms": {n: round(v, 1) for n, v in median_ms.items()},
              "ratios": ratios, "target": {"zoo list vs import torch": 0.3},
              "timings_s": timings}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
