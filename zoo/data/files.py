"""Image files under a folder: the walk (links, unreadable subfolders) and the
``folder`` data source."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from zoo.core.errors import DataError
from zoo.data.decode import IMAGE_SUFFIXES, ImageTooLarge
from zoo.data.listing import Listing, index, list_folder, walk
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
    listing = list_folder(root)
    warn_unlisted(listing)
    if not len(listing.keys):
        raise DataError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {root}")
    return FolderSource.of_listing(root, listing.keys, listing.paths)


class FolderSource(ImageSource):
    """The image files under a folder; key: the POSIX path relative to the folder (NFC),
    so a folder, the shards packed from it and an hf data set with those keys agree."""

    def __init__(self, root: Path, files: list[Path]) -> None:
        self.name = f"folder {root}"
        self.root = root
        # paths as stored, where a file system keeps a name decomposed (NFD)
        self.keys, self.paths = index([Path(f).relative_to(root).as_posix() for f in files],
                                      self.name)

    @classmethod
    def of_listing(cls, root: Path, keys: KeyTable, paths: KeyTable | None) -> FolderSource:
        """The source of an indexed listing (:func:`zoo.data.listing.list_folder`)."""
        source = cls.__new__(cls)
        source.name, source.root, source.keys, source.paths = f"folder {root}", root, keys, paths
        return source

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
    found = walk(root, follow_links)
    return ImageFiles(sorted(root / name for name in found.files), found.unreadable,
                      found.outside_links)


def warn_unlisted(listing: ImageFiles | Listing) -> None:
    """One warning line per subfolder of ``listing`` that could not be listed."""
    for folder, reason in listing.unreadable:
        warn_once(f"cannot list folder {folder} ({reason}); its images are left out",
                  key=folder.resolve())


def warn_skipped(exc: ImageTooLarge, file: Path) -> None:
    """One warning line for an image left out as too large (once per file and process)."""
    warn_once(f"skipping {exc}", key=Path(file).resolve())
