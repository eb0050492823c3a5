"""Small image operations the visualisations share: scaling to the unit range, nearest
upscaling of tiny tiles, Gaussian blur, and outlining a box."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

#: Tiles smaller than this many pixels are enlarged (nearest neighbour) in the PNGs.
MIN_TILE = 56


def unit_range(x: torch.Tensor) -> torch.Tensor:
    """Each item of a batch scaled to [0, 1] by its own min and max (constant items: 0.5)."""
    flat = x.flatten(1)
    low, high = flat.min(1).values, flat.max(1).values
    span = (high - low).clamp_min(1e-12)
    scaled = (flat - low[:, None]) / span[:, None]
    scaled[(high - low) <= 1e-12] = 0.5
    return scaled.view_as(x)


def signed_range(x: torch.Tensor) -> torch.Tensor:
    """Each item mapped to [0, 1] with 0 at mid grey: 0.5 + x / (2 max |x|)."""
    peak = x.flatten(1).abs().max(1).values.clamp_min(1e-12)
    return 0.5 + x / (2 * peak.view(-1, *[1] * (x.dim() - 1)))


def upscale(images: torch.Tensor, min_size: int = MIN_TILE) -> torch.Tensor:
    """Enlarge ``N×C×H×W`` images by an integer factor (nearest) to at least ``min_size``."""
    factor = max(1, math.ceil(min_size / max(images.shape[-2:])))
    if factor == 1:
        return images
    return images.repeat_interleave(factor, -2).repeat_interleave(factor, -1)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``N×C×H×W`` with reflected borders (``sigma`` in pixels)."""
    if sigma <= 0:
        return x
    radius = max(1, math.ceil(2 * sigma))
    radius = min(radius, (min(x.shape[-2:]) - 1))
    if radius < 1:
        return x
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def to_rgb(images: torch.Tensor) -> torch.Tensor:
    """Greyscale ``N×1×H×W`` -> ``N×3×H×W`` (RGB unchanged)."""
    return images.expand(-1, 3, -1, -1).clone() if images.shape[1] == 1 else images.clone()


def outline(image: torch.Tensor, box: tuple[int, int, int, int],
            colour: tuple[float, float, float] = (1.0, 0.1, 0.1)) -> torch.Tensor:
    """An RGB ``3×H×W`` image with a one-pixel rectangle drawn at ``box`` = (top, left,
    bottom, right), bounds inclusive."""
    out = image.clone()
    top, left, bottom, right = box
    c = torch.tensor(colour, dtype=out.dtype).view(3, 1)
    out[:, top, left : right + 1] = c
    out[:, bottom, left : right + 1] = c
    out[:, top : bottom + 1, left] = c
    out[:, top : bottom + 1, right] = c
    return out


def fit_into(patch: torch.Tensor, size: tuple[int, int], fill: float = 0.5) -> torch.Tensor:
    """A ``C×h×w`` patch enlarged (nearest) to fit ``size`` = (H, W), centred on ``fill``."""
    h, w = patch.shape[-2:]
    scale = min(size[0] / h, size[1] / w)
    new = (max(1, int(h * scale)), max(1, int(w * scale)))
    resized = F.interpolate(patch[None], size=new, mode="nearest")[0]
    canvas = torch.full((patch.shape[0], *size), fill, dtype=patch.dtype)
    top, left = (size[0] - new[0]) // 2, (size[1] - new[1]) // 2
    canvas[:, top : top + new[0], left : left + new[1]] = resized
    return canvas
