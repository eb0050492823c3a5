"""Poisson blending (Pérez, Gangnet & Blake 2003) of a matched scene into the photo.

Inside the region Ω the scene takes, the result f keeps the scene's
gradients and meets the photo on Ω's border: for every p in Ω, with N_p its
4-neighbours inside the image,

    |N_p| f_p − Σ_{q ∈ N_p ∩ Ω} f_q = Σ_{q ∈ N_p \\ Ω} photo_q + Σ_{q ∈ N_p} (scene_p − scene_q),

a sparse symmetric positive definite system (Ω never fills the image), one
LU factorisation for all channels. Outside Ω the photo is returned unchanged.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import splu

#: 4-neighbour offsets.
STEPS = ((-1, 0), (1, 0), (0, -1), (0, 1))


def poisson_blend(photo: np.ndarray, scene: np.ndarray, region: np.ndarray) -> np.ndarray:
    """``photo`` (C×H×W) with ``scene`` blended into ``region`` (H×W bool, not all of it)."""
    c, h, w = photo.shape
    ys, xs = np.nonzero(region)
    n = len(ys)
    if n == 0:
        return photo.copy()
    if n == h * w:
        raise ValueError("the blend region covers the whole image: no border to meet")
    index = np.full((h, w), -1)
    index[ys, xs] = np.arange(n)
    diagonal = np.zeros(n)
    rhs = np.zeros((n, c))
    rows, cols = [], []
    for dy, dx in STEPS:
        qy, qx = ys + dy, xs + dx
        inside = (qy >= 0) & (qy < h) & (qx >= 0) & (qx < w)
        p, qy, qx = np.nonzero(inside)[0], qy[inside], qx[inside]
        diagonal[p] += 1
        rhs[p] += (scene[:, ys[p], xs[p]] - scene[:, qy, qx]).T
        q = index[qy, qx]
        linked = q >= 0
        rows.append(p[linked])
        cols.append(q[linked])
        border = ~linked
        rhs[p[border]] += photo[:, qy[border], qx[border]].T
    rows_all, cols_all = np.concatenate(rows), np.concatenate(cols)
    matrix = sparse.csc_matrix(
        (np.concatenate([diagonal, -np.ones(len(rows_all))]),
         (np.concatenate([np.arange(n), rows_all]), np.concatenate([np.arange(n), cols_all]))),
        shape=(n, n))
    solution = splu(matrix).solve(rhs)
    out = photo.copy()
    out[:, ys, xs] = solution.T
    return out
