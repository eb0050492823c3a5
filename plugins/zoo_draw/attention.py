"""DRAW's differentiable Gaussian attention (Gregor et al., 2015, section 3.2).

A linear layer of the decoder state gives five numbers per image,
(g~X, g~Y, log sigma^2, log delta~, log gamma), and for an A x A image (the
paper's A = B; pixels and filters indexed from 1, as there):

    g_X = (A + 1) / 2 (g~X + 1),   g_Y = (A + 1) / 2 (g~Y + 1),
    delta = (A - 1) / (N - 1) delta~            (N = 1: delta is unused),
    mu_X^i = g_X + (i - N/2 - 1/2) delta,   mu_Y^j = g_Y + (j - N/2 - 1/2) delta,
    F_X[i, a] = exp(-(a - mu_X^i)^2 / (2 sigma^2)) / Z_X,   Z_X = max(sum_a ..., eps),

so each row of F_X (N x A) and F_Y (N x A) sums to 1. The read glimpse of an
image x (per channel) is gamma F_Y x F_X^T (N x N); a written patch w (N x N per
channel) lands on the canvas as 1/gamma F_Y^T w F_X (A x A).
"""

from __future__ import annotations

import math

import torch

#: Floor of a filter's normaliser Z (a filter far outside the image has all weights ~0).
EPS = 1e-8


def attention_parameters(p: torch.Tensor, size: int, n: int
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                    torch.Tensor]:
    """(g_X, g_Y, sigma^2, delta, gamma), each (B,), from the linear layer's output ``p``
    (B, 5) = (g~X, g~Y, log sigma^2, log delta~, log gamma) for an image of ``size``."""
    p = p.to(torch.promote_types(p.dtype, torch.float32))  # bf16 autocast: in fp32
    gx_, gy_, log_sigma2, log_delta_, log_gamma = p.unbind(-1)
    gx = (size + 1) / 2 * (gx_ + 1)
    gy = (size + 1) / 2 * (gy_ + 1)
    delta = (size - 1) / max(n - 1, 1) * torch.exp(log_delta_)
    return gx, gy, torch.exp(log_sigma2), delta, torch.exp(log_gamma)


def centred_bias(size: int, n: int, write: bool = False) -> list[float]:
    """Starting values of (g~X, g~Y, log sigma^2, log delta~, log gamma): an N x N grid
    centred on the image, spanning its middle two thirds, filters half a spacing wide;
    gamma = 1 for a read, and for a write the peak of a 2-D filter blob, 1 / (2 pi sigma^2),
    so a written value w starts at about intensity w on the canvas, as a whole-image write
    does. (Measured on mnist5k: with zeros the read grid sat on the empty border and q(z)
    fell to the prior; with gamma = 1 the write was 20x too faint for Adam to catch up in
    thousands of steps.)"""
    delta_ = 2 / 3 * max(n - 1, 1) / n
    delta = (size - 1) / max(n - 1, 1) * delta_
    sigma2 = (delta / 2) ** 2
    log_gamma = -math.log(2 * math.pi * sigma2) if write else 0.0
    return [0.0, 0.0, math.log(sigma2), math.log(delta_), log_gamma]


def filterbank(g: torch.Tensor, delta: torch.Tensor, sigma2: torch.Tensor, n: int, size: int
               ) -> torch.Tensor:
    """F (B, N, A): N Gaussian filters centred on the grid g + (i - N/2 - 1/2) delta over
    pixels a = 1 .. A, each row normalised to sum 1."""
    i = torch.arange(1, n + 1, device=g.device, dtype=g.dtype)
    a = torch.arange(1, size + 1, device=g.device, dtype=g.dtype)
    mu = g[:, None] + (i - n / 2 - 0.5) * delta[:, None]  # (B, N)
    f = torch.exp(-(a - mu[..., None]) ** 2 / (2 * sigma2[:, None, None]))
    return f / f.sum(-1, keepdim=True).clamp_min(EPS)


def filterbanks(p: torch.Tensor, size: int, n: int
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(F_X, F_Y, gamma) for attention parameters ``p`` (B, 5)."""
    gx, gy, sigma2, delta, gamma = attention_parameters(p, size, n)
    return filterbank(gx, delta, sigma2, n, size), filterbank(gy, delta, sigma2, n, size), gamma


def read_glimpse(x: torch.Tensor, fx: torch.Tensor, fy: torch.Tensor, gamma: torch.Tensor
                 ) -> torch.Tensor:
    """gamma F_Y x F_X^T per channel: (B, C, A, A) -> (B, C, N, N)."""
    return gamma[:, None, None, None] * (fy[:, None] @ x @ fx[:, None].transpose(-1, -2))


def write_patch(w: torch.Tensor, fx: torch.Tensor, fy: torch.Tensor, gamma: torch.Tensor
                ) -> torch.Tensor:
    """1/gamma F_Y^T w F_X per channel: (B, C, N, N) -> (B, C, A, A)."""
    return (fy[:, None].transpose(-1, -2) @ w @ fx[:, None]) / gamma[:, None, None, None]
