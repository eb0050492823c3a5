"""Train and held-out images of an indexed source, chosen by a stable hash of each key.

An image is held out iff ``blake2b(key, 8 bytes, person="genzoo-split") < data.held_out ×
2^64``: the same on every machine and Python (never ``hash()``), decided per key, so adding
images moves no old one between the splits, and training and ``zoo eval`` agree without
reading the data. ``data.split = "seeded"`` keeps the seeded 90/10 split of the whole set
(what folder models trained before the hash split used).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np

from zoo.core.errors import DataError
from zoo.data.memory import SPLITS, split_indices

if TYPE_CHECKING:
    from zoo.core.spec import DataSpec
    from zoo.data.source import ImageSource, KeyTable

PERSON = b"genzoo-split"


def key_hash(key: bytes | str) -> int:
    """The 64-bit split hash of one key (UTF-8 for ``str``)."""
    raw = key.encode("utf-8", "surrogateescape") if isinstance(key, str) else key
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8, person=PERSON).digest(), "big")


def key_hashes(keys: KeyTable) -> np.ndarray:
    """:func:`key_hash` of every key, as uint64 (about 0.6 µs a key)."""
    return np.fromiter((key_hash(keys.raw(i)) for i in range(len(keys))), dtype=np.uint64,
                       count=len(keys))


def held_out_mask(keys: KeyTable, fraction: float) -> np.ndarray:
    """Which keys the hash split holds out (a boolean per key)."""
    threshold = np.uint64(min(round(fraction * 2**64), 2**64 - 1))
    return key_hashes(keys) < threshold


def split_mode(spec: DataSpec) -> str:
    """``hash`` or ``seeded``: what ``data.split`` means for an indexed source."""
    return "hash" if spec.split == "auto" else spec.split


def hash_subset(source: ImageSource, rows: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` rows of ``rows`` whose keys hash lowest, in key order: a stable random
    subset (a new key enters only by hashing lower), not the first keys (a folder's
    ``class/...`` paths would give the first classes only)."""
    if len(rows) <= count:
        return rows
    hashes = np.fromiter((key_hash(source.keys.raw(int(i))) for i in rows), dtype=np.uint64,
                         count=len(rows))
    return np.sort(rows[np.argsort(hashes, kind="stable")[:count]])


def view(source: ImageSource, split: str, spec: DataSpec) -> np.ndarray:
    """The rows of ``source`` in ``split`` ("train" or "test"), in the order training indexes
    them (key order for the hash split).

    ``data.limit`` (train only) keeps the ``limit`` train keys of smallest hash: a stable
    random subset that a new image enters only by hashing lower. A split without images is
    a one-line ``DataError``.
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    n = len(source)
    if source.presplit:
        rows = np.arange(n)
    elif split_mode(spec) == "seeded":
        base = source.seeded_rows()
        labels = None if source.labels is None else source.labels[base]
        rows = base[split_indices(len(base), labels, split)]
    else:
        test = held_out_mask(source.keys, spec.held_out)
        rows = np.flatnonzero(test if split == "test" else ~test)
    if spec.limit is not None and split == "train" and len(rows) > spec.limit:
        if source.presplit or split_mode(spec) == "hash":
            rows = hash_subset(source, rows, spec.limit)
        else:
            rows = rows[: spec.limit]
    if len(rows) == 0:
        raise DataError(f"{source.name}: no {'held-out' if split == 'test' else 'training'} "
                        f"images among its {n:,} (data.held_out = {spec.held_out})")
    return rows
