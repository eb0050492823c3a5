"""The docs figure of ``scene``: photo with a hole | ``inpaint`` | ``scene`` (best 3).

A database of 2,000 synthetic 64×64 photos (crops, scales, flips and colour
jitter of scikit-image's bundled photographs, ``zoo_nonparametric.photos``)
is built into a ``scene`` model and, from the first 8 of them, an
``inpaint`` model; the query is a crop of ``skimage.data.chelsea()`` drawn
with another seed (not in the database) with a 24×24 hole. Each tile is
shown 2× (nearest neighbour). Writes ``docs/img/scene-completion.png``::

    OMP_NUM_THREADS=1 python scripts/scene_strip.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "img" / "scene-completion.png"


def main() -> None:
    """Build both models, complete the query with each, save the strip."""
    from zoo_nonparametric.photos import bundled, collection, crop, write_folder

    import zoo
    from zoo.sampling.sample import grid, save_png

    with tempfile.TemporaryDirectory() as tmp:
        folder = write_folder(collection(2250, 64, seed=0), Path(tmp) / "photos")
        data = ["data.source=folder", f"data.path={folder}", "data.image_size=64",
                "data.channels=3", "data.fit_images=4096", "sample.n=1"]
        scene = zoo.from_pretrained(zoo.build(
            "scene", overrides=[*data, "model.database=2000"], out=Path(tmp) / "scene"))
        inpaint = zoo.from_pretrained(zoo.build(
            "inpaint", overrides=[*data, "model.exemplars=8"], out=Path(tmp) / "inpaint"))
        rng = np.random.default_rng(7)
        photo = crop(bundled("chelsea"), 64, rng, jitter=False)
        image = torch.from_numpy(photo).permute(2, 0, 1).float() / 255
        hole = torch.zeros(64, 64)
        hole[22:46, 18:42] = 1
        shown = torch.where(hole.bool(), torch.tensor(0.5).expand_as(image), image)
        filled = inpaint.sample(1, input=image, mask=hole)
        completed = scene.sample(3, input=image, mask=hole)
        tiles = torch.cat([shown[None], filled, completed])
        tiles = F.interpolate(tiles, scale_factor=2, mode="nearest")
        OUT.parent.mkdir(parents=True, exist_ok=True)
        save_png(grid(tiles, nrow=len(tiles), padding=4), OUT)
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KB): input | inpaint | scene 1-3")


if __name__ == "__main__":
    main()
