"""The digit transformations: rotation, scale and shift, rendered with ``affine_grid``.

A transformation theta = (a, s, t_x, t_y) maps the source image x to

    T_theta(x)(p) = x(A^-1 (p - t)),    A = s R(a),

in ``affine_grid``'s normalised coordinates (x right, y down, [-1, 1] across the image,
``align_corners=False``); R(a) turns counter-clockwise as displayed and t is the shift
as a fraction of the width (2 t in normalised units). Pixels from outside the source are 0.

Each parameter has a training range, and the network sees it normalised to [-1, 1]
(:func:`normalise`). Training draws parameters from ``grid`` evenly spaced values of each
range; the held-out values are the midpoints between them (:func:`grid_values`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

#: The transformation parameters, in the order of a theta row and the options.
PARAMETERS = ("rotation", "scale", "shift_x", "shift_y")


def ranges(model_spec) -> torch.Tensor:
    """(4, 2): the (low, high) of each parameter from the spec's ``model`` section."""
    m = model_spec
    return torch.tensor([[-m.rotation, m.rotation], [m.scale_min, m.scale_max],
                         [-m.shift, m.shift], [-m.shift, m.shift]], dtype=torch.float32)


def normalise(theta: torch.Tensor, bounds: torch.Tensor) -> torch.Tensor:
    """Parameters (N, 4) -> codes in [-1, 1] over their ranges (0 for a range of one value)."""
    low, high = bounds[:, 0].to(theta), bounds[:, 1].to(theta)
    half = (high - low) / 2
    return torch.where(half > 0, (theta - (low + high) / 2) / half.clamp_min(1e-12),
                       torch.zeros_like(theta))


def denormalise(code: torch.Tensor, bounds: torch.Tensor) -> torch.Tensor:
    """Codes (N, 4) in [-1, 1] -> parameters (N, 4): the inverse of :func:`normalise`."""
    low, high = bounds[:, 0].to(code), bounds[:, 1].to(code)
    return (low + high) / 2 + code * (high - low) / 2


def grid_values(bounds: torch.Tensor, grid: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(trained (4, grid), held out (4, grid - 1)): each parameter's ``grid`` evenly spaced
    training values over its range, and the midpoints between neighbours."""
    steps = torch.linspace(0, 1, grid, dtype=torch.float64)
    trained = bounds[:, :1].double() + steps * (bounds[:, 1:] - bounds[:, :1]).double()
    return trained.float(), ((trained[:, 1:] + trained[:, :-1]) / 2).float()


def pick(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Parameters (N, 4) from per-parameter value rows (4, G) of :func:`grid_values`: row n
    takes ``values[j, index[n, j]]`` for each parameter j."""
    return values.gather(1, index.T).T


def affine(theta: torch.Tensor) -> torch.Tensor:
    """(N, 2, 3) ``affine_grid`` matrices [A^-1 | -A^-1 t] of parameters (N, 4)."""
    angle = theta[:, 0] * (math.pi / 180)
    scale, shift = theta[:, 1], 2 * theta[:, 2:]
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    # A^-1 = R(-a) / s, with R(a) = [[cos, sin], [-sin, cos]] for y pointing down
    inverse = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
    offset = -(inverse @ shift.unsqueeze(-1))
    return torch.cat([inverse, offset], 2)


def render(images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """T_theta(x) for each image (N, C, H, W) and its parameters (N, 4): bilinear, zeros
    outside."""
    matrices = affine(theta.to(images.dtype))
    where = F.affine_grid(matrices, list(images.shape), align_corners=False)
    return F.grid_sample(images, where, mode="bilinear", padding_mode="zeros",
                         align_corners=False)
