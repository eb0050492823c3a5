"""The ``skimage:NAME[/K]`` data source: a scikit-image sample image cut into tiles.

``skimage:brick`` is ``skimage.data.brick()`` (512×512 grey) at full
resolution; ``skimage:brick/4`` first shrinks it 4 times by averaging 4×4
blocks. The image is then cut into non-overlapping ``data.image_size``
tiles, row by row, and the tiles are split 90/10 into train and test by
genzoo's fixed split, so held-out tiles never share a pixel with training
ones. The textures ``brick``, ``grass`` and ``gravel`` suit the
non-parametric families; any other uint8 image scikit-image ships works too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from zoo.core.errors import DataError

if TYPE_CHECKING:
    from zoo.core.spec import DataSpec
    from zoo.data import ImageData

PREFIX = "skimage"
TEXTURES = ("brick", "grass", "gravel")


def parse_source(source: str) -> tuple[str, int]:
    """``"skimage:brick/4"`` -> ``("brick", 4)``; one-line ``DataError`` when malformed."""
    rest = source.partition(":")[2]
    name, slash, factor = rest.partition("/")
    if not name or (slash and not factor.isdigit()) or (slash and not 1 <= int(factor) <= 64):
        raise DataError(f"data source {source!r}: expected skimage:NAME or skimage:NAME/K "
                        f"with K in 1..64, e.g. skimage:brick/4 (textures: {', '.join(TEXTURES)})")
    return name, int(factor) if slash else 1


def read_image(name: str) -> np.ndarray:
    """``skimage.data.<name>()`` as uint8 H×W×C (C = 1 or 3)."""
    import skimage.data

    loader = getattr(skimage.data, name, None)
    if not callable(loader) or name.startswith("_"):
        raise DataError(f"scikit-image has no sample image {name!r} "
                        f"(textures: {', '.join(TEXTURES)})")
    try:
        image = np.asarray(loader())
    except Exception as exc:  # e.g. images that need a download
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"skimage.data.{name}() is not available here: {message}") from None
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise DataError(f"skimage.data.{name}() is not a uint8 image (dtype {image.dtype}, "
                        f"shape {image.shape})")
    image = image[:, :, None] if image.ndim == 2 else image[:, :, :3]
    return image


def shrink(image: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor × factor`` blocks (H×W×C uint8 -> uint8)."""
    if factor == 1:
        return image
    h, w = image.shape[0] // factor * factor, image.shape[1] // factor * factor
    blocks = image[:h, :w].reshape(h // factor, factor, w // factor, factor, -1)
    return np.round(blocks.mean(axis=(1, 3))).astype(np.uint8)


def tiles(image: np.ndarray, size: int) -> np.ndarray:
    """Non-overlapping ``size × size`` tiles of an H×W×C image, row by row: N×C×size×size."""
    rows, cols = image.shape[0] // size, image.shape[1] // size
    cut = image[: rows * size, : cols * size]
    out = cut.reshape(rows, size, cols, size, -1).transpose(0, 2, 4, 1, 3)
    return np.ascontiguousarray(out.reshape(rows * cols, -1, size, size))


def load_skimage(spec: DataSpec, split: str) -> ImageData:
    """The tiles of one split (a genzoo data-source loader)."""
    import torch

    from zoo.data import ImageData, split_indices

    name, factor = parse_source(spec.source)
    image = shrink(read_image(name), factor)
    if min(image.shape[:2]) < spec.image_size:
        raise DataError(f"{spec.source} is {image.shape[0]}x{image.shape[1]}, smaller than "
                        f"data.image_size = {spec.image_size}")
    all_tiles = tiles(image, spec.image_size)
    chosen = np.sort(split_indices(len(all_tiles), None, split))
    return ImageData(torch.from_numpy(all_tiles[chosen]), None)
