"""LAPGAN (Denton et al., 2015): a Laplacian pyramid of generative adversarial networks.

An image is split into a coarse s0 x s0 image and band-pass residuals at
2 s0, 4 s0, ... (``pyramid.py``). Each level k has its own GAN, trained
independently on real data:

* level 0: an unconditional GAN (MLPs) on the coarsest image;
* level k > 0: a conditional GAN whose generator sees the upsampled real
  coarser image l_k = upsample(g_{k-1}) and noise planes and outputs the
  residual h_k; its discriminator sees (h_k, l_k) and tells real residuals
  from generated ones.

Sampling runs coarse to fine: g_0 = G_0(z_0), then g_k = l_k + G_k(z_k, l_k)
with l_k = upsample(g_{k-1}). With ``num_classes`` > 0 every G and D also
sees the one-hot class (concatenated to vectors, as constant planes for
images), as in the paper's class-conditional CIFAR-10 model. Images are in
[-1, 1] inside the model; samples are returned in [0, 1].

What it took to make this train in minutes on mnist5k (each measured, see
docs/benchmarks.md): batch norm in every generator, 5x5 kernels at the finer
levels, a weight average of the generators (``train.ema_decay``), and a two
time-scale rule for the coarsest GAN (its D at 6e-4, its G at 1e-4). After
training, batch-norm statistics are re-estimated on real pyramids, so an
image depends only on its own noise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from zoo import Family
from zoo.core.errors import CapabilityError, DataError
from zoo.data import num_channels
from zoo.training.distributed import LOCAL, Draws
from zoo.training.gan import discriminator_loss, frozen, generator_loss, reestimate_batchnorm
from zoo.training.trainer import Trainer
from zoo_lapgan import LAPGANOptions
from zoo_lapgan.pyramid import gaussian_pyramid, upsample

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path


def level_sizes(spec) -> list[int]:
    """Image sizes of the levels, coarse to fine (e.g. [8, 16, 32])."""
    size, levels = spec.data.image_size, spec.model.levels
    return [size // 2 ** (levels - 1 - k) for k in range(levels)]


def one_hot(labels: torch.Tensor | None, classes: int, dtype: torch.dtype) -> torch.Tensor | None:
    """(N, classes) one-hot vectors, or None for an unconditional model."""
    return None if not classes else F.one_hot(labels, classes).to(dtype)


def with_planes(x: torch.Tensor, *extra: torch.Tensor | None) -> torch.Tensor:
    """Concatenate along channels: vectors to vectors, or to images as constant planes."""
    parts = [x]
    for t in extra:
        if t is None:
            continue
        if x.dim() == 4 and t.dim() == 2:
            t = t[:, :, None, None].expand(-1, -1, *x.shape[-2:])
        parts.append(t)
    return torch.cat(parts, 1)


class CoarseGenerator(nn.Module):
    """z (+ class) -> coarsest image (C, s0, s0) in [-1, 1]; the class enters every layer."""

    def __init__(self, latent: int, classes: int, channels: int, size: int, hidden: int) -> None:
        super().__init__()
        self.shape = (channels, size, size)
        # batch norm on the hidden layers: without it the unconditional MLP GAN
        # collapsed onto two or three digits within a few hundred steps
        self.hidden = nn.ModuleList([
            nn.Sequential(nn.Linear(latent + classes, hidden), nn.BatchNorm1d(hidden), nn.ReLU()),
            nn.Sequential(nn.Linear(hidden + classes, hidden), nn.BatchNorm1d(hidden), nn.ReLU())])
        self.out = nn.Linear(hidden + classes, channels * size * size)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = z
        for layer in self.hidden:
            h = layer(with_planes(h, y))
        return torch.tanh(self.out(with_planes(h, y))).view(-1, *self.shape)


class CoarseDiscriminator(nn.Module):
    """coarsest image (+ class) -> logit; the class enters the input and a projection term.

    With classes, logit = w . phi(x, y) + e_y . phi(x, y) (Miyato & Koyama, 2018): the
    discriminator must judge each image against its own class, which makes the
    coarse generator -- where a digit's identity is decided -- follow the label.
    """

    def __init__(self, classes: int, channels: int, size: int, hidden: int) -> None:
        super().__init__()
        # no dropout: with it the coarse GAN collapsed onto one or two digits
        self.features = nn.Sequential(
            nn.Linear(channels * size * size + classes, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden), nn.LeakyReLU(0.2))
        self.head = nn.Linear(hidden, 1)
        self.class_embedding = nn.Linear(classes, hidden, bias=False) if classes else None

    def forward(self, x: torch.Tensor, cond: None = None, y: torch.Tensor | None = None
                ) -> torch.Tensor:
        phi = self.features(with_planes(x.flatten(1), y))
        logit = self.head(phi).flatten()
        if y is not None:
            logit = logit + (self.class_embedding(y) * phi).sum(1)
        return logit

    def hidden(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Both hidden layers' outputs, concatenated (N, 2 * hidden): the probe's features."""
        h1 = self.features[:2](with_planes(x.flatten(1), y))
        return torch.cat([h1, self.features[2:](h1)], 1)


class ResidualGenerator(nn.Module):
    """(upsampled coarser image, noise planes, class planes) -> band-pass residual."""

    def __init__(self, channels: int, noise: int, classes: int, width: int, kernel: int) -> None:
        super().__init__()
        pad = kernel // 2
        self.net = nn.Sequential(
            nn.Conv2d(channels + noise + classes, width, kernel, padding=pad),
            nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, kernel, padding=pad), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, channels, kernel, padding=pad))

    def forward(self, cond: torch.Tensor, noise: torch.Tensor, y: torch.Tensor | None = None
                ) -> torch.Tensor:
        return self.net(with_planes(cond, noise, y))


class ResidualDiscriminator(nn.Module):
    """(residual, upsampled coarser image, class planes) -> logit."""

    def __init__(self, channels: int, classes: int, width: int, size: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(2 * channels + classes, width, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 2 * width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(2 * width * (size // 4) ** 2, 1))

    def forward(self, residual: torch.Tensor, cond: torch.Tensor, y: torch.Tensor | None = None
                ) -> torch.Tensor:
        return self.net(with_planes(residual, cond, y)).flatten()

    def hidden(self, residual: torch.Tensor, cond: torch.Tensor, y: torch.Tensor | None = None,
               grid: int = 4) -> torch.Tensor:
        """Every conv layer's activated output max-pooled to ``grid``×``grid`` (a smaller
        map as it is) and concatenated (as DCGAN's probe): the probe's features."""
        x, pooled = with_planes(residual, cond, y), []
        for layer in self.net[:-2]:  # up to the flatten and the logit
            x = layer(x)
            if isinstance(layer, nn.LeakyReLU):
                pooled.append(F.adaptive_max_pool2d(x, min(grid, x.shape[-1])).flatten(1))
        return torch.cat(pooled, 1)


class LAPGANGenerators(nn.Module):
    """The generators of every level (what sampling needs, and what the model folder
    stores), coarse to fine."""

    def __init__(self, spec) -> None:
        super().__init__()
        m, c = spec.model, num_channels(spec.data)
        sizes = level_sizes(spec)
        self.num_classes, self.latent_dim, self.noise_channels = (
            m.num_classes, m.latent_dim, m.noise_channels)
        self.sizes = sizes
        self.generators = nn.ModuleList(
            [CoarseGenerator(m.latent_dim, m.num_classes, c, sizes[0], m.hidden)]
            + [ResidualGenerator(c, m.noise_channels, m.num_classes, m.channels, m.kernel_size)
               for _ in sizes[1:]])


def build_discriminators(spec) -> list[nn.Module]:
    """One discriminator per level, coarse to fine."""
    m, c = spec.model, num_channels(spec.data)
    sizes = level_sizes(spec)
    return ([CoarseDiscriminator(m.num_classes, c, sizes[0], m.hidden)]
            + [ResidualDiscriminator(c, m.num_classes, m.channels, s) for s in sizes[1:]])


def check_labels(labels: torch.Tensor | None, classes: int, source: str) -> None:
    """A class-conditional model needs every training image labelled 0 .. classes - 1."""
    if labels is None:
        raise DataError(f"model.num_classes = {classes} needs labelled data, but data.source "
                        f"'{source}' has no labels; set model.num_classes = 0")
    if int(labels.max()) >= classes:
        raise DataError(f"data.source '{source}' has label {int(labels.max())}, but "
                        f"model.num_classes = {classes}")


class LAPGANTrainer(Trainer):
    """Every level's GAN takes one D and one G step per batch, on real pyramids."""

    def __init__(self, spec, model: LAPGANGenerators, accelerator) -> None:
        super().__init__(spec, model, accelerator)
        t = spec.train
        betas = (t.beta1, t.beta2)
        self.gens = self.raw_modules()["model"].generators
        # the coarsest level is a small MLP GAN that trains worse in bf16 (FD 29.7 vs
        # 18.4 at the same budget) and costs almost nothing: it always runs in fp32
        for gen in self.gens[1:]:
            self.mixed_precision(gen)
        self.discs = [self.add_module(f"discriminator{k}", d, mixed_precision=k > 0)
                      for k, d in enumerate(build_discriminators(spec))]
        lr_g = [t.coarse_lr_g] + [t.lr] * (len(self.gens) - 1)
        lr_d = [t.coarse_lr_d] + [t.lr] * (len(self.discs) - 1)
        self.opt_g = [self.adam(f"generator{k}", g.parameters(), lr_g[k], betas)
                      for k, g in enumerate(self.gens)]
        self.opt_d = [self.adam(f"discriminator{k}", d.parameters(), lr_d[k], betas)
                      for k, d in enumerate(self.discs)]
        self.first_step = True

    def level_inputs(self, k: int, real: list[torch.Tensor], y: torch.Tensor | None,
                     rng: torch.Generator, draws: Draws = LOCAL
                     ) -> tuple[tuple, torch.Tensor | None]:
        """Generator arguments at level k for a real pyramid, and the upsampled real condition.

        ``draws``: in training, this process's rows of the global batch's noise.
        """
        m, n, device = self.spec.model, len(real[0]), real[0].device
        if k == 0:
            return (draws.randn(n, m.latent_dim, generator=rng, device=device), y), None
        cond = upsample(real[k - 1])
        noise = draws.randn(n, m.noise_channels, *cond.shape[-2:], generator=rng, device=device)
        return (cond, noise, y), cond

    def step(self, images, labels, rng) -> dict[str, torch.Tensor]:
        """Independent GAN updates at every level; returns each level's D and G losses."""
        m = self.spec.model
        if m.num_classes and self.first_step:
            check_labels(labels, m.num_classes, self.spec.data.source)
            self.first_step = False
        real = gaussian_pyramid(images * 2 - 1, m.levels)  # coarse to fine
        y = one_hot(labels, m.num_classes, images.dtype)
        logs = {}
        for k, (gen, disc) in enumerate(zip(self.gens, self.discs, strict=True)):
            args, cond = self.level_inputs(k, real, y, rng, self.draws)
            fake = gen(*args)
            target = real[k] if cond is None else real[k] - cond  # real band-pass residual
            loss_d = discriminator_loss(disc(target, cond, y), disc(fake.detach(), cond, y))
            self.update(self.opt_d[k], loss_d)
            with frozen(disc):
                loss_g = generator_loss(disc(fake, cond, y))
                self.update(self.opt_g[k], loss_g)
            logs[f"d{k}"], logs[f"g{k}"] = loss_d.detach(), loss_g.detach()
        return logs

    def finish(self, images, labels, rng) -> None:
        """Re-estimate every generator's batch-norm statistics exactly, on real pyramids.

        As in DCGAN: eval-mode sampling then matches what each generator produced
        in training, and each image depends only on its own noise. Runs in fp32, as
        the saved generators sample.
        """
        m, n = self.spec.model, self.spec.train.batch_size
        gens = self.sampling_module().generators
        for k, gen in enumerate(gens):
            def inputs(k: int = k) -> tuple:
                idx = torch.randint(len(images), (n,), generator=rng, device=rng.device)
                real = gaussian_pyramid(images[idx] * 2 - 1, m.levels)
                y = None if labels is None else one_hot(labels[idx], m.num_classes, images.dtype)
                return self.level_inputs(k, real, y, rng)[0]

            reestimate_batchnorm(gen, inputs, self.spec.train.bn_batches)


def class_codes(model: LAPGANGenerators, codes: torch.Tensor, label: int | None
                ) -> torch.Tensor | None:
    """The one-hot class every level sees: the codes' own class part, or ``label`` for
    every row; None for an unconditional model (where a label is a one-line error)."""
    classes = model.num_classes
    if not classes:
        if label is not None:
            raise CapabilityError("this LAPGAN is unconditional (model.num_classes = 0); "
                                  "train with --set model.num_classes=10 to sample by label")
        return None
    if label is None:
        return codes[:, -classes:]
    if label >= classes:
        raise CapabilityError(f"label {label}: this LAPGAN has classes 0 to {classes - 1}")
    return one_hot(torch.full((len(codes),), label, device=codes.device), classes,
                   torch.float32)


def pyramid_of(model: LAPGANGenerators, codes: torch.Tensor, label: int | None = None
               ) -> list[torch.Tensor]:
    """The image at every level in [-1, 1], coarse to fine, from codes laid out as
    :meth:`LAPGAN.latent` makes them; ``label`` replaces the class part of the codes."""
    widths = [model.latent_dim, *(model.noise_channels * s * s for s in model.sizes[1:])]
    if codes.dim() != 2 or codes.shape[1] != sum(widths) + model.num_classes:
        raise ValueError(f"LAPGAN codes must be (N, {sum(widths) + model.num_classes}), got "
                         f"{tuple(codes.shape)}")
    y = class_codes(model, codes, label)
    parts = codes[:, :sum(widths)].split(widths, 1)
    image = model.generators[0](parts[0], y)
    levels = [image]
    for k, gen in enumerate(model.generators[1:], 1):
        cond = upsample(image)
        planes = parts[k].reshape(len(codes), model.noise_channels, *cond.shape[-2:])
        image = cond + gen(cond, planes, y)
        levels.append(image)
    return levels


def to_unit(image: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1]."""
    return ((image + 1) / 2).clamp(0, 1)


# --------------------------------------------------------------------------- the family


class LAPGAN(Family):
    """The ``lapgan`` family: sampled coarse to fine, optionally by class (``label``), with
    every level's image on request (``return_pyramid``)."""

    trainer_class = LAPGANTrainer
    tiny: ClassVar[dict[str, Any]] = {"train.bn_batches": 1}

    def build(self, spec) -> LAPGANGenerators:
        """The generators of all levels."""
        return LAPGANGenerators(spec)

    def latent(self, model: LAPGANGenerators, noise, spec) -> torch.Tensor:
        """Everything the sampler draws for a sample, as one flat code per row (N, D): the
        coarsest GAN's z, each finer level's noise planes, and (class-conditional) the
        one-hot class."""
        parts = [noise.randn(model.latent_dim)]
        for k, size in enumerate(model.sizes[1:], 1):
            parts.append(noise.randn(model.noise_channels, size, size, stream=k).flatten(1))
        if model.num_classes:
            labels = noise.randint(model.num_classes, stream=10_000)
            parts.append(one_hot(labels, model.num_classes, torch.float32))
        return torch.cat(parts, 1)

    def generate(self, model: LAPGANGenerators, codes: torch.Tensor, spec,
                 options: LAPGANOptions) -> torch.Tensor:
        """Images in [0, 1] from codes laid out as :meth:`latent` makes them; ``options.label``
        replaces their class part (a class-conditional model)."""
        return to_unit(pyramid_of(model, codes, options.label)[-1])

    def sample(self, model: LAPGANGenerators, noise, spec, options: LAPGANOptions
               ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Coarse to fine; with ``options.return_pyramid`` also the image at every level (in
        [0, 1])."""
        levels = [to_unit(g) for g in
                  pyramid_of(model, self.latent(model, noise, spec), options.label)]
        return (levels[-1], levels) if options.return_pyramid else levels[-1]

    def features(self, model: LAPGANGenerators, images: torch.Tensor, spec,
                 trained: Mapping[str, nn.Module]) -> torch.Tensor:
        """The discriminators' features at every level of the image's own pyramid,
        concatenated: the coarsest D's two hidden layers on the coarsest image, and each
        finer D's conv layers (max-pooled to at most 4×4) on the real band-pass residual and the
        upsampled coarser image. A class-conditional model's discriminators see an
        all-zero class (the probe must not be told the label)."""
        m = spec.model
        real = gaussian_pyramid(images * 2 - 1, m.levels)
        y = images.new_zeros(len(images), m.num_classes) if m.num_classes else None
        parts = [trained["discriminator0"].hidden(real[0], y)]
        for k in range(1, m.levels):
            cond = upsample(real[k - 1])
            parts.append(trained[f"discriminator{k}"].hidden(real[k] - cond, cond, y))
        return torch.cat(parts, 1).float()

    def card_images(self, model: LAPGANGenerators, spec, folder: Path) -> dict[str, str]:
        """A pyramid strip for the model card: rows are samples, columns coarse -> fine."""
        from zoo.sampling.sample import PerSampleNoise, grid, save_png, stage_tiles

        with torch.inference_mode():
            noise = PerSampleNoise(spec.sample.seed, range(8), next(model.parameters()).device)
            _, levels = self.sample(model, noise, spec, LAPGANOptions(return_pyramid=True))
        save_png(grid(stage_tiles(levels), nrow=len(levels)), folder / "pyramid.png")
        return {"pyramid strip, coarse to fine": "pyramid.png"}
