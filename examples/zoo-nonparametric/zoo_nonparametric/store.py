"""What texture and in-painting models are: exemplar images kept as one buffer.

There is nothing to optimise. "Training" copies the first ``model.exemplars``
training images into the module's buffer before the (idle) first step, so
the shared loop writes them to ``model.safetensors`` like any weights, and
loading checks their shape and spec hash like any weights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from zoo import Family, ZooError
from zoo.core.errors import DataError
from zoo.data import LUMA, num_channels
from zoo.training.trainer import Trainer

if TYPE_CHECKING:
    from zoo.core.spec import Spec


class Exemplars(nn.Module):
    """``images``: the K exemplars, K×C×S×S in [0, 1]."""

    def __init__(self, count: int, channels: int, size: int) -> None:
        super().__init__()
        self.register_buffer("images", torch.zeros(count, channels, size, size))

    def store(self, images: torch.Tensor) -> None:
        """Keep the first K of ``images`` (N×C×S×S); a one-line error if there are fewer."""
        count = len(self.images)
        if len(images) < count:
            raise DataError(f"the data give {len(images)} training images, fewer than "
                            f"model.exemplars = {count}")
        self.images.copy_(images[:count])


class StoreTrainer(Trainer):
    """Stores the exemplars before the first step; the steps themselves do nothing."""

    def start(self, images: torch.Tensor) -> None:
        """Copy the first training images into the model."""
        self.accelerator.unwrap_model(self.model).store(images)

    def step(self, images: torch.Tensor, labels: torch.Tensor | None,
             rng: torch.Generator) -> dict[str, torch.Tensor]:
        """Nothing to learn."""
        return {}


class ExemplarFamily(Family):
    """What texture and in-painting share: the model is its exemplars, stored by
    :class:`StoreTrainer`, and every sample is computed on its own."""

    trainer_class = StoreTrainer
    independent_samples = True

    def build(self, spec: Spec) -> Exemplars:
        """An empty exemplar store shaped by the spec (``model.exemplars``, channels, size)."""
        return Exemplars(spec.model.exemplars,  # type: ignore[attr-defined]
                         num_channels(spec.data), spec.data.image_size)


def with_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """N×C×H×W images with ``channels`` channels: grey repeated to RGB, RGB to luma."""
    if images.shape[1] == channels:
        return images
    if channels == 3 and images.shape[1] == 1:
        return images.expand(-1, 3, -1, -1)
    if channels == 1 and images.shape[1] == 3:
        luma = torch.tensor(LUMA, dtype=images.dtype, device=images.device)
        return (images * luma.view(1, 3, 1, 1)).sum(1, keepdim=True)
    raise ZooError(f"cannot convert {images.shape[1]}-channel images to {channels} channels")


def as_image(value: object, what: str) -> torch.Tensor:
    """A sampling option given as an image: C×H×W (or H×W, or 1×C×H×W) floats in [0, 1]."""
    if not isinstance(value, torch.Tensor):
        raise ZooError(f"{what}: expected an image file path or an image tensor (C×H×W in "
                       f"[0, 1]), got {type(value).__name__}")
    image = value.detach().cpu()
    if image.dim() == 4 and len(image) == 1:
        image = image[0]
    if image.dim() == 2:
        image = image[None]
    if image.dim() != 3 or image.shape[0] not in (1, 3, 4) or min(image.shape[1:]) < 1:
        raise ZooError(f"{what}: expected C×H×W with C = 1 or 3, got shape "
                       f"{tuple(value.shape)}")
    image = image[:3].float()
    if not torch.isfinite(image).all() or image.min() < 0 or image.max() > 1:
        raise ZooError(f"{what}: values must lie in [0, 1]")
    return image
