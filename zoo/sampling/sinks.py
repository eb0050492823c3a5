"""Where ``zoo sample`` writes: a PNG grid, a folder of PNGs, or a tensor file.

``-o FILE.png`` tiles every image into one grid, so it must hold them all and
is capped (:data:`GRID_MAX_IMAGES`, :data:`GRID_MAX_SIDE`). ``-o DIR`` (one PNG
per image) and ``-o FILE.npy|.npz|.safetensors`` (one uint8 ``N×C×H×W``
tensor) are written chunk by chunk as the sampler makes the images, so memory
stays at one batch whatever ``-n`` is. Every output is written beside its
target and renamed into place: an error or Ctrl-C leaves nothing half-written.
The pixels are the same in every form: ``round(255 * x)`` of the sampler's
``x`` in [0, 1].
"""

from __future__ import annotations

import itertools
import json
import math
import os
import struct
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np

from zoo.core.errors import ZooError
from zoo.sampling.sample import hwc, to_uint8

if TYPE_CHECKING:
    import torch

#: A grid holds at most this many images (a 64×64 grid: more than anyone looks at one by one).
GRID_MAX_IMAGES = 4096
#: ... and at most this many pixels a side (its float32 RGB tensor is then 0.8 GB).
GRID_MAX_SIDE = 8192
GRID_PADDING = 2
TENSOR_SUFFIXES = (".npy", ".npz", ".safetensors")
#: The array name inside ``.npz`` and the tensor name inside ``.safetensors``.
TENSOR_NAME = "images"
STREAMING_HINT = ("write one PNG per image with -o DIR, or a tensor file with -o FILE.npz, "
                  "FILE.npy or FILE.safetensors")


def output_kind(path: Path) -> str:
    """``grid`` (``.png``), ``folder`` (a name without a suffix, or a folder: refused by
    :func:`check_output` if it exists), or the tensor suffix without its dot (``npy``,
    ``npz``, ``safetensors``); a one-line error else."""
    suffix = path.suffix.lower()
    if suffix == ".png":
        return "grid"
    if suffix in TENSOR_SUFFIXES:
        return suffix[1:]
    if path.is_dir() or not suffix:
        return "folder"
    raise ZooError(f"-o {path}: expected FILE.png (a grid), a folder (one PNG per image) or "
                   f"FILE.npy, FILE.npz or FILE.safetensors")


def check_output(path: Path, n: int) -> str:
    """Fail before any work if ``path`` cannot take ``n`` images; return its kind."""
    from zoo.artifact import resolvable

    kind = output_kind(path)
    if not resolvable(path, "-o").parent.is_dir():
        raise ZooError(f"-o {path}: folder {path.parent} does not exist")
    if kind != "folder" and path.is_dir():  # -o out.png or out.npy naming a folder
        raise ZooError(f"-o {path} is a folder")
    if kind == "grid":
        if n > GRID_MAX_IMAGES:
            raise ZooError(f"-o {path}: {n:,} images are too many for one grid (at most "
                           f"{GRID_MAX_IMAGES:,}); {STREAMING_HINT}")
    elif kind == "folder" and path.exists():
        raise ZooError(f"-o {path} already exists; one PNG per image goes into a new folder")
    return kind


def grid_shape(n: int, height: int, width: int, nrow: int | None) -> tuple[int, int]:
    """(height, width) in pixels of the grid of ``n`` images (as
    :func:`zoo.sampling.sample.grid`)."""
    cols = min(n, nrow or max(1, math.ceil(math.sqrt(n))))
    rows = math.ceil(n / cols)
    return (rows * (height + GRID_PADDING) + GRID_PADDING,
            cols * (width + GRID_PADDING) + GRID_PADDING)


def write_samples(chunks: Iterable[torch.Tensor], path: Path, n: int, *,
                  nrow: int | None = None, metadata: Mapping[str, str] | None = None) -> str:
    """Write the ``n`` images ``chunks`` yields to ``path`` (kind by :func:`check_output`);
    return the kind. Only a grid holds more than one chunk at a time."""
    kind = check_output(path, n)
    chunks = iter(chunks)
    if kind == "grid":
        write_grid(chunks, path, n, nrow)
    elif kind == "folder":
        write_folder((to_uint8(c) for c in chunks), path, n)
    else:
        write_tensor_file((to_uint8(c) for c in chunks), path, n, dict(metadata or {}))
    return kind


def write_grid(chunks: Iterator[torch.Tensor], path: Path, n: int, nrow: int | None) -> None:
    """One PNG grid; refused after the first chunk if it would be over :data:`GRID_MAX_SIDE`."""
    import torch

    from zoo.sampling.sample import grid, save_png

    first = next(chunks)
    side = max(grid_shape(n, *first.shape[-2:], nrow))
    if side > GRID_MAX_SIDE:
        raise ZooError(f"-o {path}: a grid of {n:,} images of {first.shape[-2]}x"
                       f"{first.shape[-1]} pixels is {side:,} pixels a side (at most "
                       f"{GRID_MAX_SIDE:,}); {STREAMING_HINT}")
    images = torch.cat([first, *chunks])
    save_png(grid(images, nrow, GRID_PADDING), path)


def png_name(index: int, n: int) -> str:
    """``0042.png``: zero-padded to one width for all ``n`` (at least 4), so names sort in order."""
    return f"{index:0{max(4, len(str(n - 1)))}d}.png"


def write_folder(chunks: Iterable[np.ndarray], path: Path, n: int) -> None:
    """One PNG per image, ``0000.png`` ... in sample order, into a new folder that appears
    only when complete."""
    from PIL import Image

    from zoo.artifact import atomic_folder

    def fill(folder: Path) -> None:
        index = 0
        for chunk in chunks:
            for image in chunk:
                Image.fromarray(hwc(image)).save(folder / png_name(index, n), format="PNG")
                index += 1
        _check_count(index, n)

    atomic_folder(path, fill)


def write_tensor_file(chunks: Iterator[np.ndarray], path: Path, n: int,
                      metadata: dict[str, str]) -> None:
    """One uint8 ``n×C×H×W`` tensor named ``images``, streamed chunk by chunk.

    ``.npy``: NumPy's format (``np.load(path, mmap_mode="r")`` reads it without
    loading it all). ``.npz``: the same inside an uncompressed zip
    (``np.load(path)["images"]``). ``.safetensors``: the format's header (whose
    shape is known up front) then the raw bytes, with ``metadata``;
    ``safetensors`` itself can only write tensors it holds in memory.
    """
    first = next(chunks)
    shape = (n, *first.shape[1:])
    data = itertools.chain([first], chunks)
    from zoo.artifact import temp_sibling

    tmp = temp_sibling(path, "tmp")
    try:
        with open(tmp, "wb") as fh:
            if path.suffix.lower() == ".npz":
                with (zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED, allowZip64=True) as archive,
                      archive.open(f"{TENSOR_NAME}.npy", "w", force_zip64=True) as entry):
                    _write_npy(entry, shape, data, n)
            elif path.suffix.lower() == ".npy":
                _write_npy(fh, shape, data, n)
            else:
                _write_safetensors(fh, shape, data, n, metadata)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_npy(fh: IO[bytes], shape: tuple[int, ...], chunks: Iterable[np.ndarray],
               n: int) -> None:
    from numpy.lib import format as npy

    npy.write_array_header_1_0(fh, {"descr": npy.dtype_to_descr(np.dtype(np.uint8)),
                                    "fortran_order": False, "shape": shape})
    _check_count(_write_raw(fh, chunks, shape), n)


def _write_safetensors(fh: IO[bytes], shape: tuple[int, ...], chunks: Iterable[np.ndarray],
                       n: int, metadata: dict[str, str]) -> None:
    nbytes = math.prod(shape)
    header = {"__metadata__": metadata,
              TENSOR_NAME: {"dtype": "U8", "shape": list(shape), "data_offsets": [0, nbytes]}}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the format pads the header to 8 bytes with spaces
    fh.write(struct.pack("<Q", len(text)) + text)
    _check_count(_write_raw(fh, chunks, shape), n)


def _write_raw(fh: IO[bytes], chunks: Iterable[np.ndarray], shape: tuple[int, ...]) -> int:
    """Write each chunk's C-order bytes (flushed: the file grows batch by batch); return the
    number of images written. Every image must have the shape the header promised."""
    count = 0
    for chunk in chunks:
        if chunk.shape[1:] != shape[1:] or count + len(chunk) > shape[0]:
            raise ZooError(f"the sampler made images of shape {list(chunk.shape[1:])} after "
                           f"{list(shape[1:])}, or more than {shape[0]:,}: not one tensor")
        fh.write(np.ascontiguousarray(chunk, dtype=np.uint8).tobytes())
        fh.flush()
        count += len(chunk)
    return count


def _check_count(written: int, n: int) -> None:
    if written != n:  # a sampler that returned fewer images than asked: never a short file
        raise ZooError(f"the sampler made {written:,} images, not {n:,}")

