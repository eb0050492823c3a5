"""Latent interpolation: strips of images decoded along a path between two codes.

The endpoint codes of pair *j* are the codes of samples 2j and 2j+1 of ``zoo
sample --seed S`` (the family's ``latent`` function on the same per-sample
noise), so each strip starts and ends at exactly those codes and, for a
deterministic sampler, at exactly those samples. Spherical interpolation
(slerp, White 2016) keeps the path at the radius where Gaussian codes live;
linear interpolation (lerp) cuts through the middle.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

from zoo.core.errors import ZooError

if TYPE_CHECKING:
    from zoo.model import ZooModel
    from zoo.visualize import Picture

METHODS = ("slerp", "lerp")


def lerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """(1 - t) a + t b; exactly ``a`` at t = 0 and ``b`` at t = 1."""
    if t == 0:
        return a.clone()
    if t == 1:
        return b.clone()
    return (1 - t) * a + t * b


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation of flat codes: the great-circle path scaled between the norms.

    sin((1 - t) w) / sin w * a + sin(t w) / sin w * b with w the angle between a
    and b; lerp when they are (anti)parallel. Exactly ``a`` at t = 0 and ``b`` at t = 1.
    """
    if t == 0:
        return a.clone()
    if t == 1:
        return b.clone()
    a64, b64 = a.double().flatten(), b.double().flatten()
    cos = torch.dot(a64, b64) / (a64.norm() * b64.norm()).clamp_min(1e-300)
    omega = math.acos(float(cos.clamp(-1.0, 1.0)))
    if math.sin(omega) < 1e-6:
        return lerp(a, b, t)
    s = math.sin(omega)
    out = (math.sin((1 - t) * omega) / s) * a64 + (math.sin(t * omega) / s) * b64
    return out.to(a.dtype).view_as(a)


def path(a: torch.Tensor, b: torch.Tensor, frames: int, method: str = "slerp") -> torch.Tensor:
    """``frames`` codes from ``a`` to ``b`` inclusive, stacked (frames, *a.shape)."""
    if method not in METHODS:
        raise ZooError(f"--method {method!r}: expected one of {', '.join(METHODS)}")
    if frames < 2:
        raise ZooError(f"--frames {frames}: a strip needs at least 2 frames")
    step = slerp if method == "slerp" else lerp
    return torch.stack([step(a, b, i / (frames - 1)) for i in range(frames)])


def endpoint_codes(model: ZooModel, pairs: int, seed: int) -> torch.Tensor:
    """Codes (2 * pairs, ...) of samples 0 .. 2 pairs - 1 of ``seed``: pair j is rows 2j, 2j+1."""
    from zoo.sampling.sample import PerSampleNoise

    model.family.require("latent")
    device = next(model.module.parameters()).device
    noise = PerSampleNoise(seed, range(2 * pairs), device)
    with torch.inference_mode():
        return model.family.load().latent(model.module, noise, model.spec)


def decode(model: ZooModel, codes: torch.Tensor, batch_size: int = 64,
           **options: Any) -> torch.Tensor:
    """Images in [0, 1] (float32, CPU) from codes, with the family's ``generate``.

    The model always runs on whole chunks of ``batch_size`` codes (the last one
    padded with copies of its last code), so an image depends only on its own
    code, bitwise: a strip's ends are exactly the images of its end codes decoded
    on their own, and the samples they came from to float rounding (sampling runs
    unpadded chunks).
    """
    impl = model.family.load()
    validated = model.family.sampling_options(options)
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(codes), batch_size):
            chunk = codes[start : start + batch_size]
            short = batch_size - len(chunk)
            if short:
                chunk = torch.cat([chunk, chunk[-1:].expand(short, *chunk.shape[1:])])
            images = impl.generate(model.module, chunk, model.spec, validated)
            chunks.append(images[: batch_size - short].float().clamp(0, 1).cpu())
    return torch.cat(chunks)


def strips(model: ZooModel, pairs: int = 4, frames: int = 8, method: str = "slerp",
           seed: int = 0, batch_size: int = 64, **options: Any
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (pairs, frames, C, H, W), endpoint codes (2 pairs, ...)); ``options`` go to
    the family's ``generate`` (e.g. ``label=3``, ``steps=20``)."""
    model.family.require("latent")
    model.family.sampling_options(options)  # an unknown option fails before any work
    if pairs < 1:
        raise ZooError(f"--pairs {pairs}: give at least 1")
    codes = endpoint_codes(model, pairs, seed)
    walk = torch.cat([path(codes[2 * j], codes[2 * j + 1], frames, method)
                      for j in range(pairs)])
    images = decode(model, walk, batch_size, **options)
    return images.view(pairs, frames, *images.shape[1:]), codes


def render(model: ZooModel, pairs: int = 4, frames: int = 8, method: str = "slerp",
           seed: int = 0, sampling: dict[str, Any] | None = None) -> list[Picture]:
    """One PNG, a strip per row: pair j walks from sample 2j to sample 2j+1 of ``seed``;
    ``sampling``: the family's sampling options for its ``generate`` (``label``, ``steps``)."""
    from zoo.sampling.sample import grid
    from zoo.visualize import Picture
    from zoo.visualize.images import upscale

    given = dict(sampling or {})
    images, _ = strips(model, pairs, frames, method, seed, **given)
    image = grid(upscale(images.flatten(0, 1)), nrow=frames)
    extra = "".join(f", {k} {v}" for k, v in given.items())
    caption = (f"{method} between latent codes: {pairs} pairs x {frames} frames, samples "
               f"2j -> 2j+1 of seed {seed}{extra}")
    return [Picture(f"interpolate-{method}.png", image, caption,
                    {"pairs": pairs, "frames": frames, "method": method, "seed": seed, **given})]
