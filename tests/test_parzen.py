"""The Parzen-window estimate against independent computations, and as ``zoo eval`` runs it."""

from __future__ import annotations

import math

import pytest
import torch

from zoo.core.registry import get_registry
from zoo.evaluation.parzen import log_density, parzen_estimate, parzen_metric


def test_log_density_equals_a_direct_logsumexp_by_hand():
    """Two centres in 3-D, one point: the formula written out term by term."""
    centres = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 2.0]])
    point = torch.tensor([[1.0, 0.0, 0.0]])
    sigma = 0.5
    d2 = [1.0, 8.0]  # |x - s_i|^2
    terms = [-v / (2 * sigma**2) for v in d2]
    top = max(terms)
    lse = top + math.log(sum(math.exp(t - top) for t in terms))
    expected = lse - math.log(2) - 1.5 * math.log(2 * math.pi * sigma**2)
    assert log_density(point, centres, sigma).item() == pytest.approx(expected, abs=1e-12)


def test_log_density_matches_scikit_learn_kernel_density_on_2d_data():
    """Where scikit-learn's tree is exact: its bounds lose digits in the far tails (it gave
    -77.9 and -33.1 by kd- and ball-tree where the density is e^-93), hence the cut-off."""
    sklearn = pytest.importorskip("sklearn.neighbors")
    g = torch.Generator().manual_seed(0)
    scale = torch.tensor([1.0, 0.3], dtype=torch.float64)
    centres = torch.randn(200, 2, generator=g, dtype=torch.float64) * scale
    points = torch.randn(300, 2, generator=g, dtype=torch.float64) * scale  # > CHUNK rows
    for sigma in (0.05, 0.3, 2.0):
        kde = sklearn.KernelDensity(kernel="gaussian", bandwidth=sigma).fit(centres.numpy())
        theirs = torch.from_numpy(kde.score_samples(points.numpy()))
        ours = log_density(points, centres, sigma)
        inside = theirs > -20
        assert inside.sum() > 250
        assert torch.allclose(ours[inside], theirs[inside], atol=1e-9)


def test_log_density_is_stable_far_from_every_centre():
    """A point 100 σ from the nearest sample: finite (logsumexp), not -inf."""
    value = log_density(torch.full((1, 4), 10.0), torch.zeros(3, 4), 0.1).item()
    assert math.isfinite(value)
    # three equal terms: logsumexp adds log 3, the normalisation takes it away
    assert value == pytest.approx(-400 / (2 * 0.01) - 2 * math.log(2 * math.pi * 0.01))


def test_a_grid_of_sigmas_gives_one_row_each():
    centres, points = torch.rand(7, 5), torch.rand(4, 5)
    grid = torch.tensor([0.1, 0.2, 0.4], dtype=torch.float64)
    rows = log_density(points, centres, grid)
    assert rows.shape == (3, 4)
    for k, sigma in enumerate(grid):
        assert torch.allclose(rows[k], log_density(points, centres, float(sigma)))


def test_sigma_is_chosen_on_validation_and_the_estimate_is_on_test():
    """σ maximises the validation mean over the grid; ll and se are the test split's."""
    g = torch.Generator().manual_seed(1)
    samples = torch.randn(400, 2, generator=g, dtype=torch.float64)
    validation = torch.randn(100, 2, generator=g, dtype=torch.float64)
    test = torch.randn(100, 2, generator=g, dtype=torch.float64) + 0.5  # another set
    grid = torch.logspace(-2, 1, 31, dtype=torch.float64)
    got = parzen_estimate(samples, validation, test, grid)
    means = torch.stack([log_density(validation, samples, float(s)).mean() for s in grid])
    assert got["sigma"] == pytest.approx(float(grid[int(means.argmax())]))
    ll = log_density(test, samples, got["sigma"])
    assert got["ll"] == pytest.approx(float(ll.mean()))
    assert got["se"] == pytest.approx(float(ll.std() / 10))
    assert (got["samples"], got["test_images"], got["sigma_at_grid_edge"]) == (400, 100, 0)
    # a 2-D standard normal: the KDE's estimate approaches the true entropy bound from below
    assert got["ll"] < -math.log(2 * math.pi) - 1 + 0.2


def test_the_metric_splits_held_out_images_into_validation_and_test():
    samples, reference = torch.rand(30, 1, 4, 4), torch.rand(11, 1, 4, 4)
    got = parzen_metric(None, samples, reference)
    assert got == parzen_estimate(samples, reference[0::2], reference[1::2])
    assert got["test_images"] == 5


def test_bad_inputs_are_one_line_errors():
    with pytest.raises(ValueError, match="values per row"):
        log_density(torch.rand(2, 3), torch.rand(2, 4), 0.1)
    with pytest.raises(ValueError, match="at least 1 validation and 2 test"):
        parzen_estimate(torch.rand(5, 3), torch.rand(1, 3), torch.rand(1, 3))


def test_parzen_is_registered_for_every_sampling_family():
    registry = get_registry()
    metric = registry.metrics["parzen"]
    for name, family in registry.families.items():
        assert metric.applies_to(family, "mnist5k") == ("sample" in family.capabilities), name
