"""The stages of a sampler that builds its image in steps: DRAW's canvas after each step,
LAPGAN's pyramid from coarse to fine.

A family shows its stages by a boolean sampling option (:data:`STAGE_OPTIONS`): with it
set, its sampler returns ``(images, [stage_1, ..., stage_T])``, each stage ``N×C×h×w`` in
[0, 1]. One PNG: a row per sample of ``zoo sample --seed S``, a column per stage, every
stage scaled (nearest neighbour) to the final image's size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zoo.core.errors import CapabilityError, ZooError

if TYPE_CHECKING:
    import torch

    from zoo.model import ZooModel
    from zoo.visualize import Picture

#: Sampling options that make a sampler return its stages, and what a stage is called.
STAGE_OPTIONS = {"return_steps": "canvas after each step",
                 "return_pyramid": "pyramid level, coarse to fine"}
#: The most rows one PNG shows.
MAX_ROWS = 64


def stage_option(model: ZooModel) -> str:
    """The option of :data:`STAGE_OPTIONS` the model's family has; a one-line
    ``CapabilityError`` when it has none."""
    fields = model.family.options.model_fields
    for option in STAGE_OPTIONS:
        if option in fields:
            return option
    raise CapabilityError(f"family {model.family.name!r} does not build its samples in stages "
                          f"(its sampling options have none of {', '.join(STAGE_OPTIONS)})")


def stages(model: ZooModel, n: int = 8, seed: int = 0, **options: Any
           ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(images N×C×H×W, [stage N×C×h×w, ...]) of samples 0 .. n-1 of ``seed``; ``options``
    are the family's other sampling options."""
    from zoo.sampling.sample import sample_images

    option = stage_option(model)
    if not 1 <= n <= MAX_ROWS:
        raise ZooError(f"--count {n}: give 1 to {MAX_ROWS}")
    out = sample_images(model.family, model.module, model.spec, n, seed,
                        **{**options, option: True})
    if not (isinstance(out, tuple) and out[1]):
        raise CapabilityError(f"family {model.family.name!r} returned no stages with "
                              f"{option}=True")
    return out


def render(model: ZooModel, count: int = 8, seed: int = 0,
           sampling: dict[str, Any] | None = None) -> list[Picture]:
    """One PNG: a row per sample (``count`` of ``seed``), a column per stage."""
    from zoo.sampling.sample import grid, stage_tiles
    from zoo.visualize import Picture
    from zoo.visualize.images import upscale

    given = dict(sampling or {})
    _, steps = stages(model, count, seed, **given)
    image = grid(upscale(stage_tiles(steps).clamp(0, 1)), nrow=len(steps))
    what = STAGE_OPTIONS[stage_option(model)]
    extra = "".join(f", {k} {v}" for k, v in given.items())
    caption = (f"{len(steps)} stages ({what}) of samples 0 .. {count - 1} of seed {seed}"
               f"{extra}; a row per sample")
    return [Picture("steps.png", image, caption,
                    {"count": count, "seed": seed, "stages": len(steps), **given})]
