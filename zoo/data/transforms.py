"""Transforms every family shares: uint8 to float, channels and size."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

    from zoo.core.spec import DataSpec

LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 grey from RGB


def to_float(images: torch.Tensor, channels: int | None, size: int) -> torch.Tensor:
    """uint8 ``N×C×H×W`` -> float32 in [0, 1] with ``channels`` and a square ``size``.

    On the CPU the division runs in numpy, on one thread: bitwise the same as torch's, but a
    batch between two waits for a DataLoader no longer wakes torch's sleeping thread pool
    (which cost up to 50 µs an image, more than the division; ``bench/data.py``)."""
    import torch

    if images.device.type == "cpu":
        x = torch.from_numpy(np.divide(images.numpy(), np.float32(255.0), dtype=np.float32))
    else:
        x = images.float().div_(255.0)
    return conform(x, channels, size)


def conform(x: torch.Tensor, channels: int | None, size: int) -> torch.Tensor:
    """Float images in [0, 1] -> ``channels`` (grey <-> RGB) and a square ``size``
    (resize the short side with antialiasing, then center-crop)."""
    import torch
    import torch.nn.functional as F

    if channels == 3 and x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1).contiguous()
    elif channels == 1 and x.shape[1] == 3:
        x = (x * torch.tensor(LUMA, device=x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
    h, w = x.shape[-2:]
    if (h, w) != (size, size):
        scale = size / min(h, w)
        new = (max(size, round(h * scale)), max(size, round(w * scale)))
        x = F.interpolate(x, size=new, mode="bilinear", antialias=True, align_corners=False)
        top, left = (new[0] - size) // 2, (new[1] - size) // 2
        x = x[..., top : top + size, left : left + size].clamp_(0.0, 1.0).contiguous()
    return x


def num_channels(spec: DataSpec) -> int:
    """The channel count a model built for this data spec sees (without loading data)."""
    if spec.channels is not None:
        return spec.channels
    from zoo.core.registry import get_dataset

    return get_dataset(spec.source).channels
