"""Near-duplicate detection, side by side: ``zoo dedup`` against imagededup.

The peer is ``imagededup`` (pip package, installed for this bench only; not a
dependency of the project), driven through its public API as its
documentation shows: ``PHash()``, ``DHash()``, ``WHash()`` with
``encode_images(image_dir, num_enc_workers=W)`` and ``find_duplicates(
encoding_map=..., max_distance_threshold=10, num_dist_workers=W)`` (10 is its
default threshold), W = the cores available. Its ``CNN()`` method downloads
MobileNetV3 weights when constructed; with no internet here it cannot run (the
error is recorded in the JSON), so the hashing methods stand in for it.

Data: ``zoo_dedup.benchset`` writes the set from the bundled MNIST digits:
5,000 originals, 1,500 of them with one transformed copy and 250 with two
(crop 90 %, horizontal flip, JPEG q=50, Gaussian noise, brightness), 7,000
files in all and 2,250 duplicate pairs, shuffled names. The seed defaults to
1: ``zoo dedup``'s defaults (max distance 4, 4 degrees) were chosen on the
seed-0 set, so the reported figures are on images they were not tuned on.

Ours: ``zoo_dedup.pipeline.dedup(IMAGES, save_model=...)`` exactly as ``zoo
dedup IMAGES`` runs it (trains a dedup-ae on the images, then hashes and
groups), then the same model reused (``--model``) for the other settings.

Figures:

* precision, recall, false-positive rate over image pairs. A method's groups
  (ours: union-find over matched pairs; imagededup: its duplicate lists, also
  closed with union-find, since a user removes whole groups) give the
  predicted pairs; truth pairs are those inside a ground-truth group. FPR =
  false pairs / all non-duplicate pairs. Recall is also given per transform
  (pairs that involve a copy made by it). imagededup's raw lists, without
  closing them, are reported too.
* throughput: images/s of the whole pass from files to groups (decode,
  resize, hash, search), ours (model already trained) against PHash with its
  default worker processes (W for encoding and search) and with encoding in
  the calling process (``num_enc_workers=0``: faster on 2 cores, where the
  pool's start-up and pickling cost more than they save), and PHash's hashing
  alone, without its search; interleaved rounds (``benchlib.run_rounds``;
  medians).
* scaling: synthetic sets of N = 1,000, 10,000, 100,000 random smooth 32×32
  grey images (upsampled 8×8 noise, 5 % of them noisy copies of others),
  hashed with the trained model; seconds per 1,000 images at each N, and
  PHash's (encoding in-process) at the sizes its quadratic search finishes in
  reasonable time (``--peer-limit``, default 10,000).

Usage::

    python bench/dedup.py            # seed 1, 3 rounds of 1 call, scaling up to 100k
    python bench/dedup.py --quick    # scaling to 10k, 1 round (smoke test)
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from benchlib import add_round_options, machine_info, run_rounds, settle_round_options

TRANSFORMS = ("crop90", "flip", "jpeg50", "noise", "brightness")
PEER_THRESHOLD = 10  # imagededup's default max_distance_threshold
SETTINGS = {  # name -> dedup keyword arguments
    "zoo dedup (defaults: k=4, 4 degrees, flip-invariant)": {},
    "zoo dedup -k 0 --max-angle 180 (identical hash, the paper)": {
        "max_distance": 0, "max_angle": None},
    "zoo dedup -k 0 (identical hash, angle check)": {"max_distance": 0},
    "zoo dedup --no-flip": {"flip": False},
}


# --------------------------------------------------------------------------- scoring


def pairs_of(groups: list[list[str]]) -> set[tuple[str, str]]:
    """All unordered pairs (by file name) inside groups."""
    out = set()
    for group in groups:
        out.update(itertools.combinations(sorted(Path(p).name for p in group), 2))
    return out


def close_groups(lists: dict[str, list[str]]) -> list[list[str]]:
    """imagededup's duplicate lists closed transitively (union-find)."""
    from zoo_dedup.hashing import groups_from_pairs

    names = sorted(lists)
    index = {n: i for i, n in enumerate(names)}
    pairs = np.array([(index[a], index[b]) for a, dups in lists.items() for b in dups],
                     dtype=np.int64).reshape(-1, 2)
    return [[names[i] for i in g] for g in groups_from_pairs(len(names), pairs)]


def score(predicted: set[tuple[str, str]], truth: dict[str, Any]) -> dict[str, Any]:
    """Precision, recall, FPR and recall per transform of predicted pairs."""
    true_pairs = pairs_of(truth["groups"])
    n = truth["images"]
    tp = len(predicted & true_pairs)
    fp = len(predicted) - tp
    kind = truth["transform_of"]
    per = {}
    for t in TRANSFORMS:
        involved = [p for p in true_pairs if t in (kind[p[0]], kind[p[1]])]
        per[t] = round(sum(p in predicted for p in involved) / max(1, len(involved)), 4)
    return {"predicted_pairs": len(predicted), "true_positives": tp, "false_positives": fp,
            "precision": round(tp / max(1, len(predicted)), 4),
            "recall": round(tp / len(true_pairs), 4),
            "fpr": fp / (n * (n - 1) // 2 - len(true_pairs)), "recall_by_transform": per}


# --------------------------------------------------------------------------- methods


def run_ours(images: Path, model: Path | None, **kwargs: Any):
    """One zoo dedup pass (trains when ``model`` is None)."""
    from zoo_dedup.pipeline import dedup

    if model is None:
        return dedup(str(images), save_model=images.parent / "model", progress=False, **kwargs)
    return dedup(str(images), model=model, progress=False, **kwargs)


def peer_methods() -> dict[str, Any]:
    """imagededup's hashing methods by name, and the CNN's construction error."""
    from imagededup.methods import DHash, PHash, WHash

    return {"PHash": PHash(verbose=False), "DHash": DHash(verbose=False),
            "WHash": WHash(verbose=False)}


def cnn_status() -> str:
    """Whether imagededup's CNN can be constructed here (it downloads weights)."""
    try:
        from imagededup.methods import CNN

        CNN(verbose=False)
    except Exception as exc:  # no internet: urllib raises
        return f"not run: constructing CNN() failed ({type(exc).__name__}: {exc})"
    return "available"


def run_peer(method: Any, images: Path, workers: int, threshold: int = PEER_THRESHOLD,
             enc_workers: int | None = None) -> dict[str, list[str]]:
    """encode_images + find_duplicates, as imagededup documents them (``enc_workers``:
    encoding processes if not ``workers``; 0 encodes in this process)."""
    encodings = method.encode_images(image_dir=str(images), num_enc_workers=(
        workers if enc_workers is None else enc_workers))
    return method.find_duplicates(encoding_map=encodings, max_distance_threshold=threshold,
                                  num_dist_workers=workers)


# --------------------------------------------------------------------------- synthetic sets


def write_synthetic(folder: Path, n: int, seed: int = 0) -> None:
    """n random smooth 32x32 grey PNGs, 5 % of them noisy copies of earlier ones."""
    import torch
    import torch.nn.functional as F
    from PIL import Image

    folder.mkdir(parents=True)
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    for start in range(0, n, 5000):
        m = min(5000, n - start)
        small = torch.rand(m, 1, 8, 8, generator=g)
        big = F.interpolate(small, size=32, mode="bicubic", align_corners=False).clamp(0, 1)
        arrays = (big[:, 0] * 255).round().to(torch.uint8).numpy()
        copies = rng.random(m) < 0.05
        for i in np.flatnonzero(copies)[np.flatnonzero(copies) > 0]:
            src = arrays[rng.integers(0, i)].astype(np.float64)
            arrays[i] = np.clip(src + rng.normal(0, 8, src.shape), 0, 255).astype(np.uint8)
        for i, array in enumerate(arrays):
            Image.fromarray(array).save(folder / f"s{start + i:07d}.png")


def scaling(model: Path, sizes: list[int], workdir: Path, workers: int,
            peer_limit: int) -> list[dict[str, Any]]:
    """Seconds per 1,000 images at each N, ours (hash and group) and PHash's."""
    from imagededup.methods import PHash

    rows = []
    for n in sizes:
        folder = workdir / f"synthetic-{n}"
        write_synthetic(folder, n)
        result = run_ours(folder, model)
        row = {"n": n, "ours_hash_s": round(result.timings["hash_s"], 3),
               "ours_group_s": round(result.timings["group_s"], 3),
               "ours_groups": len(result.groups)}
        row["ours_s_per_1k"] = round(1000 * (row["ours_hash_s"] + row["ours_group_s"]) / n, 4)
        row["ours_images_per_s"] = round(n / (row["ours_hash_s"] + row["ours_group_s"]), 1)
        if n <= peer_limit:
            start = time.perf_counter()
            run_peer(PHash(verbose=False), folder, workers, enc_workers=0)
            peer_s = time.perf_counter() - start
            row["phash_s"] = round(peer_s, 3)
            row["phash_s_per_1k"] = round(1000 * peer_s / n, 4)
            row["phash_images_per_s"] = round(n / peer_s, 1)
        rows.append(row)
        print(f"  scaling N={n:,}: ours {row['ours_s_per_1k']} s per 1k images"
              + (f", PHash {row['phash_s_per_1k']}" if "phash_s" in row else ""),
              file=sys.stderr, flush=True)
    return rows


# --------------------------------------------------------------------------- main


def main() -> None:
    """Run every figure and write ``bench/results/dedup.json``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_round_options(parser)
    parser.set_defaults(rounds=3, k=1)  # a PHash pass over the set takes most of a minute
    parser.add_argument("--seed", type=int, default=1, help="benchmark set seed")
    parser.add_argument("--sizes", type=int, nargs="+", default=None,
                        help="scaling sizes (default 1000 10000 100000; --quick: 1000 10000)")
    parser.add_argument("--peer-limit", type=int, default=10_000,
                        help="largest N at which PHash is timed in the scaling figure")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the sets here")
    parser.add_argument("--model", type=Path, default=None,
                        help="reuse this dedup-ae instead of training one (a quick check)")
    args = settle_round_options(parser.parse_args(), "dedup")
    if args.quick:
        args.rounds, args.k = 1, 1
    sizes = args.sizes or ([1000, 10_000] if args.quick else [1000, 10_000, 100_000])
    import torch
    from imagededup import __version__ as peer_version
    from zoo_dedup.benchset import write_benchset

    torch.set_num_threads(args.threads)
    workers = args.threads
    machine = machine_info()
    tmp = tempfile.TemporaryDirectory(prefix="zoo-bench-dedup-")
    workdir = args.workdir or Path(tmp.name)
    made = write_benchset(workdir / f"nearset-{args.seed}", seed=args.seed)
    truth = json.loads(made.truth.read_text())
    print(f"set: {made.n_images} images, {made.n_pairs} duplicate pairs (seed {args.seed})",
          file=sys.stderr)

    accuracy: dict[str, Any] = {}
    first = run_ours(made.images, args.model)
    model = first.model
    train_s = first.timings.get("train_s", float("nan"))
    for name, kwargs in SETTINGS.items():
        result = first if not kwargs else run_ours(made.images, model, **kwargs)
        accuracy[name] = score(pairs_of(result.path_groups), truth)
    peers = peer_methods()
    for name, method in peers.items():
        lists = run_peer(method, made.images, workers)
        raw = {tuple(sorted(p)) for a, dups in lists.items() for p in ((a, b) for b in dups)}
        accuracy[f"imagededup {name} (threshold {PEER_THRESHOLD}, grouped)"] = score(
            pairs_of(close_groups(lists)), truth)
        accuracy[f"imagededup {name} (threshold {PEER_THRESHOLD}, raw lists)"] = score(
            raw, truth)
    phash_sweep = {}
    encodings = peers["PHash"].encode_images(image_dir=str(made.images), num_enc_workers=workers)
    for threshold in (0, 2, 4, 6, 8):
        lists = peers["PHash"].find_duplicates(encoding_map=encodings,
                                               max_distance_threshold=threshold,
                                               num_dist_workers=workers)
        raw = {tuple(sorted(p)) for a, dups in lists.items() for p in ((a, b) for b in dups)}
        phash_sweep[threshold] = {"grouped": score(pairs_of(close_groups(lists)), truth),
                                  "raw lists": score(raw, truth)}

    calls = {"zoo dedup": lambda: run_ours(made.images, model),
             "imagededup PHash (default workers)": lambda: run_peer(
                 peers["PHash"], made.images, workers),
             "imagededup PHash (encoding in-process)": lambda: run_peer(
                 peers["PHash"], made.images, workers, enc_workers=0),
             "imagededup PHash encode_images only (in-process)": lambda: peers[
                 "PHash"].encode_images(image_dir=str(made.images), num_enc_workers=0)}
    timings = run_rounds(calls, args.rounds, args.k, made.n_images, label="throughput ")
    throughput = {name: round(made.n_images / statistics.median(
        t for rnd in per for t in rnd), 1) for name, per in timings.items()}

    scale = scaling(model, sizes, workdir, workers, args.peer_limit)
    by_n = {row["n"]: row for row in scale}
    flat = None
    if 10_000 in by_n and 100_000 in by_n:
        flat = round(by_n[100_000]["ours_s_per_1k"] / by_n[10_000]["ours_s_per_1k"], 3)

    results = {
        "benchmark": "zoo dedup vs imagededup: precision/recall/FPR, throughput, scaling",
        "machine": machine, "versions": {"imagededup": peer_version},
        "settings": {"seed": args.seed, "images": made.n_images, "duplicate_pairs": made.n_pairs,
                     "rounds": args.rounds, "k": args.k, "workers": workers,
                     "peer_threshold": PEER_THRESHOLD, "cnn": cnn_status(),
                     "transforms": truth["transforms"]},
        "train_s": round(train_s, 1), "accuracy": accuracy,
        "phash_threshold_sweep": phash_sweep,
        "throughput_images_per_s": throughput,
        "throughput_times_s": timings,
        "scaling": scale, "per_image_cost_100k_over_10k": flat,
        "loadavg_at_end": os.getloadavg(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    for name, s in accuracy.items():
        print(f"{name}: precision {s['precision']:.4f}, recall {s['recall']:.4f}, "
              f"FPR {s['fpr']:.2e} ({s['predicted_pairs']} pairs)")
    for threshold, both in phash_sweep.items():
        for how, s in both.items():
            print(f"imagededup PHash threshold {threshold} ({how}): precision "
                  f"{s['precision']:.4f}, recall {s['recall']:.4f}")
    print(f"training the dedup-ae on {made.n_images} images: {train_s:.1f} s")
    print("throughput (files to groups): " + ", ".join(
        f"{k} {v:,.0f} images/s" for k, v in throughput.items()))
    for row in scale:
        print(f"scaling N={row['n']:,}: ours {row['ours_s_per_1k']} s per 1,000 images "
              f"({row['ours_images_per_s']:,.0f} images/s)"
              + (f", PHash {row['phash_s_per_1k']} s per 1,000" if "phash_s" in row else ""))
    if flat is not None:
        print(f"per-image cost at 100k / at 10k: {flat}x")
    print(f"wrote {args.out}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
