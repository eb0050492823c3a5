"""Sample quality on a feature network: FID, KID, precision/recall and memorisation.

For features ``X`` (``zoo eval --features X``), ``metrics.json["eval"]`` gets:

* ``fid@X``, ``kid@X`` ± ``kid_std@X``, ``precision@X``, ``recall@X``: the samples
  against the reference split (``against@X``: the held-out split by default, or the
  training images), torch-fidelity's computations (:mod:`zoo.evaluation.distances`);
* ``reference_fid@X``, ``reference_kid@X``, ``reference_precision@X``,
  ``reference_recall@X``: the same numbers for as many real training images as samples
  against the held-out split (with ``against train``: the held-out images against the
  training ones), the floor a perfect generator would reach at this sample size;
* ``memorised@X``: the fraction of samples closer to a training image than 99 % of
  held-out images come (``memorisation_threshold@X``), over ``train_images@X`` training
  images; the 8 closest sample/training pairs become ``memorisation.png``;
* ``convention@X``: the network, its weights and its input conventions, and the counts
  (``reference_images@X``, ``kid_subset_size@X``), so numbers can be compared.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import torch

from zoo.core.features import FeatureExtractor
from zoo.evaluation.distances import fid, kid, memorisation, precision_recall
from zoo.evaluation.real import RealImages
from zoo.evaluation.reference import reference_features

#: Pairs shown in the model card's memorisation strip.
STRIP_PAIRS = 8
AGAINST = ("test", "train")


@dataclass
class Quality:
    """The scores (``metrics.json`` keys), the reference split's features and the closest
    sample/training image pairs."""

    scores: dict[str, Any]
    reference: torch.Tensor
    closest: tuple[torch.Tensor, torch.Tensor] | None = None


def describe(spec_data, split: str) -> str:
    """The real images a cache entry holds, in words (source, split, size, channels)."""
    path = f" {spec_data.path}" if spec_data.path else ""
    return (f"{spec_data.source}{path} {split} split, {spec_data.image_size}px, "
            f"{spec_data.channels or 'default'} channels, binarize={spec_data.binarize}")


def real_features(real: RealImages, split: str, extractor: FeatureExtractor, name: str
                  ) -> tuple[torch.Tensor, bool]:
    """Features of the held-out split (``"test"``, at most ``data.eval_images``) or of the
    training images (``"train"``, the fit sample: at most ``data.fit_images`` of an
    indexed source), cached by content, and whether they came from the cache."""
    images = real.test if split == "test" else real.train
    return reference_features(images, extractor, name, describe(real.spec_data, split))


def say(message: str) -> None:
    """One progress line on stderr."""
    print(message, file=sys.stderr, flush=True)


def quality_metrics(model, samples: torch.Tensor, name: str, extractor: FeatureExtractor,
                    against: str = "test", memorise: bool = True,
                    real: RealImages | None = None) -> Quality:
    """All the feature-space scores of ``samples`` (float32 N×C×H×W in [0, 1]) drawn from
    ``model``, with feature network ``name`` (see the module docstring for the keys);
    ``real``: the real images, when the caller has them decoded already."""
    import time

    from zoo.evaluation.extractor import embed

    if against not in AGAINST:
        raise ValueError(f"against must be one of {AGAINST}, not {against!r}")
    real = real or RealImages(model.spec.data)
    started = time.perf_counter()
    f_test, cached_test = real_features(real, "test", extractor, name)
    f_train, cached_train = real_features(real, "train", extractor, name)
    say(f"{name} features of the real images: {len(f_test):,} held-out, {len(f_train):,} "
        f"training ({'cached' if cached_test and cached_train else 'computed'}, "
        f"{round(time.perf_counter() - started, 2)} s)")
    f_gen = embed(extractor, samples, name)
    reference = f_test if against == "test" else f_train
    floor = f_train[: len(f_gen)] if against == "test" else f_test
    scores: dict[str, Any] = {}

    def score(prefix: str, ours: torch.Tensor, theirs: torch.Tensor) -> None:
        kid_mean, kid_std, subset = kid(ours, theirs)
        precision, recall = precision_recall(ours, theirs)
        scores.update({f"{prefix}fid@{name}": round(fid(ours, theirs), 4),
                       f"{prefix}kid@{name}": round(kid_mean, 6),
                       f"{prefix}kid_std@{name}": round(kid_std, 6),
                       f"{prefix}precision@{name}": round(precision, 4),
                       f"{prefix}recall@{name}": round(recall, 4)})
        if not prefix:
            scores[f"kid_subset_size@{name}"] = subset

    score("", f_gen, reference)
    score("reference_", floor, reference)
    closest = None
    if memorise:
        found = memorisation(f_gen, f_train, f_test)
        scores.update({f"memorised@{name}": round(found.fraction, 4),
                       f"memorisation_threshold@{name}": round(found.threshold, 4),
                       f"train_images@{name}": len(f_train)})
        order = torch.argsort(found.distance)[:STRIP_PAIRS]
        closest = (samples[order], real.train[found.index[order]])
    scores.update({f"against@{name}": against, f"reference_images@{name}": len(reference),
                   f"convention@{name}": extractor.convention})
    return Quality(scores, reference, closest)


def precompute_reference(spec_data, name: str) -> dict[str, Any]:
    """Compute and cache the features ``zoo eval`` needs of a data source's real images
    (its held-out split and training sample) on feature network ``name``; return what
    was done (counts, seconds, whether each was cached already)."""
    import time

    from zoo.evaluation.extractor import load_extractor

    extractor = load_extractor(name)
    real = RealImages(spec_data)
    done: dict[str, Any] = {"features": name, "convention": extractor.convention}
    for split in ("test", "train"):
        started = time.perf_counter()
        features, cached = real_features(real, split, extractor, name)
        done[split] = {"images": len(features), "cached": cached,
                       "seconds": round(time.perf_counter() - started, 2)}
    return done


def strip(closest: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """The memorisation strip: the closest samples on top, their nearest training images
    below (one image, float in [0, 1])."""
    from zoo.sampling.sample import grid

    samples, train = closest
    channels = max(samples.shape[1], train.shape[1])
    pairs = torch.cat([samples.expand(-1, channels, -1, -1),
                       train.expand(-1, channels, -1, -1)])
    return grid(pairs, nrow=len(samples))
