"""The seam between the photo and a matched scene: a graph cut in the band around the hole.

Every pixel takes a label, *photo* or *scene*. Pixels in the hole must take
the scene, pixels beyond the band the photo; in the band the labelling
minimises

    E = Σ_p bias·(dist(p, hole) / band)³·[p is scene]
      + Σ_{p~q, 4-neighbours} (e_p + e_q)·[label_p ≠ label_q],   e_p = ‖photo_p − scene_p‖,

the seam cost of Kwatra et al. (2003) that Hays & Efros use, plus their
term that keeps the seam near the hole (``seam_bias``, 0: none); where the band
reaches every known pixel, the farthest of them keep the photo. The photo's
hole is unknown, so e = 0 there. The minimum is exact: a min-cut/max-flow
(PyMaxflow's Boykov–Kolmogorov solver) with the photo as source, the scene
as sink.
"""

from __future__ import annotations

import maxflow
import numpy as np
from scipy import ndimage

#: Capacity that no cut pays: forces a pixel's label.
FORCED = 1e9


def band_around(hole: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray]:
    """(the known pixels within ``width`` pixels of the hole, their distance to it)."""
    distance = ndimage.distance_transform_edt(~hole)
    return (~hole) & (distance <= width), distance


def forced_photo(hole: np.ndarray, band: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """The pixels that must keep the photo: those beyond the band, or, where the band
    reaches every known pixel, the known pixels farthest from the hole (so the blend
    always has a border to meet)."""
    outer = ~hole & ~band
    if outer.any() or hole.all():
        return outer
    return ~hole & (distance == distance[~hole].max())


def seam_costs(photo: np.ndarray, scene: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """e_p = ‖photo_p − scene_p‖ over channels (C×H×W each), 0 in the hole."""
    e = np.sqrt(((photo - scene) ** 2).sum(0))
    return np.where(hole, 0.0, e)


def cut(photo: np.ndarray, scene: np.ndarray, hole: np.ndarray, width: float,
        bias: float = 0.0) -> np.ndarray:
    """The pixels (H×W bool) that take the scene: the hole, and the part of the band
    the least-cost seam gives it."""
    band, distance = band_around(hole, width)
    e = seam_costs(photo, scene, hole)
    graph = maxflow.Graph[float]()
    nodes = graph.add_grid_nodes(hole.shape)
    right = np.zeros((3, 3))
    right[1, 2] = 1
    down = np.zeros((3, 3))
    down[2, 1] = 1
    pair_right = np.zeros_like(e)
    pair_right[:, :-1] = e[:, :-1] + e[:, 1:]
    pair_down = np.zeros_like(e)
    pair_down[:-1] = e[:-1] + e[1:]
    graph.add_grid_edges(nodes, weights=pair_right, structure=right, symmetric=True)
    graph.add_grid_edges(nodes, weights=pair_down, structure=down, symmetric=True)
    scene_cost = np.where(band, bias * (distance / max(width, 1e-9)) ** 3, 0.0)
    scene_cost = np.where(forced_photo(hole, band, distance), FORCED, scene_cost)
    photo_cost = np.where(hole, FORCED, 0.0)
    graph.add_grid_tedges(nodes, scene_cost, photo_cost)  # source cap: paid to take the scene
    graph.maxflow()
    return graph.get_grid_segments(nodes) | hole


def energy(labels: np.ndarray, photo: np.ndarray, scene: np.ndarray, hole: np.ndarray,
           width: float, bias: float = 0.0) -> float:
    """E of a labelling (H×W bool, True: scene) as in the module docstring; inf when it
    breaks a forced label."""
    band, distance = band_around(hole, width)
    if not labels[hole].all() or labels[forced_photo(hole, band, distance)].any():
        return float("inf")
    e = seam_costs(photo, scene, hole)
    pairs = (((e[:, :-1] + e[:, 1:]) * (labels[:, :-1] != labels[:, 1:])).sum()
             + ((e[:-1] + e[1:]) * (labels[:-1] != labels[1:])).sum())
    unary = (bias * (distance / max(width, 1e-9)) ** 3 * (labels & band)).sum()
    return float(pairs + unary)
