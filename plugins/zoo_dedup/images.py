"""What ``zoo dedup`` reads: a folder of image files or a registered data set, in chunks.

Every image is reduced the way the hashing model sees it: the short side
resized to the model's size (bicubic), then center-cropped; grey or RGB as the
model expects. Files are decoded by a small thread pool (PIL releases the GIL
while decoding). Paths are reported as given: ``SOURCE/relative/path`` for a
folder, ``NAME/split/index`` for a data set.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo.data import IMAGE_SUFFIXES, SPLITS, resize_crop
from zoo.errors import DataError

GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})


@dataclass(frozen=True)
class Source:
    """An image source: ``paths`` as reported; ``files`` for a folder, ``dataset`` otherwise."""

    name: str
    paths: list[str]
    files: list[Path] | None = None
    dataset: str | None = None

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def is_folder(self) -> bool:
        """Whether the images are files (a folder) rather than a registered data set."""
        return self.files is not None


def open_source(source: str) -> Source:
    """A folder (searched recursively, sorted) or a registered data set; one-line errors."""
    root = Path(source)
    if root.is_dir():
        files = sorted(p for p in root.rglob("*")
                       if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {source}")
        return Source(source, [os.path.join(source, p.relative_to(root).as_posix())
                               for p in files], files=files)
    if root.exists():
        raise DataError(f"{source} is a file, not a folder of images or a data set name")
    from zoo.registry import get_registry

    registry = get_registry()
    if source not in registry.datasets or source == "folder" or registry.datasets[source].prefix:
        known = sorted(n for n, r in registry.datasets.items() if n != "folder" and not r.prefix)
        raise DataError(f"{source!r} is neither a folder nor a registered data set "
                        f"(data sets: {', '.join(known)})")
    counts = [len(dataset_split(source, split)) for split in SPLITS]
    paths = [f"{source}/{split}/{i}" for split, n in zip(SPLITS, counts, strict=True)
             for i in range(n)]
    return Source(source, paths, dataset=source)


def dataset_split(name: str, split: str):
    """The uint8 ``N×C×H×W`` images of one split of a registered data set."""
    from zoo.registry import dataset_loader
    from zoo.spec import DataSpec

    return dataset_loader(name)(DataSpec(source=name), split).images


def is_grey(source: Source) -> bool:
    """Whether every image is greyscale: file headers for a folder, the record for a data set."""
    if not source.is_folder:
        from zoo.registry import get_dataset

        return get_dataset(source.dataset).channels == 1
    from PIL import Image, UnidentifiedImageError

    for file in source.files:
        try:
            with Image.open(file) as img:
                if img.mode not in GREY_MODES:
                    return False
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"cannot read image {file}: {exc}") from None
    return True


def read_file(path: Path, size: int, channels: int) -> np.ndarray:
    """One image file as uint8 ``C×size×size``."""
    from PIL import Image, UnidentifiedImageError

    mode = "L" if channels == 1 else "RGB"
    try:
        with Image.open(path) as img:
            img.draft(mode, (size, size))  # JPEG: decode at a reduced scale >= size
            array = resize_crop(img.convert(mode), size)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"cannot read image {path}: {exc}") from None
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def iter_chunks(source: Source, size: int, channels: int, chunk: int = 1024,
                workers: int | None = None) -> Iterator[np.ndarray]:
    """uint8 ``n×C×size×size`` arrays of consecutive images, ``chunk`` at a time, in order.

    Each of ``workers`` threads (default: the cores available) decodes one
    contiguous slice of a chunk; one task per image would cost more in
    scheduling than small images take to decode.
    """
    if not source.is_folder:
        yield from _dataset_chunks(source, size, channels, chunk)
        return
    workers = workers or len(os.sched_getaffinity(0))

    def decode(files: list[Path]) -> list[np.ndarray]:
        return [read_file(f, size, channels) for f in files]

    with ThreadPoolExecutor(workers) as pool:
        for start in range(0, len(source.files), chunk):
            files = source.files[start : start + chunk]
            step = -(-len(files) // workers)
            slices = pool.map(decode, [files[i : i + step] for i in range(0, len(files), step)])
            yield np.stack([image for part in slices for image in part])


def _dataset_chunks(source: Source, size: int, channels: int, chunk: int
                    ) -> Iterator[np.ndarray]:
    import torch

    from zoo.data import to_float

    for split in SPLITS:
        images = dataset_split(source.dataset, split)
        for start in range(0, len(images), chunk):
            x = to_float(images[start : start + chunk], channels, size)
            yield x.mul(255).round().to(torch.uint8).numpy()
