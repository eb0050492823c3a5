"""DRAW family: the spec, the sampling options and the registration. No torch here; see
``model.py`` (the recurrent VAE) and ``attention.py`` (the Gaussian filterbanks)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from zoo import FamilyRecord, SamplingOptions, hookimpl
from zoo.core.spec import DataSpec, ModelSpec, Spec, TrainSpec


def _binary_digits28() -> DataSpec:
    """28x28 mnist5k digits, statically binarised: the Bernoulli likelihood needs binary
    pixels (as for ``vae-mnist``)."""
    return DataSpec(source="mnist5k", image_size=28, binarize="static")


class DRAWModel(ModelSpec):
    """LSTM encoder and decoder unrolled over T steps, writing to a canvas."""

    steps: int = Field(16, ge=1, le=256, description="T: glimpses, latents and canvas writes "
                       "per image (the paper's MNIST: 64).")
    enc_hidden: int = Field(256, ge=1, le=8192, description="Width of the encoder LSTM.")
    dec_hidden: int = Field(256, ge=1, le=8192, description="Width of the decoder LSTM.")
    z_size: int = Field(100, ge=1, le=4096, description="Size of each step's latent z_t "
                        "(the paper's MNIST: 100).")
    attention: bool = Field(
        True, description="Differentiable Gaussian attention (the paper's section 3.2); off: "
        "read the whole [x, x_hat] and write a whole image from a linear layer.",
    )
    read_size: int = Field(2, ge=1, le=1024, description="N of the read glimpse (N x N per "
                           "channel, for x and x_hat); the paper's MNIST: 2, with T = 64 "
                           "(at T = 16, 5 fitted mnist5k much faster: draw-mnist).")
    write_size: int = Field(5, ge=1, le=1024, description="N of the written patch; the "
                            "paper's MNIST: 5.")


class DRAWTrain(TrainSpec):
    """Adam on L = L^x + L^z, the gradient norm clipped."""

    lr: float = Field(1e-3, gt=0, le=1, description="Adam learning rate.")
    beta1: float = Field(0.9, ge=0, lt=1, description="Adam beta1.")
    grad_clip: float = Field(10.0, ge=0, description="Clip the gradient norm to this "
                             "(0: off); the LSTMs' gradients spike early on.")
    batch_size: int = Field(64, ge=1, le=65536, description="Images per optimisation step.")
    epochs: int = Field(20, ge=1, description="Passes over the training data.")
    precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="fp32 (default: the T-step sums stay exact, and bf16 autocast "
        "gains little on these small matrices) or bf16 autocast.",
    )


class DRAWOptions(SamplingOptions):
    """How ``zoo sample`` / ``model.sample`` draw from DRAW."""

    return_steps: bool = Field(
        False, description="Python API: model.sample returns (images, [canvas_1, ..., "
        "canvas_T]), each sigmoid(c_t) as N x C x H x W in [0, 1] (zoo visualize steps).",
    )


class DRAWSpec(Spec):
    """DRAW spec: 28x28 statically binarised mnist5k by default."""

    family: Literal["draw"] = "draw"
    model: DRAWModel = Field(default_factory=DRAWModel)
    data: DataSpec = Field(default_factory=_binary_digits28)
    train: DRAWTrain = Field(default_factory=DRAWTrain)

    @model_validator(mode="after")
    def _patches_fit(self) -> DRAWSpec:
        size, m = self.data.image_size, self.model
        if m.attention and max(m.read_size, m.write_size) > size:
            raise ValueError(f"model.read_size = {m.read_size} and model.write_size = "
                             f"{m.write_size} must be at most data.image_size = {size}")
        return self


@hookimpl
def register_families(register) -> None:
    """Register the ``draw`` family."""
    register(FamilyRecord(
        name="draw",
        summary="recurrent VAE that draws on a canvas over T steps, with Gaussian attention",
        paper="Gregor, Danihelka, Graves, Rezende & Wierstra, DRAW: A Recurrent Neural Network "
        "For Image Generation, ICML 2015, arXiv:1502.04623",
        spec=DRAWSpec,
        impl="zoo_draw.model:DRAW",
        options=DRAWOptions,
    ))
