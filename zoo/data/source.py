"""Indexed data sources: random access to the encoded images of a data set too large to decode
at once (``folder``, ``hf:``, ``wds:``).

A loader registered with ``register_datasets`` returns either an in-memory
:class:`zoo.data.ImageData` or an :class:`ImageSource`: every image of the data set named by a
unique string key, in key order, read as encoded bytes or a file path (never decoded here).
The split into train and held-out images (:mod:`zoo.data.split`), the order of an epoch and the
decoding in worker processes (``zoo.training.feed``) work on any source the same way. Sources
are pickled into DataLoader workers: open handles are opened lazily in each process.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from zoo.core.errors import DataError

if TYPE_CHECKING:
    from zoo.data.decode import Raw


class KeyTable:
    """Unique string keys, sorted by their UTF-8 bytes, stored as one bytes blob and offsets.

    A Python list of millions of ``str`` would be copied page by page into every forked
    DataLoader worker as reference counts are touched; two numpy arrays are not.
    """

    def __init__(self, blob: np.ndarray, offsets: np.ndarray) -> None:
        self._blob, self._offsets = blob, offsets

    @classmethod
    def sorted(cls, keys: Iterable[str], what: str = "data set") -> tuple[KeyTable, np.ndarray]:
        """The table of ``keys`` in key order, and for each of its rows the position of that
        key in ``keys`` (to reorder what the source holds per key). A key given twice is a
        one-line ``DataError`` naming it and ``what``."""
        encoded = [key.encode("utf-8", "surrogateescape") for key in keys]
        order = sorted(range(len(encoded)), key=encoded.__getitem__)
        for a, b in itertools.pairwise(order):
            if encoded[a] == encoded[b]:
                raise DataError(f"{what}: the key {encoded[a].decode('utf-8', 'replace')!r} "
                                "names two images; keys must be unique")
        return cls.of_sorted(encoded[i] for i in order), np.asarray(order, dtype=np.int64)

    @classmethod
    def of_sorted(cls, encoded: Iterable[bytes]) -> KeyTable:
        """A table of keys already in order and unique, given as UTF-8 bytes."""
        parts = list(encoded)
        offsets = np.zeros(len(parts) + 1, dtype=np.int64)
        np.cumsum([len(p) for p in parts], out=offsets[1:])
        return cls(np.frombuffer(b"".join(parts), dtype=np.uint8), offsets)

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def raw(self, i: int) -> bytes:
        """Key ``i`` as UTF-8 bytes."""
        return self._blob[self._offsets[i]:self._offsets[i + 1]].tobytes()

    def __getitem__(self, i: int) -> str:
        return self.raw(i).decode("utf-8", "surrogateescape")

    def __iter__(self) -> Iterator[str]:
        return (self[i] for i in range(len(self)))

    def take(self, rows: np.ndarray) -> KeyTable:
        """The keys at ``rows`` (increasing, so the result stays sorted)."""
        return KeyTable.of_sorted(self.raw(int(i)) for i in rows)

    def digest(self, rows: np.ndarray | None = None) -> str:
        """A SHA-256 over the keys (of ``rows``, in that order), newline-separated: what a
        checkpoint records so a resume over changed data is refused."""
        h = hashlib.sha256()
        for i in range(len(self)) if rows is None else rows:
            h.update(self.raw(int(i)))
            h.update(b"\n")
        return h.hexdigest()


class ImageSource:
    """Random access to a data set's encoded images; a loader's answer for data too large
    to decode at once. Subclasses set the attributes and implement :meth:`read`.

    ``keys``: every image's unique key, in key order (a folder's relative POSIX paths, a
    WebDataset sample's key and extension, an hf row index or ``data.key_column``); row ``i``
    of ``labels`` and :meth:`read` is key ``i``. ``presplit``: these rows *are* the requested
    split (an hf data set's own splits), so no hash split is applied.
    """

    name: str
    keys: KeyTable
    labels: np.ndarray | None = None
    classes: int | None = None
    presplit: bool = False

    def __len__(self) -> int:
        return len(self.keys)

    def read(self, i: int) -> Raw:
        """Row ``i``'s encoded image: bytes, or a path to the file. Never decoded here; an
        unreadable row may raise ``DataError`` (counted as a bad image by the feed)."""
        raise NotImplementedError

    def seeded_rows(self) -> np.ndarray:
        """The rows ``data.split = "seeded"`` splits, in the order it numbers them (default:
        every row in key order; the folder source keeps its pre-index order)."""
        return np.arange(len(self))

    def __getstate__(self) -> dict:
        """What a worker process gets: the state less open handles (names starting ``_h``),
        which each process opens again on first use."""
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_h")}
