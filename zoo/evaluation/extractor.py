"""Feature networks by name, and images through them.

Every image reaches a network the same way, samples and real images alike: quantised
to uint8 as a PNG would store it (``round(255 x)``, clamped), a grey channel repeated
three times, in batches of the network's ``batch_size``.
"""

from __future__ import annotations

import functools

import torch

from zoo.core.errors import PluginError, ZooError
from zoo.core.features import FeatureExtractor
from zoo.core.plugins import on_reset


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images in [0, 1] (N×C×H×W, C = 1 or 3) -> uint8 N×3×H×W, as a PNG stores them."""
    quantised = images.detach().float().cpu().mul(255).round().clamp_(0, 255).to(torch.uint8)
    if quantised.shape[1] == 1:
        quantised = quantised.expand(-1, 3, -1, -1)
    if quantised.shape[1] != 3:
        raise ValueError(f"images must have 1 or 3 channels, not {quantised.shape[1]}")
    return quantised.contiguous()


@functools.cache
def load_extractor(name: str) -> FeatureExtractor:
    """The feature network registered as ``name`` (loaded once per process).

    An unknown name is a one-line ``UnknownNameError`` listing the installed ones; a
    plugin whose loader fails or returns something else is a one-line ``PluginError``;
    missing weights are the loader's own one-line ``WeightsError``.
    """
    from zoo.core.records import _reason, import_ref
    from zoo.core.registry import get_features

    record = get_features(name)
    try:
        extractor = import_ref(record.load)()
    except ZooError:
        raise
    except ImportError as exc:
        hint = f"; pip install '{record.extra}'" if record.extra else ""
        raise PluginError(f"feature network {name!r} ({record.plugin}): cannot import "
                          f"{record.load}: {_reason(exc)}{hint}") from None
    except Exception as exc:
        raise PluginError(f"feature network {name!r} ({record.plugin}): {record.load}() "
                          f"failed: {_reason(exc)}") from None
    if not isinstance(extractor, FeatureExtractor):
        raise PluginError(f"feature network {name!r} ({record.plugin}): {record.load}() "
                          f"returned {type(extractor).__name__}, not a zoo.FeatureExtractor")
    for attribute, kind in (("dims", int), ("identity", str), ("convention", str)):
        if not isinstance(getattr(extractor, attribute, None), kind):
            raise PluginError(f"feature network {name!r} ({record.plugin}): its "
                              f"{attribute} must be a {kind.__name__}")
    return extractor


# a plugin installed or removed in-process (reset_plugins) is seen by the next load
on_reset(load_extractor.cache_clear)


#: Extractions of at least this many images show progress (a bar on a terminal, else lines).
PROGRESS_FROM = 1000


#: Plain progress lines start once an extraction has run this long (seconds).
QUIET_SECONDS = 5.0


class Shown:
    """Progress of one extraction on stderr: a rich bar on a terminal, else a plain line
    per tenth once it has run :data:`QUIET_SECONDS`; silent below :data:`PROGRESS_FROM`
    images."""

    def __init__(self, name: str, total: int) -> None:
        import time

        self.name, self.total, self.done, self.started = name, total, 0, time.perf_counter()
        self.bar, self.next_line = None, 0
        self.enabled = total >= PROGRESS_FROM
        if not self.enabled:
            return
        from rich.console import Console

        console = Console(stderr=True)
        if console.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(TextColumn(f"{name} features"), BarColumn(),
                                MofNCompleteColumn(), TimeRemainingColumn(), console=console,
                                transient=True)
            self.task = self.bar.add_task(name, total=total)
            self.bar.start()
        self.step = max(1, total // 10)

    def advance(self, count: int) -> None:
        """``count`` more images done."""
        import sys
        import time

        if not self.enabled:
            return
        self.done += count
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done)
        elif (self.done >= self.next_line or self.done == self.total) and \
                time.perf_counter() - self.started >= QUIET_SECONDS:
            rate = self.done / max(time.perf_counter() - self.started, 1e-9)
            print(f"{self.name} features: {self.done:,}/{self.total:,} images, "
                  f"{rate:.1f} img/s", file=sys.stderr, flush=True)
            self.next_line = self.done + self.step

    def close(self) -> None:
        """Remove the bar."""
        if self.bar is not None:
            self.bar.stop()


@torch.inference_mode()
def embed(extractor: FeatureExtractor, images: torch.Tensor, name: str = "features"
          ) -> torch.Tensor:
    """Features (float32 N×dims, CPU) of float images in [0, 1], in batches of the
    network's ``batch_size`` (progress shown for long extractions: :class:`Shown`).

    A network that returns the wrong shape, dtype or non-finite values is a one-line
    ``PluginError`` naming it (``name``).
    """
    size = max(1, int(extractor.batch_size))
    shown = Shown(name, len(images))
    out = []
    try:
        for start in range(0, len(images), size):
            part = to_uint8(images[start : start + size])
            features = extractor(part)
            if not (isinstance(features, torch.Tensor)
                    and tuple(features.shape) == (len(part), extractor.dims)):
                got = tuple(features.shape) if isinstance(features, torch.Tensor) else \
                    type(features).__name__
                raise PluginError(f"feature network {name!r} returned {got} for {len(part)} "
                                  f"images, not {len(part)}×{extractor.dims}")
            features = features.detach().to("cpu", torch.float32)
            if not torch.isfinite(features).all():
                raise PluginError(f"feature network {name!r} returned non-finite features")
            out.append(features)
            shown.advance(len(part))
    finally:
        shown.close()
    if not out:
        return torch.empty(0, extractor.dims)
    return torch.cat(out)
