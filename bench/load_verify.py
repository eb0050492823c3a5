"""What checking the sha256 of the weights adds to loading a model folder.

``zoo.from_pretrained(folder)`` (spec validation, header checks, meta build,
``load_state_dict(assign=True)``) against the same call followed by
:func:`zoo.artifact.check_checksums` (the sha256 of ``model.safetensors`` and
``training_state/*.safetensors`` compared with what ``config.json`` records),
for two models built with one training step by ``zoo.build``:

* small: a 16x16 DCGAN generator (``tests/conftest.py`` MICRO);
* unet: the ``ddpm-mnist`` UNet (1.6 M parameters, 244 tensors), the size
  of the diffusers ``UNet2DModel`` of ``bench/load.py``.

The ``sha256`` line times the checksum alone, ``sha256_weights`` only
``model.safetensors`` (what loading reads). Method: one process; every
configuration is warmed up, then ``--rounds`` rounds in which each runs once,
the order rotating from round to round; ``gc.collect()`` before every call.
Medians are reported, and the checksum's cost as a fraction of the load.
The files are in the page cache, as for any load after the first.

Usage::

    python bench/load_verify.py            # 3 warm-up calls, 30 rounds
    python bench/load_verify.py --quick    # 1 warm-up, 5 rounds

Results go to ``bench/results/load_verify.json`` (``--quick``: ``load_verify.quick.json``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

MODELS = {
    "small": ("dcgan", ["train.max_steps=1", "data.limit=64", "model.base_channels=8",
                        "model.disc_channels=8", "data.image_size=16", "model.latent_dim=16",
                        "train.batch_size=32", "train.bn_batches=1", "sample.n=4",
                        "train.precision=fp32"]),
    "unet": ("ddpm-mnist", ["train.max_steps=1", "data.limit=64", "train.batch_size=16",
                            "sample.n=1", "sample.steps=1", "train.precision=fp32"]),
}


def prepare(tmp: Path) -> tuple[dict[str, Callable[[], Any]], dict[str, Any]]:
    """Build each model once; the calls to time and what each model holds."""
    import zoo
    from zoo.artifact import (
        CHECKSUMS,
        WEIGHTS,
        check_checksums,
        file_sha256,
        read_config,
        weight_files,
    )

    calls: dict[str, Callable[[], Any]] = {}
    facts: dict[str, Any] = {}
    for label, (name, overrides) in MODELS.items():
        folder = zoo.build(name, None, overrides, tmp / label)
        recorded = read_config(folder)[CHECKSUMS]
        model = zoo.from_pretrained(folder)
        facts[label] = {"model": name, "overrides": overrides,
                        "parameters": model.num_parameters,
                        "tensors": len(model.module.state_dict()),
                        "files": {n: (folder / n).stat().st_size for n in weight_files(folder)}}

        def load(folder: Path = folder) -> Any:
            return zoo.from_pretrained(folder)

        def load_verified(folder: Path = folder, recorded: dict = recorded) -> Any:
            model = zoo.from_pretrained(folder)
            check_checksums(folder, recorded)
            return model

        calls[f"{label}/load"] = load
        calls[f"{label}/load+sha256"] = load_verified
        calls[f"{label}/sha256"] = lambda f=folder, r=recorded: check_checksums(f, r)
        calls[f"{label}/sha256_weights"] = lambda f=folder: file_sha256(f / WEIGHTS)
    return calls, facts


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=None, help="timed rounds (default 30)")
    p.add_argument("--warmup", type=int, default=None, help="untimed calls each (default 3)")
    p.add_argument("--quick", action="store_true", help="smoke test: 1 warm-up, 5 rounds")
    p.add_argument("--out", type=Path, default=None, help="JSON results path")
    args = p.parse_args(argv)
    rounds = args.rounds or (5 if args.quick else 30)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)
    out = args.out or HERE / "results" / (
        "load_verify.quick.json" if args.quick else "load_verify.json")
    from benchlib import machine_info

    machine = machine_info()
    with tempfile.TemporaryDirectory(prefix="bench_load_verify_") as tmp:
        os.environ["ZOO_HOME"] = str(Path(tmp) / "zoo-home")
        calls, facts = prepare(Path(tmp))
        names = list(calls)
        for name in names:
            for _ in range(warmup):
                calls[name]()
        times: dict[str, list[float]] = {name: [] for name in names}
        for r in range(rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                gc.collect()
                start = time.perf_counter()
                calls[name]()
                times[name].append(time.perf_counter() - start)
    med = {name: statistics.median(t) for name, t in times.items()}
    cost = {label: {"sha256/load": med[f"{label}/sha256"] / med[f"{label}/load"],
                    "sha256_weights/load": med[f"{label}/sha256_weights"] / med[f"{label}/load"],
                    "load+sha256/load": med[f"{label}/load+sha256"] / med[f"{label}/load"]}
            for label in MODELS}
    for name in names:
        print(f"{name}: {med[name] * 1e3:.2f} ms median of {rounds}")
    for label, ratios in cost.items():
        print(f"{label}: " + ", ".join(f"{k} {v:.1%}" for k, v in ratios.items()))
    result = {
        "benchmark": "zoo.from_pretrained(folder) with and without the sha256 of the "
                     "weights files, CPU, files in the page cache",
        "machine": machine, "settings": {"rounds": rounds, "warmup": warmup},
        "models": facts,
        "median_ms": {k: round(v * 1e3, 3) for k, v in med.items()},
        "cost": {label: {k: round(v, 4) for k, v in r.items()} for label, r in cost.items()},
        "times_ms": {k: [round(x * 1e3, 3) for x in v] for k, v in times.items()},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
