"""Feature-extraction throughput (issue 21): images/s of ``--features digits`` and
``--features inception``, Inception side by side with torch-fidelity's own network.

Each call embeds one batch of 50 uint8 RGB 32x32 images (``--batch``, ``--size``):
ours through the ``zoo.FeatureExtractor`` call (``load_extractor(NAME)(batch)``: to the
device, forward, float32 features back on the CPU); the peer is torch-fidelity's
``FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])`` forward on the same
batch (its own instance, same weights). Inception's weights are random
(``zoo.testing.inception.write_random_inception``, in a temporary folder, through
``$ZOO_INCEPTION_WEIGHTS``): the time does not depend on the values. The digit classifier
is trained once and cached in ``$ZOO_HOME`` when absent (about a minute on 2 cores).

Method: ``benchlib`` (warm-up, interleaved rounds, order reversed every other round,
medians). Device: ``--device`` (default cuda when available, else cpu).

Usage::

    python bench/features.py            # 5 rounds of 1 call
    python bench/features.py --quick    # 2 rounds: smoke test

Results: ``bench/results/features.json`` (``--quick``: ``features.quick.json``; cuda:
``features.cuda.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from benchlib import (
    add_round_options,
    images_per_s,
    machine_info,
    run_rounds,
    settle_round_options,
    warm_up,
)

BATCH, SIZE = 50, 32


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=BATCH, help="images per call")
    p.add_argument("--size", type=int, default=SIZE, help="image height and width")
    add_round_options(p)
    p.set_defaults(warmup=1, device="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    # Inception on 2 CPU cores takes seconds a call: fewer rounds than benchlib's defaults.
    args.rounds = args.rounds or (2 if args.quick else 5)
    args.k = args.k or 1
    return settle_round_options(args, "features")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    from zoo.evaluation.extractor import load_extractor
    from zoo.evaluation.inception import build, read_pth
    from zoo.testing.inception import write_random_inception

    images = torch.randint(0, 256, (args.batch, 3, args.size, args.size), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    with tempfile.TemporaryDirectory(prefix="bench_features_") as tmp:
        weights = write_random_inception(Path(tmp) / "random-inception.pth")
        os.environ["ZOO_INCEPTION_WEIGHTS"] = str(weights)
        digits, ours = load_extractor("digits"), load_extractor("inception")
        peer = build(read_pth(weights)).to(device)  # torch-fidelity's network, as it is
    # Inception on the --device asked for, whatever it chose itself (the digit classifier
    # runs on the CPU: its __call__ does not move images).
    ours.net.to(device)
    ours.device = device

    def peer_call() -> torch.Tensor:
        with torch.inference_mode():
            return peer(images.to(device))[0].float().cpu()

    # The same features both ways (a check, not timed).
    torch.testing.assert_close(ours(images), peer_call(), rtol=1e-5, atol=1e-5)
    calls = {"digits": lambda: digits(images), "inception (ours)": lambda: ours(images),
             "inception (torch-fidelity)": peer_call}
    print(f"features: {args.batch} images {args.size}x{args.size} per call on {args.device}, "
          f"{args.threads} threads, {args.rounds} rounds of {args.k}", file=sys.stderr)
    peaks = warm_up(calls, args.warmup, args.sync)
    timings = run_rounds(calls, args.rounds, args.k, args.batch, sync=args.sync)
    rates = {name: round(images_per_s(t, args.batch), 2) for name, t in timings.items()}
    ratio = rates["inception (ours)"] / rates["inception (torch-fidelity)"]
    for name, rate in rates.items():
        print(f"features {name}: {rate:.1f} images/s")
    print(f"features inception ours/torch-fidelity: {ratio:.3f}")
    import torch_fidelity

    result: dict[str, Any] = {
        "benchmark": "feature extraction images/s: digits, and inception vs torch-fidelity's "
                     "FeatureExtractorInceptionV3 on the same uint8 batches",
        "machine": machine_info() | {"torch_fidelity": torch_fidelity.__version__},
        "settings": {"quick": args.quick, "batch": args.batch, "size": args.size,
                     "device": args.device, "rounds": args.rounds, "k": args.k,
                     "warmup": args.warmup, "threads": args.threads,
                     "inception_weights": "random (write_random_inception)"},
        "images_per_s": rates,
        "ratio_inception_ours_over_torch_fidelity": round(ratio, 3),
        "peak_gpu_mib": peaks,
        "times_s": {name: [[round(x, 4) for x in r] for r in t] for name, t in timings.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_suffix(".tmp")
    tmp_out.write_text(json.dumps(result, indent=2) + "\n")
    tmp_out.replace(args.out)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
