"""What ``zoo dedup`` writes: the JSON or CSV report, the clean copy, the summary.

Every file is written to a temporary sibling and renamed, so an error leaves
nothing half-written; originals are only ever read, and nothing is written
inside a source folder.

Paths are reported as the file system has them. A name that is not UTF-8 (on
Linux, names are bytes) reaches Python with surrogate escapes: the JSON report
writes it as ``\\udcXX`` escapes (``json.load`` then ``os.fsencode`` gives the
bytes back), the CSV report writes the name's own bytes
(``open(..., encoding="utf-8", errors="surrogateescape")`` reads it back), and
the summary shows them as ``\\xXX``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path

from zoo.artifact import resolvable
from zoo.core.errors import ZooError
from zoo_dedup.pipeline import DedupResult, iter_kept

REPORT_SUFFIXES = (".json", ".csv")


def check_report_path(path: Path, source: str | None = None) -> None:
    """Fail before any work if ``path`` cannot be a report (suffix, folder, not a folder)
    or lies inside the ``source`` folder (it could overwrite a file there)."""
    if path.suffix.lower() not in REPORT_SUFFIXES:
        raise ZooError(f"--report {path}: expected a .json or .csv file")
    if not resolvable(path, "--report").parent.is_dir():
        raise ZooError(f"--report {path}: folder {path.parent} does not exist")
    if path.is_dir():
        raise ZooError(f"--report {path} is a folder")
    if source is not None and inside(path, source):
        raise ZooError(f"--report {path} is inside the source {source}; write it elsewhere "
                       "(zoo dedup never writes into its source)")


def inside(path: Path, source: str) -> bool:
    """Whether ``path`` (symbolic links resolved) lies in the folder ``source``."""
    root = resolvable(Path(source), "SOURCE")
    return root.is_dir() and resolvable(path, "the path").is_relative_to(root)


def check_clean_dir(path: Path, source: str) -> None:
    """Fail before any work if ``path`` exists or lies inside the source folder."""
    if path.exists():
        raise ZooError(f"--write-clean {path} already exists; give a new folder")
    if not resolvable(path, "--write-clean").parent.is_dir():
        raise ZooError(f"--write-clean {path}: folder {path.parent} does not exist")
    if inside(path, source):
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
    """Write the report whose format the suffix names, atomically (a CSV holds each path's
    bytes as the file system has them, UTF-8 or not)."""
    from zoo.artifact import atomic_write

    if path.suffix.lower() == ".csv":
        atomic_write(path, report_csv(result).encode("utf-8", "surrogateescape"))
    else:
        atomic_write(path, report_json(result))


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
    from zoo.sampling.sample import hwc
    from zoo_dedup.images import dataset_split

    wanted = set(kept)
    offset = 0
    for split in SPLITS:
        images = dataset_split(result.source.dataset, split).numpy()
        for i, image in enumerate(images):
            if offset + i in wanted:
                Image.fromarray(hwc(image)).save(folder / f"{split}_{i}.png")
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
    left_out = _left_out(result)
    if left_out:
        lines.append(f"left out (not hashed, not in a clean copy): {left_out}")
    trained = f" (trained in {t['train_s']:.1f} s)" if "train_s" in t else ""
    lines.append(f"model: {shown(result.model)}{trained}")
    return lines


def _left_out(result: DedupResult) -> str:
    """What a folder source did not include, counted: '' when nothing."""
    src = result.source

    def count(n: int, what: str) -> str:
        return f"{n:,} {what}{'' if n == 1 else 's'}"

    parts = []
    if src.unreadable:
        parts.append(count(len(src.unreadable), "folder") + " that could not be listed")
    if src.outside_links:
        parts.append(count(len(src.outside_links), "link") + " to files outside the source "
                     "(--follow-links)")
    if src.too_large:
        parts.append(count(len(src.too_large), "image") + " over the pixel limit")
    return ", ".join(parts)


def shown(path: str | os.PathLike[str]) -> str:
    """A path for the terminal: bytes of a non-UTF-8 name as ``\\xXX`` (print would fail)."""
    return os.fspath(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
