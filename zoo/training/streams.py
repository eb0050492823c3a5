"""A streamed source's training batches as a ``torch.utils.data.IterableDataset``
(``data.streaming``; used by :class:`zoo.training.feed.StreamFeed`).

Every DataLoader worker of every process walks the same global stream: epoch *e* is
:func:`zoo.data.stream.epoch_stream` seeded by ``sample_seed(train.seed, e, 1)`` (shard order)
and ``sample_seed(train.seed, e, 4)`` (shuffle buffer), cut into global batches of
``train.batch_size`` samples (``data.last_batch``: an epoch's incomplete last batch dropped,
or continued by the next epoch). Worker *w* of *W* decodes only this process's rows of the
batches ``start + w, start + w + W, ...``; the DataLoader takes one batch from each worker in
turn, so a process sees the batches in stream order whatever *W*, and the processes' rows of
a step make up the global batch one process would see. Each sample is decoded once; the
stream's bytes are read by every worker of every process.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from zoo.core.errors import DataError
from zoo.data.rows import decode_rows
from zoo.data.stream import Sample, SampleRows, StreamSource, epoch_stream
from zoo.data.torch_io import Batch
from zoo.sampling.sample import sample_seed


@dataclass(frozen=True)
class StreamPlan:
    """How the global stream is cut: ``n`` training samples an epoch (None: not known, then
    a resume reads the stream from the start), ``batch_size`` (global), ``seed``
    (``train.seed``), ``last_batch``, ``held_out`` and ``buffer`` (``data.shuffle_buffer``)."""

    n: int | None
    batch_size: int
    seed: int
    last_batch: str
    held_out: float
    buffer: int

    def epoch(self, source: StreamSource, epoch: int) -> Iterator[Sample]:
        """The training samples of epoch ``epoch``, in order (nothing decoded)."""
        return epoch_stream(source, "train", self.held_out, sample_seed(self.seed, epoch, 1),
                            sample_seed(self.seed, epoch, 4), self.buffer)

    def batches(self, source: StreamSource, start: int = 0) -> Iterator[tuple[int, list]]:
        """``(step, samples of its global batch)`` from step ``start`` on, for ever. With
        ``n`` known the epochs before ``start``'s are not read, and its samples before
        ``start`` are read but not kept; else every batch from step 0 is read."""
        size, drop = self.batch_size, self.last_batch == "drop"
        if self.n is None:
            epoch, step, skip = 0, 0, 0
        elif drop:
            per = self.n // size
            epoch, step, skip = start // per, start, start % per * size
        else:
            epoch, skip = divmod(start * size, self.n)
            step = start
        carry: list[Sample] = []
        while True:
            chunk, made, seen = carry, False, 0
            for sample in itertools.islice(self.epoch(source, epoch), skip, None):
                chunk.append(sample)
                seen += 1
                if len(chunk) == size:
                    if step >= start:
                        yield step, chunk
                    step, chunk, made = step + 1, [], True
            if skip == 0 and (seen == 0 or (drop and not made)):
                raise DataError(f"{source.name}: an epoch of the stream holds fewer training "
                                f"images than train.batch_size = {size}")
            carry, skip, epoch = ([] if drop else chunk), 0, epoch + 1


class StreamBatches(IterableDataset):
    """This process's rows (``rank`` of ``world``) of global batches ``start .. total-1`` of
    the stream, decoded to ``mode`` at ``size``×``size``; in a DataLoader with ``W`` workers,
    worker *w* yields batches ``start + w + k·W``. A bad image is replaced inside its batch
    and reported (:func:`zoo.data.rows.decode_rows`), as :class:`zoo.data.torch_io.ImageBatches`
    does."""

    def __init__(self, source: StreamSource, plan: StreamPlan, mode: str, size: int,
                 rank: int, world: int, start: int, total: int) -> None:
        self.source, self.plan, self.mode, self.size = source, plan, mode, size
        self.rank, self.world, self.start, self.total = rank, world, start, total

    def __iter__(self) -> Iterator[Batch]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        local = self.plan.batch_size // self.world
        try:
            for step, chunk in self.plan.batches(self.source, self.start):
                if step >= self.total:
                    return
                if (step - self.start) % workers == worker:
                    yield self.decode(chunk[self.rank * local:(self.rank + 1) * local])
        except DataError as exc:  # an unreadable shard: said in one line by the main process
            yield Batch(None, None, [], str(exc))

    def decode(self, samples: list[Sample]) -> Batch:
        """One batch of samples decoded; ``skipped`` rows are indexes into ``samples``."""
        rows = SampleRows(self.source.name, samples)
        try:
            decoded = decode_rows(rows, np.arange(len(rows)), self.mode, self.size)
        except DataError as exc:
            return Batch(None, None, [], str(exc))
        index = {key: i for i, key in enumerate(rows.keys)}
        labels = None if decoded.labels is None else torch.from_numpy(decoded.labels)
        return Batch(torch.from_numpy(decoded.images), labels,
                     [(index[key], key, reason) for key, reason in decoded.skipped])
