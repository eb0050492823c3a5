"""``zoo eval``: sample quality measured with the project's own digit classifier.

* ``frechet_distance``: Fréchet distance between Gaussians fitted to the
  classifier's 128-d features of N samples and of the held-out real digits
  (the test split, passed through the model's own data transform).
* ``class_coverage``: how many of the 10 digits are the confident (p ≥ 0.5)
  prediction for at least 0.5% of the samples.
* ``mean_confidence``: mean top-class probability of the samples.
* ``reference_fd``: the same distance between real training and held-out
  digits, the floor a perfect generator would reach at this sample size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.errors import CapabilityError

DIGIT_SOURCES = ("mnist5k", "torchvision:MNIST")
COVERAGE_CONFIDENCE = 0.5
COVERAGE_FRACTION = 0.005


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


def score_images(images: torch.Tensor, spec_data) -> dict[str, Any]:
    """All digit metrics for images in [0, 1] from a model trained on ``spec_data``."""
    from zoo.data import load_images
    from zoo.features import embed, load_classifier

    net, accuracy = load_classifier()
    real_test, _ = load_images(spec_data.model_copy(update={"limit": None}), "test")
    real_train, _ = load_images(spec_data.model_copy(update={"limit": None}), "train")
    f_test, _ = embed(net, real_test)
    f_train, _ = embed(net, real_train[: max(len(images), len(real_test))])
    f_gen, probs = embed(net, images)
    return {"frechet_distance": round(frechet_distance(f_gen, f_test), 3),
            "reference_fd": round(frechet_distance(f_train, f_test), 3),
            **class_stats(probs), "classifier_accuracy": round(accuracy, 4)}


def check_digits(spec) -> None:
    """Raise a one-line error unless the model was trained on a digits data set."""
    if spec.data.source not in DIGIT_SOURCES:
        raise CapabilityError(
            f"zoo eval scores with a digit classifier; this model was trained on "
            f"{spec.data.source!r}, not one of {', '.join(DIGIT_SOURCES)}")


def evaluate_folder(path: str | Path, n: int = 1000, seed: int = 0,
                    baseline: bool = False) -> dict[str, Any]:
    """Score a model folder, merge the result into ``metrics.json`` and the card."""
    from zoo.api import from_pretrained
    from zoo.artifact import METRICS, read_metrics, write_json
    from zoo.write import update_card

    model = from_pretrained(path)
    check_digits(model.spec)
    result = {"samples": n, "seed": seed,
              **score_images(model.sample(n, seed=seed), model.spec.data)}
    if baseline:
        from zoo.train import seed_everything

        seed_everything(model.spec.train.seed)
        untrained = model.family.load().build(model.spec).eval()
        from zoo.sample import sample_images

        images = sample_images(model.family, untrained, model.spec, n, seed)
        result["untrained_frechet_distance"] = score_images(images, model.spec.data)[
            "frechet_distance"]
    metrics = read_metrics(model.path)
    metrics["eval"] = result
    folder = Path(path)
    tmp = folder / f".{METRICS}.tmp"
    write_json(tmp, metrics)
    tmp.replace(folder / METRICS)
    update_card(folder)
    return result
