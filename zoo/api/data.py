"""Data tools: pack a data source into WebDataset shards, index shards made elsewhere."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from zoo.core.errors import DataError, SpecError

if TYPE_CHECKING:
    from zoo.core.spec import DataSpec

__all__ = ["PackResult", "data_spec", "index_data", "pack_data"]


@dataclass(frozen=True)
class PackResult:
    """What :func:`pack_data` wrote: the folder, images, shards, skipped images and the
    ``data.source`` that reads the shards back."""

    out: Path
    count: int
    shards: list[str]
    skipped: int
    source: str

    def summary(self) -> str:
        """One line for a person: what was written and the ``data.source`` to use."""
        skipped = f" ({self.skipped:,} unreadable skipped)" if self.skipped else ""
        return (f"wrote {self.count:,} images{skipped} in {len(self.shards)} shard"
                f"{'s' * (len(self.shards) != 1)} to {self.out} "
                f"(data.source = \"{self.source}\")")


def data_spec(source: str | Path, overrides: Iterable[str] = ()) -> DataSpec:
    """The data spec of ``source`` (a folder, or a data source name such as ``mnist5k``,
    ``hf:...`` or ``wds:...``) with ``data.KEY=VALUE`` overrides."""
    from pydantic import ValidationError

    from zoo.core.spec import DataSpec, apply_overrides, describe_errors

    text = str(source)
    doc: dict[str, Any] = ({"source": "folder", "path": text} if Path(text).is_dir()
                           else {"source": text})
    overrides = list(overrides)
    for item in overrides:
        if not item.strip().startswith("data."):
            raise SpecError(f"--set {item!r}: only data.KEY=VALUE is read here")
    doc = apply_overrides({"data": doc}, overrides)["data"]
    try:
        return DataSpec.model_validate(doc)
    except ValidationError as exc:
        raise SpecError(f"data spec: {describe_errors(DataSpec, exc)}") from None


def pack_data(source: str | Path, out: str | Path, shard_size: int = 1000,
              max_shard_mb: float = 1024, split: Literal["train", "test", "all"] = "all",
              size: int | None = None, overrides: Iterable[str] = (), force: bool = False,
              progress: bool = True) -> PackResult:
    """Write a data source's images as WebDataset tar shards ``OUT/shard-000000.tar ...``
    with ``OUT/index.tsv.gz`` and ``OUT/index.json``.

    ``source``: a folder or a data source name (``data.KEY=VALUE`` ``overrides``, e.g. the
    ``hf:`` keys). Samples keep the original bytes and extension (in-memory sources: PNG);
    ``size`` stores each image decoded to ``size``×``size`` as PNG (pixel-identical when
    trained at ``data.image_size = size``). ``split``: ``all`` keeps every image (the keys
    carry the hash split), ``train``/``test`` only that split. An image that cannot be read
    is skipped with a warning (``data.strict``: an error); with ``size`` every image is
    decoded, without only its header is checked. ``OUT`` is written into a temporary
    folder and renamed, so a failure leaves nothing; an existing ``OUT`` is replaced only
    with ``force`` and only if it is a shard folder written here (or empty).
    """
    from zoo.artifact import atomic_folder, replaceable, resolvable, tidy_leftovers
    from zoo.core.errors import ArtifactError
    from zoo.data.extra import check_installed

    if shard_size < 1 or max_shard_mb <= 0:
        raise DataError("--shard-size and --max-shard-mb must be positive")
    if size is not None and not 4 <= size <= 1024:
        raise DataError(f"--size {size}: expected 4 to 1024 pixels")
    if split not in ("train", "test", "all"):
        raise DataError(f"--split {split!r}: expected train, test or all")
    target = resolvable(Path(out), "OUT")
    if target.exists() and not force:
        raise ArtifactError(f"{target} already exists; pass --force to replace it")
    if target.exists() and not replaceable(target):  # before the source is read
        raise ArtifactError(f"refusing to replace {target}: not shards written by zoo data "
                            "pack (nor a genzoo model folder)")
    spec = data_spec(source, overrides)
    check_installed("webdataset", "zoo data pack")
    parts = _parts(spec, split)
    counts = [n for _, _, n, _ in parts]
    total = None if None in counts else sum(counts)  # None: a stream of unknown size
    about = {"source": spec.source, "path": spec.path, "split": split, "size": size}

    def fill(folder: Path) -> None:
        from zoo.data.pack import channel_mode, source_samples, write_indexes, write_shards

        mode = channel_mode(spec)
        samples = (s for data, rows, _, prefix in parts
                   for s in source_samples(data, rows, mode, size, prefix))
        with _bar(total, progress) as advance:
            packed = write_shards(samples, total, folder, shard_size,
                                  int(max_shard_mb * 2**20), spec.strict, advance)
        write_indexes(folder, packed.shards, about)
        result.update(count=packed.count, shards=packed.shards, skipped=len(packed.skipped))

    result: dict[str, Any] = {}
    tidy_leftovers(target, lambda line: print(line, file=sys.stderr))  # a pack killed before
    written = atomic_folder(target, fill, overwrite=force)
    shards = result["shards"]
    last = len(shards) - 1
    pattern = (f"{written}/{shards[0]}" if last == 0 else
               f"{written}/shard-{{000000..{last:06d}}}.tar")
    return PackResult(written, result["count"], shards, result["skipped"], f"wds:{pattern}")


def _parts(spec: DataSpec, split: str) -> list[tuple[Any, Any, int | None, str]]:
    """What to pack: ``(data, rows, count, key prefix)`` per split opened (one for an
    indexed source without its own splits; train and test for the others with ``all``). A
    streamed source gives its samples for ``rows`` and its count if known, else None."""
    import numpy as np

    from zoo.data import ImageSource, StreamSource, open_source
    from zoo.data.split import view

    first = open_source(spec, "train" if split == "all" else split)
    if isinstance(first, StreamSource):  # read once, in shard order; the count when known
        from zoo.data.stream import read_all, split_samples

        if first.presplit and split == "all":
            raise DataError(f"data source {spec.source!r} has its own splits (data.splits): "
                            "pack --split train and --split test separately")
        if split == "all" or first.presplit:
            return [(first, read_all(first), first.total, "")]
        return [(first, split_samples(first, split, spec.held_out), None, "")]
    if isinstance(first, ImageSource):
        if first.presplit and split == "all":
            raise DataError(f"data source {spec.source!r} has its own splits (data.splits): "
                            "pack --split train and --split test separately")
        rows = None if split == "all" else view(first, split, spec)
        return [(first, rows, len(first) if rows is None else len(rows), "")]
    if split != "all":
        count = len(first.images)
        if split == "train" and spec.limit is not None:  # as training reads it
            count = min(count, spec.limit)
        return [(first, np.arange(count), count, "")]
    second = open_source(spec, "test")
    return [(first, None, len(first.images), "train/"),
            (second, None, len(second.images), "test/")]


class _bar:
    """A rich progress bar on stderr (images, img/s, shards), or nothing."""

    def __init__(self, total: int, show: bool) -> None:
        self.total, self.show, self.progress = total, show, None

    def __enter__(self):
        if not self.show:
            return None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(
            TextColumn("packing"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} img/s, {task.fields[shards]} shard(s)"),
            TimeElapsedColumn(), console=Console(stderr=True), transient=False)
        self.progress.start()
        self.task = self.progress.add_task("pack", total=self.total, rate="-", shards=0)
        return self.advance

    def advance(self, done: int, shards: int) -> None:
        task = self.progress.tasks[0]
        rate = f"{task.speed:,.0f}" if task.speed else "-"
        self.progress.update(self.task, completed=done, rate=rate, shards=shards)

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()


def index_data(pattern: str) -> Path:
    """Write ``index.tsv.gz`` and ``index.json`` beside WebDataset shards made elsewhere
    (``pattern``: a brace pattern of local .tar files in one folder), so the ``wds:``
    source opens them without scanning; return the ``index.json`` path."""
    from zoo.data.extra import check_installed
    from zoo.data.pack import write_indexes
    from zoo.data.wds import INDEX_JSON, shard_paths

    check_installed("webdataset", "zoo data index")
    paths = shard_paths(pattern, f"wds:{pattern}")
    folders = {p.resolve().parent for p in paths}
    if len(folders) != 1:
        raise DataError(f"{pattern}: the shards are in {len(folders)} folders; index the "
                        "shards of one folder at a time")
    folder = folders.pop()
    write_indexes(folder, [p.name for p in paths], {"source": f"wds:{pattern}"})
    return folder / INDEX_JSON
