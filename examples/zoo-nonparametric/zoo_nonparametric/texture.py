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
(``size=`` or ``zoo sample --size``, default ``data.image_size``). All
randomness of image *i* (which exemplar seeds it, where, and one uniform
number per output pixel for the draws) comes from its own generator, so it
depends only on (seed, *i*).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from zoo import ZooError
from zoo_nonparametric.grow import grow
from zoo_nonparametric.store import Exemplars, build_exemplars, trainer
from zoo_nonparametric.threads import one_thread
from zoo_nonparametric.windows import Matcher, unfold_windows

if TYPE_CHECKING:
    from zoo.sampling.sample import PerSampleNoise
    from zoo_nonparametric.specs import GrowModel, TextureSpec

#: Image i is computed on its own: genzoo need not pad the last batch.
INDEPENDENT_SAMPLES = True
__all__ = ["build", "sample", "synthesise", "trainer"]
SEED = 3  # side of the seed patch


def build(spec: TextureSpec) -> Exemplars:
    """The exemplar store."""
    return build_exemplars(spec)


def output_size(size: int | tuple[int, int] | list[int] | None, default: int) -> tuple[int, int]:
    """(height, width) from ``size`` (an int for a square, or a pair); one-line error if bad."""
    if size is None:
        return default, default
    pair = (size, size) if isinstance(size, int) else tuple(size)
    if len(pair) != 2 or not all(isinstance(v, int) and SEED <= v <= 4096 for v in pair):
        raise ZooError(f"size {size!r}: expected N or (height, width), each in {SEED}..4096")
    return pair  # type: ignore[return-value]


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


@one_thread()
def sample(model: Exemplars, noise: PerSampleNoise, spec: TextureSpec,
           size: int | tuple[int, int] | None = None) -> torch.Tensor:
    """``len(noise)`` textures of ``size`` (default ``data.image_size``) in [0, 1]."""
    height, width = output_size(size, spec.data.image_size)
    exemplars = model.images.detach().cpu().double()
    m = spec.model
    matcher = Matcher(unfold_windows(exemplars, m.window), m.window, exemplars.shape[1],
                      m.epsilon)
    images = [synthesise(exemplars, matcher, height, width, m, g)
              for g in noise.generators(0)]
    return torch.stack(images).float().to(noise.device)
