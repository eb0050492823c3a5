"""DDPM (Ho et al., 2020) with DDIM sampling (Song et al., 2021): build, train, sample.

Training: x_0 in [-1, 1], t ~ U{1..T}, eps ~ N(0, I); minimise
|| target - net(sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, t) ||^2 with Adam, a
linear warm-up, gradient clipping at norm 1, and a weight average (timm's
``ModelEmaV3``) that is what the model folder stores and samples from.

Sampling starts from per-sample noise x_T; DDIM with eta > 0 and ancestral
DDPM draw each step's fresh noise from a per-sample generator, so image i
depends only on (seed, i) whatever the batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch

from zoo import Family
from zoo.data import num_channels
from zoo.training.trainer import Trainer
from zoo_ddpm.diffusion import Diffusion, schedule_of
from zoo_ddpm.unet import UNet

if TYPE_CHECKING:
    from collections.abc import Mapping

    from accelerate import Accelerator
    from torch import nn

    from zoo.sampling.sample import PerSampleNoise
    from zoo_ddpm import DDPMOptions, DDPMSpec


def schedule_on(spec_model: Any, device: torch.device) -> Diffusion:
    """The schedule a DDPM model spec describes, on ``device``, made once per (model spec,
    device) and kept: every sampling call needs it, and its float64 tables cost about a
    sampling step to build on two busy CPU cores (50 ms)."""
    key = (spec_model.model_dump_json(), str(device))
    if key not in _SCHEDULES:
        _SCHEDULES[key] = schedule_of(spec_model).to(device)
    return _SCHEDULES[key]


_SCHEDULES: dict[tuple[str, str], Diffusion] = {}

#: Where the probe reads the UNet (fractions of T): t = round(f * T), clamped to 1..T. Chosen
#: on ddpm-mnist (held-out accuracy, 100 labels x 3 seeds / 1,000 labels): one step alone
#: gives 64-72 % / 88-91 % (t = 1, 10, 50, 100, 250: best 500, 76.6 / 90.6; 750, 900 worse),
#: these five concatenated 78.5 / 93.4.
FEATURE_TIMES: tuple[float, ...] = (0.01, 0.1, 0.25, 0.5, 0.75)


class DDPMTrainer(Trainer):
    """One Adam step on the simple diffusion loss per batch."""

    def __init__(self, spec: DDPMSpec, model: UNet, accelerator: Accelerator) -> None:
        super().__init__(spec, model, accelerator)
        self.diffusion = schedule_of(spec.model).to(self.device)
        self.opt = self.adam("model", self.model.parameters(), spec.train.lr, (0.9, 0.999))

    def step(self, images: torch.Tensor, labels: torch.Tensor | None,
             rng: torch.Generator) -> dict[str, torch.Tensor]:
        """E_{t, eps} || target - net(x_t, t) ||^2 on one batch."""
        warmup = self.spec.train.warmup_steps
        if warmup:
            self.scale_lr(min(1.0, (self.steps_done + 1) / warmup))
        loss = self.diffusion.loss(self.model, images * 2 - 1, rng, self.draws)
        self.update(self.opt, loss, self.spec.train.grad_clip)
        return {"loss": loss.detach()}


class DDPM(Family):
    """The ``ddpm`` family: a noise-prediction UNet, sampled by DDIM or ancestral DDPM."""

    trainer_class = DDPMTrainer
    tiny: ClassVar[dict[str, Any]] = {"model.timesteps": 10, "sample.steps": 2,
                                      "train.warmup_steps": 0}

    def build(self, spec: DDPMSpec) -> UNet:
        """The noise-prediction UNet the spec describes."""
        m = spec.model
        return UNet(num_channels(spec.data), m.channels, m.channel_mult, m.num_res_blocks,
                    m.attention_levels, m.groups, m.dropout)

    def sample(self, model: UNet, noise: PerSampleNoise, spec: DDPMSpec,
               options: DDPMOptions) -> torch.Tensor:
        """Images in [0, 1] from per-sample noise; unset options come from ``spec.sample``.

        ``sampler="ddpm"`` is the ancestral sampler over all T steps (``steps`` and
        ``eta`` do not apply); ``"ddim"`` uses ``steps`` evenly spaced timesteps
        and noise ``eta`` (0: deterministic given x_T).
        """
        x = self.latent(model, noise, spec)
        diffusion = schedule_on(spec.model, x.device)
        if (options.sampler or spec.sample.sampler) == "ddpm":
            steps, eta = diffusion.steps, 1.0
        else:
            steps = options.steps or spec.sample.steps
            eta = spec.sample.eta if options.eta is None else options.eta
        size, channels = spec.data.image_size, num_channels(spec.data)
        fresh = None
        if eta > 0:
            generators = noise.generators(stream=1)
            def fresh() -> torch.Tensor:
                return noise.draw(generators, channels, size, size)
        x0 = diffusion.sample(model, x, steps, eta, fresh)
        return (x0 + 1) / 2

    def features(self, model: UNet, images: torch.Tensor, spec: DDPMSpec,
                 trained: Mapping[str, nn.Module]) -> torch.Tensor:
        """The UNet's middle-block output, spatially averaged, at each step of
        :data:`FEATURE_TIMES` (concatenated): (N, width * len(FEATURE_TIMES)). The UNet is
        told step t and shown the mean of q(x_t | x_0), sqrt(abar_t) x_0 (no noise drawn:
        features are a function of the image alone)."""
        diffusion = schedule_on(spec.model, images.device)
        x0, parts = images * 2 - 1, []
        for fraction in FEATURE_TIMES:
            step = min(diffusion.steps, max(1, round(fraction * diffusion.steps)))
            index = torch.full((len(images),), step - 1, device=images.device)
            xt = Diffusion.at(diffusion.abar, index).sqrt() * x0
            middle, _, _ = model.contract(xt, index)
            parts.append(middle.float().mean((2, 3)))
        return torch.cat(parts, 1)

    def latent(self, model: UNet, noise: PerSampleNoise, spec: DDPMSpec) -> torch.Tensor:
        """Per-sample x_T ~ N(0, I), (N, C, H, W): the noise every sampler starts from."""
        size, channels = spec.data.image_size, num_channels(spec.data)
        return noise.randn(channels, size, size)

    def generate(self, model: UNet, codes: torch.Tensor, spec: DDPMSpec,
                 options: DDPMOptions) -> torch.Tensor:
        """Images in [0, 1] from x_T by deterministic DDIM, whatever ``sampler`` and ``eta``
        say (``options.steps``, default ``spec.sample.steps``): x_T acts as a latent code
        (Song et al., 2021, section 5.3)."""
        steps = options.steps or spec.sample.steps
        x0 = schedule_on(spec.model, codes.device).sample(model, codes, steps, 0.0, None)
        return (x0 + 1) / 2
