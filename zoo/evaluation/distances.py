"""Distances between feature sets: FID, KID, precision/recall and memorisation.

FID, KID and precision/recall are torch-fidelity's own computations (its defaults:
KID's cubic polynomial kernel ``(x·y/d + 1)^3`` over 100 subsets, seed 2020;
precision/recall's k = 3 nearest-neighbour balls of Kynkäänniemi et al. 2019), called
on features genzoo extracted, so the numbers match torch-fidelity's for the same images.
The memorisation check is genzoo's: the distance from each sample to its nearest
training image, against how close held-out images come to the training set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

#: torch-fidelity's defaults, recorded with every result.
KID_SUBSETS, KID_SUBSET_SIZE, KID_SEED = 100, 1000, 2020
PRC_NEIGHBOURS = 3
#: Memorisation: a sample is "memorised" when it is closer to a training image than this
#: percentile of held-out images' nearest-training distances.
MEMORISED_PERCENTILE = 1.0


def fid(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to features ``a`` and ``b`` (N×D float32),
    torch-fidelity's ``fid_statistics_to_metric`` (float64 covariances, eigenvalues)."""
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    stats_a, stats_b = fid_features_to_statistics(a.float()), fid_features_to_statistics(b.float())
    return fid_statistics_to_metric(stats_a, stats_b, verbose=False)["frechet_inception_distance"]


def kid_subset_size(n_a: int, n_b: int) -> int:
    """torch-fidelity's subset size (1000), lowered to the smaller set when it has fewer."""
    return min(KID_SUBSET_SIZE, n_a, n_b)


def kid(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float, int]:
    """Kernel inception distance: (mean, std over subsets, subset size), torch-fidelity's
    ``kid_features_to_metric`` with its default kernel, subsets and seed."""
    from torch_fidelity.metric_kid import kid_features_to_metric

    size = kid_subset_size(len(a), len(b))
    out = kid_features_to_metric(a.float(), b.float(), kid_subsets=KID_SUBSETS,
                                 kid_subset_size=size, kid_kernel="poly",
                                 kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None,
                                 kid_kernel_poly_coef0=1, rng_seed=KID_SEED, verbose=False)
    return (out["kernel_inception_distance_mean"], out["kernel_inception_distance_std"], size)


def precision_recall(generated: torch.Tensor, real: torch.Tensor) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019; k = 3): the fraction of
    generated features inside the real k-NN manifold, and of real features inside the
    generated one; torch-fidelity's ``prc_features_to_metric``."""
    from torch_fidelity.metric_prc import prc_features_to_metric

    out = prc_features_to_metric(generated.float(), real.float(),
                                 prc_neighborhood=PRC_NEIGHBOURS, prc_batch_size=10_000,
                                 save_cpu_ram=True, verbose=False)
    return out["precision"], out["recall"]


def nearest(queries: torch.Tensor, database: torch.Tensor, batch: int = 1024
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean distance from each query to its nearest database row, and that row's
    index (float64 distances; batched so memory stays at ``batch`` × database rows)."""
    db = database.double()
    dists, index = [], []
    for start in range(0, len(queries), batch):
        d = torch.cdist(queries[start : start + batch].double(), db)
        best = d.min(1)
        dists.append(best.values)
        index.append(best.indices)
    return torch.cat(dists), torch.cat(index)


@dataclass(frozen=True)
class Memorisation:
    """For each sample, its nearest training image (``index``) and distance (``distance``);
    ``threshold``: the held-out images' :data:`MEMORISED_PERCENTILE` percentile nearest
    distance; ``fraction``: samples closer than it."""

    distance: torch.Tensor
    index: torch.Tensor
    threshold: float
    fraction: float


def memorisation(samples: torch.Tensor, train: torch.Tensor, held_out: torch.Tensor
                 ) -> Memorisation:
    """How many samples sit closer to a training image than held-out images usually do.

    Held-out images were never trained on, so their nearest-training distances show how
    close a new image from the data distribution comes by chance; a sample below the
    1st percentile of them is flagged as memorised. A model that copies training images
    scores near 1, one that draws fresh images from the data distribution near 0.01.
    """
    reference, _ = nearest(held_out, train)
    threshold = float(np.percentile(reference.numpy(), MEMORISED_PERCENTILE))
    distance, index = nearest(samples, train)
    fraction = float((distance < threshold).double().mean()) if len(samples) else 0.0
    return Memorisation(distance, index, threshold, fraction)
