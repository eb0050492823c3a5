"""The scene descriptor of Hays & Efros: gist-like filter energies and colour on a coarse grid.

For an image with luma L, the descriptor holds, for each cell of a
``grid × grid`` partition, the pooled oriented energies

    e(σ, θ) = mean over the cell of (σ·(cos θ ∂x + sin θ ∂y) G_σ * L)²

(square-rooted, so they are amplitudes like the colours) at the scales σ (in
pixels at 64×64, scaled with the image) and ``orientations`` angles θ = kπ/K,
followed by the cell's mean colour times √``colour_weight``.

A query with a hole pools each cell over its *known* pixels only, and the
cell enters the distance with the weight w_c = its known fraction (the
paper's mask weighting); a cell wholly inside the hole has no influence:

    d(q, j) = Σ_c w_c ‖q_c − D_{j,c}‖² / Σ_c w_c,

one matrix–vector product over the database: linear in its size.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: Luma weights (ITU-R 601) for colour images.
LUMA = np.array([0.299, 0.587, 0.114])
#: Database scenes compared at a time (their float64 copy stays in cache).
CHUNK = 1024


def cell_edges(size: int, grid: int) -> np.ndarray:
    """Start indices of ``grid`` near-equal cells along a side of ``size`` pixels."""
    return np.linspace(0, size, grid + 1).astype(int)[:-1]


def pool(values: np.ndarray, weights: np.ndarray, grid: int) -> tuple[np.ndarray, np.ndarray]:
    """Weighted cell means of ``values`` (N×D×H×W) with ``weights`` (N×H×W): (N×G²×D means,
    N×G² weight sums); a cell without weight gets 0."""
    rows, cols = cell_edges(values.shape[2], grid), cell_edges(values.shape[3], grid)
    sums = np.add.reduceat(np.add.reduceat(values * weights[:, None], rows, 2), cols, 3)
    mass = np.add.reduceat(np.add.reduceat(weights, rows, 1), cols, 2)
    means = sums / np.maximum(mass, 1e-12)[:, None]
    n, d = values.shape[:2]
    return (means.reshape(n, d, grid * grid).transpose(0, 2, 1),
            mass.reshape(n, grid * grid))


def features(images: np.ndarray, scales: tuple[float, ...], orientations: int,
             colour_weight: float) -> np.ndarray:
    """Per-pixel features N×D×H×W of images N×C×H×W in [0, 1]: oriented energies, colour."""
    luma = images[:, 0] if images.shape[1] == 1 else np.einsum("nchw,c->nhw", images, LUMA)
    unit = min(images.shape[2:]) / 64
    out = []
    for scale in scales:
        sigma = max(scale * unit, 0.5)
        gy = sigma * ndimage.gaussian_filter(luma, (0, sigma, sigma), order=(0, 1, 0))
        gx = sigma * ndimage.gaussian_filter(luma, (0, sigma, sigma), order=(0, 0, 1))
        for k in range(orientations):
            theta = np.pi * k / orientations
            out.append((np.cos(theta) * gx + np.sin(theta) * gy) ** 2)
    energies = np.stack(out, 1)
    return np.concatenate([energies, images * np.sqrt(colour_weight)], 1)


def describe(images: np.ndarray, known: np.ndarray | None, grid: int,
             scales: tuple[float, ...], orientations: int, colour_weight: float
             ) -> tuple[np.ndarray, np.ndarray]:
    """Descriptors (N×G²×D float32) and cell weights (N×G², the known fraction of each cell)
    of images N×C×H×W in [0, 1] whose pixels ``known`` (N×H×W bool, None: all) are known.

    Unknown pixels are never read: they are replaced by the mean known colour before
    filtering, and pooling counts known pixels only."""
    images = np.asarray(images, dtype=np.float64)
    if known is None:
        known = np.ones((len(images), *images.shape[2:]), dtype=bool)
    mask = known[:, None]
    fill = (images * mask).sum((2, 3), keepdims=True) / np.maximum(mask.sum((2, 3),
                                                                           keepdims=True), 1)
    images = np.where(mask, images, fill)
    feats = features(images, scales, orientations, colour_weight)
    channels = images.shape[1]  # the last features; the energies are pooled, then rooted
    means, mass = pool(feats, known.astype(np.float64), grid)
    means[..., :-channels] = np.sqrt(means[..., :-channels])
    area = pool(np.ones_like(feats[:, :1]), np.ones_like(known, dtype=np.float64), grid)[1]
    return means.astype(np.float32), (mass / area).astype(np.float32)


def distances(query: np.ndarray, weights: np.ndarray, database: np.ndarray,
              rows: int = CHUNK) -> np.ndarray:
    """Mask-weighted squared distances (N) from one query descriptor (G²×D, cell weights
    G²) to every database descriptor (N×G²×D): one pass over the database, ``rows`` scenes
    at a time (in float64, a chunk small enough to stay in cache)."""
    w = weights.astype(np.float64)
    total = w.sum()
    if total <= 0:
        raise ValueError("no cell of the query is known")
    q = query.astype(np.float64)
    weighted, constant = (w[:, None] * q).ravel(), (w * (q**2).sum(1)).sum()
    out = np.empty(len(database))
    for lo in range(0, len(database), rows):
        part = database[lo : lo + rows].astype(np.float64)
        norms = np.einsum("ncd,ncd->nc", part, part) @ w
        out[lo : lo + rows] = norms - 2 * part.reshape(len(part), -1) @ weighted + constant
    return np.maximum(out, 0) / total
