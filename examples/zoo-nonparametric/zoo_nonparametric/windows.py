"""Neighbourhood matching: Gaussian-weighted SSD over known pixels, (1 + ε) candidates.

Efros & Leung (1999), synthesising one pixel. Every square window of the
sample image(s) is one row of a matrix ``P`` (the unfold of the exemplars).
A pixel's neighbourhood ``q`` in the image being synthesised is only partly
known (mask ``m``); its distance to candidate ``k`` is the Gaussian-weighted
SSD over the known pixels, normalised by the weight they carry,

    d(q, k) = Σ_j g_j m_j (q_j − P_kj)² / Σ_j g_j m_j,

computed for all queries against all candidates at once by expanding the
square into three matrix products (in float64, so that rounding hardly ever
reorders near ties). Every candidate with d ≤ (1 + ε)·d_min is an acceptable
match, and one of them is drawn uniformly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gaussian_window(size: int, sigma: float | None = None) -> torch.Tensor:
    """A ``size × size`` Gaussian (float64, peak 1); the paper's σ = size / 6.4 by default."""
    sigma = sigma or size / 6.4
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    return g[:, None] * g[None, :]


def unfold_windows(images: torch.Tensor, size: int) -> torch.Tensor:
    """Every ``size × size`` window fully inside ``images`` (N×C×H×W), one per row.

    Rows are (M, C·size²), channel-major like ``F.unfold``; float64.
    """
    if images.shape[-1] < size or images.shape[-2] < size:
        return images.new_zeros(0, images.shape[1] * size * size, dtype=torch.float64)
    cols = F.unfold(images.double(), size)  # (N, C·size², L)
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


class Matcher:
    """The candidate windows of the exemplars, matched against partly known windows."""

    def __init__(self, windows: torch.Tensor, size: int, channels: int, epsilon: float) -> None:
        self.windows = windows.double()
        self.squares = self.windows**2
        self.size, self.channels, self.epsilon = size, channels, epsilon
        self.weights = gaussian_window(size).flatten().repeat(channels)  # (C·size²,)

    def distances(self, queries: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        """(Q, M): d(q, k) for each query window against each candidate.

        ``queries`` (Q, C·size²); ``known`` (Q, size²) bool, shared by the channels.
        """
        w = self.weights * known.double().repeat(1, self.channels)
        q = queries.double()
        ssd = ((w * q * q).sum(1, keepdim=True) - 2 * (w * q) @ self.windows.T
               + w @ self.squares.T)
        return ssd / w.sum(1, keepdim=True).clamp_min(1e-12)

    def choose(self, distances: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """One candidate per row, drawn among those within (1 + ε) of the row's best.

        ``u`` (Q,) in [0, 1) picks the ⌊u·count⌋-th acceptable candidate in
        index order, so the draw is a function of ``u`` alone.
        """
        best = distances.min(1, keepdim=True).values
        slack = 1e-9 * (1 + best.abs())  # exact matches differ only by rounding
        ok = distances <= best * (1 + self.epsilon) + slack
        count = ok.sum(1)
        rank = (u.double() * count).floor().long().clamp_max(count - 1)
        hit = ok & (ok.cumsum(1) - 1 == rank[:, None])
        return hit.int().argmax(1)
