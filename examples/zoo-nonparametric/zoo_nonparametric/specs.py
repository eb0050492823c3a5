"""The specs and sampling options of the three families: pydantic only, no torch (``zoo
list`` and ``zoo spec`` stay fast)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from zoo import SamplingOptions
from zoo.core.spec import DataSpec, ModelSpec, SampleSpec, Spec, TrainSpec

#: Smallest side of a synthesised texture (its 3×3 seed) and the largest.
SIZES = (3, 4096)


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
        "place into a random exemplar when sampling without an input image.")


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
        "without an input image; repeated if the test split has fewer.")

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


# --------------------------------------------------------------------------- sampling options


def parse_size(value: Any) -> tuple[int, int] | None:
    """``64``, ``"64"``, ``"48x96"``, ``(48, 96)`` or ``[48, 96]`` -> (height, width); a
    one-line ``ValueError`` otherwise."""
    if value is None:
        return None
    pair: Any = value
    if isinstance(value, str):
        parts = value.lower().split("x")
        pair = ([int(p) for p in parts] if len(parts) in (1, 2)
                and all(p.strip().isdigit() for p in parts) else None)
    elif isinstance(value, int) and not isinstance(value, bool):
        pair = [value]
    elif isinstance(value, tuple | list):
        pair = list(value)
    if (isinstance(pair, list) and len(pair) in (1, 2)
            and all(isinstance(v, int) and not isinstance(v, bool) for v in pair)):
        pair = pair * 2 if len(pair) == 1 else pair
        if all(SIZES[0] <= v <= SIZES[1] for v in pair):
            return pair[0], pair[1]
    shown = value if isinstance(value, str) else repr(value)
    raise ValueError(f"size {shown[:40]}: expected N or HxW (e.g. 64 or 48x96), each side "
                     f"in {SIZES[0]}..{SIZES[1]}")


def image_option(value: Any) -> Any:
    """An image option as given: a path (str or ``Path``, read with
    ``zoo.sampling.sample.read_image``: a missing or unreadable file is a one-line
    ``DataError``) or an image tensor (checked when sampling)."""
    if isinstance(value, str | Path):
        if not str(value).strip():
            raise ValueError("expected an image file path, got an empty one")
        from zoo.sampling.sample import read_image  # imports torch: only when a path is given

        return read_image(value)
    return value


class TextureOptions(SamplingOptions):
    """How large a texture ``zoo sample`` grows."""

    size: tuple[int, int] | None = Field(
        None, description="Output size: N (N x N) or HxW, e.g. 64 or 48x96; unset: "
        "data.image_size.")

    @field_validator("size", mode="before")
    @classmethod
    def _size(cls, value: Any) -> tuple[int, int] | None:
        return parse_size(value)


class InpaintOptions(SamplingOptions):
    """The image to in-paint and its mask (both, or neither: then random demo holes)."""

    input: Any = Field(
        None, description="Image to in-paint: a file path, or a C x H x W tensor in [0, 1]; "
        "unset: holes cut into the stored exemplars.")
    mask: Any = Field(
        None, validate_default=True,
        description="Mask of the same size as input (path or tensor): pixels above half "
        "grey are filled, every other pixel is kept bit for bit.")

    _image = field_validator("input", "mask", mode="before")(image_option)

    @field_validator("mask")
    @classmethod
    def _both(cls, mask: Any, info: ValidationInfo) -> Any:
        if (info.data.get("input") is None) != (mask is None):
            raise ValueError("in-painting needs both an image and a mask (input and mask)")
        return mask


class SuperresOptions(SamplingOptions):
    """The image to super-resolve."""

    input: Any = Field(
        None, description="Image to super-resolve: a file path, or a C x H x W tensor in "
        "[0, 1]; unset: the stored held-out examples.")

    _image = field_validator("input", mode="before")(image_option)


# --------------------------------------------------------------------------- scene completion


class SceneModel(ModelSpec):
    """Hays & Efros scene completion: the database, its descriptor, the search and the cut."""

    database: int = Field(
        32, ge=2, le=1_000_000,
        description="Training images kept as the scene database (the first ones); a build "
        "with fewer is a one-line error. A streamed source (folder, hf:, wds:) gives its "
        "first data.fit_images images, so raise that for a larger database.")
    grid: int = Field(
        4, ge=1, le=16,
        description="The descriptor pools filter energies and colour on a grid x grid of "
        "cells; each cell of a query is weighted by its known (unmasked) fraction.")
    scales: tuple[float, ...] = Field(
        (1.0, 2.0, 4.0),
        description="Gaussian-derivative scales (sigma in pixels at 64x64, scaled with "
        "data.image_size) of the oriented filter energies.")
    orientations: int = Field(4, ge=1, le=16, description="Filter orientations per scale.")
    colour_weight: float = Field(
        1.0, ge=0, le=100,
        description="Weight of the cell's mean colour against its filter energies.")
    candidates: int = Field(
        20, ge=1, le=10_000,
        description="Nearest scenes (by descriptor) that are aligned, cut and blended; "
        "completions are ranked by their alignment error in the band around the hole.")
    band: float = Field(
        0.08, gt=0, le=0.5,
        description="Width of the band of known context around the hole used to align and "
        "to cut, as a fraction of the image side (the paper's 80 px of ~1000).")
    shift: float = Field(
        0.125, ge=0, le=0.5,
        description="Largest translation tried when aligning a scene, as a fraction of the "
        "image side.")
    zooms: tuple[float, ...] = Field(
        (0.9, 1.0, 1.1), description="Scales tried when aligning a scene.")
    seam_bias: float = Field(
        0.0, ge=0, le=100,
        description="Cost per pixel taken from a scene, growing with (distance to the hole "
        "/ band)^3 as in the paper: keeps the seam near the hole.")

    @field_validator("scales", "zooms")
    @classmethod
    def _positive(cls, values: tuple[float, ...]) -> tuple[float, ...]:
        if not values or any(not 0 < v <= 64 for v in values):
            raise ValueError("expected one or more numbers in (0, 64]")
        return tuple(values)


def _scene_data() -> DataSpec:
    return DataSpec(source="skimage:coffee/2", image_size=32, channels=3)


class SceneSample(StoreSample):
    """Without an input image, sampling completes a hole cut into a stored scene."""

    n: int = Field(8, ge=1, le=100_000, description="Number of images in the sample grid.")
    hole: float = Field(
        0.4, gt=0, lt=1,
        description="Side of the square hole (fraction of data.image_size) cut at a random "
        "place into a random database image when sampling without an input image.")


class SceneSpec(Spec):
    """Scene completion spec."""

    family: Literal["scene"] = "scene"
    model: SceneModel = Field(default_factory=SceneModel)
    data: DataSpec = Field(default_factory=_scene_data)
    train: StoreTrain = Field(default_factory=StoreTrain)
    sample: SceneSample = Field(default_factory=SceneSample)

    @model_validator(mode="after")
    def _grid_fits(self) -> SceneSpec:
        if self.model.grid > self.data.image_size:
            raise ValueError(f"model.grid = {self.model.grid} is larger than "
                             f"data.image_size = {self.data.image_size}")
        return self


class SceneOptions(InpaintOptions):
    """The photo to complete and its hole (both, or neither: then demo holes)."""

    input: Any = Field(
        None, description="Photo to complete: a file path, or a C x H x W tensor in [0, 1]; "
        "sample i is the completion from the i-th best scene. Unset: each sample cuts a "
        "hole into a random database image and fills it from the other images.")
    mask: Any = Field(
        None, validate_default=True,
        description="Mask of the same size as input (path or tensor): pixels above half "
        "grey are the hole; pixels outside the cut region are kept bit for bit.")
    blend: bool = Field(
        True, description="Poisson-blend the scene into the photo (off: paste it along "
        "the graph cut).")
