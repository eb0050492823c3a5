"""Example-based super-resolution (Freeman, Jones & Pasztor, IEEE CG&A 2002).

Training makes a dictionary of patch pairs from high-resolution images H:
the low-resolution image L = H shrunk ``scale`` times (block average) is
interpolated back up (bicubic, L↑); the *input* of a pair is a band-pass
patch of L↑ (L↑ minus its Gaussian blur, ``context`` × ``context``), the
*output* the co-centred ``patch`` × ``patch`` of the missing high frequencies
H − L↑. Both are divided by the contrast of the input patch (its mean
absolute value + δ), so one example serves every contrast.

To super-resolve, L↑ is covered by output patches on a grid with a stride of
``patch`` − 1 (neighbours overlap by one pixel). In one pass in raster
order, each position looks up the dictionary entry nearest to its search
vector: its own normalised band-pass patch plus, weighted by α, the overlap
pixels of the already chosen patches above and to the left, so neighbouring
patches agree. Since a patch depends only on its upper and left neighbours,
all positions on one anti-diagonal are independent and are looked up
together: the same result as the raster scan, in (rows + columns − 1) steps.
The chosen patches, scaled back by their contrast and averaged where they
overlap, are added to L↑.

The model stores the dictionary and, to have something to show without an
input, a few held-out images at low resolution (``model.examples``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from zoo import Family, ZooError
from zoo.core.errors import DataError
from zoo.data import load_images, num_channels
from zoo.training.trainer import Trainer
from zoo_nonparametric.store import as_image, with_channels
from zoo_nonparametric.threads import one_thread

if TYPE_CHECKING:
    from zoo.sampling.sample import PerSampleNoise
    from zoo_nonparametric.specs import SuperresModel, SuperresOptions, SuperresSpec


class PatchDictionary(nn.Module):
    """``low`` (M, C·context²) band-pass inputs, ``high`` (M, C·patch²) high frequencies,
    both contrast-normalised; ``examples`` (E, C, S/scale, S/scale) held-out low-res images."""

    def __init__(self, m: SuperresModel, channels: int, size: int) -> None:
        super().__init__()
        self.register_buffer("low", torch.zeros(m.dictionary_size, channels * m.context**2))
        self.register_buffer("high", torch.zeros(m.dictionary_size, channels * m.patch**2))
        small = size // m.scale
        self.register_buffer("examples", torch.zeros(m.examples, channels, small, small))


# --------------------------------------------------------------------------- image bands


def degrade(high: torch.Tensor, scale: int) -> torch.Tensor:
    """The low-resolution image: average ``scale × scale`` blocks."""
    return F.avg_pool2d(high, scale)


def bicubic(low: torch.Tensor, scale: int) -> torch.Tensor:
    """L↑: bicubic interpolation back to the high resolution (not clamped)."""
    return F.interpolate(low, scale_factor=scale, mode="bicubic", align_corners=False)


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with edge replication."""
    r = max(1, math.ceil(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=x.dtype)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    n, c, h, w = x.shape
    y = F.pad(x.reshape(n * c, 1, h, w), (r, r, r, r), mode="replicate")
    y = F.conv2d(F.conv2d(y, k.view(1, 1, 1, -1)), k.view(1, 1, -1, 1))
    return y.view(n, c, h, w)


def bands(low: torch.Tensor, m: SuperresModel) -> tuple[torch.Tensor, torch.Tensor]:
    """(L↑, band-pass of L↑) for low-resolution images N×C×h×w."""
    up = bicubic(low, m.scale)
    return up, up - blur(up, m.band_sigma)


def contrast(patches: torch.Tensor, m: SuperresModel) -> torch.Tensor:
    """Mean absolute value of each band-pass patch (row) plus δ, as a column."""
    return patches.abs().mean(1, keepdim=True) + m.contrast_floor


# --------------------------------------------------------------------------- training


def training_pairs(high: torch.Tensor, m: SuperresModel) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (band-pass input, high-frequency output) pair of ``high`` (N×C×S×S), normalised."""
    up, band = bands(degrade(high, m.scale), m)
    detail = high - up
    pad = (m.context - m.patch) // 2
    inputs = F.unfold(band, m.context)  # (N, C·context², L)
    outputs = F.unfold(detail[..., pad : detail.shape[-2] - pad, pad : detail.shape[-1] - pad],
                       m.patch)  # the same L centres
    inputs = inputs.transpose(1, 2).reshape(-1, inputs.shape[1])
    outputs = outputs.transpose(1, 2).reshape(-1, outputs.shape[1])
    c = contrast(inputs, m)
    return inputs / c, outputs / c


class DictionaryTrainer(Trainer):
    """Builds the dictionary before the first step; the steps themselves do nothing."""

    def start(self, images: torch.Tensor) -> None:
        """Sample ``dictionary_size`` pairs from all training positions; keep the examples."""
        m, model = self.spec.model, self.accelerator.unwrap_model(self.model)
        inputs, outputs = training_pairs(images.detach().float().cpu(), m)
        if len(inputs) < m.dictionary_size:
            raise DataError(f"the training images give {len(inputs)} patch pairs, fewer than "
                            f"model.dictionary_size = {m.dictionary_size}")
        generator = torch.Generator().manual_seed(self.spec.train.seed)
        keep = torch.randperm(len(inputs), generator=generator)[: m.dictionary_size].sort()[0]
        model.low.copy_(inputs[keep])
        model.high.copy_(outputs[keep])
        # only the first `examples` are kept: a folder need not decode its whole test split
        held_out, _ = load_images(self.spec.data, "test", at_most=m.examples)
        repeat = torch.arange(m.examples) % len(held_out)
        model.examples.copy_(degrade(held_out[repeat], m.scale))

    def step(self, images: torch.Tensor, labels: torch.Tensor | None,
             rng: torch.Generator) -> dict[str, torch.Tensor]:
        """Nothing to learn."""
        return {}


# --------------------------------------------------------------------------- inference


def alpha(m: SuperresModel) -> float:
    """The compatibility weight: the paper's 0.1·M²/(2N − 1) unless the spec sets one."""
    return m.alpha if m.alpha is not None else 0.1 * m.context**2 / (2 * m.patch - 1)


def squared_distances(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """(Q, K) squared Euclidean distances between rows."""
    return ((queries**2).sum(1, keepdim=True) - 2 * queries @ keys.T
            + (keys**2).sum(1)).clamp_min(0)


def super_resolve(low: torch.Tensor, model: PatchDictionary, m: SuperresModel) -> torch.Tensor:
    """One low-resolution image C×h×w -> C×(h·scale)×(w·scale) in [0, 1]."""
    c, n, step = low.shape[0], m.patch, m.patch - 1
    up, band = bands(low[None].float(), m)
    h, w = up.shape[-2:]
    rows, cols = max(1, math.ceil((h - 1) / step)), max(1, math.ceil((w - 1) / step))
    hp, wp = rows * step + 1, cols * step + 1
    pad = (m.context - n) // 2
    band = F.pad(band, (pad, pad + wp - w, pad, pad + hp - h), mode="replicate")
    cells = F.unfold(band, m.context, stride=step)[0].T  # (rows·cols, C·context²)
    scale = contrast(cells, m)
    queries = cells / scale
    keys = model.high.view(-1, c, n, n)
    key_top, key_left = keys[:, :, 0, :].flatten(1), keys[:, :, :, 0].flatten(1)
    low_keys, weight = model.low.float(), alpha(m) ** 2
    chosen = torch.zeros(rows, cols, c, n, n)  # in image units (contrast restored)
    for diagonal in range(rows + cols - 1):
        i = torch.arange(max(0, diagonal - cols + 1), min(rows - 1, diagonal) + 1)
        j = diagonal - i
        flat = i * cols + j
        d = squared_distances(queries[flat], low_keys)
        top = chosen[(i - 1).clamp_min(0), j, :, -1, :].flatten(1) / scale[flat]
        left = chosen[i, (j - 1).clamp_min(0), :, :, -1].flatten(1) / scale[flat]
        d = d + weight * ((i > 0).float()[:, None] * squared_distances(top, key_top)
                          + (j > 0).float()[:, None] * squared_distances(left, key_left))
        best = d.topk(m.neighbours, dim=1, largest=False).indices  # (Q, k)
        patches = model.high[best].float().mean(1) * scale[flat]
        chosen[i, j] = patches.view(-1, c, n, n)
    columns = chosen.view(rows * cols, -1).T[None]  # (1, C·n², rows·cols)
    total = F.fold(columns, (hp, wp), n, stride=step)
    count = F.fold(torch.ones_like(columns), (hp, wp), n, stride=step)
    detail = (total / count)[..., :h, :w]
    return (up + detail).clamp(0, 1)[0]


def super_resolve_any(image: torch.Tensor, model: PatchDictionary, m: SuperresModel
                      ) -> torch.Tensor:
    """Like :func:`super_resolve` for an image of any channel count: a grey dictionary
    treats each channel of a colour image on its own."""
    c = model.examples.shape[1]
    if c == 1 and image.shape[0] == 3:
        return torch.cat([super_resolve(image[i : i + 1], model, m) for i in range(3)])
    return super_resolve(with_channels(image[None], c)[0], model, m)


class Superres(Family):
    """Freeman et al.'s example-based super-resolution with a stored patch dictionary."""

    trainer_class = DictionaryTrainer
    independent_samples = True

    def build(self, spec: SuperresSpec) -> PatchDictionary:
        """An empty dictionary shaped by the spec."""
        return PatchDictionary(spec.model, num_channels(spec.data), spec.data.image_size)

    @one_thread()
    def sample(self, model: PatchDictionary, noise: PerSampleNoise, spec: SuperresSpec,
               options: SuperresOptions) -> torch.Tensor:
        """Super-resolve ``options.input`` (every sample the same), or per sample a held-out
        example chosen and flipped by (seed, i)."""
        m = spec.model
        if options.input is not None:
            image = as_image(options.input, "input")
            if image.shape[1] * m.scale > 8192 or image.shape[2] * m.scale > 8192:
                raise ZooError(f"input is {image.shape[1]}x{image.shape[2]}: too large "
                               f"to super-resolve {m.scale}x (at most 8192 pixels a side)")
            one = super_resolve_any(image, model, m)
            return one.expand(len(noise), -1, -1, -1).contiguous().to(noise.device)
        examples = model.examples.detach().cpu().float()
        out = []
        for g in noise.generators(0):
            which, flip = (int(torch.randint(high, (1,), generator=g))
                           for high in (len(examples), 4))
            image = examples[which]
            image = image.flip(-1) if flip & 1 else image
            image = image.flip(-2) if flip & 2 else image
            out.append(super_resolve(image, model, m))
        return torch.stack(out).to(noise.device)
