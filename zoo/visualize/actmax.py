"""Activation maximisation: the input image that a unit of a layer responds to most.

Gradient ascent on the input (Erhan et al., 2009; Simonyan et al., 2014) with
the regularisers of Yosinski et al. (2015):

* jitter: each step looks at the image shifted (rolled) by up to ``jitter``
  pixels (Mordvintsev et al., 2015); by default one pixel per 14, so 2 at
  28×28 and 1 at 16×16, where a larger shift already moves a pattern off the
  stride grid of a small net;
* L2 decay: after each step the image shrinks towards black by ``1 - decay``;
* blur: every ``blur_every`` steps a Gaussian blur of ``blur`` pixels.

The image lives in [0, 1] and is clipped there after every step. The
objective of a convolutional layer is a channel's mean over positions; of a
linear layer, one unit. Every unit gets its own image, optimised side by side
in one batch (the module runs in eval mode, so images do not mix).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from zoo.model import ZooModel
    from zoo.visualize import Picture
    from zoo.visualize.targets import Target

#: At most this many units by default (the first ones).
DEFAULT_UNITS = 16


@dataclass
class Settings:
    """The ascent: steps, Adam learning rate, regularisers and the seed of the start."""

    iterations: int = 256
    lr: float = 0.1
    jitter: int | None = None
    blur: float = 0.5
    blur_every: int = 4
    decay: float = 0.002
    seed: int = 0


def default_jitter(size: int) -> int:
    """The default jitter for ``size``-pixel images: one pixel per 14."""
    return max(1, size // 14)


def unit_objective(activation: torch.Tensor, units: list[int]) -> torch.Tensor:
    """Row i's response of unit ``units[i]``: a channel's mean (N×C×H×W) or a unit (N×F)."""
    rows = torch.arange(len(units), device=activation.device)
    picked = activation[rows, torch.tensor(units, device=activation.device)]
    return picked.flatten(1).mean(1) if picked.dim() > 1 else picked


def maximise(target: Target, layer: str | None, units: list[int] | None = None,
             settings: Settings | None = None) -> tuple[torch.Tensor, str, list[int]]:
    """(images ``U×C×H×W`` in [0, 1], layer name, units): one image per unit of ``layer``."""
    from zoo.visualize.images import gaussian_blur
    from zoo.visualize.targets import check_units, find_layer, layer_output

    s = settings or Settings()
    name, module_layer = find_layer(target.module, layer)
    c, h, w = target.shape
    jitter = default_jitter(h) if s.jitter is None else s.jitter
    with torch.no_grad():
        probe = layer_output(target.module, module_layer, target.prepare(torch.zeros(1, c, h, w)))
    units = list(range(min(probe.shape[1], DEFAULT_UNITS))) if units is None else list(units)
    check_units(units, probe, name)
    gen = torch.Generator().manual_seed(s.seed)
    x = (0.1 + 0.05 * torch.randn(len(units), c, h, w, generator=gen)).clamp(0, 1)
    x.requires_grad_(True)
    optimizer = torch.optim.Adam([x], lr=s.lr)
    for step in range(s.iterations):
        dy, dx = (torch.randint(-jitter, jitter + 1, (2,), generator=gen).tolist()
                  if jitter else (0, 0))
        shifted = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
        response = unit_objective(layer_output(target.module, module_layer,
                                               target.prepare(shifted)), units)
        (x.grad,) = torch.autograd.grad(-response.sum(), x)  # no weight gradients
        optimizer.step()
        with torch.no_grad():
            x.mul_(1 - s.decay)
            if s.blur > 0 and s.blur_every and step % s.blur_every == 0:
                x.copy_(gaussian_blur(x, s.blur))
            x.clamp_(0, 1)
    return x.detach(), name, units


def responses(target: Target, layer: str, units: list[int], images: torch.Tensor
              ) -> torch.Tensor:
    """Each image's response of its unit (no jitter), e.g. to compare with real inputs."""
    from zoo.visualize.targets import find_layer, layer_output

    _, module_layer = find_layer(target.module, layer)
    with torch.no_grad():
        return unit_objective(layer_output(target.module, module_layer, target.prepare(images)),
                              units)


def render(model: ZooModel, module: str | None = None, layer: str | None = None,
           unit: int | list[int] | None = None, iterations: int = 256, lr: float = 0.1,
           jitter: int | None = None, blur: float = 0.5, decay: float = 0.002, seed: int = 0
           ) -> list[Picture]:
    """One PNG: the image that maximises each unit of ``layer`` of ``module``."""
    from zoo.sampling.sample import grid
    from zoo.visualize import Picture
    from zoo.visualize.images import upscale
    from zoo.visualize.targets import resolve_target

    target = resolve_target(model, module)
    jitter = default_jitter(target.shape[1]) if jitter is None else jitter
    settings = Settings(iterations, lr, jitter, blur, decay=decay, seed=seed)
    images, name, units = maximise(target, layer, [unit] if isinstance(unit, int) else unit,
                                   settings)
    shown = ", ".join(map(str, units)) if len(units) <= 6 else f"{units[0]}..{units[-1]}"
    caption = (f"activation maximisation of {target.name} layer {name}, "
               f"unit{'s' if len(units) > 1 else ''} {shown} "
               f"({iterations} steps, jitter {jitter}, blur {blur}, decay {decay})")
    units_label = str(units[0]) if len(units) == 1 else f"{units[0]}-{units[-1]}"
    options = {"module": target.name, "layer": name, "units": units, "iterations": iterations,
               "lr": lr, "jitter": jitter, "blur": blur, "decay": decay, "seed": seed}
    return [Picture(f"actmax-{target.name}-{name}-{units_label}.png", grid(upscale(images)),
                    caption, options)]
