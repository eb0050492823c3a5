"""Synthetic photo collections from scikit-image's bundled photographs (nothing downloaded).

For tests, benchmarks and figures of ``scene``: random crops of random
scale of ``astronaut``, ``coffee``, ``chelsea``, ``rocket`` and friends,
flipped at random and jittered in brightness and colour, at one size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: Colour photographs scikit-image ships (no download needed).
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry",
          "hubble_deep_field")


def bundled(name: str) -> np.ndarray:
    """``skimage.data.<name>()`` as uint8 H×W×3."""
    import skimage.data

    image = np.asarray(getattr(skimage.data, name)())
    return image[..., :3] if image.ndim == 3 else np.repeat(image[..., None], 3, 2)


def crop(image: np.ndarray, size: int, rng: np.random.Generator, jitter: bool = True
         ) -> np.ndarray:
    """A random square crop (side 1/4 to all of the short side) resized to ``size``, flipped
    and (``jitter``) brightness/colour jittered: uint8 size×size×3."""
    from PIL import Image

    h, w = image.shape[:2]
    side = int(rng.integers(min(h, w) // 4, min(h, w) + 1))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    patch = Image.fromarray(image[y : y + side, x : x + side])
    out = np.asarray(patch.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float64)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    if jitter:
        out = out * rng.uniform(0.8, 1.2) * rng.uniform(0.9, 1.1, 3) + rng.uniform(-15, 15)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def collection(count: int, size: int, seed: int = 0, names: tuple[str, ...] = PHOTOS
               ) -> np.ndarray:
    """``count`` synthetic photos, uint8 count×size×size×3, seeded."""
    rng = np.random.default_rng(seed)
    sources = [bundled(name) for name in names]
    return np.stack([crop(sources[int(rng.integers(len(sources)))], size, rng)
                     for _ in range(count)])


def write_folder(images: np.ndarray, folder: Path) -> Path:
    """Save images (N×H×W×3 uint8) as ``folder/00000.png``, ... and return the folder."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:05d}.png")
    return folder
