"""The ``dedup-ae`` family and the ``zoo dedup`` command: specs and registration. No torch.

The DCGAN paper's semantic hashing (Radford et al., 2016, section 4.1): a
denoising, dropout-regularised ReLU autoencoder with one 128-unit code layer
on 32×32 center crops; an image's hash is its code binarised by thresholding
the ReLU activations (> 0). The input width is channels × 32 × 32: 3072 for
RGB sources (the paper's 3072-128-3072) and 1024 for greyscale ones
(1024-128-1024; the bundled digits, or a folder whose images are all grey).
The torch code is :class:`zoo_dedup.model.DedupAE` (a ``zoo.Family``);
hashing, grouping and reports are :mod:`zoo_dedup.hashing`, :mod:`zoo_dedup.pipeline` and
:mod:`zoo_dedup.report`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from zoo import FamilyRecord, hookimpl
from zoo.core.spec import DataSpec, ModelSpec, Spec, TrainSpec

PAPER = ("Radford, Metz & Chintala, Unsupervised Representation Learning with Deep "
         "Convolutional Generative Adversarial Networks, ICLR 2016 (section 4.1: semantic "
         "hashing for de-duplication)")


class DedupModel(ModelSpec):
    """A one-layer ReLU autoencoder whose binarised code is an image hash."""

    code_dim: int = Field(128, ge=8, le=4096, description="Code units = hash bits.")
    dropout: float = Field(0.5, ge=0, lt=1, description="Dropout on the code while training.")
    noise_std: float = Field(
        0.1, ge=0, description="Denoising: std of Gaussian noise added to training inputs.")
    mask_fraction: float = Field(
        0.2, ge=0, lt=1, description="Denoising: fraction of training-input pixels set to 0.")
    blur: float = Field(
        1.0, ge=0, le=4,
        description="Std in pixels of a fixed Gaussian low-pass applied before the encoder "
        "(robustness to noise and JPEG); 0: none.")
    standardize: bool = Field(
        True, description="Standardise each image (zero mean, unit std) before the encoder, "
        "so brightness and contrast changes do not change the hash.")
    loss: Literal["bernoulli", "mse"] = Field(
        "bernoulli", description="Reconstruction loss of the clean image, summed over pixels.")


class DedupTrain(TrainSpec):
    """Adam on the denoising reconstruction loss."""

    lr: float = Field(1e-3, gt=0, le=1, description="Adam learning rate.")
    weight_decay: float = Field(0.0, ge=0, description="Adam (L2) weight decay.")
    batch_size: int = Field(128, ge=1, le=65536, description="Images per optimisation step.")
    epochs: int = Field(30, ge=1, description="Passes over the training data.")


def _data() -> DataSpec:
    return DataSpec(source="mnist5k", image_size=32)


class DedupSpec(Spec):
    """Spec of a hashing autoencoder (defaults: the bundled digits, 32×32, 1024-128-1024)."""

    family: Literal["dedup-ae"] = "dedup-ae"
    model: DedupModel = Field(default_factory=DedupModel)
    data: DataSpec = Field(default_factory=_data)
    train: DedupTrain = Field(default_factory=DedupTrain)


@hookimpl
def register_families(register) -> None:
    """Register ``dedup-ae``."""
    register(FamilyRecord(
        name="dedup-ae",
        summary="semantic-hashing autoencoder for near-duplicate removal (zoo dedup)",
        paper=PAPER, spec=DedupSpec, impl="zoo_dedup.model:DedupAE"))


@hookimpl
def register_commands(cli) -> None:
    """Add ``zoo dedup`` to the ``zoo`` app (idempotent; imports typer only)."""
    from zoo_dedup.command import add_dedup_command

    add_dedup_command(cli)
