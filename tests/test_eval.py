"""Quality metrics checked against independent computations."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import linalg

from zoo.evaluation.distances import fid
from zoo.evaluation.evaluate import class_stats


def reference_fd(a: np.ndarray, b: np.ndarray) -> float:
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s_a @ s_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a + s_b - 2 * covmean))


def test_frechet_distance_matches_scipy_sqrtm():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 12))
    b = rng.normal(size=(300, 12)) @ rng.normal(size=(12, 12)) * 0.5 + 1.0
    ours = fid(torch.from_numpy(a), torch.from_numpy(b))
    assert ours == pytest.approx(reference_fd(a, b), rel=1e-5)
    assert fid(torch.from_numpy(a), torch.from_numpy(a)) == pytest.approx(0, abs=1e-4)


def test_frechet_distance_of_shifted_gaussians_is_the_squared_shift():
    x = torch.randn(2000, 4, dtype=torch.float64)
    assert fid(x, x + 3.0) == pytest.approx(4 * 9.0, rel=1e-5)


def test_class_stats_by_hand():
    probs = torch.zeros(200, 10)
    probs[:100, 3] = 0.9  # 100 confident threes
    probs[100:199, 7] = 0.6  # 99 sevens
    probs[199, 1] = 0.95  # a single one: below 0.5 % of 200 is 1 sample -> counts
    probs[:, 0] += 1 - probs.sum(1)
    stats = class_stats(probs)
    assert stats["class_counts"][3] == 100 and stats["class_counts"][7] == 99
    assert stats["class_coverage"] == 3
    assert stats["mean_confidence"] == pytest.approx((100 * 0.9 + 99 * 0.6 + 0.95) / 200, abs=1e-4)


def test_digit_classifier_is_accurate_and_cached(zoo_home):
    from zoo.evaluation.features import cache_path, load_classifier

    _, accuracy = load_classifier()
    assert accuracy >= 0.97
    assert cache_path().is_file() and str(cache_path()).startswith(str(zoo_home))


def test_eval_scores_and_records(tiny_dcgan, cli):
    r = cli("eval", tiny_dcgan, "-n", "200", "--baseline")
    assert r.code == 0, r.err
    metrics = json.loads((tiny_dcgan / "metrics.json").read_text())
    result = metrics["eval"]
    assert result["samples"] == 200 and "train" in metrics
    for key in ("fid@digits", "reference_fid@digits", "kid@digits", "precision@digits",
                "recall@digits", "memorised@digits", "class_coverage", "mean_confidence",
                "untrained_fid@digits", "classifier_accuracy"):
        assert key in result
    assert result["reference_fid@digits"] < result["fid@digits"]
    assert result["convention@digits"].startswith("genzoo digit classifier")
    card = (tiny_dcgan / "README.md").read_text()
    assert "eval.fid@digits" in card and "model-index:" in card
    assert "![memorisation](memorisation.png)" in card
