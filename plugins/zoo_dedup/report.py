"""What ``zoo dedup`` writes: the JSON or CSV report, the clean copy, the summary.

Every file is written to a temporary sibling and renamed, so an error leaves
nothing half-written; originals are only ever read.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path

from zoo.errors import ZooError
from zoo_dedup.pipeline import DedupResult, iter_kept

REPORT_SUFFIXES = (".json", ".csv")


def check_report_path(path: Path) -> None:
    """Fail before any work if ``path`` cannot be a report (suffix, folder, not a folder)."""
    if path.suffix.lower() not in REPORT_SUFFIXES:
        raise ZooError(f"--report {path}: expected a .json or .csv file")
    if not path.resolve().parent.is_dir():
        raise ZooError(f"--report {path}: folder {path.parent} does not exist")
    if path.is_dir():
        raise ZooError(f"--report {path} is a folder")


def check_clean_dir(path: Path, source: str) -> None:
    """Fail before any work if ``path`` exists or lies inside the source folder."""
    if path.exists():
        raise ZooError(f"--write-clean {path} already exists; give a new folder")
    if not path.resolve().parent.is_dir():
        raise ZooError(f"--write-clean {path}: folder {path.parent} does not exist")
    root = Path(source).resolve()
    if root.is_dir() and path.resolve().is_relative_to(root):
        raise ZooError(f"--write-clean {path} is inside the source {source}; a later run "
                       "would read the copies as images")


def report_json(result: DedupResult) -> str:
    """``{"groups": [[path, ...], ...]}``: one list per group, the kept image first."""
    return json.dumps({"groups": result.path_groups}, indent=1) + "\n"


def report_csv(result: DedupResult) -> str:
    """One row per image in a group: ``group,path,keep`` (keep: 1 for the first member)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["group", "path", "keep"])
    for number, group in enumerate(result.path_groups):
        for position, path in enumerate(group):
            writer.writerow([number, path, int(position == 0)])
    return buf.getvalue()


def write_report(result: DedupResult, path: Path) -> None:
    """Write the report whose format the suffix names, atomically."""
    from zoo.artifact import atomic_write

    text = report_csv(result) if path.suffix.lower() == ".csv" else report_json(result)
    atomic_write(path, text)


def write_clean(result: DedupResult, target: Path) -> int:
    """A deduplicated copy of the source in ``target``; returns the number of images written.

    Folder sources keep their relative layout and bytes (``shutil.copy2``);
    data-set sources become ``split_index.png`` files. The folder appears only
    when complete.
    """
    from zoo.artifact import atomic_folder

    kept = list(iter_kept(result))
    src = result.source

    def fill(folder: Path) -> None:
        if src.is_folder:
            root = Path(src.name)
            for i in kept:
                dest = folder / src.files[i].relative_to(root)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src.files[i], dest)
        else:
            _write_dataset_pngs(result, kept, folder)

    atomic_folder(target, fill)
    return len(kept)


def _write_dataset_pngs(result: DedupResult, kept: list[int], folder: Path) -> None:
    from PIL import Image

    from zoo.data import SPLITS
    from zoo_dedup.images import dataset_split

    wanted = set(kept)
    offset = 0
    for split in SPLITS:
        images = dataset_split(result.source.dataset, split).numpy()
        for i, image in enumerate(images):
            if offset + i in wanted:
                array = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
                Image.fromarray(array).save(folder / f"{split}_{i}.png")
        offset += len(images)


def summary(result: DedupResult) -> list[str]:
    """Lines for stdout: counts, settings, throughput and the model used."""
    n, removed = len(result.paths), len(result.removed)
    in_groups = sum(len(g) for g in result.groups)
    t = result.timings
    lines = [
        f"{n:,} images: {len(result.groups):,} groups of near-duplicates holding "
        f"{in_groups:,} images; a clean copy keeps {n - removed:,} and drops {removed:,}",
        f"hashes: {result.n_bits} bits, max Hamming distance {result.max_distance}, "
        + (f"codes within {result.max_angle:g} degrees, " if result.max_angle is not None
           else "no code check, ")
        + ("flip-invariant" if result.flip else "mirror images not matched"),
        f"hashed {n:,} images in {t.get('hash_s', 0):.2f} s ({result.images_per_s:,.0f} "
        f"images/s), grouped in {t.get('group_s', 0):.2f} s",
    ]
    trained = f" (trained in {t['train_s']:.1f} s)" if "train_s" in t else ""
    lines.append(f"model: {os.fspath(result.model)}{trained}")
    return lines
