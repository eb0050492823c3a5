"""Features of real images, cached under ``$ZOO_HOME/cache/reference`` by content.

The key is a digest of exactly what the network would see (the uint8 pixels of every
image, in order) and of the network's identity (its weights' digest), so a changed
image, another split, size, channel count or binarisation, or other weights never reuse
a stale entry, and the same images reached by any route (a second ``zoo eval`` of
another model on the same data, ``zoo eval --reference-only``) reuse it. Decoding the
images is still needed to hash them; the network pass, the slow part, is skipped.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from zoo.core.features import FeatureExtractor
from zoo.core.home import zoo_home
from zoo.data.warn import warn_once
from zoo.evaluation.extractor import embed, to_uint8

#: Bump when the entry's layout changes.
VERSION = 1


def cache_dir() -> Path:
    """Where reference features are cached."""
    return zoo_home() / "cache" / "reference"


def content_key(images: torch.Tensor, extractor: FeatureExtractor, chunk: int = 256) -> str:
    """A digest of the uint8 pixels the network would see and of the network's identity."""
    h = hashlib.blake2b(digest_size=20, person=b"zoo-reference")
    h.update(f"v{VERSION}|{extractor.identity}|{tuple(images.shape)}".encode())
    for start in range(0, len(images), chunk):
        h.update(to_uint8(images[start : start + chunk]).numpy().tobytes())
    return h.hexdigest()


def reference_features(images: torch.Tensor, extractor: FeatureExtractor, name: str,
                       what: str) -> tuple[torch.Tensor, bool]:
    """Features of real ``images`` (float in [0, 1]) and whether they came from the cache.

    ``what`` describes the images (source, split, size) in the entry's metadata. A
    corrupt or mismatched entry is recomputed, never trusted.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file, save

    from zoo.artifact import atomic_write

    key = content_key(images, extractor)
    path = cache_dir() / f"{name}-{key}.safetensors"
    if path.is_file():
        try:
            features = load_file(str(path))["features"]
            if tuple(features.shape) == (len(images), extractor.dims) and \
                    features.dtype == torch.float32 and torch.isfinite(features).all():
                return features, True
        except (SafetensorError, KeyError, OSError, ValueError, RuntimeError):
            pass
    features = embed(extractor, images, name)
    try:  # replaces a corrupt entry; another writer's entry for this key holds the same
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, save({"features": features.contiguous()},
                                metadata={"features": name, "identity": extractor.identity,
                                          "images": what, "count": str(len(images))}))
    except OSError as exc:  # a read-only or full $ZOO_HOME: the scores do not need the cache
        warn_once(f"cannot cache reference features in {cache_dir()} "
                  f"({exc.strerror or type(exc).__name__}); they are recomputed next time")
    return features, False
