"""The Parzen-window log-likelihood estimate: the yardstick of the GAN paper (Goodfellow et
al., 2014, after Breuleux, Bengio & Vincent, 2011).

A model's samples s_1 .. s_n become the centres of an isotropic Gaussian kernel density in
pixel space (d = C·H·W dimensions),

    log p̂(x) = logsumexp_i [ -‖x - s_i‖² / (2σ²) ] - log n - (d / 2) log(2πσ²),

and the estimate is the mean of log p̂ over held-out images. σ is the one value of a grid
that maximises the mean on a *validation* split; the figure reported is the mean on a
separate *test* split, with its standard error. ``zoo eval`` splits the held-out images it
is given in two (even positions: validation, odd: test), so neither half was trained on
and σ is never fitted to the images it is scored on.

The estimate is known to be a poor measure of likelihood in high dimensions (Theis, van
den Oord & Bethge, 2016): it is dominated by the nearest sample, needs very many samples
to converge, and ranks a model that memorises its training set highly. It is here because
it is the number the early papers report (GAN MNIST: 225 ± 2 nats with 10,000 samples),
so the zoo's models can be held beside them; it is not comparable with a likelihood
bound on binarised images (IWAE), which is a probability, not a density.
"""

from __future__ import annotations

import math

import torch

#: The σ grid searched on the validation split: 60 values, log-spaced from 0.01 to 3 (pixels
#: in [0, 1]; the GAN paper's code searched 10 values from 0.1 to 1).
SIGMAS = torch.logspace(-2, math.log10(3.0), 60, dtype=torch.float64)
#: Held-out rows per chunk: the distance block (rows × samples) stays small for any n.
CHUNK = 256


def log_density(points: torch.Tensor, centres: torch.Tensor,
                sigmas: torch.Tensor | float) -> torch.Tensor:
    """log p̂(x) in nats of each point under the Parzen window of ``centres``, for each σ.

    ``points`` (M×…) and ``centres`` (N×…) are flattened per row; the result is float64,
    (S×M) for S values of ``sigmas`` (a 0-d σ gives (M,)). Distances are computed in
    float64, ``CHUNK`` points at a time.
    """
    sigma = torch.as_tensor(sigmas, dtype=torch.float64)
    scalar = sigma.dim() == 0
    sigma = sigma.reshape(-1, 1, 1)
    x = points.reshape(len(points), -1).double()
    s = centres.reshape(len(centres), -1).double()
    if x.shape[1] != s.shape[1]:
        raise ValueError(f"points have {x.shape[1]} values per row, centres {s.shape[1]}")
    if len(s) == 0:
        raise ValueError("a Parzen window needs at least one centre (sample)")
    n, d = s.shape
    norm = math.log(n) + 0.5 * d * torch.log(2 * math.pi * sigma.squeeze(-1) ** 2)  # S×1
    out = []
    for start in range(0, len(x), CHUNK):
        block = torch.cdist(x[start : start + CHUNK], s).pow(2)  # rows × n
        out.append(torch.logsumexp(-block / (2 * sigma**2), dim=2) - norm)  # S × rows
    result = torch.cat(out, 1) if out else x.new_zeros(len(sigma), 0)
    return result[0] if scalar else result


def parzen_estimate(samples: torch.Tensor, validation: torch.Tensor, test: torch.Tensor,
                    sigmas: torch.Tensor = SIGMAS) -> dict[str, float]:
    """The paper's method: σ from ``sigmas`` that maximises the validation mean, then the
    test mean log-likelihood (nats), its standard error, and σ."""
    if len(validation) < 1 or len(test) < 2:
        raise ValueError(f"needs at least 1 validation and 2 test images, got "
                         f"{len(validation)} and {len(test)}")
    sigmas = torch.as_tensor(sigmas, dtype=torch.float64).reshape(-1)
    best = int(log_density(validation, samples, sigmas).mean(1).argmax())
    sigma = sigmas[best]
    ll = log_density(test, samples, sigma)
    return {"ll": float(ll.mean()), "se": float(ll.std() / math.sqrt(len(ll))),
            "sigma": float(sigma), "samples": len(samples), "test_images": len(ll),
            "sigma_at_grid_edge": int(best in (0, len(sigmas) - 1))}


def parzen_metric(model, samples: torch.Tensor, reference: torch.Tensor
                  ) -> dict[str, float]:
    """``zoo eval``'s ``parzen`` metric: :func:`parzen_estimate` of the drawn samples (``-n``;
    the paper used 10,000) with the held-out images split in two, even positions for
    choosing σ and odd ones for the estimate."""
    return parzen_estimate(samples, reference[0::2], reference[1::2])
