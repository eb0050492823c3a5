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

from typing import TYPE_CHECKING

import torch

from zoo.data import num_channels
from zoo.training.trainer import Trainer
from zoo_ddpm.diffusion import Diffusion, schedule_of
from zoo_ddpm.unet import UNet

if TYPE_CHECKING:
    from accelerate import Accelerator

    from zoo.sampling.sample import PerSampleNoise
    from zoo_ddpm import DDPMSpec

SAMPLERS = ("ddim", "ddpm")


def build(spec: DDPMSpec) -> UNet:
    """The noise-prediction UNet the spec describes."""
    m = spec.model
    return UNet(num_channels(spec.data), m.channels, m.channel_mult, m.num_res_blocks,
                m.attention_levels, m.groups, m.dropout)


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


def trainer(spec: DDPMSpec, model: UNet, accelerator: Accelerator) -> DDPMTrainer:
    """The DDPM trainer for the shared loop."""
    return DDPMTrainer(spec, model, accelerator)


def sample(
    model: UNet,
    noise: PerSampleNoise,
    spec: DDPMSpec,
    sampler: str | None = None,
    steps: int | None = None,
    eta: float | None = None,
) -> torch.Tensor:
    """Images in [0, 1] from per-sample noise; defaults come from ``spec.sample``.

    ``sampler="ddpm"`` is the ancestral sampler over all T steps (``steps`` and
    ``eta`` do not apply); ``"ddim"`` uses ``steps`` evenly spaced timesteps
    and noise ``eta`` (0: deterministic given x_T).
    """
    sampler = sampler or spec.sample.sampler
    if sampler not in SAMPLERS:
        from zoo.core.errors import SpecError

        raise SpecError(f"sampler {sampler!r}: expected one of {', '.join(SAMPLERS)}")
    diffusion: Diffusion = schedule_of(spec.model)
    if sampler == "ddpm":
        steps, eta = diffusion.steps, 1.0
    else:
        steps = steps or spec.sample.steps
        eta = spec.sample.eta if eta is None else eta
    size, channels = spec.data.image_size, num_channels(spec.data)
    x = latent(model, noise, spec)
    fresh = None
    if eta > 0:
        generators = noise.generators(stream=1)
        def fresh() -> torch.Tensor:
            return noise.draw(generators, channels, size, size)
    x0 = diffusion.to(x.device).sample(model, x, steps, eta, fresh)
    return (x0 + 1) / 2


def latent(model: UNet, noise: PerSampleNoise, spec: DDPMSpec) -> torch.Tensor:
    """Per-sample x_T ~ N(0, I), (N, C, H, W): the noise every sampler starts from."""
    size, channels = spec.data.image_size, num_channels(spec.data)
    return noise.randn(channels, size, size)


def generate(model: UNet, x_t: torch.Tensor, spec: DDPMSpec, steps: int | None = None
             ) -> torch.Tensor:
    """Images in [0, 1] from x_T by deterministic DDIM (eta = 0; ``steps`` default
    ``spec.sample.steps``): x_T acts as a latent code (Song et al., 2021, section 5.3)."""
    diffusion: Diffusion = schedule_of(spec.model)
    x0 = diffusion.to(x_t.device).sample(model, x_t, steps or spec.sample.steps, 0.0, None)
    return (x0 + 1) / 2
