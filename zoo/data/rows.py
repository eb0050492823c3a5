"""Decoding a batch of an indexed source's rows, where a bad image never stops an epoch.

A row that cannot be decoded (truncated, corrupt, over the pixel limit, unreadable) is
replaced by the next good row of the same batch (cyclically), so a batch keeps its size and
the replacement is the same on every run; the bad rows' keys and reasons are returned for the
feed to count, warn about once and record (or, under ``data.strict``, to stop on).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from zoo.core.errors import DataError, PluginError
from zoo.data.decode import decode_raw
from zoo.data.warn import warn_once

if TYPE_CHECKING:
    from zoo.data.source import ImageSource


@dataclass(frozen=True)
class DecodedRows:
    """A decoded batch: uint8 ``N×C×S×S`` images, int64 labels (or None) of the rows used,
    and ``(key, reason)`` for each row that was replaced."""

    images: np.ndarray
    labels: np.ndarray | None
    skipped: list[tuple[str, str]]


def decode_rows(source: ImageSource, rows: np.ndarray, mode: str, size: int,
                strict: bool = False) -> DecodedRows:
    """Rows ``rows`` of ``source`` decoded to ``mode`` ("L"/"RGB") at ``size``×``size``.

    A bad row is replaced by the next good row of ``rows`` (cyclically); ``strict`` raises
    its ``DataError`` instead. A batch without one good row is a ``DataError``.
    """
    decoded: list[np.ndarray | None] = []
    skipped: list[tuple[str, str]] = []
    for row in rows:
        row = int(row)
        try:
            decoded.append(decode_raw(source.read(row), mode, size, name=source.keys[row]))
        except DataError as exc:
            if strict:
                raise
            decoded.append(None)
            skipped.append((source.keys[row], str(exc)))
        except MemoryError:
            raise
        except Exception as exc:  # the source's read() broke: this row is bad, the epoch goes on
            reason = (f"data source {source.name}: reading {source.keys[row]!r} raised "
                      f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}")
            if strict:
                raise PluginError(reason) from None
            decoded.append(None)
            skipped.append((source.keys[row], reason))
    good = [i for i, x in enumerate(decoded) if x is not None]
    if not good:
        raise DataError(f"{source.name}: none of a batch's {len(rows)} images could be read "
                        f"(first: {skipped[0][1] if skipped else 'empty batch'})")
    used = np.asarray([i if decoded[i] is not None else next(
        (j for j in good if j > i), good[0]) for i in range(len(decoded))], dtype=np.int64)
    images = np.stack([decoded[i] for i in used])
    images = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
    labels = None if source.labels is None else source.labels[np.asarray(rows)[used]]
    return DecodedRows(np.ascontiguousarray(images), labels, skipped)


def warn_bad_row(source: ImageSource, row: int, reason: str) -> None:
    """One ``warning: skipping ...`` line for a bad row of ``source``, said once per process
    and image: keyed by the resolved file for a file-backed row (as ``zoo dedup``'s header
    scan keys it, so a folder that is scanned and then trained on warns once), else by the
    source and key."""
    try:
        raw = source.read(row)
    except Exception:  # the row that could not be read: keyed by its name
        raw = None
    key = (Path(raw).resolve() if isinstance(raw, str | os.PathLike)
           else (source.name, source.keys[row]))
    warn_once(f"skipping {reason}", key=key)


def decode_good_rows(source: ImageSource, rows: np.ndarray, mode: str, size: int,
                     on_bad: Callable[[int, str, str], None], strict: bool = False,
                     chunk: int = 256) -> tuple[np.ndarray, np.ndarray | None]:
    """Rows ``rows`` of ``source`` decoded (uint8 ``N×C×S×S``) with their labels, bad rows left
    out rather than replaced: for a split decoded whole (evaluation, a family's fit images).
    ``on_bad(row, key, reason)`` hears of each bad row; none readable is a ``DataError``."""
    images, labels = [], []
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        decoded = decode_rows(source, part, mode, size, strict=strict)
        bad = dict(decoded.skipped)
        keep = []
        for i, row in enumerate(part):
            key = source.keys[int(row)]
            if key in bad:
                on_bad(int(row), key, bad[key])
            else:
                keep.append(i)
        images.append(decoded.images[keep])
        if decoded.labels is not None:
            labels.append(decoded.labels[keep])
    stacked = np.concatenate(images) if images else np.zeros((0,), np.uint8)
    if len(stacked) == 0:
        raise DataError(f"{source.name}: none of the {len(rows):,} images could be read")
    return stacked, np.concatenate(labels).astype(np.int64) if labels else None
