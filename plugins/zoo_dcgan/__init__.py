"""DCGAN family: the spec and its registration. No torch here; see ``model.py``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import Field, model_validator

from zoo import FamilyRecord, hookimpl
from zoo.core.spec import GANTrainSpec, ModelSpec, RunSpec, Spec

SIZES = (8, 16, 32, 64, 128, 256)


class DCGANModel(ModelSpec):
    """Generator and discriminator widths (the paper's 64x64 net: 100 / 64 / 64)."""

    latent_dim: int = Field(100, ge=1, le=4096, description="Size of the noise vector z.")
    base_channels: int = Field(
        64, ge=1, le=1024, description="G's last hidden width (ngf); doubles at each coarser level."
    )
    disc_channels: int = Field(
        64, ge=1, le=1024, description="D's first width (ndf); doubles at each coarser level."
    )


class DCGANTrain(GANTrainSpec):
    """Adam as in the paper, plus batch-norm re-estimation after training."""

    lr: float = Field(2e-4, gt=0, le=1, description="Adam learning rate for G and D.")


class DCGANRun(RunSpec):
    """How a DCGAN run executes: channels-last by default (see docs/benchmarks.md)."""

    channels_last: bool = Field(
        True, description="Keep 4-D weights and image batches channels-last (NHWC) in memory "
        "while training; shapes, values and the written weights are unchanged. Ignored with "
        "run.compile.",
    )


class DCGANSpec(Spec):
    """DCGAN spec."""

    family: Literal["dcgan"] = "dcgan"
    model: DCGANModel = Field(default_factory=DCGANModel)
    train: DCGANTrain = Field(default_factory=DCGANTrain)
    run: DCGANRun = Field(default_factory=DCGANRun)

    @model_validator(mode="after")
    def _power_of_two(self) -> DCGANSpec:
        if self.data.image_size not in SIZES:
            raise ValueError(
                f"data.image_size = {self.data.image_size}: DCGAN needs one of "
                f"{', '.join(map(str, SIZES))} (28x28 digits are resized to 32)"
            )
        return self


@hookimpl
def register_families(register: Callable[[FamilyRecord], None]) -> None:
    """Register the ``dcgan`` family."""
    register(FamilyRecord(
        name="dcgan",
        summary="deep convolutional GAN: strided convs, batch norm, no pooling",
        paper="Radford, Metz & Chintala, Unsupervised Representation Learning with Deep "
        "Convolutional Generative Adversarial Networks, ICLR 2016, arXiv:1511.06434",
        spec=DCGANSpec,
        impl="zoo_dcgan.model:DCGAN",
    ))
