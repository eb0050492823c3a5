"""``zoo eval``: scores a model on what its family can do.

* Every family that samples: FID, KID, precision/recall and the memorisation check on a
  feature network (``--features``: ``digits``, the project's own classifier, for the
  digit sets; ``inception``, the standard FID network, otherwise; or one a plugin
  registers), against the held-out split (:mod:`zoo.evaluation.quality`).
* Samplers trained on digits, also with the digit classifier's softmax:
  ``class_coverage`` (how many of the 10 digits are the confident (p ≥ 0.5) prediction
  for at least 0.5% of the samples) and ``mean_confidence``; conditional ones the
  ``label_accuracy``.

Families that reconstruct get the held-out reconstruction error; families
that declare ``log_likelihood`` the held-out negative log-likelihood; and
every metric a plugin registers (``register_metrics``) runs on the models it
applies to (see :class:`zoo.MetricRecord`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.core.errors import CapabilityError
from zoo.evaluation.real import RealImages
from zoo.folder.card import MEMORISATION, STRIP_FEATURES

COVERAGE_CONFIDENCE = 0.5
COVERAGE_FRACTION = 0.005
#: The most values one registered metric may return (metrics.json and the card hold them all).
MAX_METRIC_VALUES = 64


def class_stats(probs: torch.Tensor) -> dict[str, Any]:
    """Coverage, confidence and per-class counts from class probabilities N×10."""
    conf, label = probs.max(1)
    confident = label[conf >= COVERAGE_CONFIDENCE]
    counts = torch.bincount(confident, minlength=probs.shape[1])
    needed = max(1, int(np.ceil(COVERAGE_FRACTION * len(probs))))
    return {"class_coverage": int((counts >= needed).sum()),
            "mean_confidence": round(float(conf.mean()), 4),
            "class_counts": counts.tolist()}


def digit_class_metrics(images: torch.Tensor) -> dict[str, Any]:
    """Class coverage and confidence of images in [0, 1] by the digit classifier."""
    from zoo.evaluation.features import embed, load_classifier

    net, accuracy = load_classifier()
    _, probs = embed(net, images)
    return {**class_stats(probs), "classifier_accuracy": round(accuracy, 4)}


def reconstruction_metrics(model, real: RealImages | None = None) -> dict[str, Any]:
    """Held-out per-pixel MSE of reconstructions next to predicting the mean training image
    (``real``: the images, when the caller has them decoded already)."""
    real = real or RealImages(model.spec.data)
    test = real.test
    mean_image = real.train.mean(0, keepdim=True)
    recon = torch.cat([model.reconstruct(test[i : i + 500]) for i in range(0, len(test), 500)])
    ours = float(((recon - test) ** 2).mean())
    baseline = float(((mean_image - test) ** 2).mean())
    return {"recon_mse": round(ours, 6), "mean_image_mse": round(baseline, 6),
            "recon_vs_mean_image": round(baseline / max(ours, 1e-12), 2)}


#: How the held-out images that ``log_likelihood`` receives were binarised.
BINARISED = {"none": "grey levels in [0, 1]", "threshold": "thresholded",
             "static": "statically binarised", "dynamic": "statically binarised"}


def likelihood_metrics(model, k: int, limit: int | None = None,
                       real: RealImages | None = None) -> dict[str, Any]:
    """Importance-weighted negative log-likelihood (nats per image) of the held-out split.

    Any family that declares ``log_likelihood`` is called with :func:`held_out`
    images (the first ``limit``), ``k`` importance samples and a seeded
    generator. A family whose likelihood is not defined for those images (a
    Bernoulli decoder and grey levels, say) raises ``CapabilityError``, which
    becomes the ``iwae_note``. ``real``: the images, when the caller has them decoded.
    """
    import math

    test = (real or RealImages(model.spec.data)).test
    test = test[:limit] if limit else test
    try:
        nll = float(-model.log_likelihood(test, k=k).mean())
    except CapabilityError as exc:
        return {"iwae_nll": None, "iwae_note": f"skipped: {exc}"}
    except Exception as exc:  # the family's bug: the other metrics still run
        note = f"failed: {failure(exc)}"
        warn(f"log_likelihood of family {model.family.name!r} ({model.family.plugin}) {note}")
        return {"iwae_nll": None, "iwae_note": note}
    if not math.isfinite(nll):
        note = f"failed: log_likelihood of family {model.family.name!r} gave {nll}"
        warn(note.removeprefix("failed: "))
        return {"iwae_nll": None, "iwae_note": note}
    how = BINARISED.get(model.spec.data.binarize, model.spec.data.binarize)
    return {"iwae_nll": round(nll, 3), "iwae_k": k,
            "iwae_data": f"{len(test)} held-out images ({model.spec.data.source}), {how}"}


def applicable_metrics(model) -> list[Any]:
    """The registered metrics (``register_metrics``) that apply to ``model``, by name."""
    from zoo.core.registry import get_registry

    metrics = get_registry().metrics
    return [metrics[name] for name in sorted(metrics)
            if metrics[name].applies_to(model.family, model.spec.data.source)]


def run_metrics(metrics: list[Any], model, samples: torch.Tensor | None,
                reference: torch.Tensor) -> dict[str, Any]:
    """Run registered metrics; a number is stored under the metric's name, a dict under
    ``name.key``. A metric that fails is one warning line; the others still run."""
    import math

    from zoo.core.records import import_ref
    from zoo.core.spec import show

    result: dict[str, Any] = {}
    for metric in metrics:
        try:
            # copies: a metric that changes its inputs in place cannot skew the next one
            given = samples.clone() if samples is not None and "sample" in metric.needs else None
            value = import_ref(metric.compute)(model, given, reference.clone())
            values = value if isinstance(value, dict) else {None: value}
            if len(values) > MAX_METRIC_VALUES:
                raise ValueError(f"returned {len(values):,} values (at most "
                                 f"{MAX_METRIC_VALUES})")
            scores = {}
            for key, number in values.items():
                if isinstance(number, torch.Tensor) and number.numel() == 1:
                    number = number.item()
                if not isinstance(number, int | float) or isinstance(number, bool):
                    raise TypeError(f"expected a number or a dict of numbers, got "
                                    f"{type(number).__name__}" + (f" for {key!r}" if key else ""))
                if not math.isfinite(number):
                    raise ValueError(f"returned {number}" + (f" for {key!r}" if key else ""))
                if key is not None and not (isinstance(key, str) and 0 < len(key) <= 64):
                    raise TypeError(f"a dict's keys must be names of 1 to 64 characters, got "
                                    f"{show(key)!r}")
                scores[metric.name if key is None else f"{metric.name}.{key}"] = number
        except Exception as exc:
            warn(f"metric {metric.name!r} ({metric.plugin}) failed: {failure(exc)}")
            continue
        result.update(scores)
    return result


def failure(exc: BaseException) -> str:
    """A plugin's exception as part of one warning line: its type and a short message."""
    from zoo.core.spec import show

    return f"{type(exc).__name__}: {show(' '.join(str(exc).split()), 300)}"


def warn(message: str) -> None:
    """One ``warning:`` line on stderr."""
    import sys

    print(f"warning: {message}", file=sys.stderr)


def label_accuracy(model, per_class: int = 100, seed: int = 0) -> dict[str, Any]:
    """How often the digit classifier agrees with the label a conditional model was given."""
    from zoo.evaluation.features import embed, load_classifier

    net, _ = load_classifier()
    per_digit = []
    for digit in range(10):
        _, probs = embed(net, model.sample(per_class, seed=seed, label=digit))
        per_digit.append(round(float((probs.argmax(1) == digit).float().mean()), 3))
    return {"label_accuracy": round(sum(per_digit) / 10, 4), "label_accuracy_per_digit": per_digit}


def evaluate_folder(path: str | Path, n: int = 1000, seed: int = 0, baseline: bool = False,
                    iwae_k: int = 1000, iwae_limit: int | None = None,
                    features: str | None = None, against: str = "test",
                    memorise: bool = True) -> dict[str, Any]:
    """Score a model, merge the result into its folder's ``metrics.json`` and card.

    ``path`` may also be a Hub id or named model; its cached snapshot is not
    modified (pull it with ``--local-dir`` to keep results).

    Reconstruction error for families that reconstruct, IWAE NLL for families
    with likelihoods, FID/KID/precision/recall/memorisation on ``features`` (default: the
    data's, :func:`zoo.core.registry.default_features`) against ``against`` (``"test"``:
    the held-out split, or ``"train"``) for samplers, digit-classifier class metrics for
    samplers trained on digits, and every registered metric that applies
    (:func:`run_metrics`). ``memorise``: run the memorisation check and write its strip
    (``memorisation.png``; :func:`keep_strip` says when an earlier one stays).
    """
    from zoo.artifact import METRICS, WEIGHTS, check_finite, read_metrics, verify_folder, write_json
    from zoo.core.registry import default_features
    from zoo.evaluation.builtin import DIGIT_SOURCES
    from zoo.evaluation.extractor import load_extractor
    from zoo.evaluation.quality import quality_metrics
    from zoo.folder.write import update_card
    from zoo.hub import check_data_path
    from zoo.model import from_pretrained

    model = from_pretrained(path)
    verify_folder(model.path)  # nothing is scored, or written into, a damaged folder
    check_finite(model.module, model.path / WEIGHTS)
    check_data_path(model.spec, model.path, model.repo_id,
                    "zoo eval reads the held-out data the spec names, so it cannot score it")
    caps = model.family.capabilities
    digits = model.spec.data.source in DIGIT_SOURCES
    registered = applicable_metrics(model)
    sampler = "sample" in caps
    if features is not None and not sampler:
        raise CapabilityError(f"family {model.family.name!r} does not sample, so --features "
                              "has nothing to score")
    if sampler:  # before any work: unknown features or missing weights stop here
        name = features or default_features(model.spec.data.source)
        extractor = load_extractor(name)
    result: dict[str, Any] = {}
    real = RealImages(model.spec.data)  # decoded once, for every score below
    if "reconstruct" in caps:
        result.update(reconstruction_metrics(model, real))
    if "log_likelihood" in caps:
        result.update(likelihood_metrics(model, iwae_k, iwae_limit, real))
    samples, quality = None, None
    if sampler:
        samples = model.sample(n, seed=seed)
        result.update({"samples": n, "seed": seed})
        quality = quality_metrics(model, samples, name, extractor, against, memorise, real)
        result.update(quality.scores)
        if baseline:
            from zoo.evaluation.distances import fid, precision_recall
            from zoo.evaluation.extractor import embed
            from zoo.sampling.sample import sample_images
            from zoo.training.runtime import seed_everything

            seed_everything(model.spec.train.seed)
            untrained = model.family.load().build(model.spec).eval()
            images = sample_images(model.family, untrained, model.spec, n, seed)
            f_untrained = embed(extractor, images, name)
            precision, recall = precision_recall(f_untrained, quality.reference)
            result.update({f"untrained_fid@{name}": round(fid(f_untrained, quality.reference), 4),
                           f"untrained_precision@{name}": round(precision, 4),
                           f"untrained_recall@{name}": round(recall, 4)})
    if samples is not None and digits:
        result.update(digit_class_metrics(samples))
        if "conditional" in caps and getattr(model.spec.model, "num_classes", 0) == 10:
            result.update(label_accuracy(model, max(10, n // 10), seed))
    if registered:
        result.update(run_metrics(registered, model, samples, real.test))
    if model.repo_id is None:  # a Hub snapshot in the cache stays as downloaded
        metrics = read_metrics(model.path)
        previous = metrics.get("eval")
        metrics["eval"] = {**kept_blocks(previous, name if sampler else None), **result}
        if quality is not None and quality.closest is not None:
            from zoo.evaluation.quality import strip
            from zoo.sampling.sample import save_png

            save_png(strip(quality.closest), model.path / MEMORISATION)
            metrics["eval"][STRIP_FEATURES] = name
        elif shown := keep_strip(previous, metrics["eval"]):
            metrics["eval"][STRIP_FEATURES] = shown
        else:  # its numbers are gone: the strip goes too
            (model.path / MEMORISATION).unlink(missing_ok=True)
        write_json(model.path / METRICS, metrics)
        update_card(model.path)
    return result


def kept_blocks(previous: Any, name: str | None) -> dict[str, Any]:
    """The earlier evaluation's scores on other feature networks (``KEY@OTHER``), kept so
    ``zoo eval --features digits`` and ``--features inception`` both stay recorded."""
    if not isinstance(previous, dict):
        return {}
    return {key: value for key, value in previous.items()
            if isinstance(key, str) and "@" in key and key.rpartition("@")[2] != name}


def keep_strip(previous: Any, kept: dict[str, Any]) -> str | None:
    """The feature network of an earlier ``memorisation.png`` that stays (its
    ``memorised@NAME`` is still recorded: this evaluation used other features), or None:
    an evaluation without the check on the strip's own features removes it."""
    shown = previous.get(STRIP_FEATURES) if isinstance(previous, dict) else None
    return shown if isinstance(shown, str) and f"memorised@{shown}" in kept else None
