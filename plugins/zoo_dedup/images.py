"""What ``zoo dedup`` reads: a folder of image files or a registered data set, in chunks.

Every image is reduced the way the hashing model sees it: the short side
resized to the model's size (bicubic), then center-cropped; grey or RGB as the
model expects. Files are decoded by a small thread pool (PIL releases the GIL
while decoding) through :func:`zoo.data.decode_image`, the decoder of the
folder data source. Paths are reported as given: ``SOURCE/relative/path`` for
a folder, ``NAME/split/index`` for a data set.

What a folder source leaves out is kept on the :class:`Source` and counted in
the summary: subfolders that cannot be listed, symbolic links to files outside
the folder (unless ``follow_links``), and images over the pixel limit.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from zoo.core.errors import DataError
from zoo.data import (
    GREY_MODES,
    IMAGE_SUFFIXES,
    SPLITS,
    ImageTooLarge,
    decode_image,
    find_images,
    open_image,
    warn_once,
    warn_skipped,
    warn_unlisted,
)


@dataclass(frozen=True)
class Source:
    """An image source: ``paths`` as reported; ``files`` for a folder, ``dataset`` otherwise.

    For a folder, ``unreadable`` (subfolders that could not be listed),
    ``outside_links`` (links to files outside it, left out) and ``too_large``
    (images over the pixel limit, dropped by :meth:`without`) say what is not in it.
    """

    name: str
    paths: list[str]
    files: list[Path] | None = None
    dataset: str | None = None
    unreadable: tuple[Path, ...] = ()
    outside_links: tuple[Path, ...] = ()
    too_large: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def is_folder(self) -> bool:
        """Whether the images are files (a folder) rather than a registered data set."""
        return self.files is not None

    def without(self, indices: list[int]) -> Source:
        """This folder source less the images at ``indices``, recorded as too large."""
        if not indices:
            return self
        gone = set(indices)
        keep = [i for i in range(len(self.paths)) if i not in gone]
        return replace(self, paths=[self.paths[i] for i in keep],
                       files=[self.files[i] for i in keep],
                       too_large=self.too_large + tuple(self.paths[i] for i in indices))


def open_source(source: str, follow_links: bool = False) -> Source:
    """A folder (searched recursively, sorted) or a registered data set; one-line errors.

    In a folder, a symbolic link to a file outside it is left out unless
    ``follow_links``; such links and subfolders that cannot be listed get one
    warning line (on stderr) and are counted.
    """
    root = Path(source)
    if root.is_dir():
        listing = find_images(root, follow_links=follow_links)
        warn_unlisted(listing)
        if listing.outside_links:
            count = len(listing.outside_links)
            warn_once(f"left out {count:,} symbolic link{'s' if count > 1 else ''} to files "
                      f"outside {source} (e.g. {listing.outside_links[0]}); --follow-links "
                      "includes them")
        files = listing.files
        if not files:
            raise DataError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {source}")
        return Source(source, [os.path.join(source, p.relative_to(root).as_posix())
                               for p in files], files=files,
                      unreadable=tuple(folder for folder, _ in listing.unreadable),
                      outside_links=tuple(listing.outside_links))
    if root.exists():
        raise DataError(f"{source} is a file, not a folder of images or a data set name")
    from zoo.core.registry import get_registry

    registry = get_registry()
    if source not in registry.datasets or source == "folder" or registry.datasets[source].prefix:
        known = sorted(n for n, r in registry.datasets.items() if n != "folder" and not r.prefix)
        raise DataError(f"{source!r} is neither a folder nor a registered data set "
                        f"(data sets: {', '.join(known)})")
    from zoo.core.spec import DataSpec
    from zoo.data import split_size

    counts = [split_size(DataSpec(source=source), split) for split in SPLITS]
    paths = [f"{source}/{split}/{i}" for split, n in zip(SPLITS, counts, strict=True)
             for i in range(n)]
    return Source(source, paths, dataset=source)


def dataset_split(name: str, split: str, size: int | None = None):
    """The uint8 ``N×C×H×W`` images of one split of a registered data set: an in-memory
    one as its loader gives them, an indexed one's rows of ``split`` (its hash split, so the
    two splits hold every image once) decoded at ``size`` (default: ``data.image_size``)."""
    from zoo.core.spec import DataSpec
    from zoo.data import ImageSource, decode_view, open_source

    spec = DataSpec(source=name)
    data = open_source(spec, split)
    if isinstance(data, ImageSource):
        spec = spec.model_copy(update={"image_size": size or spec.image_size})
        return decode_view(data, spec, split)[0]
    return data.images


def is_grey(source: Source) -> bool:
    """Whether every image is greyscale: file headers for a folder, the record for a data set."""
    if not source.is_folder:
        from zoo.core.registry import get_dataset

        return get_dataset(source.dataset).channels == 1
    return scan_headers(source)[0]


def scan_headers(source: Source) -> tuple[bool, list[int]]:
    """From a folder's file headers (no pixels decoded): whether every image is grey, and
    the indices of images over the pixel limit (:class:`zoo.data.ImageTooLarge`)."""
    grey, too_large = True, []
    for index, file in enumerate(source.files):
        try:
            with open_image(file) as img:
                grey = grey and img.mode in GREY_MODES
        except ImageTooLarge as exc:
            warn_skipped(exc, file)
            too_large.append(index)
    return grey, too_large


def read_file(path: Path, size: int, channels: int) -> np.ndarray:
    """One image file as uint8 ``C×size×size`` (JPEGs decode at a reduced scale >= size)."""
    array = decode_image(path, "L" if channels == 1 else "RGB", size, draft=True)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def iter_chunks(source: Source, size: int, channels: int, chunk: int = 1024,
                workers: int | None = None, skipped: list[int] | None = None
                ) -> Iterator[np.ndarray]:
    """uint8 ``n×C×size×size`` arrays of consecutive images, ``chunk`` at a time, in order.

    Each of ``workers`` threads (default: the cores available) decodes one
    contiguous slice of a chunk; one task per image would cost more in
    scheduling than small images take to decode. An image over the pixel limit
    raises :class:`zoo.data.ImageTooLarge`, or, given a ``skipped`` list, is
    left out of its chunk with a one-line warning and its index appended there.
    """
    if not source.is_folder:
        yield from _dataset_chunks(source, size, channels, chunk)
        return
    workers = workers or len(os.sched_getaffinity(0))

    def decode(start: int, files: list[Path]) -> list[np.ndarray | tuple[int, ImageTooLarge]]:
        out: list[np.ndarray | tuple[int, ImageTooLarge]] = []
        for i, file in enumerate(files, start):
            try:
                out.append(read_file(file, size, channels))
            except ImageTooLarge as exc:
                if skipped is None:
                    raise
                out.append((i, exc))
        return out

    with ThreadPoolExecutor(workers) as pool:
        for start in range(0, len(source.files), chunk):
            files = source.files[start : start + chunk]
            step = -(-len(files) // workers)
            starts = range(0, len(files), step)
            slices = pool.map(decode, [start + i for i in starts],
                              [files[i : i + step] for i in starts])
            images = []
            for item in (item for part in slices for item in part):
                if isinstance(item, tuple):
                    index, exc = item
                    warn_skipped(exc, source.files[index])
                    skipped.append(index)
                else:
                    images.append(item)
            if images:
                yield np.stack(images)


def _dataset_chunks(source: Source, size: int, channels: int, chunk: int
                    ) -> Iterator[np.ndarray]:
    import torch

    from zoo.data import to_float

    for split in SPLITS:
        images = dataset_split(source.dataset, split, size)
        for start in range(0, len(images), chunk):
            x = to_float(images[start : start + chunk], channels, size)
            yield x.mul(255).round().to(torch.uint8).numpy()
