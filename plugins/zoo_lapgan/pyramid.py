"""Gaussian and Laplacian pyramids (Burt & Adelson, 1983), shared by training and sampling.

``downsample`` blurs with the 5-tap binomial kernel [1, 4, 6, 4, 1] / 16 and
keeps every other pixel; ``upsample`` inserts zeros and blurs with 4x the
kernel. A Laplacian pyramid stores the coarsest image and, at each finer
level, the band-pass residual h_k = g_k - upsample(g_{k+1}); collapsing adds
the residuals back, so it reproduces the image exactly (up to rounding).
Lists run coarse to fine, the order in which LAPGAN samples.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

TAPS = (1.0, 4.0, 6.0, 4.0, 1.0)


def _blur(x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    c = x.shape[1]
    k = torch.tensor(TAPS, device=x.device, dtype=x.dtype) * (gain ** 0.5 / 16)
    x = F.pad(x, (2, 2, 2, 2), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, 5).expand(c, 1, 1, 5), groups=c)
    return F.conv2d(x, k.view(1, 1, 5, 1).expand(c, 1, 5, 1), groups=c)


def downsample(x: torch.Tensor) -> torch.Tensor:
    """Blur and halve H and W."""
    return _blur(x)[..., ::2, ::2]


def upsample(x: torch.Tensor) -> torch.Tensor:
    """Double H and W: zero insertion, then blur (gain 4 keeps the mean)."""
    n, c, h, w = x.shape
    up = x.new_zeros(n, c, 2 * h, 2 * w)
    up[..., ::2, ::2] = x
    return _blur(up, gain=4.0)


def gaussian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """[coarsest, ..., x]: ``levels`` images, each half the size of the next."""
    images = [x]
    for _ in range(levels - 1):
        images.append(downsample(images[-1]))
    return images[::-1]


def laplacian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """[coarsest image, residual at 2x, ..., residual at full size]."""
    g = gaussian_pyramid(x, levels)
    return [g[0]] + [fine - upsample(coarse) for coarse, fine in itertools.pairwise(g)]


def collapse(pyramid: list[torch.Tensor]) -> torch.Tensor:
    """Invert :func:`laplacian_pyramid`: upsample and add residuals, coarse to fine."""
    image = pyramid[0]
    for residual in pyramid[1:]:
        image = upsample(image) + residual
    return image
