"""The ``hf:`` data source: a Hugging Face data set (``datasets``) read row by row.

``hf:NAME`` is what ``datasets.load_dataset(NAME, ...)`` loads (a Hub id, or a packaged
builder such as ``imagefolder``, ``parquet`` or ``arrow`` with ``data.path``), or a folder
written by ``save_to_disk``. The rows stay in the data set's memory-mapped Arrow files; a
row's image is read undecoded (its encoded bytes, else its file path) and decoded by the
same decoder as every other source. ``datasets`` is imported only here, inside functions.

A row that holds only a path (``imagefolder``'s files, a zip member ``zip://a.png::/x.zip``, a
Hub file ``hf://datasets/...``) is read only when the path lies inside the data set's own
files (:class:`Cells`): a data set from the Hub must never make genzoo read another local file.
"""

from __future__ import annotations

import contextlib
import os
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.core.errors import DataError
from zoo.data.extra import need
from zoo.data.source import ImageSource, KeyTable
from zoo.data.stream import Sample, StreamSource

if TYPE_CHECKING:
    from zoo.core.spec import DataSpec
    from zoo.data.decode import Raw

#: ``datasets``' packaged builders that read local files: they need ``data.path``.
PACKAGED = frozenset({"imagefolder", "parquet", "arrow", "csv", "json", "webdataset"})

#: Row-index keys have this many digits whatever the size: a data set that grows keeps the
#: keys, and so the hash split, of its old rows.
KEY_DIGITS = 12

#: The fsspec protocols a chained path may pass through before its final (outer) file: archive
#: members and compressed files, as ``datasets`` writes them (``zip://a.png::/x.zip``).
ARCHIVES = frozenset({"zip", "tar", "gzip", "bz2", "xz", "zstd", "lz4"})


class Cells:
    """Where the path-only image cells of one data set may point, and how they are read.

    Allowed: a local file under ``data.path`` (a glob: the folder above its first wildcard),
    under a saved folder (``hf:/path``), or in the ``datasets``/Hub caches of the data set
    (``HF_DATASETS_CACHE``, the Hub snapshot of the same repo); ``hf://datasets/<the same
    repo>/...``; any of these as the final file of a chain through archives and compressed
    files (``zip://a.png::/x.zip``). Anything else is a bad row (a ``DataError``)."""

    def __init__(self, spec: DataSpec) -> None:
        import datasets.config
        from huggingface_hub import constants

        name = spec.source.partition(":")[2]
        roots = [datasets.config.HF_DATASETS_CACHE]
        if spec.path:
            path = spec.path
            while any(c in path for c in "*?[{"):
                path = os.path.dirname(path) or "."
            roots.append(path)
        if name and Path(name).is_dir():
            roots.append(name)
        self.repo = None
        if name and name not in PACKAGED and "://" not in name and not Path(name).exists():
            self.repo = name
            roots.append(os.path.join(constants.HF_HUB_CACHE,
                                      "datasets--" + name.replace("/", "--")))
        self.roots = sorted({r for root in roots if root
                             for r in (os.path.abspath(root), os.path.realpath(root))})

    def _inside(self, path: str) -> bool:
        full = os.path.abspath(path)
        return any(full == r or full.startswith(r.rstrip(os.sep) + os.sep) for r in self.roots)

    def _hub(self, url: str) -> bool:
        if self.repo is None or ".." in url.split("/"):
            return False
        return any(url.startswith(f"{p}{self.repo}{end}") for end in ("/", "@")
                   for p in ("hf://datasets/", "https://huggingface.co/datasets/"))

    def local(self, path: str, what: str) -> str | None:
        """``path`` when it is a plain local file the data set may read; None when it is
        a URL (read it with :meth:`read`). Raises a ``DataError`` when it may not be read."""
        if "://" in path:
            return None
        if not self._inside(path):
            raise DataError(f"{what}: its image path {path!r} is outside the data set's files; "
                            "not read")
        if not os.path.isfile(path):
            raise DataError(f"{what}: its image path {path!r} is not a file")
        return path

    def read(self, path: str, what: str) -> bytes:
        """The bytes of a chained or remote path (``zip://a.png::/x.zip``) that lies inside
        the data set's files, read through ``datasets``' own opener."""
        from datasets.utils.file_utils import xopen

        *inner, outer = path.split("::")
        ok = all(part.partition("://")[0] in ARCHIVES and "://" in part for part in inner)
        if ok and "://" not in outer:
            ok = self.local(outer, what) is not None
        elif ok:
            ok = outer.startswith("file://") and self.local(outer[7:], what) is not None
            ok = ok or self._hub(outer)
        if not ok:
            raise DataError(f"{what}: its image path {path!r} is outside the data set's files; "
                            "not read")
        try:
            with xopen(path, "rb") as file:
                return file.read()
        except Exception as exc:  # fsspec raises many kinds: all mean "cannot read"
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise DataError(f"{what}: cannot read its image {path!r}: {reason}") from None

    def raw(self, cell: Any, what: str) -> Raw:
        """A cell's image: its bytes, its local path, or a URL's bytes (see the class)."""
        if not isinstance(cell, dict):
            raise DataError(f"{what} has no image")
        if cell.get("bytes") is not None:
            return cell["bytes"]
        path = cell.get("path")
        if not path or not isinstance(path, str):
            raise DataError(f"{what} has neither image bytes nor a path")
        local = self.local(path, what)
        return local if local is not None else self.read(path, what)


class Refused(os.PathLike):
    """A streamed row's image that may not be read: a path-like whose ``__fspath__`` raises
    its ``DataError``, so that decoding the row counts it as bad (an error under
    ``data.strict``) as every other unreadable image."""

    def __init__(self, error: DataError) -> None:
        self.error = error

    def __fspath__(self) -> str:
        raise self.error


def load_hf(spec: DataSpec, split: str) -> HFSource | HFStream:
    """The ``hf:`` source of ``spec`` as an indexed source (with ``data.streaming``, a
    sequential one: :class:`zoo.data.stream.HFStream`).

    With ``data.splits`` the data set's own split ``data.splits[split]`` is returned as it
    is (``presplit``); without, its ``train`` split (or its only split), which the hash split
    divides. Offline rules are the library's own (``HF_DATASETS_OFFLINE``, ``HF_HUB_OFFLINE``).
    """
    need("datasets", spec.source)
    name = spec.source.partition(":")[2]
    if not name:
        raise DataError(f"data source {spec.source!r}: name a data set, e.g. hf:user/name, "
                        "hf:imagefolder (with data.path) or hf:/path/to/a/saved/data/set")
    splits = {k: v for k in ("train", "test") if (v := getattr(spec.splits, k))}
    presplit = bool(splits)
    if presplit and split not in splits:
        raise DataError(f"data source {spec.source!r}: data.splits names no {split!r} split "
                        f"(it has {', '.join(sorted(splits))})")
    if spec.streaming:

        return HFStream(spec, splits.get(split))
    with _quiet():
        dataset = _open(spec, name, splits.get(split))
    return HFSource(spec, dataset, presplit)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """``datasets``' own progress bars off while a data set is opened (genzoo reports)."""
    import datasets

    was = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was:
            datasets.enable_progress_bars()


def _open(spec: DataSpec, name: str, split: str | None) -> Any:
    """The ``datasets.Dataset`` of one split (``None``: "train", or the only split)."""
    import datasets

    source = spec.source
    saved = Path(name)
    try:
        if saved.is_dir() and any((saved / f).is_file() for f in
                                  ("state.json", "dataset_dict.json")):
            loaded = datasets.load_from_disk(str(saved))
        else:
            if name in PACKAGED and not spec.path:
                raise DataError(f"data source {source!r} needs data.path (a folder, a file or "
                                "a glob of the data files)")
            kwargs: dict[str, Any] = {"name": spec.config, "revision": spec.revision}
            if spec.path:
                kwargs["data_dir" if Path(spec.path).is_dir() else "data_files"] = spec.path
            try:
                loaded = datasets.load_dataset(name, split=split or "train", **kwargs)
            except ValueError as exc:
                if split is not None or "Unknown split" not in str(exc):
                    raise
                loaded = datasets.load_dataset(name, **kwargs)  # no "train": its only split?
    except DataError:
        raise
    except Exception as exc:  # datasets raises many kinds (ConnectionError, FileNotFoundError,
        # DatasetNotFoundError, ValueError, ArrowInvalid, ...): all of them mean "cannot load"
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(f"cannot load data source {source!r}: {reason}") from None
    if isinstance(loaded, datasets.DatasetDict | dict):
        names = list(loaded)
        if split is not None:
            if split not in loaded:
                raise DataError(f"data source {source!r} has no split {split!r} (it has "
                                f"{', '.join(names)}); see data.splits")
            return loaded[split]
        if "train" in loaded:
            return loaded["train"]
        if len(names) != 1:
            raise DataError(f"data source {source!r} has no 'train' split but {', '.join(names)}"
                            "; choose with data.splits, e.g. {train = \"" + names[0] + "\"}")
        return loaded[names[0]]
    if split is not None and split != "train":
        raise DataError(f"data source {source!r} is one data set without named splits; "
                        f"it has no split {split!r} (unset data.splits)")
    if not isinstance(loaded, datasets.Dataset):
        raise DataError(f"data source {source!r}: expected a data set, got "
                        f"{type(loaded).__name__}")
    return loaded


class HFSource(ImageSource):
    """A Hugging Face data set's rows as an indexed source.

    Keys: the row index, zero-padded to :data:`KEY_DIGITS` digits (key order is row order,
    and a row keeps its key when rows are added), or the values of
    ``data.key_column`` (unique strings, NFC-normalised as a folder's paths are). Labels:
    ``data.label_column`` (a ``ClassLabel`` or non-negative integers). The Arrow files are
    opened again, memory-mapped, in each process that reads (DataLoader workers); nothing is
    downloaded there.
    """

    def __init__(self, spec: DataSpec, dataset: Any, presplit: bool) -> None:
        import datasets

        self.name = spec.source
        self.presplit = presplit
        self.column = spec.image_column
        columns = list(dataset.column_names)
        listed = ", ".join(columns)
        for option in ("image_column", "label_column", "key_column"):
            wanted = getattr(spec, option)
            if wanted is not None and wanted not in columns:
                raise DataError(f"data source {self.name!r} has no column {wanted!r} "
                                f"(data.{option}); its columns: {listed}")
        feature = dataset.features[self.column]
        if not isinstance(feature, datasets.Image):
            raise DataError(f"data.image_column {self.column!r} of {self.name!r} is not an "
                            f"image column ({type(feature).__name__}); its columns: {listed}")
        if getattr(dataset, "_indices", None) is not None:  # a selection: rows in one file
            dataset = dataset.flatten_indices()
        n = len(dataset)
        if n == 0:
            raise DataError(f"data source {self.name!r} has no rows")
        if spec.key_column is None:
            self.keys = KeyTable.of_sorted(f"{i:0{KEY_DIGITS}d}".encode() for i in range(n))
            self.rows = np.arange(n, dtype=np.int64)
        else:
            values = dataset.data.column(spec.key_column).to_pylist()
            if not all(isinstance(v, str) for v in values):
                raise DataError(f"data.key_column {spec.key_column!r} of {self.name!r} must "
                                "hold strings (e.g. file paths)")
            self.keys, self.rows = KeyTable.sorted(  # NFC, as a folder's keys
                [unicodedata.normalize("NFC", v) for v in values],
                what=f"{self.name} (data.key_column {spec.key_column!r})")
        if spec.label_column is not None:
            self.labels, self.classes = _labels(dataset, spec.label_column, self.name)
            self.labels = self.labels[self.rows]
        files = [f["filename"] for f in dataset.cache_files]
        self.files = files or None
        self.dataset = None if files else dataset  # in memory only: pickled with the data
        self._h_rows = _readable(dataset, self.column)
        self.cells = Cells(spec)

    def read(self, i: int) -> Raw:
        """Row ``i``'s image: its encoded bytes, the path of its local file, or the bytes of
        an archive member (see :class:`Cells`: a path outside the data set's own files is a
        ``DataError``, never read)."""
        table = getattr(self, "_h_rows", None)
        if table is None:
            table = self._h_rows = self._reopen()
        cell = table[int(self.rows[i])][self.column]
        return self.cells.raw(cell, f"{self.name}: row {self.keys[i]!r}")

    def _reopen(self) -> Any:
        """The image column, memory-mapped from the data set's Arrow files (in a worker)."""
        import datasets

        if self.files is None:
            return _readable(self.dataset, self.column)
        parts = [datasets.Dataset.from_file(f) for f in self.files]
        dataset = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
        return _readable(dataset, self.column)


def _readable(dataset: Any, column: str) -> Any:
    """``dataset``'s image column only, read as ``{"bytes", "path"}`` (undecoded)."""
    import datasets

    return dataset.select_columns([column]).cast_column(column, datasets.Image(decode=False))


def _labels(dataset: Any, column: str, name: str) -> tuple[np.ndarray, int]:
    """The integer labels of ``column`` and the number of classes."""
    import datasets

    feature = dataset.features[column]
    values = dataset.data.column(column).to_pylist()
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise DataError(f"data.label_column {column!r} of {name!r} must hold integer labels "
                        f"({type(feature).__name__})")
    labels = np.asarray(values, dtype=np.int64)
    if labels.min() < 0:
        raise DataError(f"data.label_column {column!r} of {name!r} has a negative label "
                        f"({int(labels.min())}: unlabelled rows?)")
    if isinstance(feature, datasets.ClassLabel):
        return labels, int(feature.num_classes)
    return labels, int(labels.max()) + 1


class HFStream(StreamSource):
    """A Hugging Face data set read with ``load_dataset(..., streaming=True)`` (a
    ``save_to_disk`` folder: ``load_from_disk(...).to_iterable_dataset``, its arrow files
    memory-mapped, not copied), one of its shards (data files) at a time; images undecoded.
    Keys: ``data.key_column`` or ``SHARD/ROW`` (zero-padded, stable for the same files)."""

    def __init__(self, spec: DataSpec, split: str | None) -> None:
        import datasets

        self.name = spec.source
        self.column, self.key_column = spec.image_column, spec.key_column
        self.label_column = spec.label_column
        name = spec.source.partition(":")[2]
        kwargs: dict[str, Any] = {"name": spec.config, "revision": spec.revision}
        if spec.path:
            kwargs["data_dir" if Path(spec.path).is_dir() else "data_files"] = spec.path
        self.kwargs, self.dataset_name, self.split = kwargs, name, split or "train"
        self.presplit = split is not None  # the data set's own split: no hash split
        if name in PACKAGED and not spec.path:
            raise DataError(f"data source {spec.source!r} needs data.path (a folder, a file or "
                            "a glob of the data files)")
        stream, size = self._stream()
        self.shards = [str(i) for i in range(stream.num_shards)]
        info = stream.info.splits.get(self.split) if stream.info.splits else None
        self.total = size or getattr(info, "num_examples", None) or None
        feature = (stream.features or {}).get(self.label_column) if self.label_column else None
        if isinstance(feature, datasets.ClassLabel):
            self.classes = int(feature.num_classes)
        self.cells = Cells(spec)

    def _stream(self) -> tuple[Any, int | None]:
        """The ``IterableDataset`` and its size when a saved folder tells it."""
        import datasets

        saved, size = Path(self.dataset_name), None
        try:
            if saved.is_dir() and any((saved / f).is_file() for f in
                                      ("state.json", "dataset_dict.json")):
                data = datasets.load_from_disk(str(saved))
                if isinstance(data, datasets.DatasetDict):
                    data = data[self.split]
                size = len(data)
                stream = data.to_iterable_dataset(num_shards=max(1, len(data.cache_files)))
            else:
                stream = datasets.load_dataset(self.dataset_name, split=self.split,
                                               streaming=True, **self.kwargs)
        except Exception as exc:  # as hf.load_hf: every failure means "cannot load"
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise DataError(f"cannot load data source {self.name!r}: {reason}") from None
        if stream.features is not None and self.column in stream.features:
            stream = stream.cast_column(self.column, datasets.Image(decode=False))
        return stream, size

    def iter_shard(self, shard: int) -> Iterator[Sample]:
        stream = getattr(self, "_h_stream", None)
        if stream is None:
            stream = self._h_stream = self._stream()[0]
        part = stream.shard(num_shards=len(self.shards), index=shard)
        # .iter, not iter(): in a DataLoader worker the latter reads only that worker's share
        # of the shards, and every worker here reads the whole stream
        for row, example in enumerate(_examples(part)):
            cell = example.get(self.column)
            if not isinstance(cell, dict):
                raise DataError(f"data source {self.name!r} has no image column "
                                f"{self.column!r} (data.image_column)")
            key = unicodedata.normalize("NFC", str(example[self.key_column]) if self.key_column
                                        else f"{shard:05d}/{row:09d}")
            try:  # a URL's bytes are read here, in every worker: datasets' own streams do so
                raw: Raw = self.cells.raw(cell, f"{self.name}: row {key!r}")
            except DataError as exc:  # a bad row: counted (or refused) when it is decoded
                raw = Refused(exc)
            label = int(example[self.label_column]) if self.label_column else None
            yield key, raw, label

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_h")}


def _examples(stream: Any) -> Iterator[dict]:
    """The rows of a ``datasets.IterableDataset``, read in batches of 64."""
    for batch in stream.iter(batch_size=64):
        columns = list(batch)
        for values in zip(*(batch[c] for c in columns), strict=True):
            yield dict(zip(columns, values, strict=True))
