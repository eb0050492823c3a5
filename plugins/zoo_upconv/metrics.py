"""``heldout_mse``: how well an upconv model renders transformations it never trained on.

For ``n`` random (class, identity) pairs with every transformation parameter at a
held-out midpoint between two trained grid values, it compares with the true
rendering T_theta(x_ck):

- ``generator``: the model's image MSE;
- ``baseline``: the nearest-training-image baseline's MSE: the identity rendered at the
  nearest TRAINED theta (in normalised units the 2^4 grid corners around a midpoint tie;
  the baseline gets the best of them per description, an oracle tie-break);
- ``ratio``: generator / baseline (below 1: the network interpolates between trained
  transformations better than looking the nearest one up);
- ``trained``: the model's MSE at trained grid values (the same number of descriptions),
  for scale.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch

#: Held-out descriptions scored, and the seed that draws them.
N, SEED = 1000, 0


def heldout_mse(model: Any, samples: torch.Tensor | None, reference: torch.Tensor
                ) -> dict[str, float]:
    """The ``heldout_mse`` metric of ``zoo eval`` (registered for the ``upconv`` family)."""
    return heldout_scores(model.module, model.spec)


def heldout_scores(module: Any, spec: Any, n: int = N, seed: int = SEED) -> dict[str, float]:
    """Generator and nearest-trained-theta baseline MSEs at held-out transformations."""
    from zoo_upconv import UpconvOptions
    from zoo_upconv.model import Upconv, describe, held_out_theta
    from zoo_upconv.transforms import PARAMETERS, grid_values, normalise, pick, ranges, render

    m, family = spec.model, Upconv()
    bounds = ranges(m)
    trained, _ = grid_values(bounds, m.grid)
    device = module.identity_images.device
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(m.num_classes, (n,), generator=generator)
    identities = torch.randint(m.identities_per_class, (n,), generator=generator)
    theta, lower = held_out_theta(spec, n, generator)
    on_grid = pick(trained, torch.randint(m.grid, (n, len(PARAMETERS)), generator=generator))
    sources = module.identity_images[labels, identities].cpu()

    def made(parameters: torch.Tensor) -> torch.Tensor:
        codes = describe(module, labels, identities, normalise(parameters, bounds))
        with torch.inference_mode():
            return family.generate(module, codes.to(device), spec, UpconvOptions()).cpu()

    def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a - b).pow(2).flatten(1).mean(1)

    target = render(sources, theta)
    nearest = torch.stack([
        mse(render(sources, pick(trained, lower + torch.tensor(corner))), target)
        for corner in itertools.product((0, 1), repeat=len(PARAMETERS))]).amin(0)
    ours, baseline = float(mse(made(theta), target).mean()), float(nearest.mean())
    return {"generator": round(ours, 5), "baseline": round(baseline, 5),
            "ratio": round(ours / max(baseline, 1e-12), 4),
            "trained": round(float(mse(made(on_grid), render(sources, on_grid)).mean()), 5)}
