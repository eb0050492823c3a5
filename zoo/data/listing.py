"""The image files under a folder, walked once and cached: the ``folder`` source's index.

A walk (``os.scandir``, no ``stat`` per regular file) gives the files' keys — POSIX paths
relative to the folder, NFC-normalised, sorted by UTF-8 bytes — and a *stamp* of every
directory it listed: ``(st_mtime_ns, st_ctime_ns, st_ino, st_dev)``. Adding, removing or
renaming an entry sets its directory's mtime and ctime, a chmod its ctime, and a folder
replaced by another has another inode, so the listing is still the folder's exactly when
every directory still has its stamp: a later run checks one ``stat`` per directory instead
of walking every file. (Edits to a file's bytes do not change the list, and an image that no
longer reads is skipped when it is decoded, like any bad image.)

A change within the same file-system clock tick as the walk could keep a stamp, so a walk
that saw a directory modified less than :data:`RACY_SECONDS` ago is not cached (git's
"racy" rule). The cache lives under ``zoo_home()/data/folders/``, one compressed ``.npz`` per
folder (keyed by its real path); an unwritable or unreadable cache is silently skipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zoo.data.decode import IMAGE_SUFFIXES
from zoo.data.source import KeyTable

FORMAT = "genzoo-listing/1"
#: A walk that finds more image files than this says so on stderr (and how long it took).
PROGRESS_FILES = 10_000
#: A directory modified this recently when walked is not trusted to keep its stamp.
RACY_SECONDS = 2.0


@dataclass
class Walk:
    """What one walk of a folder found: image files (relative paths as the file system
    names them, ``/``-separated), subfolders it could not list, links it left out, and the
    stamp of every directory it listed (``None``: one could not be stamped)."""

    files: list[str] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    outside_links: list[Path] = field(default_factory=list)
    stamps: dict[str, tuple[int, int, int, int]] | None = field(default_factory=dict)
    newest: int = 0  # the largest directory mtime seen (ns)


def stamp(path: str | Path) -> tuple[int, int, int, int]:
    """A directory's ``(mtime_ns, ctime_ns, inode, device)``."""
    st = os.lstat(path)
    return st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev


def walk(root: Path, follow_links: bool = True, progress: bool = False) -> Walk:
    """Image files under ``root``, recursively (unsorted): links to files count, a link to a
    file outside ``root`` is left out (and listed) unless ``follow_links``, linked folders
    are not entered, and a subfolder that cannot be listed is reported. ``progress``: a line
    on stderr when the walk passes :data:`PROGRESS_FILES` files."""
    found = Walk()
    real_root = Path(root).resolve()
    pending = [""]
    announced = False
    while pending:
        rel = pending.pop()
        path = os.path.join(root, rel) if rel else os.fspath(root)
        try:
            mark = stamp(path)
        except OSError:
            found.stamps, mark = None, None
        try:
            with os.scandir(path) as listing:
                entries = list(listing)
        except OSError as exc:
            found.unreadable.append((Path(exc.filename or path),
                                     exc.strerror or type(exc).__name__))
            entries = []
        if mark is not None and found.stamps is not None:
            found.stamps[rel] = mark
            found.newest = max(found.newest, mark[0])
        for entry in entries:
            name = f"{rel}/{entry.name}" if rel else entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(name)
                    continue
                if (os.path.splitext(entry.name)[1].lower() not in IMAGE_SUFFIXES
                        or not entry.is_file()):
                    continue
                if (not follow_links and entry.is_symlink()
                        and not Path(entry.path).resolve().is_relative_to(real_root)):
                    found.outside_links.append(Path(root) / name)
                    continue
            except OSError:
                continue
            found.files.append(name)
        if progress and not announced and len(found.files) > PROGRESS_FILES:
            announced = True
            print(f"listing the images under {root} ...", file=sys.stderr, flush=True)
    found.unreadable.sort()
    found.outside_links.sort()
    return found


@dataclass(frozen=True)
class Listing:
    """A folder's image files as the ``folder`` source indexes them: ``keys`` (NFC relative
    POSIX paths, sorted by UTF-8 bytes), ``paths`` (the same rows as the file system names
    them, where some name is stored decomposed; else None) and the subfolders left out."""

    keys: KeyTable
    paths: KeyTable | None
    unreadable: list[tuple[Path, str]] = field(default_factory=list)


def index(files: list[str], what: str) -> tuple[KeyTable, KeyTable | None]:
    """The sorted key table of relative paths ``files``, and their stored names in the same
    order where NFC normalisation changed one (else None)."""
    names = [unicodedata.normalize("NFC", f) for f in files]
    keys, order = KeyTable.sorted(names, what=what)
    paths = None if names == files else KeyTable.of_sorted(
        files[i].encode("utf-8", "surrogateescape") for i in order)
    return keys, paths


def list_folder(root: Path, cache: bool = True) -> Listing:
    """The image files under ``root`` (links followed; see :func:`walk`), from the listing
    cache when every directory of the folder is as it was walked, else walked (and cached).
    A walk of more than :data:`PROGRESS_FILES` files says so on stderr."""
    root = Path(root)
    file = cache_file(root) if cache else None
    cached = _read(file, root) if file else None
    if cached is not None:
        return cached
    started, wall = time.perf_counter(), time.time_ns()
    found = walk(root, progress=True)
    keys, paths = index(found.files, f"folder {root}")
    listing = Listing(keys, paths, found.unreadable)
    settled = found.stamps is not None and found.newest < wall - RACY_SECONDS * 1e9
    kept = file is not None and settled and _write(file, root, listing, found)
    if len(found.files) > PROGRESS_FILES:
        print(f"listed {len(found.files):,} images under {root} in "
              f"{time.perf_counter() - started:.1f} s"
              + ("; the list is cached until the folder changes" if kept else ""),
              file=sys.stderr, flush=True)
    return listing


def cache_file(root: Path) -> Path | None:
    """Where the listing of ``root`` is cached: named by a hash of its real path."""
    from zoo.core.home import zoo_home

    try:
        real = _real(root).encode()
    except (OSError, RuntimeError):
        return None
    return zoo_home() / "data" / "folders" / f"{hashlib.sha256(real).hexdigest()[:32]}.npz"


def _real(root: Path) -> str:
    """The real path of ``root`` as JSON can hold it (undecodable bytes escaped)."""
    return os.fsencode(Path(root).resolve()).decode("utf-8", "backslashreplace")


def _table(arrays, name: str) -> KeyTable:
    return KeyTable(arrays[f"{name}_blob"], arrays[f"{name}_offsets"])


def _read(file: Path, root: Path) -> Listing | None:
    """The cached listing of ``root``, or None when there is none, it is unreadable, or a
    directory's stamp changed."""
    try:
        with np.load(file, allow_pickle=False) as arrays:
            meta = json.loads(arrays["meta"].tobytes())
            if meta.get("format") != FORMAT or meta.get("root") != _real(root):
                return None
            dirs, stamps = _table(arrays, "dirs"), arrays["stamps"]
            now = _stamps(stamp(root / rel if rel else root) for rel in dirs)
            if not np.array_equal(now, stamps):
                return None
            paths = _table(arrays, "paths") if meta.get("paths") else None
            return Listing(_table(arrays, "keys"), paths,
                           [(Path(p), reason) for p, reason in meta.get("unreadable", [])])
    except Exception:  # no cache, a partial or foreign file, a folder gone: walk again
        return None


def _stamps(values) -> np.ndarray:
    """Stamps as uint64 rows (an inode may not fit int64; an mtime may be negative)."""
    return np.asarray([[v & MASK for v in row] for row in values], dtype=np.uint64
                      ).reshape(-1, 4)


MASK = 2**64 - 1


def _write(file: Path, root: Path, listing: Listing, found: Walk) -> bool:
    """Write the cache atomically; False (silently) when it cannot be written."""
    names = sorted(found.stamps)
    dirs = KeyTable.of_sorted(n.encode("utf-8", "surrogateescape") for n in names)
    meta = {"format": FORMAT, "root": _real(root), "paths": listing.paths is not None,
            "unreadable": [[os.fspath(p), reason] for p, reason in listing.unreadable]}
    arrays = {"meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
              "stamps": _stamps(found.stamps[n] for n in names)}
    for name, table in (("keys", listing.keys), ("dirs", dirs), ("paths", listing.paths)):
        if table is not None:
            arrays[f"{name}_blob"], arrays[f"{name}_offsets"] = table._blob, table._offsets
    tmp = file.with_name(f"{file.stem}.tmp-{os.getpid()}.npz")
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as out:
            np.savez_compressed(out, **arrays)
        os.replace(tmp, file)
        return True
    except (OSError, ValueError):
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        return False
