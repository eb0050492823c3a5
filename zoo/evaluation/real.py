"""The real images a model is scored against: its held-out split and a training sample."""

from __future__ import annotations

import functools

import torch


class RealImages:
    """A data spec's held-out split (:func:`held_out_images`) and training sample
    (:func:`train_sample`), each decoded once, on first use, for every score of one
    evaluation (reconstruction, likelihood, FID and memorisation, plugins' metrics)."""

    def __init__(self, spec_data) -> None:
        self.spec_data = spec_data

    @functools.cached_property
    def test(self) -> torch.Tensor:
        """The held-out images."""
        return held_out_images(self.spec_data)

    @functools.cached_property
    def train(self) -> torch.Tensor:
        """The training sample."""
        return train_sample(self.spec_data)


def train_sample(spec_data) -> torch.Tensor:
    """The training images a baseline is fitted to: an in-memory split whole (less
    ``data.limit``), an indexed source's at most ``data.fit_images`` of them (the stable
    random subset ``data.limit`` would pick), so a large folder is never decoded whole."""
    from zoo.data import ImageSource, StreamSource, load_images, open_source

    data = open_source(spec_data, "train")
    if isinstance(data, ImageSource | StreamSource):
        fit = spec_data.fit_images
        spec_data = spec_data.model_copy(update={"limit": min(spec_data.limit or fit, fit)})
    return load_images(spec_data, "train", data=data)[0]


def held_out(model) -> torch.Tensor:
    """The test split of the model's data source, as the model was trained on it
    (:func:`held_out_images` of its data spec)."""
    return held_out_images(model.spec.data)


def held_out_images(spec_data) -> torch.Tensor:
    """The test split of a data spec's source, as a model trained on it sees it.

    Float32 ``N×C×S×S`` in [0, 1] at ``data.image_size`` with the model's
    channels, binarised as ``data.binarize`` says (the fixed static sample for
    ``static`` and ``dynamic``); ``data.limit`` does not apply to it. Of an indexed
    source (a folder), the first ``data.eval_images`` held-out images in key order; of a
    streamed one (``data.streaming``), the first ``data.eval_images`` in stream order.
    """
    from zoo.data import load_images

    spec = spec_data.model_copy(update={"limit": None})
    return load_images(spec, "test", at_most=spec.eval_images)[0]
