"""First-layer filters of a module that reads images, as a grid.

The first layer is the first ``Conv2d`` (in module order) over the image's
channels, else the first layer if it is a ``Conv2d`` (over image and
condition planes, say) or a ``Linear`` that reads the whole flattened image.
A convolution shows its kernels, a linear layer its rows reshaped to images.
Each filter is scaled to [0, 1] by its own minimum and maximum; filters over
1 or 3 input channels are one grey or RGB tile, others one grey tile per
input channel, side by side.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from zoo.core.errors import CapabilityError

if TYPE_CHECKING:
    from zoo.model import ZooModel
    from zoo.visualize import Picture
    from zoo.visualize.targets import Target


def first_layer(module: nn.Module, shape: tuple[int, int, int]) -> tuple[str, torch.Tensor]:
    """(dotted name, filters ``F×C×k×k``) of the first layer that reads ``shape`` images."""
    c, h, w = shape
    layers = [(n, m) for n, m in module.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    convs = [(n, m) for n, m in layers if isinstance(m, nn.Conv2d) and m.in_channels == c]
    if convs:
        return convs[0][0], convs[0][1].weight.detach().float().cpu()
    if layers and isinstance(layers[0][1], nn.Conv2d):
        return layers[0][0], layers[0][1].weight.detach().float().cpu()
    if layers and layers[0][1].in_features == c * h * w:
        return layers[0][0], layers[0][1].weight.detach().float().cpu().view(-1, c, h, w)
    raise CapabilityError("the module has no convolution, nor a first linear layer that reads "
                          f"the whole {c}×{h}×{w} image")


def filter_tiles(weights: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(tiles ``T×C'×k×k`` in [0, 1], tiles per filter) from filters ``F×C×k×k``."""
    from zoo.visualize.images import unit_range

    if weights.shape[1] in (1, 3):
        return unit_range(weights), 1
    per = weights.shape[1]
    return unit_range(weights.flatten(0, 1).unsqueeze(1)), per


def filter_grid(weights: torch.Tensor) -> torch.Tensor:
    """One ``C×H×W`` image of the filters, a filter's tiles side by side."""
    from zoo.sampling.sample import grid
    from zoo.visualize.images import upscale

    tiles, per = filter_tiles(weights)
    filters_per_row = max(1, math.ceil(math.sqrt(len(weights)) / per))
    return grid(upscale(tiles, 32), nrow=filters_per_row * per)


def render(model: ZooModel, module: str | None = None, count: int = 256) -> list[Picture]:
    """The first ``count`` first-layer filters of ``module`` (default: the discriminator,
    else the sampling module, e.g. an autoencoder's encoder)."""
    from zoo.visualize import Picture
    from zoo.visualize.targets import resolve_target

    def has_filters(candidate: Target) -> None:
        """Raise ``CapabilityError`` unless the candidate has a first image layer."""
        first_layer(candidate.module, candidate.shape)

    target: Target = resolve_target(model, module, probe=False, usable=has_filters,
                                    need="has a first layer that reads images")
    layer, weights = first_layer(target.module, target.shape)
    shown = weights[: max(1, count)]
    caption = (f"first-layer filters of {target.name} ({layer}): {len(shown)} of "
               f"{len(weights)}, {weights.shape[1]}x{weights.shape[2]}x{weights.shape[3]}, "
               "each scaled to its own range")
    return [Picture(f"filters-{target.name}.png", filter_grid(shown), caption,
                    {"module": target.name, "layer": layer, "count": len(shown)})]
