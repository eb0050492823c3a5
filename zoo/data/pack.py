"""Packing a data source into WebDataset tar shards (``zoo data pack``).

Samples keep the original encoded bytes and extension (no re-encoding) unless a size is
given; in-memory sources are written as PNG. ``__key__`` is the image's key less its
extension, escaped (:func:`zoo.data.wds.escape_key`), so the ``wds:`` source reads back the
same keys, and so the same hash split, for every key that ends in an image extension (a
folder's paths, an hf ``data.key_column`` of file names). A key without one (an hf row
index ``000000000007``, streamed ``00000/000000007``) cannot be kept: a WebDataset member
needs a field, and the ``wds:`` source's key is ``KEY.FIELD``; such a key gets its format's
extension (``000000000007.png``), the same images are packed under those keys, and their hash
split is not the source's (the same fraction is held out, not the same images): a warning
says so. Samples are written in the order of a hash of their keys (:func:`packing_order`),
not by key, so streaming the shards does not give class-correlated batches. Shards are
byte-reproducible (``mtime=0``); beside them
``index.tsv.gz`` (what the ``wds:`` source reads instead of scanning) and ``index.json``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.core.errors import DataError
from zoo.data.decode import IMAGE_SUFFIXES, decode_raw, open_image
from zoo.data.memory import ImageData
from zoo.data.shard_keys import escape_key
from zoo.data.source import ImageSource
from zoo.data.stream import StreamSource
from zoo.data.warn import warn_once
from zoo.data.wds import (
    INDEX,
    INDEX_JSON,
    SHARDS_FORMAT,
    Entry,
    scan_shard,
    write_index,
)

if TYPE_CHECKING:
    from zoo.core.spec import DataSpec

SHARD_NAME = "shard-%06d.tar"
#: PIL format -> the extension a packed sample gets when its key has none.
FORMATS = {"PNG": "png", "JPEG": "jpg", "BMP": "bmp", "WEBP": "webp", "GIF": "gif"}


@dataclass(frozen=True)
class Sample:
    """One image to pack: its key (a relative path ending in its extension), its encoded
    bytes and its label (or None)."""

    key: str
    data: bytes
    label: int | None


@dataclass(frozen=True)
class Packed:
    """What :func:`write_shards` wrote: the images, the shard names and the skipped keys."""

    count: int
    shards: list[str]
    skipped: list[tuple[str, str]]


def _png(pixels: np.ndarray) -> bytes:
    """uint8 ``H×W`` or ``H×W×3`` pixels as PNG bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _image_suffix(key: str) -> str:
    """The image extension ``key`` ends in (with its dot, as written), or ""."""
    suffix = PurePosixPath(key).suffix
    return suffix if suffix.lower() in IMAGE_SUFFIXES else ""


def _encoded(key: str, raw: bytes | str | Path, mode: str, size: int | None
             ) -> tuple[str, bytes]:
    """The key a sample gets and its bytes: ``raw`` as it is, header-checked (an unreadable
    or oversized image raises ``DataError``), or decoded to ``size`` and stored as PNG."""
    data = raw if isinstance(raw, bytes) else _read(raw, key)
    if size is not None:
        pixels = decode_raw(data, mode, size, name=key)
        suffix = _image_suffix(key)
        return (key[: len(key) - len(suffix)] if suffix else key) + ".png", _png(pixels)
    with open_image(io.BytesIO(data), name=key) as img:  # the header only: cheap
        found = FORMATS.get(img.format or "")
    if _image_suffix(key):
        return key, data
    extension = (_image_suffix(str(raw))[1:] if not isinstance(raw, bytes) else "") or found
    if not extension:
        raise DataError(f"cannot pack image {key}: not PNG, JPEG, BMP, WebP or GIF")
    return f"{key}.{extension}", data


def _no_extension(name: str, key: str) -> None:
    """Warn (once per source) that keys without an image extension get one, so the packed
    shards' hash split is not ``name``'s."""
    if not _image_suffix(key):
        warn_once(f"{name}: keys without an image extension (e.g. {key!r}) are packed with "
                  "their format's one, so the wds: shards hold out other images than the "
                  "source's hash split (data.key_column naming files keeps the keys)",
                  key=("pack-extension", name))


def _read(path: str | Path, key: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read image {key}: {exc.strerror or exc}") from None


#: The hash that orders packed samples: not the split's (``zoo.data.split``), so every
#: shard holds its share of held-out images.
ORDER_PERSON = b"genzoo-pack"


def packing_order(keys: list[str] | list[bytes]) -> np.ndarray:
    """The order samples are packed in: by a 64-bit hash of their keys (blake2b), so a
    class-structured folder's classes are spread over every shard (a stream's shuffle
    buffer then mixes classes), the same on every run."""
    raw = [k.encode("utf-8", "surrogateescape") if isinstance(k, str) else k for k in keys]
    hashes = np.fromiter((int.from_bytes(hashlib.blake2b(k, digest_size=8,
                                                         person=ORDER_PERSON).digest(), "big")
                          for k in raw), dtype=np.uint64, count=len(raw))
    return np.argsort(hashes, kind="stable")


def source_samples(data: ImageData | ImageSource | StreamSource, rows: Any, mode: str,
                   size: int | None, prefix: str = ""
                   ) -> Iterator[Sample | tuple[str, str]]:
    """The samples of ``rows`` (None: all) of an indexed source or an in-memory split (keyed
    ``PREFIX00012.png``) in :func:`packing_order`, or ``(key, reason)`` for each that cannot
    be packed. For a streamed source ``rows`` are its ``(key, raw, label)`` samples, read
    (and packed) as they come."""
    if isinstance(data, StreamSource):
        for key, raw, label in rows:
            _no_extension(data.name, key)
            try:
                key, encoded = _encoded(key, raw, mode, size)
            except DataError as exc:
                yield key, str(exc)
                continue
            yield Sample(key, encoded, label)
        return
    if isinstance(data, ImageSource):
        rows = np.arange(len(data)) if rows is None else np.asarray(rows)
        rows = rows[packing_order([data.keys.raw(int(row)) for row in rows])]
        for row in rows:
            row = int(row)
            key = data.keys[row]
            label = None if data.labels is None else int(data.labels[row])
            _no_extension(data.name, key)
            try:
                key, encoded = _encoded(key, data.read(row), mode, size)
            except DataError as exc:
                yield key, str(exc)
                continue
            yield Sample(key, encoded, label)
        return
    images = data.images.numpy()
    width = len(str(len(images) - 1))
    rows = np.arange(len(images)) if rows is None else np.asarray(rows)
    keys = {int(i): f"{prefix}{int(i):0{width}d}.png" for i in rows}
    for i in rows[packing_order(list(keys.values()))]:
        i = int(i)
        image = images[i]
        pixels = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
        key = keys[i]
        label = None if data.labels is None else int(data.labels[i])
        encoded = _png(np.ascontiguousarray(pixels))
        if size is not None:
            encoded = _png(decode_raw(encoded, mode, size, name=key))
        yield Sample(key, encoded, label)


def write_shards(samples: Iterator[Sample | tuple[str, str]], total: int | None, folder: Path,
                 shard_size: int, max_bytes: int, strict: bool = False,
                 advance: Callable[[int, int], None] | None = None) -> Packed:
    """Write ``samples`` into ``folder/shard-000000.tar ...`` (at most ``shard_size`` images
    and about ``max_bytes`` each), skipping (``strict``: stopping at) the ones that cannot
    be packed with one warning each. ``advance(images, shards)`` reports progress."""
    import webdataset

    count, skipped, seen = 0, [], set()
    with webdataset.ShardWriter(str(folder / SHARD_NAME), maxcount=shard_size,
                                maxsize=max_bytes, mtime=0, verbose=0) as sink:
        for sample in samples:
            if isinstance(sample, tuple):
                if strict:
                    raise DataError(sample[1])
                warn_once(f"skipping {sample[1]}", key=("pack", sample[0]))
                skipped.append(sample)
            else:
                if sample.key.startswith("/"):
                    raise DataError(f"the key {sample.key!r} is an absolute path; keys must be "
                                    "relative (data.key_column)")
                if sample.key in seen:
                    raise DataError(f"two images get the key {sample.key!r}; keys must be "
                                    "unique")
                seen.add(sample.key)
                suffix = _image_suffix(sample.key)
                record = {"__key__": escape_key(sample.key[: -len(suffix)]),
                          suffix[1:]: sample.data}
                if sample.label is not None:
                    record["cls"] = str(sample.label)
                sink.write(record)
                count += 1
            if advance is not None:
                advance(count + len(skipped), sink.shard)
    if count == 0:
        raise DataError(f"none of the {total if total is not None else len(skipped):,} images "
                        "could be packed" + (
            f" (first: {skipped[0][1]})" if skipped else ""))
    return Packed(count, sorted(p.name for p in folder.glob("shard-*.tar")), skipped)


def write_indexes(folder: Path, shards: list[str], about: dict) -> dict:
    """Write ``index.tsv.gz`` and ``index.json`` for the shards in ``folder``; return the
    ``index.json`` document (``about`` adds fields such as the source)."""
    entries: list[tuple[str, list[Entry]]] = [(s, scan_shard(folder / s)) for s in shards]
    tmp = folder / f".{INDEX}.tmp-{os.getpid()}"
    write_index(tmp, entries)
    os.replace(tmp, folder / INDEX)
    doc = {"format": SHARDS_FORMAT, **about,
           "count": sum(len(e) for _, e in entries),
           "shards": [{"name": s, "count": len(e), "bytes": (folder / s).stat().st_size,
                       "sha256": _sha256(folder / s)} for s, e in entries]}
    tmp = folder / f".{INDEX_JSON}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, folder / INDEX_JSON)
    return doc


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def channel_mode(spec: DataSpec) -> str:
    """The PIL mode ``--size`` decodes to ("L" or "RGB")."""
    from zoo.data.transforms import num_channels

    return "L" if num_channels(spec) == 1 else "RGB"
