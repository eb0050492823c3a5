"""The specs of the three families: pydantic only, no torch (``zoo list`` stays fast)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from zoo.core.spec import DataSpec, ModelSpec, SampleSpec, Spec, TrainSpec


class StoreTrain(TrainSpec):
    """Nothing is optimised: one step stores what sampling copies from."""

    max_steps: int | None = Field(
        1, ge=1, description="Training only stores exemplars; one step is enough.")
    batch_size: int = Field(1, ge=1, le=65536, description="Images per (idle) step.")
    precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="Kept for the shared loop; nothing here runs under autocast.")


class StoreSample(SampleSpec):
    """The sample grid written into the model folder."""

    n: int = Field(16, ge=1, le=100_000, description="Number of images in the sample grid.")


class GrowModel(ModelSpec):
    """Efros–Leung synthesis: window, tolerance, and how much grows per step."""

    window: int = Field(
        9, ge=3, le=63,
        description="Side of the (odd) neighbourhood window, Gaussian-weighted with "
        "sigma = window / 6.4 as in the paper.")
    epsilon: float = Field(
        0.1, ge=0, le=10,
        description="Candidates within (1 + epsilon) of the best match are drawn uniformly.")
    patch_size: int = Field(
        1, ge=1, le=63,
        description="1: grow pixel by pixel (the paper); p > 1: paste the central p x p "
        "block of each match.")
    batch: int = Field(
        16, ge=1, le=65536,
        description="Frontier pixels (or non-overlapping blocks) filled per step; 1 is "
        "strictly sequential.")
    exemplars: int = Field(
        1, ge=1, le=4096, description="Training images kept as exemplars (the first ones).")

    @model_validator(mode="after")
    def _odd_window(self) -> GrowModel:
        if self.window % 2 == 0:
            raise ValueError(f"model.window = {self.window}: must be odd")
        if self.patch_size > self.window:
            raise ValueError(f"model.patch_size = {self.patch_size}: at most model.window "
                             f"({self.window})")
        return self


def _texture_data() -> DataSpec:
    return DataSpec(source="skimage:brick/4", image_size=32)


class TextureSpec(Spec):
    """Efros–Leung texture synthesis spec."""

    family: Literal["texture"] = "texture"
    model: GrowModel = Field(default_factory=GrowModel)
    data: DataSpec = Field(default_factory=_texture_data)
    train: StoreTrain = Field(default_factory=StoreTrain)
    sample: StoreSample = Field(default_factory=StoreSample)

    @model_validator(mode="after")
    def _window_fits(self) -> TextureSpec:
        if self.model.window > self.data.image_size:
            raise ValueError(f"model.window = {self.model.window} is larger than "
                             f"data.image_size = {self.data.image_size}")
        return self


class InpaintModel(GrowModel):
    """In-painting copies from the known part of the image and, optionally, the exemplars."""

    exemplars: int = Field(
        4, ge=1, le=4096, description="Training images kept as exemplars (the first ones).")
    use_exemplars: bool = Field(
        True, description="Also copy from the stored exemplars, not only from the known "
        "part of the image being in-painted.")


class InpaintSample(StoreSample):
    """Without an input image, sampling in-paints a hole cut into a stored exemplar."""

    hole: float = Field(
        0.4, gt=0, lt=1,
        description="Side of the square hole (fraction of data.image_size) cut at a random "
        "place into a random exemplar when sampling without --input.")


class InpaintSpec(TextureSpec):
    """Efros–Leung in-painting spec."""

    family: Literal["inpaint"] = "inpaint"  # type: ignore[assignment]
    model: InpaintModel = Field(default_factory=InpaintModel)
    sample: InpaintSample = Field(default_factory=InpaintSample)


class SuperresModel(ModelSpec):
    """Freeman et al.'s patch dictionary and one-pass search."""

    scale: int = Field(2, ge=2, le=8, description="Upsampling factor.")
    patch: int = Field(
        5, ge=2, le=31,
        description="Side N of the high-frequency patches; neighbours overlap by one pixel.")
    context: int = Field(
        7, ge=3, le=63,
        description="Side M of the band-pass patch of the interpolated low-resolution image "
        "that indexes a high-frequency patch (centred on it).")
    alpha: float | None = Field(
        None, ge=0,
        description="Weight of the neighbour-compatibility term; unset: the paper's "
        "0.1 * M^2 / (2N - 1).")
    neighbours: int = Field(
        1, ge=1, le=256,
        description="1: copy the nearest patch (the paper); k: average the k nearest.")
    dictionary_size: int = Field(
        20000, ge=1, le=1_000_000,
        description="Patch pairs kept, drawn from all training positions (seeded by train.seed).")
    band_sigma: float = Field(
        1.0, gt=0, le=16,
        description="The band-pass input is the interpolated image minus its Gaussian blur "
        "of this sigma.")
    contrast_floor: float = Field(
        0.01, gt=0, le=1,
        description="delta in the contrast normalisation: patches are divided by "
        "mean |band-pass| + delta.")
    examples: int = Field(
        4, ge=1, le=4096,
        description="Held-out images kept (at low resolution) to super-resolve when sampling "
        "without --input; repeated if the test split has fewer.")

    @model_validator(mode="after")
    def _shapes(self) -> SuperresModel:
        if self.context < self.patch or (self.context - self.patch) % 2:
            raise ValueError(f"model.context = {self.context}: must be at least model.patch "
                             f"({self.patch}) and differ from it by an even number")
        return self


def _superres_data() -> DataSpec:
    return DataSpec(source="skimage:brick/2", image_size=32)


class SuperresSpec(Spec):
    """Example-based super-resolution spec."""

    family: Literal["superres"] = "superres"
    model: SuperresModel = Field(default_factory=SuperresModel)
    data: DataSpec = Field(default_factory=_superres_data)
    train: StoreTrain = Field(default_factory=StoreTrain)
    sample: StoreSample = Field(default_factory=StoreSample)

    @model_validator(mode="after")
    def _divisible(self) -> SuperresSpec:
        size, m = self.data.image_size, self.model
        if size % m.scale:
            raise ValueError(f"data.image_size = {size} is not a multiple of model.scale "
                             f"({m.scale})")
        if size < m.context:
            raise ValueError(f"data.image_size = {size} is smaller than model.context "
                             f"({m.context})")
        return self
