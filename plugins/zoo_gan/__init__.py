"""GAN family (Goodfellow et al., 2014): the spec and its registration. No torch here; see
``model.py``.

The paper's MNIST model: an MLP generator (z -> 1200 ReLU -> 1200 ReLU -> pixels, sigmoid)
and a maxout discriminator (240 units x 5 pieces, twice, then one logit) trained with
dropout. z ~ N(0, I), as in the authors' released code (``adversarial.Generator``'s default
noise; their ``mnist.yaml`` sets no other).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import Field

from zoo import FamilyRecord, hookimpl
from zoo.core.spec import ModelSpec, Spec, TrainSpec

Width = Annotated[int, Field(ge=1, le=65536)]


class GANModel(ModelSpec):
    """Generator and discriminator sizes (the paper's MNIST net: 100 / 1200-1200 / 240x5-240x5)."""

    latent_dim: int = Field(100, ge=1, le=4096, description="Size of the noise vector z ~ N(0, I).")
    g_hidden: list[Width] = Field(
        [1200, 1200], min_length=1, max_length=16,
        description="G's hidden ReLU layers, z to pixels (the paper's: 1200, 1200); the output "
        "layer is one sigmoid unit per pixel.",
    )
    d_units: list[Width] = Field(
        [240, 240], min_length=1, max_length=16,
        description="D's hidden maxout layers, units per layer (the paper's: 240, 240); D ends "
        "with one logit.",
    )
    d_pieces: int = Field(
        5, ge=1, le=64, description="Linear pieces each maxout unit takes the max of (5).",
    )
    d_input_dropout: float = Field(
        0.2, ge=0, lt=1,
        description="Dropout probability on D's input pixels in training (the paper: keep 0.8).",
    )
    d_dropout: float = Field(
        0.5, ge=0, lt=1,
        description="Dropout probability on the input of D's every later layer in training "
        "(the paper: keep 0.5).",
    )


class GANTrain(TrainSpec):
    """Alternating updates: k D steps, then one G step (Algorithm 1 of the paper)."""

    d_steps: int = Field(
        1, ge=1, le=100,
        description="k: D steps per G step (the paper's k = 1). Each D step takes its own "
        "batch of images and noise; G steps after every k-th.",
    )
    optimizer: Literal["adam", "sgd"] = Field(
        "adam",
        description="adam (the default: trains the MNIST model in minutes), or sgd with "
        "momentum as in the paper (lr 0.1, momentum 0.5 rising to 0.7, batch 100, for hundreds "
        "of epochs of 50,000 digits).",
    )
    lr: float = Field(
        1e-3, gt=0, le=1,
        description="Learning rate of G and D (Adam 1e-3: on mnist5k, 2e-4 left D winning and "
        "G on two or three digits after 20 epochs; 1e-3 covered all ten by epoch 30).",
    )
    beta1: float = Field(0.5, ge=0, lt=1, description="Adam beta1 (0.5, as in DCGAN).")
    beta2: float = Field(0.999, ge=0, lt=1, description="Adam beta2.")
    momentum: float = Field(0.5, ge=0, lt=1, description="SGD momentum (optimizer sgd only).")


class GANSpec(Spec):
    """GAN spec."""

    family: Literal["gan"] = "gan"
    model: GANModel = Field(default_factory=GANModel)
    train: GANTrain = Field(default_factory=GANTrain)


@hookimpl
def register_families(register: Callable[[FamilyRecord], None]) -> None:
    """Register the ``gan`` family."""
    register(FamilyRecord(
        name="gan",
        summary="the original GAN: MLP generator, maxout discriminator with dropout",
        paper="Goodfellow, Pouget-Abadie, Mirza, Xu, Warde-Farley, Ozair, Courville & Bengio, "
        "Generative Adversarial Nets, NeurIPS 2014, arXiv:1406.2661",
        spec=GANSpec,
        impl="zoo_gan.model:GAN",
    ))
