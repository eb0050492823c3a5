"""Do FID, KID and precision/recall rank real data, a trained DCGAN and an untrained one?

Issue 21's acceptance check on real models: on each feature network given, the
real-data floor (as many real training digits as samples, against the held-out
split: ``reference_*``) must score better than the trained ``dcgan-mnist``, and the
trained generator better than the same network untrained (``untrained_*``, the
architecture and seed of the spec, never trained):

* FID: reference < trained < untrained;
* precision and recall: reference > trained > untrained (an untrained generator's
  samples usually land in no real image's neighbourhood, so both are 0; the trained
  one's must then be above 0);
* KID (not computed for the untrained generator): reference < trained.

The model is built as ``zoo build dcgan-mnist --out DIR`` does (20 epochs, about 2-3
minutes on 2 idle CPU cores), or an existing folder is reused (``--model DIR``), and
scored with ``zoo.api.evaluate(DIR, n, baseline=True, features=X)`` for each ``X``, which
also writes the scores into the folder's ``metrics.json``.

Usage::

    python bench/quality_ranking.py                          # builds into a temporary folder
    python bench/quality_ranking.py --model runs/dcgan-mnist # reuses a built folder
    python bench/quality_ranking.py --features digits inception  # inception: needs its weights

Results: ``bench/results/quality_ranking.json`` (one line per figure on stdout).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

from benchlib import RESULTS, machine_info

NAME = "dcgan-mnist"
#: (figure, better direction) for the figures every row has.
FIGURES = (("fid", "lower"), ("precision", "higher"), ("recall", "higher"), ("kid", "lower"))


def rows(scores: dict[str, Any], features: str) -> dict[str, dict[str, float | None]]:
    """Real floor, trained and untrained values of each figure on ``features``."""
    table: dict[str, dict[str, float | None]] = {}
    for figure, _ in FIGURES:
        table[figure] = {who: scores.get(f"{prefix}{figure}@{features}")
                         for who, prefix in (("real", "reference_"), ("trained", ""),
                                             ("untrained", "untrained_"))}
    return table


def ranked(values: dict[str, float | None], better: str) -> bool:
    """Whether real beats trained beats untrained (where each is known); 0 precision or
    recall for the untrained generator passes when the trained one's is above 0."""
    order = [values[who] for who in ("real", "trained", "untrained") if values[who] is not None]
    if better == "lower":
        return all(a < b for a, b in pairwise(order))
    return all(a > b for a, b in pairwise(order))


def summary(features: str, figure: str, values: dict[str, float | None], ok: bool) -> str:
    """One line: the figure's three values and whether they rank as they should."""
    shown = "  ".join(f"{who} {value:.4g}" for who, value in values.items() if value is not None)
    return f"{features:<10} {figure:<10} {shown}  {'ranked' if ok else 'NOT RANKED'}"


def main() -> int:
    """Build (or reuse) dcgan-mnist, score it on each feature network, write the JSON."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=None,
                   help="a built dcgan-mnist folder to reuse (default: build one)")
    p.add_argument("--features", nargs="+", default=["digits"],
                   help="feature networks to score on (default: digits)")
    p.add_argument("-n", type=int, default=1000, help="samples per generator (default 1000)")
    p.add_argument("--set", dest="sets", action="append", default=[],
                   help="a spec override for the build, e.g. train.max_steps=200")
    p.add_argument("--note", default=None, help="a remark recorded in the JSON (how the "
                   "reused model was built, say)")
    p.add_argument("--out", type=Path, default=RESULTS / "quality_ranking.json")
    args = p.parse_args()

    import zoo.api

    result: dict[str, Any] = {"model": NAME, "n": args.n, "machine": machine_info()}
    if args.note:
        result["note"] = args.note
    with tempfile.TemporaryDirectory(prefix="quality-ranking-") as tmp:
        folder = args.model
        if folder is None:
            started = time.perf_counter()
            folder = zoo.api.build(NAME, None, args.sets, Path(tmp) / NAME, progress=True)
            result["build_s"] = round(time.perf_counter() - started, 1)
            result["overrides"] = args.sets
        config = json.loads((folder / "metrics.json").read_text())
        result["train"] = {k: config.get("train", {}).get(k)
                           for k in ("steps", "epochs", "wall_time_s")}
        all_ranked = True
        for features in args.features:
            started = time.perf_counter()
            scores = zoo.api.evaluate(folder, n=args.n, baseline=True, features=features)
            table = rows(scores, features)
            checks = {figure: ranked(table[figure], better) for figure, better in FIGURES}
            for figure, _ in FIGURES:
                print(summary(features, figure, table[figure], checks[figure]), flush=True)
            all_ranked &= all(checks.values())
            result[features] = {"figures": table, "ranked": checks,
                                "eval_s": round(time.perf_counter() - started, 1),
                                "scores": scores}
    result["all_ranked"] = all_ranked
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0 if all_ranked else 1


if __name__ == "__main__":
    sys.exit(main())
