"""Image files under a folder: the walk (links, unreadable subfolders) and the
``folder`` data source."""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from zoo.core.errors import DataError
from zoo.data.decode import IMAGE_SUFFIXES, ImageTooLarge
from zoo.data.source import ImageSource, KeyTable
from zoo.data.warn import warn_once

if TYPE_CHECKING:
    from zoo.core.spec import DataSpec


def load_folder(spec: DataSpec, split: str) -> FolderSource:
    """Every image under ``data.path`` (recursively), as an indexed source: listed here,
    decoded batch by batch while training (in DataLoader workers).

    A subfolder that cannot be listed is left out with a one-line warning; unreadable
    images are skipped when their batch is decoded (:func:`zoo.data.rows.decode_rows`).
    """
    if not spec.path:
        raise DataError("data source 'folder' needs data.path (a folder of images)")
    root = Path(spec.path)
    if not root.is_dir():
        raise DataError(f"data.path {str(root)!r} is not a folder")
    listing = find_images(root)
    warn_unlisted(listing)
    if not listing.files:
        raise DataError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {root}")
    return FolderSource(root, listing.files)


class FolderSource(ImageSource):
    """The image files under a folder; key: the POSIX path relative to the folder (NFC),
    so a folder, the shards packed from it and an hf data set with those keys agree."""

    def __init__(self, root: Path, files: list[Path]) -> None:
        self.name = f"folder {root}"
        self.root = root
        paths = [f.relative_to(root).as_posix() for f in files]
        names = [unicodedata.normalize("NFC", path) for path in paths]
        self.keys, order = KeyTable.sorted(names, what=self.name)
        # the names as stored, where a file system keeps them decomposed (NFD)
        self.paths = None if names == paths else KeyTable.of_sorted(
            paths[i].encode("utf-8", "surrogateescape") for i in order)

    def read(self, i: int) -> Path:
        """The file of row ``i`` (its key, under the folder)."""
        return self.root / (self.keys if self.paths is None else self.paths)[i]

    def seeded_rows(self) -> np.ndarray:
        """The rows the seeded split (``data.split = "seeded"``) numbers: the files in
        ``Path`` order less those over the pixel limit, as the folder source listed them
        before it was indexed, so a folder model trained then is scored on its own split.
        Reads every file's header."""
        from zoo.data.decode import open_image

        def readable(row: int) -> bool:
            try:
                with open_image(self.read(row)):
                    return True
            except ImageTooLarge:
                return False
            except DataError:
                return True  # was an error then; skipped when its batch is decoded now

        order = sorted(range(len(self)), key=lambda row: self.read(row))
        return np.asarray([row for row in order if readable(row)], dtype=np.int64)


@dataclass(frozen=True)
class ImageFiles:
    """The image files under a folder (sorted) and what a walk of it left out."""

    files: list[Path]
    #: Subfolders that could not be listed, each with the reason (e.g. "Permission denied").
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    #: Symbolic links to files outside the folder, left out unless ``follow_links``.
    outside_links: list[Path] = field(default_factory=list)


def find_images(root: Path, follow_links: bool = True) -> ImageFiles:
    """Image files under ``root``, recursively, in sorted order.

    Symbolic links to files count; a link whose target lies outside ``root``
    is left out (and listed) unless ``follow_links``. Linked folders are not
    entered. A subfolder that cannot be listed is reported, not silently
    skipped. ``Path.rglob`` would do neither.
    """
    root = Path(root)
    real_root = root.resolve()
    files: list[Path] = []
    outside: list[Path] = []
    unreadable: list[tuple[Path, str]] = []

    def failed(exc: OSError) -> None:
        unreadable.append((Path(exc.filename), exc.strerror or type(exc).__name__))

    for folder, _, names in os.walk(root, onerror=failed):
        for name in names:
            path = Path(folder) / name
            if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
                continue
            if (path.is_symlink() and not follow_links
                    and not path.resolve().is_relative_to(real_root)):
                outside.append(path)
                continue
            files.append(path)
    return ImageFiles(sorted(files), sorted(unreadable), sorted(outside))


def warn_unlisted(listing: ImageFiles) -> None:
    """One warning line per subfolder of ``listing`` that could not be listed."""
    for folder, reason in listing.unreadable:
        warn_once(f"cannot list folder {folder} ({reason}); its images are left out",
                  key=folder.resolve())


def warn_skipped(exc: ImageTooLarge, file: Path) -> None:
    """One warning line for an image left out as too large (once per file and process)."""
    warn_once(f"skipping {exc}", key=Path(file).resolve())
