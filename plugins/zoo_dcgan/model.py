"""DCGAN (Radford, Metz & Chintala, 2016), as the paper's architecture guidelines say.

* No pooling: D downsamples with strided convolutions, G upsamples with
  fractionally-strided (transposed) convolutions.
* No hidden fully-connected layers: z is projected to a 4x4 map by a 4x4
  transposed convolution, and D ends with a 4x4 valid convolution to one logit.
* Batch norm in every layer except G's output and D's input.
* ReLU in G with Tanh at the output; LeakyReLU(0.2) in D.
* Weights drawn from N(0, 0.02); Adam with lr 2e-4 and beta1 0.5.

D returns a logit and the losses (``zoo.training.gan``) use cross-entropy with logits:
the same objective as a sigmoid output with BCE, but numerically stable and
safe under bf16 autocast. G is trained with the non-saturating loss
-log D(G(z)).
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from zoo import Family, SamplingOptions
from zoo.data import num_channels
from zoo.training.gan import discriminator_loss, frozen, generator_loss, reestimate_batchnorm
from zoo.training.trainer import Trainer

if TYPE_CHECKING:
    from collections.abc import Mapping

    from accelerate import Accelerator

    from zoo.sampling.sample import PerSampleNoise
    from zoo_dcgan import DCGANSpec


def init_weights(module: nn.Module) -> None:
    """The paper's initialisation: conv weights N(0, 0.02); batch-norm scale N(1, 0.02)."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def widths(base: int, levels: int) -> list[int]:
    """Channel widths from the 4x4 level outwards: base * 2^(levels-1), ..., base."""
    return [base * 2 ** (levels - 1 - i) for i in range(levels)]


class Generator(nn.Module):
    """z (N, latent, 1, 1) -> image (N, C, S, S) in [-1, 1]."""

    def __init__(self, latent_dim: int, channels: int, size: int, base: int) -> None:
        super().__init__()
        levels = int(math.log2(size)) - 2  # 4x4 -> ... -> S/2 x S/2 hidden maps
        w = widths(base, levels)
        layers: list[nn.Module] = [  # project z to 4x4
            nn.ConvTranspose2d(latent_dim, w[0], 4, 1, 0, bias=False),
            nn.BatchNorm2d(w[0]),
            nn.ReLU(inplace=True),
        ]
        for c_in, c_out in itertools.pairwise(w):  # each doubles H and W
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        layers += [nn.ConvTranspose2d(w[-1], channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.latent_dim = latent_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(N, latent, 1, 1) -> (N, C, S, S)."""
        return self.net(z)


class Discriminator(nn.Module):
    """image (N, C, S, S) in [-1, 1] -> one logit per image (N,)."""

    def __init__(self, channels: int, size: int, base: int) -> None:
        super().__init__()
        levels = int(math.log2(size)) - 2
        w = widths(base, levels)[::-1]  # base, 2*base, ... at S/2, S/4, ... 4x4
        layers: list[nn.Module] = [  # no batch norm on D's input layer
            nn.Conv2d(channels, w[0], 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        for c_in, c_out in itertools.pairwise(w):  # each halves H and W
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, inplace=True)]
        layers += [nn.Conv2d(w[-1], 1, 4, 1, 0, bias=False)]  # 4x4 -> 1x1 logit
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, S, S) -> (N,) logits."""
        return self.net(x).flatten()

    def features(self, x: torch.Tensor, grid: int = 4) -> torch.Tensor:
        """The paper's CIFAR-10 features: every conv layer's (activated) output max-pooled
        to a ``grid``×``grid`` map, flattened and concatenated: (N, sum_l C_l * grid^2).
        The last conv (to the logit) is not a feature layer."""
        pooled = []
        for layer in self.net[:-1]:
            x = layer(x)
            if isinstance(layer, nn.LeakyReLU):
                pooled.append(F.adaptive_max_pool2d(x, grid).flatten(1))
        return torch.cat(pooled, 1)


def build_discriminator(spec: DCGANSpec) -> Discriminator:
    """D, initialised as in the paper."""
    d = Discriminator(num_channels(spec.data), spec.data.image_size, spec.model.disc_channels)
    d.apply(init_weights)
    return d


class DCGANTrainer(Trainer):
    """Alternating D and G updates, one each per batch, as in the paper."""

    def __init__(self, spec: DCGANSpec, model: Generator, accelerator: Accelerator) -> None:
        super().__init__(spec, model, accelerator)
        self.disc = self.add_module("discriminator", build_discriminator(spec))
        betas = (spec.train.beta1, spec.train.beta2)
        self.opt_g = self.adam("generator", self.model.parameters(), spec.train.lr, betas)
        self.opt_d = self.adam("discriminator", self.disc.parameters(), spec.train.lr, betas)
        self.latent_dim = spec.model.latent_dim

    def step(self, images: torch.Tensor, labels: torch.Tensor | None,
             rng: torch.Generator) -> dict[str, torch.Tensor]:
        """D: max log D(x) + log(1 - D(G(z))); then G: max log D(G(z))."""
        real = images * 2 - 1
        z = self.draws.randn(len(real), self.latent_dim, 1, 1, generator=rng, device=real.device)
        fake = self.model(z)

        # (1) discriminator, on separate real and fake batches (as in the paper)
        logit_real = self.disc(real)
        logit_fake = self.disc(fake.detach())
        loss_d = discriminator_loss(logit_real, logit_fake)
        self.update(self.opt_d, loss_d)

        # (2) generator, non-saturating loss through the updated D; D's own
        # weight gradients are not needed, so they are not computed
        with frozen(self.disc):
            loss_g = generator_loss(self.disc(fake))
            self.update(self.opt_g, loss_g)

        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(),
                "d_real": torch.sigmoid(logit_real.detach()).mean(),
                "d_fake": torch.sigmoid(logit_fake.detach()).mean()}

    def finish(
        self, images: torch.Tensor, labels: torch.Tensor | None, rng: torch.Generator
    ) -> None:
        """Re-estimate G's batch-norm statistics exactly (cumulative average over batches).

        Running averages lag behind a G that changed every step; after this,
        eval-mode sampling matches what G produced in training, and each image
        depends only on its own noise.
        """
        n = self.spec.train.batch_size
        reestimate_batchnorm(
            self.sampling_module(),
            lambda: (torch.randn(n, self.latent_dim, 1, 1, generator=rng, device=self.device),),
            self.spec.train.bn_batches)


# --------------------------------------------------------------------------- the family


class DCGAN(Family):
    """The ``dcgan`` family: the model folder stores G; D lives only in training."""

    trainer_class = DCGANTrainer
    #: D takes images in [-1, 1] (``zoo visualize`` optimises and shows its inputs so).
    input_ranges: ClassVar[dict[str, tuple[float, float]]] = {"discriminator": (-1.0, 1.0)}
    tiny: ClassVar[dict[str, Any]] = {"train.bn_batches": 1}

    def build(self, spec: DCGANSpec) -> Generator:
        """The sampling model: G, initialised as in the paper."""
        g = Generator(spec.model.latent_dim, num_channels(spec.data), spec.data.image_size,
                      spec.model.base_channels)
        g.apply(init_weights)
        return g

    def latent(self, model: Generator, noise: PerSampleNoise, spec: DCGANSpec) -> torch.Tensor:
        """Per-sample codes z ~ N(0, I), shaped (N, latent, 1, 1) as G takes them."""
        return noise.randn(spec.model.latent_dim, 1, 1)

    def generate(self, model: Generator, codes: torch.Tensor, spec: DCGANSpec,
                 options: SamplingOptions) -> torch.Tensor:
        """Images in [0, 1] from codes z (N, latent, 1, 1)."""
        return (model(codes) + 1) / 2

    def features(self, model: Generator, images: torch.Tensor, spec: DCGANSpec,
                 trained: Mapping[str, nn.Module]) -> torch.Tensor:
        """D's conv features of all layers, each max-pooled to 4×4 and concatenated
        (:meth:`Discriminator.features`; the paper's CIFAR-10 probe), of images in [0, 1]."""
        return trained["discriminator"].features(images * 2 - 1).float()
