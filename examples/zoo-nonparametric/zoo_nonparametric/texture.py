"""Texture synthesis by non-parametric sampling (Efros & Leung, ICCV 1999).

The texture is modelled as a Markov random field and never written down: the
conditional distribution of a pixel given its neighbourhood is estimated by
looking the neighbourhood up in the sample image. Synthesis starts from a
random 3×3 seed taken from the sample and placed in the centre, then grows
outwards: each unknown pixel on the frontier takes the centre value of a
sample window drawn uniformly among those whose Gaussian-weighted SSD to the
pixel's known neighbourhood is within (1 + ε) of the best (``grow`` and
``windows``). ``model.patch_size > 1`` pastes blocks instead of pixels, the
speed-up the paper's follow-ups use.

The model is the exemplar(s) (``store``); sampling makes any size
(the ``size`` option: ``model.sample(n, size=(48, 96))`` or ``zoo sample RUN --opt
size=48x96``, default ``data.image_size``). All
randomness of image *i* (which exemplar seeds it, where, and one uniform
number per output pixel for the draws) comes from its own generator, so it
depends only on (seed, *i*).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from zoo_nonparametric.grow import grow
from zoo_nonparametric.specs import SIZES
from zoo_nonparametric.store import ExemplarFamily, Exemplars
from zoo_nonparametric.threads import one_thread
from zoo_nonparametric.windows import Matcher, unfold_windows

if TYPE_CHECKING:
    from zoo.sampling.sample import PerSampleNoise
    from zoo_nonparametric.specs import GrowModel, TextureOptions, TextureSpec

SEED = SIZES[0]  # side of the seed patch: the smallest texture


def synthesise(exemplars: torch.Tensor, matcher: Matcher, height: int, width: int,
               model: GrowModel, generator: torch.Generator) -> torch.Tensor:
    """One texture, C×height×width (float64), grown from a random seed of the exemplars."""
    k, c, s, _ = exemplars.shape
    which = int(torch.randint(k, (1,), generator=generator))
    y, x = (int(v) for v in torch.randint(s - SEED + 1, (2,), generator=generator))
    u = torch.rand(height * width, generator=generator, dtype=torch.float64)
    canvas = torch.zeros(c, height, width, dtype=torch.float64)
    known = torch.zeros(height, width, dtype=torch.bool)
    top, left = (height - SEED) // 2, (width - SEED) // 2
    canvas[:, top : top + SEED, left : left + SEED] = exemplars[which, :, y : y + SEED,
                                                                x : x + SEED]
    known[top : top + SEED, left : left + SEED] = True
    return grow(canvas, known, matcher, u, model.patch_size, model.batch)


class Texture(ExemplarFamily):
    """Efros–Leung texture synthesis from the stored exemplars."""

    @one_thread()
    def sample(self, model: Exemplars, noise: PerSampleNoise, spec: TextureSpec,
               options: TextureOptions) -> torch.Tensor:
        """``len(noise)`` textures of ``options.size`` (default ``data.image_size``) in
        [0, 1]."""
        height, width = options.size or (spec.data.image_size,) * 2
        exemplars = model.images.detach().cpu().double()
        m = spec.model
        matcher = Matcher(unfold_windows(exemplars, m.window), m.window, exemplars.shape[1],
                          m.epsilon)
        images = [synthesise(exemplars, matcher, height, width, m, g)
                  for g in noise.generators(0)]
        return torch.stack(images).float().to(noise.device)
