"""The feature-network contract for ``zoo eval --features NAME``. No torch here.

A feature network is a :class:`FeatureExtractor` subclass in a module that may
import torch, returned by the function its registration names
(``FeatureRecord(load="my_pkg.clip:load")``)::

    class ClipFeatures(FeatureExtractor):
        dims = 768
        convention = "CLIP ViT-L/14 image embeddings; bicubic resize to 224, CLIP mean/std"

        def __init__(self) -> None:
            self.net, self.identity = ..., "clip-vit-l14-" + weights_sha256[:16]

        def __call__(self, images):  # uint8 N×3×H×W -> float32 N×768 on the CPU
            ...
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    import torch


class FeatureExtractor(ABC):
    """Images to feature vectors, for FID, KID, precision/recall and memorisation.

    ``dims``: features per image. ``identity``: a string that changes whenever the
    features would (network version, weights digest); it keys the cached reference
    statistics under ``$ZOO_HOME``, so a stale cache is never used. ``convention``:
    one line naming the network, its weights and how it resizes and scales its
    input, recorded beside every number in ``metrics.json`` so figures can be
    compared. ``batch_size``: images per call.
    """

    dims: int
    identity: str
    convention: str
    batch_size: ClassVar[int] = 50

    @abstractmethod
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Features of a batch: ``images`` uint8 N×3×H×W on the CPU (any H×W: the
        extractor resizes as its convention says) -> float32 N×dims on the CPU."""
