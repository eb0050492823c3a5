"""Linear probes of named models: ``zoo probe`` on each, one line per model, one JSON file.

For every ``--run NAME=PATH`` the model folder is copied into ``--work``
(the probe writes its scores into the folder it probes; the original stays
untouched) and probed with ``zoo.api.probe`` at ``--labels`` (default
100,1000,all) with ``--seeds`` class-balanced draws of the smaller counts:
held-out accuracy of a logistic regression on the model's features, on the raw
pixels and on a randomly initialised network of the same architecture. A family
without features is recorded as such. Results are merged into ``--out``
(default ``bench/results/probe.json``; a model probed again replaces its entry)
and, with ``--table``, written as a Markdown table.

    python bench/probe.py --run dcgan-mnist=/work/runs/lead/dcgan-mnist --seeds 3
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def probe_one(name: str, path: Path, work: Path, labels: str, seeds: int) -> dict[str, Any]:
    """Copy the folder into ``work`` and probe the copy; the row for the JSON file."""
    import torch

    from zoo.api import probe
    from zoo.core.errors import CapabilityError

    copy = work / name
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(path, copy)
    family = json.loads((copy / "config.json").read_text())["family"]
    torch.set_num_threads(1)
    start = time.perf_counter()
    try:
        scores = probe(copy, labels=labels, seeds=seeds)
    except CapabilityError as exc:
        return {"family": family, "path": str(path), "features": None, "note": str(exc)}
    return {"family": family, "path": str(path), "seconds": round(time.perf_counter() - start, 1),
            "scores": scores}


def cell(scores: dict[str, Any], kind: str, count: str) -> str:
    """``mean ± std`` in percent, or the mean alone for a single draw."""
    value, std = scores[f"{kind}.{count}"], scores[f"{kind}.{count}.std"]
    return f"{100 * value:.1f}" + (f" ± {100 * std:.1f}" if std else "")


def line(name: str, row: dict[str, Any], counts: list[str]) -> str:
    """One printed line per model."""
    if "scores" not in row:
        return f"{name:24s} {row['family']:14s} no features ({row['note']})"
    s = row["scores"]
    parts = [f"{c}: {cell(s, 'features', c)} (px {cell(s, 'pixels', c)}, rnd "
             f"{cell(s, 'random', c)})" for c in counts]
    return f"{name:24s} {row['family']:14s} " + "; ".join(parts) + f"  [{row['seconds']} s]"


def table(results: dict[str, Any], counts: list[str]) -> str:
    """The Markdown table: a row per model; per label count its features, the raw pixels and
    the random network (held-out accuracy, %)."""
    head = ["model", "features (dim)"] + [f"{c} {kind}" for c in counts
                                          for kind in ("features", "pixels", "random")]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in sorted(results.items()):
        if "scores" not in row:
            rows.append(f"| {name} | none: no inference network |"
                        + " – |" * (3 * len(counts)))
            continue
        s = row["scores"]
        cells = [f"**{cell(s, k, c)}**" if k == "features" else cell(s, k, c)
                 for c in counts for k in ("features", "pixels", "random")]
        rows.append(f"| {name} | {s['features.dim']:,} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def main() -> None:
    """Parse the arguments, probe every model, merge and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", default=[], metavar="NAME=PATH",
                        help="A model to probe (none: rewrite --table from --out)")
    parser.add_argument("--labels", default="100,1000,all")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--work", type=Path, default=Path("/tmp/zoo-probe"))
    parser.add_argument("--out", type=Path, default=HERE / "results" / "probe.json")
    parser.add_argument("--table", type=Path, default=None)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    counts = ["all" if c.strip() == "all" else c.strip() for c in args.labels.split(",")]
    results = json.loads(args.out.read_text())["models"] if args.out.is_file() else {}
    for item in args.run:
        name, _, path = item.partition("=")
        row = probe_one(name, Path(path), args.work, args.labels, args.seeds)
        results[name] = {**row, "labels": args.labels, "seeds": args.seeds}
        print(line(name, row, counts), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"models": results}, indent=2) + "\n")
        if args.table:
            args.table.write_text(table(results, counts))
    if args.table:
        args.table.write_text(table(results, counts))


if __name__ == "__main__":
    main()
