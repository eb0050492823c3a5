"""Decoding one image file into uint8 pixels: the one decoder every image goes through.

Header-only opening with a pixel limit (decompression bombs), wide grey scaled to 8 bits,
EXIF orientation, and the short-side resize plus center crop every source uses.
"""

from __future__ import annotations

import io
import os
import threading
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np

from zoo.core.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif"}


#: PIL modes of one grey channel; the wide ones (16/32-bit integer, float) are rescaled to 8 bits.
WIDE_GREY_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


GREY_MODES = frozenset({"1", "L", "LA", "La"}) | WIDE_GREY_MODES


class ImageTooLarge(DataError):
    """An image file with more pixels than ``PIL.Image.MAX_IMAGE_PIXELS`` (a decompression bomb,
    or an image too large to decode safely)."""


_OPEN_LOCK = threading.Lock()  # warnings.catch_warnings is process-wide state


def open_image(path: str | Path | BinaryIO, name: str | None = None):
    """Open an image file (its header only: the pixels are decoded on first use).

    More pixels than ``PIL.Image.MAX_IMAGE_PIXELS`` (PIL's limit, 89.5 million by
    default) raise :class:`ImageTooLarge`: PIL itself only warns up to twice that
    and would then decode, e.g., a 48 KB PNG into 400 MB. Any other unreadable
    file raises a one-line ``DataError``. Use it as a context manager. ``name`` is what
    the messages call it (default: ``path``; give one for a file object).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with _OPEN_LOCK, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLarge(
            f"image {name or path}: more than {Image.MAX_IMAGE_PIXELS:,} pixels (PIL.Image."
            "MAX_IMAGE_PIXELS); a decompression bomb or too large to decode") from None
    except (UnidentifiedImageError, OSError) as exc:
        reason = str(exc)
        if name:  # no "<_io.BytesIO ...>" or the full path again
            shown = path if not isinstance(path, str | os.PathLike) else os.fspath(path)
            reason = reason.replace(repr(shown), "it")
        if _empty(path):
            reason = "the file is empty"
        raise DataError(f"cannot read image {name or path}: {reason}") from None
    except MemoryError:
        raise
    except Exception as exc:  # PIL's plugins raise more than OSError for a bad header
        raise DataError(f"cannot read image {name or path}: {type(exc).__name__}: "
                        f"{_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    """An exception's message, first line only."""
    return (str(exc).splitlines() or [""])[0]


def _empty(file: str | Path | BinaryIO) -> bool:
    """Whether ``file`` (a path or an in-memory file) holds no bytes."""
    try:
        if isinstance(file, io.BytesIO):
            return file.getbuffer().nbytes == 0
        return isinstance(file, str | os.PathLike) and os.path.getsize(file) == 0
    except OSError:
        return False


def to_8bit(img, mode: str):
    """A PIL image in 8-bit ``mode`` ("L" or "RGB").

    Wide grey is scaled, not clipped as PIL's ``convert`` does: 16-bit
    (``I;16``, ``I;16B``, ``I;16L``) and 32-bit integer (``I``, which older
    Pillow uses for 16-bit PNGs) from 0..65535, float (``F``) from 0..1; values
    outside are clipped. PIL already reads 16-bit RGB(A) PNGs as 8-bit.
    """
    from PIL import Image

    if img.mode in WIDE_GREY_MODES:
        array = np.asarray(img)
        if img.mode == "F":
            grey = np.round(np.clip(np.nan_to_num(array), 0.0, 1.0) * 255.0)
        else:
            grey = (np.clip(array.astype(np.int64), 0, 65535) + 128) // 257
        img = Image.fromarray(grey.astype(np.uint8))
    return img.convert(mode) if img.mode != mode else img


#: The EXIF tag that says how a camera held the picture (1: as stored).
ORIENTATION = 0x0112


def upright(img):
    """``img`` turned as its EXIF orientation says (as image viewers show it); as it is
    when it has none, or an unreadable one."""
    from PIL import ImageOps

    try:
        turned = img.getexif().get(ORIENTATION, 1) not in (1, None)
    except Exception:  # a damaged EXIF block: the pixels are still fine
        return img
    return ImageOps.exif_transpose(img) if turned else img


def decode_image(path: str | Path | BinaryIO, mode: str | None = None, size: int | None = None,
                 draft: bool = False, name: str | None = None) -> np.ndarray:
    """An image file as uint8 ``H×W`` (grey) or ``H×W×3`` (RGB): the one decoder every image
    file goes through (``data.source = "folder"``, ``zoo dedup``, ``zoo sample --input``).

    ``mode``: "L" or "RGB" (None: "L" for a grey file, else "RGB"); wide grey is
    scaled (:func:`to_8bit`); an EXIF orientation is applied (:func:`upright`).
    ``size``: resized and center-cropped to ``size``×``size`` (:func:`resize_crop`);
    ``draft`` lets a JPEG at least twice ``size`` decode at a reduced scale first (never
    below ``size``).
    Every PIL mode converts: CMYK, palette (with transparency too), 16-bit grey and RGB,
    and alpha (dropped: the color channels are kept as stored, not composited).
    ``path`` may be an open binary file; ``name`` is what errors call it.
    Raises :class:`ImageTooLarge` or a one-line ``DataError``.
    """
    with open_image(path, name) as img:
        try:
            mode = mode or ("L" if img.mode in GREY_MODES else "RGB")
            if draft and size and img.format == "JPEG" and min(img.size) >= 2 * size:
                img.draft(mode, (size, size))  # only where it can reduce: it costs otherwise
            img = upright(img)
            if img.mode in ("P", "PA") and "transparency" in img.info:
                img = img.convert("RGBA")  # what PIL warns to do first; the alpha is then dropped
            img = to_8bit(img, mode)
            return resize_crop(img, size) if size else np.array(img)
        except MemoryError:
            raise
        except Exception as exc:  # any failure of a decoder on these bytes: an unreadable image
            raise DataError(f"cannot read image {name or path}: {_first_line(exc)}") from None


#: What a streamed source hands the decoder for one image: its encoded bytes, or a file path.
Raw = bytes | str | os.PathLike


def decode_raw(raw: Raw, mode: str, size: int, name: str | None = None,
               draft: bool = True) -> np.ndarray:
    """One image of a streamed source (encoded bytes or a path) as uint8 ``size``×``size``
    (×3 for RGB): :func:`decode_image` with JPEG draft decoding on by default. ``name`` (the
    image's key) is what errors call it. Raises :class:`ImageTooLarge` or a one-line
    ``DataError``; the feed turns those into counted skips."""
    source = io.BytesIO(raw) if isinstance(raw, bytes | bytearray | memoryview) else raw
    return decode_image(source, mode, size, draft=draft, name=name)


def _nchw(images: np.ndarray) -> np.ndarray:
    """N×H×W (grey) or N×H×W×C -> N×C×H×W."""
    return images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)


def resize_crop(img, size: int) -> np.ndarray:
    """A PIL image -> ``size``×``size`` array: short side resized (bicubic), center-cropped."""
    from PIL import Image

    scale = size / min(img.size)
    w, h = max(size, round(img.width * scale)), max(size, round(img.height * scale))
    img = img.resize((w, h), Image.Resampling.BICUBIC)
    left, top = (w - size) // 2, (h - size) // 2
    return np.asarray(img.crop((left, top, left + size, top + size)))
