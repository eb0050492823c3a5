"""The training images, global batch by global batch, on one process or many.

One order for every kind of source: epoch *e* visits the train view in the order
:func:`zoo.training.distributed.epoch_order` ``(train.seed, e, n)`` (:class:`Order`), cut into
global batches of ``train.batch_size`` images; with N processes each keeps its
``batch_size / N`` rows of every global batch (:class:`RankBatches`). The sequence of global
batches depends only on the seed and the step, never on the process or worker count, so
``--resume`` needs no cursor but the step, and the process count may change on resume.

- :class:`MemoryFeed`: an in-memory source (``ImageData``): the whole split on the device,
  as the loop always did.
- :class:`IndexedFeed`: an indexed source (``ImageSource``: ``folder``, ``hf:``, ``wds:``):
  one DataLoader for the whole run decodes this process's rows in worker processes
  (``run.data_workers``); nothing holds more than a few batches of pixels.
- :class:`StreamFeed`: a sequential source (``data.streaming``): each epoch is one seeded
  stream (:mod:`zoo.training.streams`), cut into global batches the same way for any
  process and worker count.

Use without a model (a benchmark, a tool)::

    feed = open_feed(spec, device="cpu")           # rank 0 of 1
    total = total_steps(spec.train, feed.n, spec.data.last_batch)
    for x, labels in feed.batches(0, total):       # float32 in [0, 1] on the device
        ...
    feed.close()
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from zoo.core.errors import DataError, SpecError
from zoo.training.distributed import Draws, epoch_order

if TYPE_CHECKING:
    import numpy as np
    import torch

    from zoo.core.spec import Spec, TrainSpec
    from zoo.data.source import ImageSource
    from zoo.data.stream import StreamSource
    from zoo.data.torch_io import Batch

#: Images a :meth:`IndexedFeed.fit_images` batch decodes at a time.
#: Skipped keys named in metrics.json (all are counted).
SHOWN_SKIPPED = 20


def total_steps(train: TrainSpec, n: int, last_batch: str = "drop") -> int:
    """``train.max_steps`` if set, else ``train.epochs`` passes over ``n`` images: the whole
    batches of each epoch (``data.last_batch = "drop"``), or ``ceil(epochs·n / batch_size)``
    when each epoch's order continues the last batch of the one before ("wrap")."""
    if train.max_steps:
        return train.max_steps
    if last_batch == "wrap":
        return math.ceil(train.epochs * n / train.batch_size)
    return train.epochs * (n // train.batch_size)


def default_workers(world: int) -> int:
    """DataLoader workers per process when ``run.data_workers`` is unset: one per CPU core
    this process can spare (the cores it may run on, shared by ``world`` processes, less one
    for training), at most 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cores = os.cpu_count() or 1
    return max(0, min(8, cores // max(world, 1) - 1))


class Order:
    """Which positions of the train view (``0..n-1``) each global batch holds.

    ``last_batch = "drop"``: step *s* is batch ``s mod (n // B)`` of epoch ``s div (n // B)``;
    the ``n mod B`` images an epoch's order ends with are not seen that epoch (a different few
    each epoch). ``"wrap"``: the epochs' orders form one stream and step *s* takes its positions
    ``s·B .. (s+1)·B``; a batch may hold the end of one epoch and the start of the next, and
    every image of every epoch is seen exactly once.
    """

    def __init__(self, n: int, batch_size: int, seed: int, last_batch: str = "drop") -> None:
        if n < batch_size:
            raise DataError(f"{n} training images are fewer than train.batch_size = "
                            f"{batch_size}")
        self.n, self.batch_size, self.seed, self.last_batch = n, batch_size, seed, last_batch
        self.per_epoch = n // batch_size
        self._orders: dict[int, torch.Tensor] = {}

    def epoch(self, epoch: int) -> torch.Tensor:
        """Epoch ``epoch``'s order of the view's positions (the two latest are cached)."""
        if epoch not in self._orders:
            if len(self._orders) >= 2:
                del self._orders[min(self._orders)]
            self._orders[epoch] = epoch_order(self.seed, epoch, self.n)
        return self._orders[epoch]

    def global_batch(self, step: int) -> torch.Tensor:
        """The view positions (int64, ``batch_size`` of them) of global batch ``step``."""
        import torch

        size = self.batch_size
        if self.last_batch == "drop":
            epoch, pos = divmod(step, self.per_epoch)
            return self.epoch(epoch)[pos * size:(pos + 1) * size]
        epoch, offset = divmod(step * size, self.n)
        part = self.epoch(epoch)[offset:offset + size]
        if len(part) < size:  # the batch runs into the next epoch (size <= n: one at most)
            part = torch.cat([part, self.epoch(epoch + 1)[:size - len(part)]])
        return part

    def epochs(self, step: int) -> float:
        """Epochs done after ``step`` steps (whole batches per epoch when dropping)."""
        if self.last_batch == "drop":
            return step / self.per_epoch
        return step * self.batch_size / self.n


class RankBatches:
    """A DataLoader batch sampler: for each step from ``start`` to ``total - 1``, this
    process's rows of the global batch (positions ``rank·b .. (rank+1)·b`` of it, ``b =
    batch_size / world``), as rows of the source (``rows[position]``; the positions
    themselves without ``rows``).

    The DataLoader hands batch *j* to worker *j mod W* and returns them in order, so what a
    process sees is the same for any worker count, and the processes' rows of a step make up
    the one global batch a single process would see.
    """

    def __init__(self, order: Order, rank: int, world: int, start: int, total: int,
                 rows: np.ndarray | None = None) -> None:
        self.order, self.rank, self.world = order, rank, world
        self.start, self.total, self.rows = start, total, rows

    def __iter__(self) -> Iterator[list[int]]:
        b = self.order.batch_size // self.world
        for step in range(self.start, self.total):
            mine = self.order.global_batch(step)[self.rank * b:(self.rank + 1) * b].numpy()
            yield (mine if self.rows is None else self.rows[mine]).tolist()

    def __len__(self) -> int:
        return max(0, self.total - self.start)


class Feed:
    """What the training loop reads: ``n`` training images in a seeded order
    (:attr:`order`), and the images a family's ``start``/``finish`` see.

    ``kind`` is "memory", "indexed" or "stream"; ``workers`` the DataLoader worker
    processes. ``n`` is None only for a stream of unknown size (``train.max_steps`` set).
    """

    kind = "memory"
    workers = 0

    def __init__(self, spec: Spec, n: int | None, device: Any, rank: int, world: int) -> None:
        import torch

        self.spec, self.n = spec, n
        self.device = torch.device(device)
        self.draws = Draws(rank, world)
        self.order = (None if n is None else
                      Order(n, spec.train.batch_size, spec.train.seed, spec.data.last_batch))
        self.skipped: set[str] = set()

    def epochs(self, step: int) -> float | None:
        """Epochs done after ``step`` steps, to 3 decimals (None: the size is not known)."""
        return None if self.order is None else round(self.order.epochs(step), 3)

    def batches(self, start: int, total: int, rng: torch.Generator | None = None
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """This process's images (float32 in [0, 1], ``N×C×S×S``, on the device; binarised
        per ``data.binarize``) and labels (or None) of global batches ``start .. total-1``.

        ``rng`` draws ``data.binarize = "dynamic"``'s noise, for the global batch (so every
        image gets the same noise for any process count); it is the training generator in a
        build, and a generator seeded by ``train.seed`` when not given.
        """
        raise NotImplementedError

    def fit_images(self) -> torch.Tensor:
        """The images a family's ``start``/``finish`` see, on the device (float32 in [0, 1],
        grey levels under dynamic binarisation): the whole split for an in-memory source, the
        first ``data.fit_images`` images of epoch 0's order for an indexed one."""
        raise NotImplementedError

    def fit_labels(self) -> torch.Tensor | None:
        """The labels of :meth:`fit_images` (or None)."""
        raise NotImplementedError

    def checkpoint(self) -> dict[str, Any] | None:
        """What a checkpoint records about the training images, so a resume over changed
        images is refused (None: nothing to check)."""
        return None

    def summary(self) -> dict[str, Any]:
        """``metrics.json``'s ``data`` section: source, kind, images, workers and the bad
        images skipped (by every process: with several, all of them must call this)."""
        skipped = set(self.skipped)
        if self.draws.world > 1 and self.kind != "memory":  # an in-memory split skips none
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                gathered: list[Any] = [None] * self.draws.world
                dist.all_gather_object(gathered, sorted(self.skipped))
                skipped = {key for keys in gathered for key in keys}
        return {"source": self.spec.data.source, "kind": self.kind, "images": self.n,
                "workers": self.workers, "skipped": len(skipped),
                "skipped_keys": sorted(skipped)[:SHOWN_SKIPPED]}

    def close(self) -> None:
        """Stop any worker processes (safe to call twice)."""

    def _generator(self, rng: torch.Generator | None) -> torch.Generator:
        import torch

        if rng is not None:
            return rng
        return torch.Generator(device=self.device).manual_seed(self.spec.train.seed)


class MemoryFeed(Feed):
    """An in-memory split: every image on the device, each global batch indexed from it and
    dynamically binarised as a whole (``torch.bernoulli``), then this process's rows."""

    def __init__(self, spec: Spec, images: torch.Tensor, labels: torch.Tensor | None,
                 device: Any = "cpu", rank: int = 0, world: int = 1) -> None:
        super().__init__(spec, len(images), device, rank, world)
        self.images = images.to(self.device)
        self.labels = None if labels is None else labels.to(self.device)

    def batches(self, start: int, total: int, rng: torch.Generator | None = None
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        import torch

        dynamic = self.spec.data.binarize == "dynamic"
        rng = self._generator(rng) if dynamic else rng
        rows = self.draws.rows
        for step in range(start, total):
            idx = self.order.global_batch(step).to(self.device)
            batch = self.images[idx]
            if dynamic:  # drawn for the global batch, like every random number
                batch = torch.bernoulli(batch, generator=rng)
            yield rows(batch), None if self.labels is None else self.labels[rows(idx)]

    def fit_images(self) -> torch.Tensor:
        return self.images

    def fit_labels(self) -> torch.Tensor | None:
        return self.labels


class IndexedFeed(Feed):
    """An indexed source's train view (``rows`` of ``source``), decoded in DataLoader workers.

    One DataLoader serves the whole run (its batch sampler spans the epochs), so workers start
    once; ``prefetch_factor`` 4 batches each, pinned memory on CUDA. Batches are converted to
    float and binarised on the device. A bad image is replaced inside its batch, warned about
    once, counted (:meth:`summary`); under ``data.strict`` the first one is a one-line
    ``DataError``.
    """

    kind = "indexed"

    def __init__(self, spec: Spec, source: ImageSource, rows: np.ndarray, device: Any = "cpu",
                 rank: int = 0, world: int = 1, workers: int | None = None) -> None:
        from zoo.data import num_channels

        _batch_by_batch(spec, source.name)
        super().__init__(spec, len(rows), device, rank, world)
        self.source, self.rows = source, rows
        self.channels = num_channels(spec.data)
        self.mode = "L" if self.channels == 1 else "RGB"
        self.workers = default_workers(world) if workers is None else workers
        self.digest = source.keys.digest(rows)
        self._fit: tuple[torch.Tensor, torch.Tensor | None] | None = None
        self._running: list[Iterator] = []

    def batches(self, start: int, total: int, rng: torch.Generator | None = None
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        it = self._batches(start, total, self._generator(rng)
                           if self.spec.data.binarize == "dynamic" else rng)
        self._running.append(it)
        return it

    def _batches(self, start: int, total: int, rng: torch.Generator | None
                 ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        import torch
        from torch.utils.data import DataLoader

        from zoo.data.torch_io import collate, worker_init

        workers = self.workers
        wait = self._wait(start) if workers else 0
        loader = DataLoader(**self._dataset(start, total), num_workers=workers,
                            collate_fn=collate, worker_init_fn=worker_init if workers else None,
                            pin_memory=self.device.type == "cuda",
                            prefetch_factor=4 if workers else None, timeout=wait,
                            # the workers' seeds from their own generator: starting a loader
                            # (again on resume) leaves the global torch RNG as it was
                            generator=torch.Generator().manual_seed(self.spec.train.seed))
        it = iter(loader)
        try:
            while True:
                try:
                    batch = next(it)
                except StopIteration:
                    return
                except RuntimeError as exc:
                    if wait and str(exc).startswith("DataLoader timed out"):
                        raise DataError(
                            f"{self.source.name}: no batch from the data loader workers "
                            f"within {wait:g} s (a stalled read?); set ZOO_DATA_TIMEOUT to "
                            "wait longer") from None
                    raise
                yield self._ready(batch, rng)
        finally:
            # stop the workers now, not when the iterator is collected (an exception's
            # traceback may keep it alive); the DataLoader's own shutdown
            shutdown = getattr(it, "_shutdown_workers", None)
            if shutdown is not None:
                shutdown()
            for worker in getattr(it, "_workers", ()):  # one its SIGTERM did not stop
                if worker.is_alive():
                    worker.kill()
                    worker.join(5)

    def _wait(self, start: int) -> float:
        """Seconds the loop waits for a batch from its workers before a ``DataError``: twice
        ``ZOO_DATA_TIMEOUT`` (a worker's own reads time out first and say why)."""
        from zoo.data.stream import data_timeout

        return 2 * data_timeout()

    def _dataset(self, start: int, total: int) -> dict[str, Any]:
        """The DataLoader's dataset and batch sampler for global batches ``start..total-1``."""
        from zoo.data.torch_io import ImageBatches

        return {"dataset": ImageBatches(self.source, self.mode, self.spec.data.image_size),
                "batch_sampler": RankBatches(self.order, self.draws.rank, self.draws.world,
                                             start, total, self.rows)}

    def _ready(self, batch: Batch, rng: torch.Generator | None
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
        from zoo.data import to_float

        if batch.error is not None:
            raise DataError(batch.error)
        self._note(batch.skipped)
        x = to_float(batch.images.to(self.device, non_blocking=True), self.channels,
                     self.spec.data.image_size)
        binarize = self.spec.data.binarize
        if binarize == "dynamic":  # drawn for the global batch: the same noise for any N
            x = (self.draws.rand(x.shape, generator=rng, device=self.device) < x).float()
        elif binarize == "threshold":
            x = (x > 0.5).float()
        labels = batch.labels
        return x, None if labels is None else labels.to(self.device, non_blocking=True)

    def _note(self, skipped: list[tuple[int, str, str]]) -> None:
        """Count the bad rows of a batch and warn once about each (``data.strict``: stop)."""
        for row, key, reason in skipped:
            if self.spec.data.strict:
                raise DataError(f"{reason} (data.strict = true)")
            self._warn(row, key, reason)
            self.skipped.add(key)

    def _warn(self, row: int, key: str, reason: str) -> None:
        from zoo.data.rows import warn_bad_row

        warn_bad_row(self.source, row, reason)

    def _fit_data(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The first ``data.fit_images`` rows of epoch 0's order, decoded once (uint8, CPU);
        bad ones left out."""
        import torch

        from zoo.data.rows import decode_good_rows

        if self._fit is None:
            count = min(self.n, self.spec.data.fit_images)
            rows = self.rows[self.order.epoch(0)[:count].numpy()]
            images, labels = decode_good_rows(
                self.source, rows, self.mode, self.spec.data.image_size,
                on_bad=lambda row, key, reason: self._note([(row, key, reason)]))
            self._fit = (torch.from_numpy(images),
                         None if labels is None else torch.from_numpy(labels))
        return self._fit

    def fit_images(self) -> torch.Tensor:
        from zoo.data import to_float

        x = to_float(self._fit_data()[0].to(self.device), self.channels,
                     self.spec.data.image_size)
        return (x > 0.5).float() if self.spec.data.binarize == "threshold" else x

    def fit_labels(self) -> torch.Tensor | None:
        labels = self._fit_data()[1]
        return None if labels is None else labels.to(self.device)

    def checkpoint(self) -> dict[str, Any]:
        return {"kind": self.kind, "images": self.n, "keys": self.digest}

    def close(self) -> None:
        while self._running:
            self._running.pop().close()  # its finally stops the workers


class StreamFeed(IndexedFeed):
    """A sequential source's training samples (``data.streaming``), decoded in DataLoader
    workers that each walk the whole stream and decode only their batches
    (:class:`zoo.training.streams.StreamBatches`): the same sequence for any process and
    worker count, each sample of an epoch once. ``--resume`` at step *s* skips the epochs
    before *s*'s unread (with ``n`` known) and reads, without decoding, the samples of its
    epoch before *s*. Bad images: as :class:`IndexedFeed`.
    """

    kind = "stream"

    def __init__(self, spec: Spec, source: StreamSource, n: int | None, device: Any = "cpu",
                 rank: int = 0, world: int = 1, workers: int | None = None) -> None:
        import hashlib

        from zoo.data import num_channels
        from zoo.training.streams import StreamPlan

        data = spec.data
        _batch_by_batch(spec, source.name)
        Feed.__init__(self, spec, n, device, rank, world)
        self.source, self.channels = source, num_channels(data)
        self.mode = "L" if self.channels == 1 else "RGB"
        self.workers = default_workers(world) if workers is None else workers
        self.plan = StreamPlan(n, spec.train.batch_size, spec.train.seed, data.last_batch,
                               data.held_out, data.shuffle_buffer)
        # the shards, and how many training images they hold: a resume over others is refused
        # the shards only: n is None under train.max_steps and counted under train.epochs,
        # and a resume may switch between the two (the checkpoint compares n when both know it)
        self.digest = hashlib.sha256("\n".join(source.shards).encode()).hexdigest()
        self._fit: tuple[torch.Tensor, torch.Tensor | None] | None = None
        self._running: list[Iterator] = []

    def _wait(self, start: int) -> float:
        """As :meth:`IndexedFeed._wait`, but none on a resume: a worker's first batch may
        come after reading much of an epoch (its reads of remote shards still time out)."""
        return 0 if start else super()._wait(start)

    def _dataset(self, start: int, total: int) -> dict[str, Any]:
        from zoo.training.streams import StreamBatches

        # an IterableDataset: its batches come ready, one per worker in turn
        return {"dataset": StreamBatches(self.source, self.plan, self.mode,
                                         self.spec.data.image_size, self.draws.rank,
                                         self.draws.world, start, total),
                "batch_size": None}

    def _warn(self, row: int, key: str, reason: str) -> None:
        from zoo.data.warn import warn_once

        warn_once(f"skipping {reason}", key=(self.source.name, key))

    def _fit_data(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The first ``data.fit_images`` samples of epoch 0's stream, decoded once (uint8,
        CPU); bad ones left out."""
        import itertools

        import torch

        from zoo.data.stream import decode_samples

        if self._fit is None:
            count = min(self.n or self.spec.data.fit_images, self.spec.data.fit_images)
            images, labels = decode_samples(
                self.source.name, list(itertools.islice(self.plan.epoch(self.source, 0), count)),
                self.mode, self.spec.data.image_size,
                on_bad=lambda row, key, reason: self._note([(row, key, reason)]))
            self._fit = (torch.from_numpy(images),
                         None if labels is None else torch.from_numpy(labels))
        return self._fit


def stream_size(spec: Spec, source: StreamSource) -> int | None:
    """How many training images a streamed source holds: its size for an hf data set's own
    split, else counted by reading the stream once for the hash split of its keys (no image
    is decoded, but every byte is read: one epoch's reading, at each start and resume).
    None, without reading anything, when ``train.max_steps`` is set and the size is not
    declared (``presplit``): the steps are counted without it, a resume reads the stream from
    the start (no more than the steps trained) and ``metrics.json`` says null epochs. Without
    ``train.max_steps`` a stream of unknown size is a one-line ``DataError``."""
    from zoo.data.stream import split_samples

    data = spec.data
    if source.presplit and source.total is not None:
        return source.total
    if spec.train.max_steps:
        return None
    if source.total is None:
        raise DataError(f"{source.name}: the stream's size is not known (no index.json beside "
                        "the shards, no declared split size), so train.epochs cannot be "
                        "counted: set train.max_steps")
    return sum(1 for _ in split_samples(source, "train", data.held_out))


def open_feed(spec: Spec, device: Any = "cpu", rank: int = 0, world: int = 1,
              workers: int | None = None) -> Feed:
    """The training images of ``spec`` for process ``rank`` of ``world``, on ``device``.

    An in-memory source gives a :class:`MemoryFeed` (its train split after ``data.limit``,
    ``data.channels``, ``data.image_size`` and static or threshold binarisation); an indexed
    source a :class:`IndexedFeed` over its train view (:func:`zoo.data.split.view`) with
    ``workers`` DataLoader workers (default ``run.data_workers``, else
    :func:`default_workers`); a streamed source (``data.streaming``) a :class:`StreamFeed`
    (its size: :func:`stream_size`). Fewer images than ``train.batch_size`` is a one-line
    ``DataError``. Call :meth:`Feed.close` when done.
    """
    import zoo.data  # looked up at call time: tests replace zoo.data.open_source
    from zoo.data.split import view

    data_spec = spec.data
    data = zoo.data.open_source(data_spec, "train")
    if isinstance(data, zoo.data.StreamSource):
        if data_spec.limit is not None:
            raise SpecError(f"data.limit picks images of an indexed source; {data.name} is "
                            "streamed whole: unset data.limit (train.max_steps trains on less)")
        n = stream_size(spec, data)
        if n is not None:
            _enough(spec, n)
        return StreamFeed(spec, data, n, device, rank, world,
                          spec.run.data_workers if workers is None else workers)
    if isinstance(data, zoo.data.ImageSource):
        rows = view(data, "train", data_spec)
        _enough(spec, len(rows))
        return IndexedFeed(spec, data, rows, device, rank, world,
                           spec.run.data_workers if workers is None else workers)
    # limit, channels, size, static or threshold binarisation (dynamic: per batch, below)
    x, labels = zoo.data.load_images(data_spec, "train", training=True, data=data)
    _enough(spec, len(x))
    return MemoryFeed(spec, x, labels, device, rank, world)


def _batch_by_batch(spec: Spec, name: str) -> None:
    """A one-line ``SpecError`` for static binarisation of a source read batch by batch."""
    if spec.data.binarize == "static":
        raise SpecError(f"data.binarize = 'static' needs the whole training split at once; "
                        f"{name} is read batch by batch: use 'dynamic' or 'threshold'")


def _enough(spec: Spec, n: int) -> None:
    if n < spec.train.batch_size:
        raise DataError(f"{spec.data.source} gives {n} training images, fewer than "
                        f"train.batch_size = {spec.train.batch_size}")
