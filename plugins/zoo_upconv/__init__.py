"""Up-convolutional generator family: the spec and its registration. No torch here; see
``model.py`` (the network and its training), ``transforms.py`` (the digit renderings) and
``metrics.py`` (the held-out-transformation error)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import Field, model_validator

from zoo import FamilyRecord, MetricRecord, SamplingOptions, hookimpl
from zoo.core.spec import ModelSpec, Spec, TrainSpec


class UpconvModel(ModelSpec):
    """Description -> image: FC streams for class, identity and transformation, then up-convs.

    The transformation ranges are the training ranges; training sees only ``grid`` values of
    each parameter (evenly spaced over its range), so every value between them is held out.
    """

    num_classes: int = Field(10, ge=2, le=1000, description="Classes (10 for digits); the "
                             "class one-hot is one stream's input.")
    identities_per_class: int = Field(
        10, ge=1, le=1000, description="Training images per class the model learns to render "
        "(the first of each class in the training split), like the paper's chair models.",
    )
    stream_width: int = Field(128, ge=4, le=8192, description="Width of the two FC layers of "
                              "each input stream (class, identity, transformation).")
    joint_width: int = Field(512, ge=8, le=16384, description="Width of the FC layer on the "
                             "concatenated streams.")
    channels: int = Field(32, ge=2, le=1024, description="Channels of the image/4 map the FC "
                          "layers are reshaped to; each up-convolution halves them.")
    rotation: float = Field(15.0, ge=0, le=180, description="Rotations in [-rotation, "
                            "rotation] degrees (counter-clockwise as displayed).")
    scale_min: float = Field(0.9, gt=0, le=4, description="Smallest scale factor.")
    scale_max: float = Field(1.1, gt=0, le=4, description="Largest scale factor.")
    shift: float = Field(0.1, ge=0, le=0.5, description="Shifts in [-shift, shift] of the "
                         "image width (x right, y down).")
    grid: int = Field(5, ge=2, le=1001, description="Training values per transformation "
                      "parameter, evenly spaced over its range (ends included); the midpoints "
                      "between them are the held-out values.")
    mask_weight: float = Field(
        0.1, ge=0, le=100, description="Weight of the mask loss: a second output channel "
        "predicts the digit's ink (target > 0.5) under a cross-entropy loss, the paper's "
        "optional segmentation stream. 0: no mask head.",
    )

    @model_validator(mode="after")
    def _scales_ordered(self) -> UpconvModel:
        if self.scale_min > self.scale_max:
            raise ValueError(f"model.scale_min = {self.scale_min} is above model.scale_max = "
                             f"{self.scale_max}")
        return self


class UpconvTrain(TrainSpec):
    """Adam on the image MSE (+ mask cross-entropy), cosine learning-rate decay."""

    lr: float = Field(1e-3, gt=0, le=1, description="Adam learning rate (cosine-decayed to 5%).")
    beta1: float = Field(0.9, ge=0, lt=1, description="Adam beta1.")
    beta2: float = Field(0.999, ge=0, lt=1, description="Adam beta2.")
    precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="fp32, or bf16 autocast where the device supports it: a "
        "regression to exact renderings, so fp32 by default.",
    )


class UpconvOptions(SamplingOptions):
    """How ``zoo sample`` / ``model.sample`` describe the images to draw. Unset: each
    sample's own random value (classes, identities; transformations uniform over the
    training ranges)."""

    label: int | None = Field(None, ge=0, description="The class of every sample.")
    identity: int | None = Field(None, ge=0, description="Which of the class's "
                                 "model.identities_per_class training digits to draw.")
    rotation: float | None = Field(None, description="Rotation in degrees (within "
                                   "+-model.rotation).")
    scale: float | None = Field(None, description="Scale factor (within model.scale_min .. "
                                "model.scale_max).")
    shift_x: float | None = Field(None, description="Shift right, a fraction of the width "
                                  "(within +-model.shift).")
    shift_y: float | None = Field(None, description="Shift down, a fraction of the height "
                                  "(within +-model.shift).")


class UpconvSpec(Spec):
    """Up-convolutional generator spec."""

    family: Literal["upconv"] = "upconv"
    model: UpconvModel = Field(default_factory=UpconvModel)
    train: UpconvTrain = Field(default_factory=UpconvTrain)

    @model_validator(mode="after")
    def _size_fits(self) -> UpconvSpec:
        if self.data.image_size % 4:
            raise ValueError(f"data.image_size = {self.data.image_size}: the generator "
                             "up-convolves an image/4 map twice, so the size must be divisible "
                             "by 4")
        return self


@hookimpl
def register_families(register: Callable[[FamilyRecord], None]) -> None:
    """Register the ``upconv`` family."""
    register(FamilyRecord(
        name="upconv",
        summary="up-convolutional generator trained supervised: class, identity and "
        "transformation -> image",
        paper="Dosovitskiy, Springenberg & Brox, Learning to Generate Chairs with Convolutional "
        "Neural Networks, CVPR 2015, arXiv:1411.5928",
        spec=UpconvSpec,
        impl="zoo_upconv.model:Upconv",
        options=UpconvOptions,
    ))


@hookimpl
def register_metrics(register: Callable[[MetricRecord], None]) -> None:
    """Register ``heldout_mse``: the error at transformations training never saw."""
    register(MetricRecord(
        name="heldout_mse",
        summary="upconv: MSE at held-out transformations against the nearest trained one",
        compute="zoo_upconv.metrics:heldout_mse",
        needs=frozenset({"latent", "conditional"}),
        families=("upconv",),
    ))
