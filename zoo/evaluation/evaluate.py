"""``zoo eval``: sample quality measured with the project's own digit classifier.

* ``frechet_distance``: Fréchet distance between Gaussians fitted to the
  classifier's 128-d features of N samples and of the held-out real digits
  (the test split, passed through the model's own data transform).
* ``class_coverage``: how many of the 10 digits are the confident (p ≥ 0.5)
  prediction for at least 0.5% of the samples.
* ``mean_confidence``: mean top-class probability of the samples.
* ``reference_fd``: the same distance between real training and held-out
  digits, the floor a perfect generator would reach at this sample size.

Families that reconstruct get the held-out reconstruction error; families
that declare ``log_likelihood`` the held-out negative log-likelihood; and
every metric a plugin registers (``register_metrics``) runs on the models it
applies to (see :class:`zoo.MetricRecord`).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.core.errors import CapabilityError

DIGIT_SOURCES = ("mnist5k", "torchvision:MNIST")
COVERAGE_CONFIDENCE = 0.5
COVERAGE_FRACTION = 0.005
#: The most values one registered metric may return (metrics.json and the card hold them all).
MAX_METRIC_VALUES = 64


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to feature sets ``a`` and ``b`` (N×D).

    ``||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^{1/2})``; the trace of the
    matrix square root is the sum of square roots of the eigenvalues of
    ``S_a S_b`` (real and non-negative for PSD covariances).
    """
    a64, b64 = a.double().cpu().numpy(), b.double().cpu().numpy()
    mu_a, mu_b = a64.mean(0), b64.mean(0)
    cov_a, cov_b = np.cov(a64, rowvar=False), np.cov(b64, rowvar=False)
    eig = np.linalg.eigvals(cov_a @ cov_b)
    tr_sqrt = np.sqrt(np.clip(eig.real, 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * tr_sqrt)


def class_stats(probs: torch.Tensor) -> dict[str, Any]:
    """Coverage, confidence and per-class counts from class probabilities N×10."""
    conf, label = probs.max(1)
    confident = label[conf >= COVERAGE_CONFIDENCE]
    counts = torch.bincount(confident, minlength=probs.shape[1])
    needed = max(1, int(np.ceil(COVERAGE_FRACTION * len(probs))))
    return {"class_coverage": int((counts >= needed).sum()),
            "mean_confidence": round(float(conf.mean()), 4),
            "class_counts": counts.tolist()}


@functools.cache
def _real_features(spec_data, n_train: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Classifier features of held-out and (the first ``n_train``) training digits."""
    from zoo.data import load_images
    from zoo.evaluation.features import embed, load_classifier

    net, _ = load_classifier()
    full = spec_data.model_copy(update={"limit": None})
    f_test, _ = embed(net, load_images(full, "test")[0])
    f_train, _ = embed(net, load_images(full, "train")[0][:n_train])
    return f_test, f_train


def score_images(images: torch.Tensor, spec_data) -> dict[str, Any]:
    """All digit metrics for images in [0, 1] from a model trained on ``spec_data``."""
    from zoo.evaluation.features import embed, load_classifier

    net, accuracy = load_classifier()
    f_test, f_train = _real_features(spec_data, max(len(images), 500))
    f_gen, probs = embed(net, images)
    return {"frechet_distance": round(frechet_distance(f_gen, f_test), 3),
            "reference_fd": round(frechet_distance(f_train, f_test), 3),
            **class_stats(probs), "classifier_accuracy": round(accuracy, 4)}


def reconstruction_metrics(model) -> dict[str, Any]:
    """Held-out per-pixel MSE of reconstructions next to predicting the mean training image."""
    test = held_out(model)
    mean_image = train_sample(model.spec.data).mean(0, keepdim=True)
    recon = torch.cat([model.reconstruct(test[i : i + 500]) for i in range(0, len(test), 500)])
    ours = float(((recon - test) ** 2).mean())
    baseline = float(((mean_image - test) ** 2).mean())
    return {"recon_mse": round(ours, 6), "mean_image_mse": round(baseline, 6),
            "recon_vs_mean_image": round(baseline / max(ours, 1e-12), 2)}


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
    """The test split of the model's data source, as the model was trained on it.

    Float32 ``N×C×S×S`` in [0, 1] at ``data.image_size`` with the model's
    channels, binarised as ``data.binarize`` says (the fixed static sample for
    ``static`` and ``dynamic``); ``data.limit`` does not apply to it. Of an indexed
    source (a folder), the first ``data.eval_images`` held-out images in key order; of a
    streamed one (``data.streaming``), the first ``data.eval_images`` in stream order.
    """
    from zoo.data import load_images

    spec = model.spec.data.model_copy(update={"limit": None})
    return load_images(spec, "test", at_most=spec.eval_images)[0]


#: How the held-out images that ``log_likelihood`` receives were binarised.
BINARISED = {"none": "grey levels in [0, 1]", "threshold": "thresholded",
             "static": "statically binarised", "dynamic": "statically binarised"}


def likelihood_metrics(model, k: int, limit: int | None = None) -> dict[str, Any]:
    """Importance-weighted negative log-likelihood (nats per image) of the held-out split.

    Any family that declares ``log_likelihood`` is called with :func:`held_out`
    images (the first ``limit``), ``k`` importance samples and a seeded
    generator. A family whose likelihood is not defined for those images (a
    Bernoulli decoder and grey levels, say) raises ``CapabilityError``, which
    becomes the ``iwae_note``.
    """
    import math

    test = held_out(model)
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


def check_digits(spec) -> None:
    """Raise a one-line error unless the model was trained on a digits data set."""
    if spec.data.source not in DIGIT_SOURCES:
        raise CapabilityError(
            f"zoo eval scores samples with a digit classifier; this model was trained on "
            f"{spec.data.source!r}, not one of {', '.join(DIGIT_SOURCES)}")


def evaluate_folder(path: str | Path, n: int = 1000, seed: int = 0, baseline: bool = False,
                    iwae_k: int = 1000, iwae_limit: int | None = None) -> dict[str, Any]:
    """Score a model, merge the result into its folder's ``metrics.json`` and card.

    ``path`` may also be a Hub id or named model; its cached snapshot is not
    modified (pull it with ``--local-dir`` to keep results).

    Reconstruction error for families that reconstruct, IWAE NLL for families
    with likelihoods, digit-classifier sample metrics for samplers trained on
    digits, and every registered metric that applies (:func:`run_metrics`).
    """
    from zoo.artifact import METRICS, WEIGHTS, check_finite, read_metrics, verify_folder, write_json
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
    if not ({"reconstruct", "log_likelihood"} & caps or registered):
        check_digits(model.spec)
    result: dict[str, Any] = {}
    if "reconstruct" in caps:
        result.update(reconstruction_metrics(model))
    if "log_likelihood" in caps:
        result.update(likelihood_metrics(model, iwae_k, iwae_limit))
    samples = None
    if "sample" in caps and (digits or any("sample" in m.needs for m in registered)):
        samples = model.sample(n, seed=seed)
        result.update({"samples": n, "seed": seed})
    if samples is not None and digits:
        result.update(score_images(samples, model.spec.data))
        if "conditional" in caps and getattr(model.spec.model, "num_classes", 0) == 10:
            result.update(label_accuracy(model, max(10, n // 10), seed))
        if baseline:
            from zoo.sampling.sample import sample_images
            from zoo.training.runtime import seed_everything

            seed_everything(model.spec.train.seed)
            untrained = model.family.load().build(model.spec).eval()
            images = sample_images(model.family, untrained, model.spec, n, seed)
            result["untrained_frechet_distance"] = score_images(
                images, model.spec.data)["frechet_distance"]
    if registered:
        result.update(run_metrics(registered, model, samples, held_out(model)))
    if model.repo_id is None:  # a Hub snapshot in the cache stays as downloaded
        metrics = read_metrics(model.path)
        metrics["eval"] = result
        write_json(model.path / METRICS, metrics)
        update_card(model.path)
    return result
