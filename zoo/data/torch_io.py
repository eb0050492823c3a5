"""An indexed source as a ``torch.utils.data.Dataset`` that decodes whole batches, for a
DataLoader whose batch sampler picks the rows (``zoo.training.feed.RankBatches``).

This module imports torch; nothing torch-free imports it (``zoo.data`` does not re-export it).
A worker never raises for an image: a bad row is replaced inside its batch and reported
(:func:`zoo.data.rows.decode_rows`), and a batch without one good image comes back as an
error message, so the main process says it in one line.
"""

from __future__ import annotations

import os
import signal
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from zoo.core.errors import DataError
from zoo.data.rows import decode_rows

if TYPE_CHECKING:
    from zoo.data.source import ImageSource


class Batch(NamedTuple):
    """A decoded batch: uint8 ``N×C×S×S`` images and int64 labels (or None) of the rows,
    ``(row, key, reason)`` of each bad row that was replaced, and ``error``: why no image of
    the batch could be read (then ``images`` is None)."""

    images: torch.Tensor | None
    labels: torch.Tensor | None
    skipped: list[tuple[int, str, str]]
    error: str | None = None


class ImageBatches(Dataset):
    """The rows of ``source``, decoded a batch at a time to ``mode`` ("L" or "RGB") at
    ``size``×``size``. Index it with a list of source rows (a DataLoader with a batch sampler
    calls :meth:`__getitems__`). It never raises for an image: ``data.strict`` is the feed's
    to apply, in the main process, to the bad rows a batch reports."""

    def __init__(self, source: ImageSource, mode: str, size: int) -> None:
        self.source, self.mode, self.size = source, mode, size

    def __len__(self) -> int:
        return len(self.source)

    def __getitems__(self, rows: list[int]) -> Batch:
        """The decoded rows, in order (each bad one replaced by the next good one)."""
        try:
            decoded = decode_rows(self.source, np.asarray(rows, dtype=np.int64), self.mode,
                                  self.size, strict=False)
        except DataError as exc:
            return Batch(None, None, [], str(exc))
        labels = None if decoded.labels is None else torch.from_numpy(
            np.asarray(decoded.labels, dtype=np.int64))
        return Batch(torch.from_numpy(decoded.images), labels,
                     with_rows(self.source, rows, decoded.skipped))

    def __getitem__(self, row: int) -> Batch:
        return self.__getitems__([row])


def with_rows(source: ImageSource, rows: list[int] | np.ndarray,
              skipped: list[tuple[str, str]]) -> list[tuple[int, str, str]]:
    """``decode_rows``'s ``(key, reason)`` of bad rows as ``(row, key, reason)``."""
    by_key = {source.keys[int(row)]: int(row) for row in rows} if skipped else {}
    return [(by_key[key], key, reason) for key, reason in skipped]


def collate(batch: Batch) -> Batch:
    """The DataLoader's ``collate_fn``: a batch comes ready from :meth:`ImageBatches.__getitems__`
    (a module-level function, so worker processes can unpickle it)."""
    return batch


def worker_init(worker_id: int) -> None:
    """The DataLoader's ``worker_init_fn``: a worker ignores SIGINT, so Ctrl-C (sent to the
    whole process group) reaches only the training process, which checkpoints and stops the
    workers itself; a worker never prints a traceback for it. SIGTERM ends a worker at once
    and quietly (exit status 0): the DataLoader and multiprocessing stop a worker that does
    not finish with ``terminate()`` (SIGTERM) and then wait for it, so a stuck worker must
    die of it or the process could never exit; and a SIGTERM sent to every process (a
    process group, systemd, a scheduler) must not make the training process raise for a
    worker killed by a signal before it has checkpointed."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exit_now)


def _exit_now(signum: int, frame: object) -> None:
    os._exit(0)
