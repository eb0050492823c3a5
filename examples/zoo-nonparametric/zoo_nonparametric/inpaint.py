"""In-painting with the Efros–Leung machinery: the paper's constrained synthesis, hole filling.

The pixels outside the hole are the known context and never change. The
candidate windows are every window of the image that lies wholly in the known
part, plus (``model.use_exemplars``) every window of the stored exemplars.
The hole then closes from its boundary inwards: frontier pixels with the most
known neighbours go first (an onion peel that fills corners and narrow parts
early), each drawn from the matches within (1 + ε) of the best, as in
texture synthesis.

The ``input`` and ``mask`` options (``model.sample(n, input=image,
mask=mask)``, ``zoo sample RUN --opt input=img.png --opt mask=mask.png``)
fill the pixels where the mask is > 0.5; image *i* of a call is one filling,
seeded by (seed, *i*). Without an input, each sample
cuts a square hole (``sample.hole``) at a random place into a random
exemplar and fills it from that exemplar's remaining windows and the *other*
exemplars, never from the one whose content is hidden.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from zoo import ZooError
from zoo_nonparametric.grow import grow
from zoo_nonparametric.store import ExemplarFamily, Exemplars, as_image, with_channels
from zoo_nonparametric.threads import one_thread
from zoo_nonparametric.windows import Matcher, unfold_windows

if TYPE_CHECKING:
    from zoo.sampling.sample import PerSampleNoise
    from zoo_nonparametric.specs import InpaintModel, InpaintOptions, InpaintSpec


def known_windows(image: torch.Tensor, known: torch.Tensor, size: int) -> torch.Tensor:
    """The windows of ``image`` (C×H×W) that lie wholly in the ``known`` pixels."""
    windows = unfold_windows(image[None], size)
    whole = unfold_windows(known[None, None].double(), size).min(1).values > 0
    return windows[whole]


def fill(image: torch.Tensor, hole: torch.Tensor, extra: torch.Tensor, model: InpaintModel,
         generator: torch.Generator) -> torch.Tensor:
    """``image`` (C×H×W) with its ``hole`` (H×W bool) filled; other pixels returned as given.

    ``extra``: more candidate windows (rows of C·window² values), e.g. the exemplars'.
    """
    c, h, w = image.shape
    known = ~hole
    windows = torch.cat([known_windows(image, known, model.window), extra])
    if len(windows) == 0:
        raise ZooError(f"nothing to copy from: no {model.window}x{model.window} window of the "
                       "image lies outside the hole, and there are no exemplar windows")
    matcher = Matcher(windows, model.window, c, model.epsilon)
    u = torch.rand(h * w, generator=generator, dtype=torch.float64)
    canvas = image.double().masked_fill(hole, 0.0)  # the hidden content is never read
    if not bool(known.any()):  # all hole: seed the centre from a random window, like texture
        r, pick = model.window // 2, int(torch.randint(len(windows), (1,), generator=generator))
        canvas[:, h // 2, w // 2] = windows[pick].view(c, model.window, -1)[:, r, r]
        known = known.clone()
        known[h // 2, w // 2] = True
    filled = grow(canvas, known, matcher, u, model.patch_size, model.batch)
    return torch.where(hole, filled.to(image.dtype), image)


def exemplar_windows(exemplars: torch.Tensor, channels: int, model: InpaintModel) -> torch.Tensor:
    """The exemplars' windows in ``channels`` channels, or none if ``use_exemplars`` is off."""
    if not model.use_exemplars or len(exemplars) == 0:
        return torch.zeros(0, channels * model.window**2, dtype=torch.float64)
    return unfold_windows(with_channels(exemplars, channels), model.window)


def demo_hole(exemplars: torch.Tensor, spec: InpaintSpec, generator: torch.Generator
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A random exemplar, a random square hole in it, and the other exemplars."""
    k, _, s, _ = exemplars.shape
    side = max(1, round(spec.sample.hole * s))
    which = int(torch.randint(k, (1,), generator=generator))
    y, x = (int(v) for v in torch.randint(s - side + 1, (2,), generator=generator))
    hole = torch.zeros(s, s, dtype=torch.bool)
    hole[y : y + side, x : x + side] = True
    others = torch.cat([exemplars[:which], exemplars[which + 1 :]])
    return exemplars[which], hole, others


def read_hole(mask: object, shape: tuple[int, int]) -> torch.Tensor:
    """The hole (H×W bool) of a mask image: pixels > 0.5 in any channel."""
    hole = as_image(mask, "mask").amax(0) > 0.5
    if tuple(hole.shape) != shape:
        raise ZooError(f"mask is {hole.shape[0]}x{hole.shape[1]} but the image is "
                       f"{shape[0]}x{shape[1]}")
    return hole


class Inpaint(ExemplarFamily):
    """Efros–Leung hole filling: the given image's hole, or demo holes in the exemplars."""

    @one_thread()
    def sample(self, model: Exemplars, noise: PerSampleNoise, spec: InpaintSpec,
               options: InpaintOptions) -> torch.Tensor:
        """``len(noise)`` fillings of ``options.input``'s ``options.mask`` region (or of
        random demo holes)."""
        exemplars = model.images.detach().cpu().float()
        if options.input is None:
            out = []
            for g in noise.generators(0):
                image, hole, others = demo_hole(exemplars, spec, g)
                extra = exemplar_windows(others, image.shape[0], spec.model)
                out.append(fill(image, hole, extra, spec.model, g))
        else:
            image = as_image(options.input, "input")
            hole = read_hole(options.mask, tuple(image.shape[1:]))
            extra = exemplar_windows(exemplars, image.shape[0], spec.model)
            out = [fill(image, hole, extra, spec.model, g) for g in noise.generators(0)]
        return torch.stack(out).to(noise.device)
