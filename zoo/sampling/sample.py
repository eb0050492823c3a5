"""Seeded sampling and image grids.

Noise is drawn per sample: row *j* of a draw depends only on (seed, index of
the sample, stream), so image *i* of a call is the same whatever the batch
size, the number of images asked for, or the device, up to the float rounding
of batched kernels (bitwise for the same number of images and batch size).
"""

from __future__ import annotations

import functools
import math
import sys
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch
    from torch import nn

    from zoo.core.records import FamilyRecord
    from zoo.core.spec import Spec


@functools.lru_cache(maxsize=4096)  # a pure function; SeedSequence costs tens of µs a call
def sample_seed(seed: int, index: int, stream: int = 0) -> int:
    """A 63-bit seed derived from (seed, sample index, stream) with NumPy's SeedSequence."""
    state = np.random.SeedSequence([seed, index, stream]).generate_state(1, dtype=np.uint64)
    return int(state[0] >> np.uint64(1))


class PerSampleNoise:
    """Noise for a batch of samples; row *j* depends only on (seed, indices[j], stream)."""

    def __init__(self, seed: int, indices: Sequence[int], device: Any = "cpu") -> None:
        self.seed = seed
        self.indices = list(indices)
        self.device = device

    def __len__(self) -> int:
        return len(self.indices)

    def randn(self, *shape: int, stream: int = 0) -> torch.Tensor:
        """Standard normal noise of shape ``(len(self), *shape)``."""
        return self.draw(self.generators(stream), *shape)

    def generators(self, stream: int) -> list[torch.Generator]:
        """One CPU generator per sample, seeded by (seed, index, stream), for noise drawn
        step after step (e.g. by a stochastic diffusion sampler)."""
        import torch

        return [torch.Generator().manual_seed(sample_seed(self.seed, index, stream))
                for index in self.indices]

    def draw(self, generators: list[torch.Generator], *shape: int) -> torch.Tensor:
        """The next standard normal row of ``shape`` from each of ``generators``."""
        import torch

        rows = [torch.randn(shape, generator=gen) for gen in generators]
        return torch.stack(rows).to(self.device)

    def randint(self, high: int, stream: int = 0) -> torch.Tensor:
        """One integer in ``[0, high)`` per sample (e.g. a class label)."""
        import torch

        values = [int(torch.randint(high, (1,), generator=gen))
                  for gen in self.generators(stream)]
        return torch.tensor(values, device=self.device)


def sample_images(
    family: FamilyRecord,
    module: nn.Module,
    spec: Spec,
    n: int,
    /,
    seed: int = 0,
    batch_size: int = 64,
    *,
    precision: str = "fp32",
    **options: Any,
) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
    """``n`` images as float32 ``N×C×H×W`` in [0, 1] on the CPU, seeded per sample.

    ``precision``: ``"fp32"``, or ``"bf16"`` to run the sampler under bf16 autocast
    (about 1.5-2x faster on a CPU with bf16 instructions and on GPUs; images move by
    bf16 rounding). ``options`` are the family's sampling options (e.g. ``label=3``, ``steps=20``:
    its record's ``options`` model, validated; an unknown one is a one-line
    ``CapabilityError`` listing them). A sampler that returns ``(images, [extra
    tensors])`` (e.g. ``return_pyramid=True``) gets the extras back too.

    The model runs on chunks of at most ``batch_size`` consecutive sample
    indices, aligned to multiples of ``batch_size``; the last chunk holds only
    the images asked for, so ``n`` images cost ``n`` images' compute (one image
    costs a batch-1 pass, not a padded batch). Image *i*'s noise depends only on
    (seed, *i*), so image *i* is the same for any ``n`` and ``batch_size`` up to
    the float rounding of batched kernels (measured at most 7.2e-7 on [0, 1]
    images over the built-in families, DDPM's the largest; docs/benchmarks.md,
    "Sampling latency"), and bitwise the same for the same ``n`` and
    ``batch_size`` on the same machine. :func:`iter_samples` gives the same
    images one chunk at a time.
    """
    import torch

    chunks: list[torch.Tensor] = []
    extras: list[list[torch.Tensor]] = []  # e.g. LAPGAN's pyramid levels
    with torch.inference_mode():
        for images, more in _chunks(family, module, spec, n, seed, batch_size, options,
                                    precision):
            chunks.append(images)
            if more is not None:
                extras.append(more)
        images = (chunks[0] if len(chunks) == 1 else torch.cat(chunks) if chunks
                  else torch.empty(0))
        if extras:
            return images, [torch.cat(level) for level in zip(*extras, strict=True)]
    return images


def iter_samples(
    family: FamilyRecord,
    module: nn.Module,
    spec: Spec,
    n: int,
    /,
    seed: int = 0,
    batch_size: int = 64,
    *,
    precision: str = "fp32",
    **options: Any,
) -> Iterator[torch.Tensor]:
    """The images of :func:`sample_images` (extras dropped), one float32 ``b×C×H×W`` chunk of
    at most ``batch_size`` at a time, each made only when asked for: memory stays at one
    batch whatever ``n`` is (``zoo sample -o DIR/`` or ``-o FILE.npy``)."""
    return (images for images, _ in _chunks(family, module, spec, n, seed, batch_size, options,
                                            precision))


def _chunks(family: FamilyRecord, module: nn.Module, spec: Spec, n: int, seed: int,
            batch_size: int, options: dict[str, Any], precision: str = "fp32"
            ) -> Iterator[tuple[torch.Tensor, list[torch.Tensor] | None]]:
    """Validate, then lazily yield (images, extras or None) per chunk of sample indices."""
    family.require("sample")
    autocast = precision_context(precision)
    impl = family.load()
    validated = family.sampling_options(options)
    n, seed, batch_size = (_count(value, name, low) for value, name, low in
                           ((n, "n", 0), (seed, "seed", 0), (batch_size, "batch_size", 1)))
    device = module_device(module)
    warned = warn_nonfinite(family, module)

    def generate() -> Iterator[tuple[torch.Tensor, list[torch.Tensor] | None]]:
        import torch

        nonlocal warned
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            with torch.inference_mode():  # not held across the yield: the caller's code
                noise = PerSampleNoise(seed, range(start, stop), device)
                with autocast(device):
                    out = impl.sample(module, noise, spec, validated)
                images, more = checked_output(family, out, len(noise))
                if not warned and not bool(torch.isfinite(images).all()):
                    # a weight written where no version counter sees it (``p.data``)
                    warned = warn_nonfinite(family, module, rescan=True)
                images = images.float().clamp_(0.0, 1.0).cpu()
                more = None if more is None else [t.float().cpu() for t in more]
            yield images, more

    return generate()


#: Sampling precisions: the autocast dtype each runs the sampler under (None: none).
PRECISIONS = {"fp32": None, "bf16": "bfloat16"}


def precision_context(precision: str) -> Callable[[torch.device], Any]:
    """A context factory for sampling at ``precision`` on a device: bf16 autocast, or
    nothing for fp32; another value is a one-line ``ZooError``."""
    import contextlib

    import torch

    from zoo.core.errors import ZooError

    if precision not in PRECISIONS:
        raise ZooError(f"sampling: precision = {precision!r} must be one of "
                       f"{', '.join(PRECISIONS)}")
    dtype = PRECISIONS[precision]
    if dtype is None:
        return lambda device: contextlib.nullcontext()
    return lambda device: torch.autocast(device.type, getattr(torch, dtype))


def _count(value: Any, name: str, low: int) -> int:
    """``value`` as an integer of at least ``low``; anything else is a one-line ``ZooError``."""
    import operator

    from zoo.core.errors import ZooError

    try:
        number = operator.index(value)  # int, numpy and 0-d integer tensors; not float or bool
    except TypeError:
        number = None
    if number is None or isinstance(value, bool) or number < low:
        raise ZooError(f"sampling: {name} = {value!r} must be an integer of at least {low}")
    return number


def checked_output(family: FamilyRecord, out: Any, rows: int
                   ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
    """A sampler's return value as (images, extras or None), or a one-line ``PluginError``
    when it is not float images ``rows×C×H×W`` (and, optionally, a list of tensors)."""
    import torch

    from zoo.core.errors import PluginError

    images, more = out if isinstance(out, tuple) and len(out) == 2 else (out, None)
    where = f"family {family.name!r}: sample() gave"
    if not isinstance(images, torch.Tensor):
        raise PluginError(f"{where} a {type(images).__name__}, not a tensor of images "
                          "(or a pair of images and a list of tensors)")
    if images.dim() != 4 or len(images) != rows:
        raise PluginError(f"{where} shape {tuple(images.shape)} for {rows} samples, expected "
                          f"{rows}xCxHxW")
    if not images.is_floating_point():
        raise PluginError(f"{where} dtype {images.dtype}, expected float images in [0, 1]")
    if more is not None and not (isinstance(more, list | tuple)
                                 and all(isinstance(t, torch.Tensor) for t in more)):
        raise PluginError(f"{where} extras of type {type(more).__name__}, expected a list of "
                          "tensors")
    return images, None if more is None else list(more)


def warn_nonfinite(family: FamilyRecord, module: nn.Module, rescan: bool = False) -> bool:
    """Print a one-line warning on stderr if the module has NaN or infinite weights;
    return whether it did.

    The scan reads every weight, as much work as a batch-1 forward pass, so its answer
    is kept per module and redone only when a weight changed (a tensor's version counter
    moves with every in-place write, ``load_state_dict`` and optimiser steps included;
    writes through ``p.data`` are not counted, hence ``rescan``: sampling rescans when
    an image comes out non-finite)."""
    from zoo.artifact import nonfinite_tensors

    key = _weights_version(module)
    cached = _FINITE_SCANS.get(module)
    if not rescan and key is not None and cached is not None and cached[0] == key:
        bad = cached[1]
    else:
        bad = nonfinite_tensors(module)
        if key is not None:
            _FINITE_SCANS[module] = (key, bad)
    if bad:
        print(f"warning: the {family.name} model has non-finite weights (NaN or inf) in "
              f"{', '.join(bad[:3])}{', …' if len(bad) > 3 else ''}; its samples are not "
              "meaningful", file=sys.stderr)
    return bool(bad)


#: module -> (its weights' versions when scanned, the names of non-finite ones)
_FINITE_SCANS: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, list[str]]] = (
    weakref.WeakKeyDictionary())


def _weights_version(module: nn.Module) -> tuple | None:
    """Each parameter's and buffer's (identity, storage, version counter), which any change
    of a weight moves; None where a tensor keeps no counter (made under inference mode)."""
    try:  # one walk over the submodules (parameters() and buffers() would make two)
        return tuple((id(t), t.data_ptr(), t._version) for m in module.modules()
                     for table in (m._parameters, m._buffers) for t in table.values()
                     if t is not None)
    except RuntimeError:  # an inference tensor has no version counter
        return None


def module_device(module: nn.Module) -> torch.device:
    """The device of a module's first parameter, or first buffer for a module that has
    none (e.g. a non-parametric model that is only its stored images); CPU if empty."""
    import itertools

    import torch

    first = next(itertools.chain(module.parameters(), module.buffers()), None)
    return first.device if first is not None else torch.device("cpu")


def read_image(path: str | Path) -> torch.Tensor:
    """An image file as float32 ``C×H×W`` in [0, 1]: C = 1 for a grey file, else 3 (RGB).

    For sampler inputs such as ``zoo sample --input/--mask``; a missing or
    unreadable file is a one-line ``DataError``.
    """
    import torch

    from zoo.core.errors import DataError
    from zoo.data import decode_image

    path = Path(path)
    if not path.is_file():
        raise DataError(f"image file not found: {path}")
    array = decode_image(path)
    array = array[:, :, None] if array.ndim == 2 else array
    return torch.from_numpy(array).permute(2, 0, 1).float().div_(255.0)


def grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2) -> torch.Tensor:
    """Tile images ``N×C×H×W`` into one ``C×H'×W'`` image, ``nrow`` per row (default square)."""
    from torchvision.utils import make_grid

    nrow = nrow or max(1, math.ceil(math.sqrt(len(images))))
    return make_grid(images, nrow=nrow, padding=padding, pad_value=1.0)


def stage_tiles(stages: Sequence[torch.Tensor]) -> torch.Tensor:
    """A sampler's stages (each ``N×C×h×w``: LAPGAN's levels, DRAW's canvases) as tiles for
    :func:`grid` with ``nrow = len(stages)``: a row per sample, a column per stage, each
    stage scaled (nearest neighbour) to the last one's size; float32 on the CPU."""
    import torch
    import torch.nn.functional as F

    size = stages[-1].shape[-2:]
    tiles = torch.stack([F.interpolate(s.float().cpu(), size=size, mode="nearest")
                         for s in stages], 1)  # N × stages × C × H × W
    return tiles.flatten(0, 1)


def save_png(image: torch.Tensor, path: str | Path) -> Path:
    """Write a ``C×H×W`` float image in [0, 1] as PNG, atomically."""
    import io

    from PIL import Image

    from zoo.artifact import atomic_write

    path = Path(path)
    buffer = io.BytesIO()
    Image.fromarray(hwc(to_uint8(image))).save(buffer, format="PNG")
    atomic_write(path, buffer.getvalue())
    return path


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Float images in [0, 1] (any shape) -> uint8 ``round(255 x)``: the pixels every output
    of ``zoo sample`` holds."""
    return images.clamp(0, 1).mul(255).round().byte().cpu().numpy()


def hwc(image: np.ndarray) -> np.ndarray:
    """One ``C×H×W`` array -> ``H×W`` (grey) or ``H×W×C``, as PIL takes it."""
    return image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
