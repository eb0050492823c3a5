"""Small image sets for the tests of the hf: and wds: sources and zoo data pack: a folder of
PNG and JPEG files (subfolders, a dotted name, a non-ASCII name) and the same images as a
Hugging Face data set saved with ``save_to_disk``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def photo_folder(root: Path, n: int = 40) -> Path:
    """``n`` small images of varied shapes under ``root``: PNG and JPEG, RGB and grey, in two
    subfolders, one name with dots and one with non-ASCII letters."""
    rng = np.random.default_rng(0)
    for i in range(n):
        folder = root / ("cats" if i % 3 == 0 else "dogs/small" if i % 3 == 1 else "")
        folder.mkdir(parents=True, exist_ok=True)
        name = {5: "img.v2.final", 7: "chaton-été", 11: "50%off"}.get(i, f"img{i:02d}")
        h, w = int(rng.integers(12, 40)), int(rng.integers(12, 40))
        pixels = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        image = Image.fromarray(pixels)
        if i % 4 == 0:
            image = image.convert("L")
        image.save(folder / f"{name}.{'jpg' if i % 2 else 'png'}")
    return root


def saved_hf(folder: Path, out: Path, labels: bool = True) -> Path:
    """The images of ``folder`` as a ``datasets`` data set saved with ``save_to_disk``: columns
    ``image`` (the file bytes embedded), ``path`` (the relative path: the folder's key) and
    ``label`` (a ClassLabel: the first folder level)."""
    from datasets import ClassLabel, Dataset, Features, Value
    from datasets import Image as HFImage

    files = sorted(p for p in folder.rglob("*") if p.is_file())
    keys = [f.relative_to(folder).as_posix() for f in files]
    names = ["cats", "dogs", "top"]
    columns = {"image": [str(f) for f in files], "path": keys}
    features = {"image": HFImage(), "path": Value("string")}
    if labels:
        columns["label"] = [names.index(k.split("/")[0]) if "/" in k else 2 for k in keys]
        features["label"] = ClassLabel(names=names)
    Dataset.from_dict(columns, features=Features(features)).save_to_disk(str(out))
    return out
