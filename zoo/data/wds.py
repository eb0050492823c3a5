"""The ``wds:`` data source: WebDataset tar shards on local disk, read by index.

A shard is a plain tar file whose members are named ``KEY.FIELD``: a sample's key up to the
first dot of the file name, then a field (``jpg``, ``png``, ``cls``, ...). Each image member
is one image of the source, keyed ``unescape(KEY) + "." + FIELD`` (NFC): for shards written
by ``zoo data pack``, the relative path of the file it was packed from, so a folder and its
shards share keys, split and order. The index (shard, member offset, size, label of every
image) comes from ``index.tsv.gz`` beside the shards (written by ``zoo data pack`` and
``zoo data index``) or from one scan of the tar headers, cached under ``$ZOO_HOME/data``.
Reading an image is one ``pread``: stdlib only (``webdataset`` imports torch).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import re
import tarfile
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from zoo.core.errors import DataError
from zoo.data.extra import check_installed, need
from zoo.data.shard_keys import IMAGE_FIELDS, is_pipe, split_member, unescape_key
from zoo.data.source import ImageSource, KeyTable

if TYPE_CHECKING:
    from zoo.core.spec import DataSpec
    from zoo.data.stream import ShardStream

INDEX = "index.tsv.gz"
INDEX_JSON = "index.json"
#: ``index.json``'s ``format``: a folder of shards written by genzoo.
SHARDS_FORMAT = "genzoo-shards/1"
COLUMNS = ("shard", "key", "member", "offset", "size", "label")
#: Shard file handles a process keeps open at once.
OPEN_SHARDS = 64


# --------------------------------------------------------------------------- the index


@dataclass(frozen=True)
class Entry:
    """One image of a shard: its key, tar member, data offset and size, and label."""

    key: str
    member: str
    offset: int
    size: int
    label: int | None = None


def scan_shard(path: Path, label_field: str | None = "cls") -> list[Entry]:
    """The images of one uncompressed tar shard, from its headers (and its label members,
    ``KEY.<label_field>``, read as integer text)."""
    images: list[tuple[str, str, int, int]] = []
    labels: dict[str, int] = {}
    try:
        with tarfile.open(path, "r:") as tar:
            for member in tar:
                parts = split_member(member.name) if member.isfile() else None
                if parts is None:
                    continue
                key, field = parts
                if field.lower() in IMAGE_FIELDS:
                    images.append((key, field, member.offset_data, member.size))
                elif field == label_field:
                    handle = tar.extractfile(member)
                    text = handle.read(64).decode("utf-8", "replace").strip() if handle else ""
                    try:
                        labels[key] = _bounded(text, "label", 2**31)
                    except ValueError:
                        raise DataError(f"shard {path}: label {member.name!r} is {text!r}, "
                                        "not a class number (0 or more)") from None
    except (tarfile.TarError, OSError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise DataError(f"cannot read shard {path}: {reason} (an uncompressed tar file is "
                        "expected)") from None
    return [Entry(unicodedata.normalize("NFC", unescape_key(key) + "." + field),
                  f"{key}.{field}", offset, size, labels.get(key))
            for key, field, offset, size in images]


def _tsv(text: str) -> str:
    return (text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
            .replace("\r", "\\r"))


def _untsv(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"t": "\t", "n": "\n", "r": "\r"}.get(m.group(1),
                                                                            m.group(1)), text)


def write_index(path: Path, shards: list[tuple[str, list[Entry]]]) -> None:
    """Write ``index.tsv.gz`` (one line per image: ``shard key member offset size label``)
    for ``(shard name, entries)``; byte-reproducible (no time stamp in the gzip header)."""
    lines = ["\t".join(COLUMNS)]
    for shard, entries in shards:
        lines += ["\t".join((_tsv(shard), _tsv(e.key), _tsv(e.member), str(e.offset),
                             str(e.size), "" if e.label is None else str(e.label)))
                  for e in entries]
    data = ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0,
                                                filename="") as out:
        out.write(data)


def read_index(path: Path) -> dict[str, list[Entry]]:
    """``index.tsv.gz`` as ``{shard name: entries}``; a damaged one is a ``DataError``."""
    shards: dict[str, list[Entry]] = {}
    try:
        with gzip.open(path, "rt", encoding="utf-8", errors="surrogateescape",
                       newline="\n") as lines:
            header = next(lines, "").rstrip("\n").split("\t")
            if tuple(header) != COLUMNS:
                raise ValueError(f"header {header[:6]}")
            for line in lines:
                shard, key, member, offset, size, label = line.rstrip("\n").split("\t")
                shards.setdefault(_untsv(shard), []).append(Entry(
                    _untsv(key), _untsv(member), _bounded(offset, "offset", 2**63),
                    _bounded(size, "size", 2**63),
                    _bounded(label, "label", 2**31) if label else None))
    except (OSError, EOFError, ValueError) as exc:
        raise DataError(f"damaged shard index {path}: {exc}") from None
    return shards


def _bounded(text: str, what: str, limit: int) -> int:
    """``text`` as a whole number ``0 <= n < limit`` (ASCII digits), else ``ValueError``."""
    if not (text.isascii() and text.isdigit()) or len(text) > 20 or int(text) >= limit:
        shown = text if len(text) <= 24 else text[:21] + "..."
        raise ValueError(f"{what} {shown!r} is not a number from 0 to {limit - 1}")
    return int(text)


def _recorded_sizes(folder: Path) -> dict[str, int]:
    """``{shard name: bytes}`` from ``index.json`` beside an index, or {} when unreadable."""
    try:
        doc = json.loads((folder / INDEX_JSON).read_text(encoding="utf-8"))
        return {s["name"]: int(s["bytes"]) for s in doc["shards"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def index_shards(paths: list[Path], label_field: str | None = "cls") -> list[list[Entry]]:
    """The entries of each shard: from ``index.tsv.gz`` beside it when that lists it at its
    present size, else from a header scan of the shards left, cached under ``$ZOO_HOME``."""
    found: dict[Path, list[Entry]] = {}
    if label_field in (None, "cls"):
        by_folder: dict[Path, list[Path]] = {}
        for path in paths:
            by_folder.setdefault(path.parent, []).append(path)
        for folder, members in by_folder.items():
            if not (folder / INDEX).is_file():
                continue
            sizes = _recorded_sizes(folder)
            listed = read_index(folder / INDEX)
            for path in members:
                if path.name in listed and sizes.get(path.name) == path.stat().st_size:
                    entries = listed[path.name]
                    found[path] = entries if label_field else [
                        Entry(e.key, e.member, e.offset, e.size) for e in entries]
    rest = [p for p in paths if p not in found]
    if rest:
        found.update(zip(rest, _scanned(rest, label_field), strict=True))
    return [found[p] for p in paths]


def _scanned(paths: list[Path], label_field: str | None) -> list[list[Entry]]:
    """Header scans of ``paths``, cached by their paths, sizes and modification times."""
    from zoo.core.home import zoo_home

    stats = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths]
    digest = hashlib.sha256(json.dumps([stats, label_field]).encode("utf-8",
                                                                    "surrogateescape"))
    cache = zoo_home() / "data" / f"wds-{digest.hexdigest()[:32]}.tsv.gz"
    if cache.is_file():
        try:
            listed = read_index(cache)
            return [listed.get(str(p), []) for p in paths]
        except DataError:
            pass  # damaged: scan again
    scans = [scan_shard(p, label_field) for p in paths]
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.tmp-{os.getpid()}")
        write_index(tmp, [(str(p), s) for p, s in zip(paths, scans, strict=True)])
        os.replace(tmp, cache)
    except OSError:
        pass  # a read-only home: scan again next time
    return scans


# --------------------------------------------------------------------------- the source


def shard_paths(pattern: str, source: str) -> list[Path]:
    """The local shard files of a brace pattern, or one line saying what is wrong."""
    need("braceexpand", source)
    from braceexpand import braceexpand

    if not pattern:
        raise DataError(f"data source {source!r}: give the shards, e.g. "
                        "wds:/data/shards/shard-{000000..000009}.tar")
    names = list(braceexpand(pattern))
    for name in names:
        if is_pipe(name):
            raise DataError(f"data source {source!r}: shard {name!r} is a shell command, which "
                            "genzoo does not run; download the shards or give their URLs")
        remote = "://" in name
        if remote or not name.endswith(".tar"):
            what = "remote" if remote else "compressed or not .tar"
            raise DataError(f"data source {source!r}: shard {name!r} is {what}; such shards "
                            "are read sequentially, which needs data.streaming = true")
    paths = [Path(n) for n in names]
    for path in paths:
        if not path.is_file():
            raise DataError(f"data source {source!r}: no shard file {path}")
    if len(set(paths)) != len(paths):
        raise DataError(f"data source {source!r} names a shard twice")
    return paths


def load_wds(spec: DataSpec, split: str) -> ShardSource | ShardStream:
    """The ``wds:PATTERN`` source of ``spec``: every image of the shards, indexed (with
    ``data.streaming``, read in sequence: :class:`zoo.data.stream.ShardStream`)."""
    check_installed("webdataset", spec.source)
    if spec.streaming:
        from zoo.data.stream import open_stream

        return open_stream(spec, split)
    return ShardSource(spec.source, shard_paths(spec.source.partition(":")[2], spec.source),
                       spec.label_column)


class ShardSource(ImageSource):
    """The images of local tar shards, read by offset (no tar parsing after the index)."""

    def __init__(self, name: str, paths: list[Path], label_field: str | None = None) -> None:
        self.name = name
        self.shards = [os.path.abspath(p) for p in paths]  # workers may run elsewhere
        entries = index_shards(paths, label_field)
        flat = [(s, e) for s, es in enumerate(entries) for e in es]
        if not flat:
            raise DataError(f"data source {name!r}: no images ({', '.join(sorted(IMAGE_FIELDS))}"
                            f") in its {len(paths)} shard(s)")
        self.keys, order = KeyTable.sorted((e.key for _, e in flat), what=name)
        self.shard_of = np.asarray([flat[i][0] for i in order], dtype=np.int32)
        self.offsets = np.asarray([flat[i][1].offset for i in order], dtype=np.int64)
        self.sizes = np.asarray([flat[i][1].size for i in order], dtype=np.int64)
        ends = np.asarray([p.stat().st_size for p in paths], dtype=np.int64)[self.shard_of]
        outside = (self.offsets < 0) | (self.sizes < 0) | (self.offsets + self.sizes > ends)
        if outside.any():
            i = int(np.flatnonzero(outside)[0])
            raise DataError(f"data source {name!r}: the index puts image {self.keys[i]!r} "
                            f"outside shard {paths[self.shard_of[i]]}; re-index the shards "
                            "(zoo data index)")
        if label_field:
            missing = next((flat[i][1].key for i in order if flat[i][1].label is None), None)
            if missing is not None:
                raise DataError(f"data source {name!r}: image {missing!r} has no "
                                f"{label_field!r} label (data.label_column)")
            self.labels = np.asarray([flat[i][1].label for i in order], dtype=np.int64)
            if self.labels.min() < 0:
                raise DataError(f"data source {name!r}: a negative {label_field!r} label")
            self.classes = int(self.labels.max()) + 1

    def read(self, i: int) -> bytes:
        """The bytes of image ``i`` (one ``pread`` of its shard)."""
        shard, offset, size = int(self.shard_of[i]), int(self.offsets[i]), int(self.sizes[i])
        try:
            data = os.pread(self._fd(shard), size, offset)
        except OSError as exc:
            raise DataError(f"cannot read image {self.keys[i]!r} from shard "
                            f"{self.shards[shard]}: {exc.strerror or exc}") from None
        if len(data) != size:
            raise DataError(f"{self.name}: shard {self.shards[shard]} is shorter than its "
                            f"index says (image {self.keys[i]!r}); re-index it")
        return data

    def _fd(self, shard: int) -> int:
        """An open descriptor of shard ``shard`` (at most :data:`OPEN_SHARDS` kept)."""
        fds = getattr(self, "_h_fds", None)
        if fds is None:
            fds = self._h_fds = OrderedDict()
        fd = fds.get(shard)
        if fd is None:
            try:
                fd = os.open(self.shards[shard], os.O_RDONLY)
            except OSError as exc:
                raise DataError(f"cannot read shard {self.shards[shard]}: "
                                f"{exc.strerror or exc}") from None
            fds[shard] = fd
            if len(fds) > OPEN_SHARDS:
                os.close(fds.popitem(last=False)[1])
        else:
            fds.move_to_end(shard)
        return fd

    def __del__(self) -> None:
        for fd in getattr(self, "_h_fds", {}).values():
            with contextlib.suppress(OSError):
                os.close(fd)
