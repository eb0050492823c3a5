"""Data sources (a core plugin) and the transforms every family shares.

Sources load a *split* (``train`` or ``test``) as uint8 ``N×C×H×W`` images
with optional integer labels; :func:`load_images` then applies the spec's
channels, size and limit and returns floats in [0, 1]. One job per module:

- :mod:`zoo.data.decode` — one image file (or bytes) to uint8 pixels;
- :mod:`zoo.data.memory` — in-memory sources and their seeded split;
- :mod:`zoo.data.files` — the images under a folder, the ``folder`` source;
- :mod:`zoo.data.listing` — a folder's file list, walked once and cached;
- :mod:`zoo.data.source` — indexed sources (random access to encoded images by key);
- :mod:`zoo.data.split` — their train/held-out split by a stable hash of each key;
- :mod:`zoo.data.rows` — decoding a batch of their rows, skipping bad images;
- :mod:`zoo.data.transforms` — uint8 to float, channels, size;
- :mod:`zoo.data.sources` — the built-in sources' registration and :func:`load_images`;
- :mod:`zoo.data.warn` — warnings said once.

Every name below is importable from ``zoo.data`` as before the split.
"""

from zoo.data.decode import (
    GREY_MODES,
    IMAGE_SUFFIXES,
    ORIENTATION,
    WIDE_GREY_MODES,
    ImageTooLarge,
    Raw,
    _nchw,
    decode_image,
    decode_raw,
    open_image,
    resize_crop,
    to_8bit,
    upright,
)
from zoo.data.files import ImageFiles, find_images, load_folder, warn_skipped, warn_unlisted
from zoo.data.memory import (
    SPLIT_SEED,
    SPLITS,
    TEST_FRACTION,
    ImageData,
    _from_arrays,
    load_digits,
    load_mnist5k,
    load_torchvision,
    mnist5k_path,
    split_indices,
    static_binarize,
)
from zoo.data.rows import DecodedRows, decode_rows, warn_bad_row
from zoo.data.source import ImageSource, KeyTable
from zoo.data.sources import (
    check_image_data,
    decode_view,
    load_images,
    open_source,
    register_datasets,
    split_size,
)
from zoo.data.stream import StreamSource
from zoo.data.transforms import LUMA, conform, num_channels, to_float
from zoo.data.warn import warn_once

__all__ = [
    "GREY_MODES",
    "IMAGE_SUFFIXES",
    "LUMA",
    "ORIENTATION",
    "SPLITS",
    "SPLIT_SEED",
    "TEST_FRACTION",
    "WIDE_GREY_MODES",
    "DecodedRows",
    "ImageData",
    "ImageFiles",
    "ImageSource",
    "ImageTooLarge",
    "KeyTable",
    "Raw",
    "StreamSource",
    "_from_arrays",
    "_nchw",
    "check_image_data",
    "conform",
    "decode_image",
    "decode_raw",
    "decode_rows",
    "decode_view",
    "find_images",
    "load_digits",
    "load_folder",
    "load_images",
    "load_mnist5k",
    "load_torchvision",
    "mnist5k_path",
    "num_channels",
    "open_image",
    "open_source",
    "register_datasets",
    "resize_crop",
    "split_indices",
    "split_size",
    "static_binarize",
    "to_8bit",
    "to_float",
    "upright",
    "warn_bad_row",
    "warn_once",
    "warn_skipped",
    "warn_unlisted",
]
