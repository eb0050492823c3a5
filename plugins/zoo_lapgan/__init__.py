"""LAPGAN family: the spec and its registration. No torch here; see ``model.py``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from zoo import FamilyRecord, SamplingOptions, hookimpl
from zoo.core.spec import GANTrainSpec, ModelSpec, Spec


class LAPGANModel(ModelSpec):
    """One GAN per pyramid level: an MLP GAN on the coarsest image, conditional conv GANs above."""

    levels: int = Field(3, ge=2, le=6, description="Pyramid levels (32x32 with 3: 8 -> 16 -> 32).")
    latent_dim: int = Field(100, ge=1, le=4096, description="Noise size of the coarsest GAN.")
    hidden: int = Field(600, ge=8, le=8192, description="Width of the coarsest level's MLPs.")
    channels: int = Field(32, ge=4, le=1024, description="Conv width of the finer levels.")
    kernel_size: int = Field(
        5, ge=1, le=9, description="Conv kernel of the finer generators (odd; 5 as in the paper)."
    )
    noise_channels: int = Field(
        1, ge=1, le=64, description="Noise planes fed to each finer generator with its image."
    )
    num_classes: int = Field(
        0, ge=0, le=1000,
        description="0: unconditional; 10: every level also sees the digit label (one-hot).",
    )


class LAPGANTrain(GANTrainSpec):
    """Adam for every level's G and D (levels train independently, as in the paper)."""

    lr: float = Field(6e-4, gt=0, le=1, description="Adam learning rate of the finer levels.")
    coarse_lr_g: float = Field(1e-4, gt=0, le=1, description="Adam lr of the coarsest G.")
    coarse_lr_d: float = Field(
        6e-4, gt=0, le=1,
        description="Adam lr of the coarsest D: a two time-scale rule (Heusel et al., 2017); "
        "with equal rates this D sat at chance and the samples drifted between modes.",
    )
    ema_decay: float = Field(
        0.999, ge=0, lt=1,
        description="Weight average of every generator (the GANs hop between modes; the "
        "average does not). 0: keep the last weights.",
    )


class LAPGANOptions(SamplingOptions):
    """How ``zoo sample`` / ``model.sample`` draw from a LAPGAN."""

    label: int | None = Field(
        None, ge=0, description="The class of every sample (a class-conditional model, "
        "model.num_classes > 0). Unset: each sample's own random class.",
    )
    return_pyramid: bool = Field(
        False, description="Python API: model.sample returns (images, the image at every "
        "level, coarse to fine).",
    )


class LAPGANSpec(Spec):
    """LAPGAN spec."""

    family: Literal["lapgan"] = "lapgan"
    model: LAPGANModel = Field(default_factory=LAPGANModel)
    train: LAPGANTrain = Field(default_factory=LAPGANTrain)

    @model_validator(mode="after")
    def _pyramid_fits(self) -> LAPGANSpec:
        if self.model.kernel_size % 2 == 0:
            raise ValueError(f"model.kernel_size = {self.model.kernel_size} must be odd")
        factor = 2 ** (self.model.levels - 1)
        size = self.data.image_size
        if size % factor or size // factor < 4:
            raise ValueError(
                f"data.image_size = {size} with model.levels = {self.model.levels}: the size must "
                f"be divisible by {factor} and leave a coarsest level of at least 4x4"
            )
        return self


@hookimpl
def register_families(register) -> None:
    """Register the ``lapgan`` family."""
    register(FamilyRecord(
        name="lapgan",
        summary="Laplacian pyramid of conditional GANs, sampled coarse to fine",
        paper="Denton, Chintala, Szlam & Fergus, Deep Generative Image Models using a Laplacian "
        "Pyramid of Adversarial Networks, NeurIPS 2015, arXiv:1506.05751",
        spec=LAPGANSpec,
        impl="zoo_lapgan.model:LAPGAN",
        options=LAPGANOptions,
    ))
