"""DDPM family: the spec and its registration. No torch here; see ``model.py``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import Field, model_validator

from zoo import FamilyRecord, SamplingOptions, hookimpl
from zoo.core.spec import ModelSpec, SampleSpec, Spec, TrainSpec


class DDPMModel(ModelSpec):
    """The UNet and the diffusion process it is trained for."""

    channels: int = Field(32, ge=4, le=1024, description="UNet width at full resolution.")
    channel_mult: list[int] = Field(
        default_factory=lambda: [1, 2, 2], min_length=1, max_length=6,
        description="Width multiplier per level; each level after the first halves H and W.",
    )
    num_res_blocks: int = Field(2, ge=1, le=8, description="Residual blocks per encoder level.")
    attention_levels: list[int] = Field(
        default_factory=lambda: [2], max_length=6,
        description="Levels (0 = full resolution) with self-attention after each block.",
    )
    groups: int = Field(8, ge=1, le=64, description="GroupNorm groups (must divide every width).")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout inside residual blocks.")
    timesteps: int = Field(1000, ge=2, le=10_000, description="Diffusion steps T.")
    schedule: Literal["linear", "cosine"] = Field(
        "linear", description="beta schedule: linear 1e-4..0.02 (Ho et al.) or cosine "
        "(Nichol & Dhariwal).",
    )
    beta_start: float = Field(1e-4, gt=0, lt=1, description="First beta of the linear schedule.")
    beta_end: float = Field(0.02, gt=0, lt=1, description="Last beta of the linear schedule.")
    prediction: Literal["eps", "v"] = Field(
        "eps", description="What the UNet predicts: the noise eps, or v (Salimans & Ho)."
    )


class DDPMTrain(TrainSpec):
    """Adam on the simple loss, a short warm-up, gradient clipping and a weight average."""

    lr: float = Field(1e-3, gt=0, le=1, description="Adam learning rate after warm-up.")
    warmup_steps: int = Field(200, ge=0, description="Linear learning-rate warm-up.")
    grad_clip: float = Field(1.0, ge=0, description="Clip the gradient norm to this (0: off).")
    ema_decay: float = Field(
        0.999, ge=0, lt=1,
        description="Weight average used for sampling (timm ModelEmaV3, warmed up); the raw "
        "weights stay in training_state/. 0: sample from the raw weights.",
    )


class DDPMSample(SampleSpec):
    """Which sampler the model folder's grid and ``zoo sample`` use by default."""

    sampler: Literal["ddim", "ddpm"] = Field(
        "ddim", description="ddim (steps and eta below) or ddpm (ancestral, all T steps)."
    )
    steps: int = Field(50, ge=1, le=10_000, description="DDIM steps.")
    eta: float = Field(
        0.0, ge=0, le=1, description="DDIM noise: 0 deterministic, 1 the DDPM variance."
    )


class DDPMOptions(SamplingOptions):
    """How ``zoo sample`` / ``model.sample`` draw from a DDPM; each unset option is the spec's
    ``sample`` value."""

    sampler: Literal["ddim", "ddpm"] | None = Field(
        None, description="ddim, or ddpm: ancestral over all T steps (steps and eta do not "
        "apply). Unset: the spec's sample.sampler.",
    )
    steps: int | None = Field(
        None, ge=1, le=10_000,
        description="DDIM steps (at most model.timesteps). Unset: the spec's sample.steps.",
    )
    eta: float | None = Field(
        None, ge=0, le=1,
        description="DDIM noise: 0 deterministic, 1 the DDPM variance. Unset: the spec's "
        "sample.eta.",
    )


class DDPMSpec(Spec):
    """DDPM spec."""

    family: Literal["ddpm"] = "ddpm"
    model: DDPMModel = Field(default_factory=DDPMModel)
    train: DDPMTrain = Field(default_factory=DDPMTrain)
    sample: DDPMSample = Field(default_factory=DDPMSample)

    @model_validator(mode="after")
    def _unet_fits(self) -> DDPMSpec:
        m = self.model
        factor = 2 ** (len(m.channel_mult) - 1)
        if self.data.image_size % factor:
            raise ValueError(f"data.image_size = {self.data.image_size} must be divisible by "
                             f"{factor} for {len(m.channel_mult)} UNet levels")
        bad = [m.channels * k for k in m.channel_mult if (m.channels * k) % m.groups]
        if bad:
            raise ValueError(f"model.groups = {m.groups} must divide every width; "
                             f"it does not divide {bad[0]}")
        outside = [level for level in m.attention_levels if level >= len(m.channel_mult)]
        if outside:
            raise ValueError(f"model.attention_levels has level {outside[0]}, but there are "
                             f"only {len(m.channel_mult)} levels (0..{len(m.channel_mult) - 1})")
        if m.schedule == "linear" and m.beta_start >= m.beta_end:
            raise ValueError("model.beta_start must be below model.beta_end")
        return self


@hookimpl
def register_families(register: Callable[[FamilyRecord], None]) -> None:
    """Register the ``ddpm`` family."""
    register(FamilyRecord(
        name="ddpm",
        summary="denoising diffusion: a small UNet, ancestral DDPM and DDIM sampling",
        paper="Ho, Jain & Abbeel, Denoising Diffusion Probabilistic Models, NeurIPS 2020, "
        "arXiv:2006.11239; Song, Meng & Ermon, Denoising Diffusion Implicit Models, ICLR "
        "2021, arXiv:2010.02502",
        spec=DDPMSpec,
        impl="zoo_ddpm.model:DDPM",
        options=DDPMOptions,
    ))
