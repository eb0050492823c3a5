"""``zoo demo`` start-up: from the command's start to its page served, and to the first grid.

Each start is a fresh ``python -m zoo demo MODEL --port P`` process; the clock runs from
just before the process is started until ``GET /`` answers 200 (the page is served), then
until a ``gradio_client`` call for 16 samples of seed 0 returns (the first grid). For
context, ``python -c "import gradio"`` and ``python -c "import torch"`` are timed the same
number of times. The model is a small DCGAN built once into ``bench/.cache/`` unless
``--model`` names one. Figures are medians; the load average is recorded (on shared cores
everything is slower).

Usage::

    python bench/demo_startup.py                  # 5 starts
    python bench/demo_startup.py --quick          # 2 starts
    python bench/demo_startup.py --model runs/dcgan-mnist

Results: ``bench/results/demo_startup.json`` (``--quick``: ``.quick.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchlib import RESULTS, machine_info

HERE = Path(__file__).resolve().parent
#: The small DCGAN built when no --model is given (what the tests call micro).
MICRO = ["train.max_steps=20", "data.limit=256", "model.base_channels=8",
         "model.disc_channels=8", "data.image_size=16", "model.latent_dim=16",
         "train.batch_size=32", "train.bn_batches=4", "sample.n=16", "train.precision=fp32"]


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def default_model() -> Path:
    """The cached small DCGAN folder (built on first use)."""
    folder = HERE / ".cache" / "demo-dcgan"
    if not (folder / "config.json").is_file():
        sets = [arg for s in MICRO for arg in ("--set", s)]
        subprocess.run([sys.executable, "-m", "zoo", "build", "dcgan", *sets, "--out", folder,
                        "--force", "--quiet"], check=True)
    return folder


def one_start(model: Path, timeout: float) -> tuple[float, float]:
    """Seconds from the command's start to the page served, and to the first grid."""
    import httpx
    from gradio_client import Client

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "zoo", "demo", str(model), "--port",
                                str(port)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, start_new_session=True)
    try:
        while True:
            if process.poll() is not None:
                raise SystemExit(f"zoo demo exited: {process.stderr.read().decode()[-500:]}")
            if time.perf_counter() - start > timeout:
                raise SystemExit(f"zoo demo served nothing in {timeout} s")
            try:
                if httpx.get(url, timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        page = time.perf_counter() - start
        client = Client(url, verbose=False)
        client.predict(seed=0, count=16, api_name="/sample")
        grid = time.perf_counter() - start
        client.close()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    return page, grid


def import_time(module: str) -> float:
    """Seconds of ``python -c "import MODULE"`` in a fresh process."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=None, help="model folder (default: a small "
                   "DCGAN built into bench/.cache/)")
    p.add_argument("--starts", type=int, default=None, help="fresh starts (default 5)")
    p.add_argument("--quick", action="store_true", help="2 starts")
    p.add_argument("--timeout", type=float, default=300, help="seconds per start at most")
    p.add_argument("--out", type=Path, default=None, help="JSON results path")
    args = p.parse_args(argv)
    starts = args.starts or (2 if args.quick else 5)
    out = args.out or RESULTS / f"demo_startup{'.quick' if args.quick else ''}.json"
    model = args.model or default_model()
    load_before = os.getloadavg()
    one_start(model, args.timeout)  # untimed: file-system caches warm
    runs = [one_start(model, args.timeout) for _ in range(starts)]
    imports = {m: [import_time(m) for _ in range(starts)] for m in ("gradio", "torch")}
    load_after = os.getloadavg()
    page = statistics.median(r[0] for r in runs)
    grid = statistics.median(r[1] for r in runs)
    gradio, torch = (statistics.median(imports[m]) for m in ("gradio", "torch"))
    print(f"zoo demo start-up (command to page served): median {page:.1f} s over {starts} "
          f"starts (min {min(r[0] for r in runs):.1f}, max {max(r[0] for r in runs):.1f}); "
          f"first grid at {grid:.1f} s; import gradio {gradio:.1f} s, import torch "
          f"{torch:.1f} s; load average {load_before[0]:.1f} -> {load_after[0]:.1f}")
    result = {"benchmark": "zoo demo start-up, one fresh process per start",
              "machine": machine_info(), "model": str(model),
              "settings": {"starts": starts, "quick": args.quick},
              "median_s": {"page_served": round(page, 2), "first_grid": round(grid, 2),
                           "import_gradio": round(gradio, 2), "import_torch": round(torch, 2)},
              "load_average": {"before": load_before, "after": load_after},
              "timings_s": {"page_served": [round(r[0], 3) for r in runs],
                            "first_grid": [round(r[1], 3) for r in runs],
                            "import_gradio": [round(t, 3) for t in imports["gradio"]],
                            "import_torch": [round(t, 3) for t in imports["torch"]]}}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
