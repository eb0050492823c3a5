"""The built-in data sources (a core plugin) and the one call that loads a split."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from zoo.core.errors import DataError
from zoo.core.hookspecs import hookimpl
from zoo.core.records import DatasetRecord
from zoo.data.memory import ImageData, static_binarize
from zoo.data.source import ImageSource
from zoo.data.stream import StreamSource
from zoo.data.transforms import num_channels, to_float

if TYPE_CHECKING:
    import torch

    from zoo.core.spec import DataSpec


@hookimpl
def register_datasets(register) -> None:
    """Register the built-in data sources."""
    register(DatasetRecord("mnist5k", "5,000 real MNIST digits 28x28 (4,500/500 split), bundled",
                           "zoo.data:load_mnist5k", classes=10, channels=1))
    register(DatasetRecord("digits", "1,797 scikit-learn digits 8x8 (90/10 split), bundled",
                           "zoo.data:load_digits", classes=10, channels=1))
    register(DatasetRecord("folder", "a folder of PNG/JPEG images (data.path), streamed, "
                           "hash split",
                           "zoo.data:load_folder"))
    register(DatasetRecord("hf", "a Hugging Face data set: a Hub id, imagefolder/parquet/arrow "
                           "(data.path) or a save_to_disk folder; indexed (or streamed: "
                           "data.streaming), hash split",
                           "zoo.data.hf:load_hf", prefix=True, extra="genzoo[data]"))
    register(DatasetRecord("wds", "WebDataset tar shards (a brace pattern), e.g. from zoo data "
                           "pack; indexed (remote or .tar.gz: data.streaming), hash split",
                           "zoo.data.wds:load_wds", prefix=True,
                           extra="genzoo[data]"))
    register(DatasetRecord("torchvision", "torchvision.datasets.<Name> already on disk "
                           "(data.path)", "zoo.data:load_torchvision", prefix=True))


def open_source(spec: DataSpec, split: str) -> ImageData | ImageSource | StreamSource:
    """What the data source answers for ``split``: an in-memory split (checked,
    :func:`check_image_data`), an indexed source (the whole data set unless ``presplit``;
    :func:`zoo.data.split.view` picks the split's rows) or a sequential one
    (``data.streaming``; :func:`zoo.data.stream.split_samples` picks the split's samples)."""
    from zoo.core.registry import dataset_loader

    data = dataset_loader(spec.source)(spec, split)
    if isinstance(data, StreamSource):
        return data
    if isinstance(data, ImageSource):
        return check_image_source(data, spec.source)
    check_image_data(data, spec.source, split)
    return data


def check_image_source(source: ImageSource, name: str) -> ImageSource:
    """``source`` when it keeps the ``ImageSource`` contract (a ``KeyTable`` of keys; labels
    none or one integer per key), else a one-line ``PluginError`` naming the data source."""
    from zoo.core.errors import PluginError
    from zoo.data.source import KeyTable

    keys, labels = getattr(source, "keys", None), getattr(source, "labels", None)
    problem = None
    if not isinstance(keys, KeyTable):
        problem = f"keys of type {type(keys).__name__}, not a zoo.data.KeyTable"
    elif len(keys) == 0:
        problem = "no images"
    elif labels is not None and not (isinstance(labels, np.ndarray) and labels.ndim == 1
                                     and len(labels) == len(keys)
                                     and np.issubdtype(labels.dtype, np.integer)):
        problem = (f"labels {getattr(labels, 'dtype', type(labels).__name__)} of shape "
                   f"{getattr(labels, 'shape', '?')} for {len(keys)} keys")
    if problem:
        raise PluginError(f"data source {name!r} returned an ImageSource with {problem}; see "
                          "zoo.data.ImageSource (keys: a KeyTable; labels: one integer a key)")
    return source


def split_size(spec: DataSpec, split: str) -> int:
    """How many images ``split`` has per the data spec (``data.limit`` applied to train), without
    decoding an indexed source's images: the size of its view (:func:`zoo.data.split.view`)."""
    data = open_source(spec, split)
    if isinstance(data, StreamSource):
        from zoo.data.stream import split_samples

        samples = split_samples(data, split, spec.held_out)  # reads the stream: no decoding
        n = sum(1 for _ in samples)
        return min(n, spec.limit) if spec.limit is not None and split == "train" else n
    if isinstance(data, ImageSource):
        from zoo.data.split import view

        return len(view(data, split, spec))
    n = len(data.images)
    return min(n, spec.limit) if spec.limit is not None and split == "train" else n


def decode_view(source: ImageSource, spec: DataSpec, split: str, limit: int | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The rows of ``split`` of an indexed source (``limit`` of them: those whose keys hash
    lowest, in key order, a random sample that spans the data set), decoded
    into one uint8 tensor: for evaluation and tools on a split that fits in memory, never for
    training. Bad images are skipped with one warning each (an error under ``data.strict``)."""
    import torch

    from zoo.data.rows import decode_good_rows, warn_bad_row
    from zoo.data.split import hash_subset, view

    rows = view(source, split, spec)
    rows = rows if limit is None else hash_subset(source, rows, limit)
    mode = "L" if num_channels(spec) == 1 else "RGB"
    images, labels = decode_good_rows(
        source, rows, mode, spec.image_size, strict=spec.strict,
        on_bad=lambda row, _key, reason: warn_bad_row(source, row, reason))
    return (torch.from_numpy(images),
            None if labels is None else torch.from_numpy(labels))


def decode_stream(source: StreamSource, spec: DataSpec, split: str, limit: int | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The first ``limit`` samples of ``split`` of a sequential source (its shards in order, no
    shuffle), in key order as an indexed source gives them, decoded into one uint8 tensor:
    for evaluation and tools. ``zoo data pack`` writes samples in the order of a hash of their
    keys, so for its shards these are a random sample of the split, not its first classes.
    Bad images are skipped with one warning each (an error under ``data.strict``)."""
    import itertools

    import torch

    from zoo.data.stream import decode_samples, split_samples
    from zoo.data.warn import warn_once

    samples = sorted(itertools.islice(split_samples(source, split, spec.held_out), limit),
                     key=lambda sample: sample[0].encode("utf-8", "surrogateescape"))
    if not samples:
        raise DataError(f"{source.name}: no {'held-out' if split == 'test' else 'training'} "
                        f"images in the stream (data.held_out = {spec.held_out})")
    mode = "L" if num_channels(spec) == 1 else "RGB"
    images, labels = decode_samples(
        source.name, samples, mode, spec.image_size, strict=spec.strict,
        on_bad=lambda _row, key, reason: warn_once(f"skipping {reason}",
                                                   key=(source.name, key)))
    return (torch.from_numpy(images),
            None if labels is None else torch.from_numpy(labels))


def load_images(
    spec: DataSpec, split: str = "train", training: bool = False, *,
    at_most: int | None = None, data: ImageData | ImageSource | StreamSource | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Images (float32 in [0, 1], ``N×C×S×S``) and labels of a split, per the data spec.

    With ``data.binarize = "dynamic"`` the training loop binarises each batch
    itself (``training=True`` returns grey levels); everywhere else binary
    data are the fixed static sample, so evaluations are reproducible.
    An indexed source decodes only its split's rows (``data.limit`` applied first), and
    only the first ``at_most`` of them when given; a sequential one its first ``at_most``
    (else ``data.limit``, else all) in stream order; in-memory splits come whole.
    ``data``: the source's answer for ``split`` when the caller has it (:func:`open_source`).
    """
    data = open_source(spec, split) if data is None else data
    if isinstance(data, StreamSource):
        limit = spec.limit if split == "train" else None
        images, labels = decode_stream(data, spec, split, at_most or limit)
    elif isinstance(data, ImageSource):
        images, labels = decode_view(data, spec, split, at_most)
    else:
        images, labels = data.images, data.labels
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
