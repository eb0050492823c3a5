"""Local alignment of a matched scene: the translation and scale that best fit the context.

Hays & Efros align each matched scene to the query by the translation (and
scale) minimising the SSD over the query's known context within a band
around the hole. Here the scene, resized to the query's size and zoomed by
each of ``zooms`` about its centre, is placed at every offset within
``shift`` pixels of centred; the SSD over the band is evaluated at every
offset as Σw·s² − 2Σw·q·s + Σw·q² by correlations (scipy.signal.correlate:
direct sums for small images, FFTs for large ones, so memory stays linear in
the image size), and offsets that would
leave part of the hole or band uncovered are not allowed. Ties go to the
first zoom given and the smallest shift.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.signal import correlate


@dataclass(frozen=True)
class Alignment:
    """The best placement of a scene: the warped scene (C×H×W, the query's own pixels where
    the scene does not reach), its SSD per band pixel and channel, the zoom and offset."""

    warped: np.ndarray
    error: float
    zoom: float
    offset: tuple[int, int]


def resized(scene: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``scene`` (C×h×w) resampled bilinearly to ``shape`` (unchanged when it has it)."""
    if tuple(scene.shape[1:]) == tuple(shape):
        return scene
    factors = (1, shape[0] / scene.shape[1], shape[1] / scene.shape[2])
    out = ndimage.zoom(scene, factors, order=1, grid_mode=True, mode="nearest")
    return out[:, : shape[0], : shape[1]]


def align(query: np.ndarray, band: np.ndarray, cover: np.ndarray, scene: np.ndarray,
          zooms: tuple[float, ...], shift: int) -> Alignment:
    """Place ``scene`` over ``query`` (both C×H×W after :func:`resized`) so that the SSD on
    the ``band`` pixels (H×W bool, known) is least while the scene covers ``cover``
    (H×W bool: the hole and the band)."""
    c, h, w = query.shape
    ys, xs = np.nonzero(cover)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    weight = band[y0:y1, x0:x1].astype(np.float64)
    target = query[:, y0:y1, x0:x1] * weight
    pixels = max(float(weight.sum()) * c, 1.0)
    best: Alignment | None = None
    for zoom in sorted(zooms, key=lambda z: abs(z - 1)):
        zh, zw = max(1, round(h * zoom)), max(1, round(w * zoom))
        big = resized(scene, (zh, zw))
        cy, cx = (zh - h) // 2, (zw - w) // 2
        lo_y, hi_y = max(cy - shift, -y0), min(cy + shift, zh - y1)
        lo_x, hi_x = max(cx - shift, -x0), min(cx + shift, zw - x1)
        if lo_y > hi_y or lo_x > hi_x:
            continue  # this zoom cannot cover the hole and its band
        part = big[:, lo_y + y0 : hi_y + y1, lo_x + x0 : hi_x + x1]
        ssd = sum(correlate(p * p, weight, mode="valid") - 2 * correlate(p, t, mode="valid")
                  for p, t in zip(part, target, strict=True))
        ssd = ssd + float((target * query[:, y0:y1, x0:x1]).sum())
        oy, ox = np.meshgrid(np.arange(lo_y, hi_y + 1), np.arange(lo_x, hi_x + 1),
                             indexing="ij")
        order = np.lexsort(((np.abs(ox - cx) + np.abs(oy - cy)).ravel(), ssd.ravel().round(12)))
        a, b = np.unravel_index(order[0], ssd.shape)
        error = max(float(ssd[a, b]), 0.0) / pixels
        if best is None or error < best.error:
            dy, dx = int(oy[a, b]), int(ox[a, b])
            warped = query.copy()
            top, left = max(0, -dy), max(0, -dx)
            bottom, right = min(h, zh - dy), min(w, zw - dx)
            warped[:, top:bottom, left:right] = big[:, top + dy : bottom + dy,
                                                    left + dx : right + dx]
            best = Alignment(warped, error, zoom, (dy - cy, dx - cx))
    if best is None:  # no zoom given fits: zoom 1 at offset 0 always covers
        return align(query, band, cover, scene, (1.0,), shift)
    return best
