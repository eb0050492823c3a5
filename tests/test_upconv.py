"""Up-convolutional generator: exact renderings, the loss by hand, descriptions and options."""

from __future__ import annotations

import math

import pytest
import torch

import zoo

TINY = ["train.max_steps=4", "data.limit=128", "train.batch_size=16", "data.image_size=16",
        "model.identities_per_class=2", "model.stream_width=8", "model.joint_width=16",
        "model.channels=8", "sample.n=4"]


def digit(seed: int = 0, size: int = 8) -> torch.Tensor:
    """A random (1, 1, size, size) image."""
    return torch.rand(1, 1, size, size, generator=torch.Generator().manual_seed(seed))


def theta(rotation: float = 0.0, scale: float = 1.0, x: float = 0.0, y: float = 0.0
          ) -> torch.Tensor:
    """One row of transformation parameters."""
    return torch.tensor([[rotation, scale, x, y]])


def test_identity_transformation_is_the_image():
    from zoo_upconv.transforms import render

    x = digit()
    assert (render(x, theta()) - x).abs().max() < 1e-6


@pytest.mark.parametrize(("degrees", "turns"), [(90, 1), (-90, -1), (180, 2)])
def test_right_angle_rotations_are_rot90(degrees, turns):
    """Counter-clockwise as displayed: torch.rot90 over (H, W) with k = degrees / 90."""
    from zoo_upconv.transforms import render

    x = digit(1)
    assert (render(x, theta(degrees)) - torch.rot90(x, turns, (2, 3))).abs().max() < 1e-5


def test_a_one_pixel_shift_moves_every_pixel_and_fills_zeros():
    from zoo_upconv.transforms import render

    x = digit(2)
    right = torch.zeros_like(x)
    right[..., 1:] = x[..., :-1]
    down = torch.zeros_like(x)
    down[..., 1:, :] = x[..., :-1, :]
    assert (render(x, theta(x=1 / 8)) - right).abs().max() < 1e-5
    assert (render(x, theta(y=1 / 8)) - down).abs().max() < 1e-5


def test_scaling_about_the_centre_matches_bilinear_sampling_by_hand():
    """Scale s: output pixel centre p samples the input at p / s (normalised coordinates)."""
    from zoo_upconv.transforms import render

    x, s, n = digit(3), 1.5, 8
    out = render(x, theta(scale=s))

    def at(u: float, v: float) -> float:  # bilinear lookup at pixel coordinates, zeros outside
        total = 0.0
        for j in (math.floor(v), math.floor(v) + 1):
            for i in (math.floor(u), math.floor(u) + 1):
                if 0 <= i < n and 0 <= j < n:
                    total += (1 - abs(u - i)) * (1 - abs(v - j)) * float(x[0, 0, j, i])
        return total

    centre = (n - 1) / 2
    expected = torch.tensor([[at(centre + (i - centre) / s, centre + (j - centre) / s)
                              for i in range(n)] for j in range(n)])
    assert (out[0, 0] - expected).abs().max() < 1e-5


def test_grid_values_and_normalisation():
    from zoo_upconv.transforms import denormalise, grid_values, normalise

    bounds = torch.tensor([[-15.0, 15.0], [0.9, 1.1], [-0.1, 0.1], [0.0, 0.0]])
    trained, held_out = grid_values(bounds, 3)
    assert torch.allclose(trained[0], torch.tensor([-15.0, 0.0, 15.0]))
    assert torch.allclose(held_out[1], torch.tensor([0.95, 1.05]))
    params = torch.tensor([[15.0, 0.9, 0.05, 0.0]])
    assert torch.allclose(normalise(params, bounds), torch.tensor([[1.0, -1.0, 0.5, 0.0]]))
    assert torch.allclose(denormalise(normalise(params, bounds), bounds), params)


@pytest.mark.parametrize("mask_weight", [0.0, 0.5])
def test_loss_by_hand(mask_weight):
    from zoo_upconv.model import upconv_loss

    logits = torch.tensor([[[[0.0, 2.0]], [[1.0, -1.0]]]])  # (1, image + mask, 1, 2)
    target = torch.tensor([[[[0.25, 0.75]]]])
    sig = [1 / (1 + math.exp(-v)) for v in (0.0, 2.0)]
    mse = ((sig[0] - 0.25) ** 2 + (sig[1] - 0.75) ** 2) / 2
    # ink = target > 0.5 = [0, 1]; BCE = -[y log s(m) + (1 - y) log(1 - s(m))]
    mask = (-math.log(1 - 1 / (1 + math.exp(-1.0))) - math.log(1 / (1 + math.exp(1.0)))) / 2
    got = upconv_loss(logits if mask_weight else logits[:, :1], target, mask_weight)
    assert got["mse"].item() == pytest.approx(mse, rel=1e-6)
    assert got["loss"].item() == pytest.approx(mse + mask_weight * mask, rel=1e-6)


def test_identities_are_the_first_of_each_class_and_too_few_is_one_line():
    from zoo_upconv.model import pick_identities

    from zoo.core.errors import DataError

    labels = torch.tensor([1, 0, 1, 0, 0, 1, 0])
    assert pick_identities(labels, 2, 2, "s").tolist() == [[1, 3], [0, 2]]
    with pytest.raises(DataError, match=r"class 1 has 3 training images, but model\.identities"):
        pick_identities(labels, 2, 4, "s")
    with pytest.raises(DataError, match=r"has label 1, but model\.num_classes = 1"):
        pick_identities(labels, 1, 1, "s")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A tiny trained upconv model."""
    return zoo.build("upconv", None, TINY, tmp_path_factory.mktemp("upconv") / "tiny")


def test_training_stores_the_identities_and_card(built):
    from zoo.data import load_images

    model = zoo.from_pretrained(built)
    x, labels = load_images(model.spec.data, "train", training=True)
    first = [int((labels == 7).nonzero()[k]) for k in range(2)]
    assert torch.equal(model.module.identity_images[7], x[first])
    assert (built / "rotations.png").is_file()


def test_options_change_the_image_and_bad_ones_are_one_line(built, tmp_path, cli):
    model = zoo.from_pretrained(built)
    base = model.sample(3, seed=1, label=3, identity=0, rotation=0.0)
    for other in ({"label": 4}, {"identity": 1}, {"rotation": 10.0}):
        changed = model.sample(3, seed=1, **{"label": 3, "identity": 0, "rotation": 0.0, **other})
        assert not torch.equal(base, changed), other
    fixed = {"label": 3, "identity": 0, "rotation": 0, "scale": 1, "shift_x": 0, "shift_y": 0}
    alike = model.sample(2, seed=5, **fixed)
    assert (alike[0] - alike[1]).abs().max() < 1e-6  # the description is the whole input
    for how, message in ((["--label", "10"], "classes 0 to 9"),
                         (["--opt", "identity=2"], "identities 0 to 1"),
                         (["--opt", "rotation=40"], "outside this model's training range")):
        r = cli("sample", built, *how, "-n", "2", "-o", tmp_path / "x.png")
        assert r.code == 2 and len(r.err.strip().splitlines()) == 1 and message in r.err, r.err
        assert not (tmp_path / "x.png").exists()


def test_lerp_between_identities_ends_at_the_samples(built):
    from zoo.visualize.interpolate import strips

    model = zoo.from_pretrained(built)
    images, _ = strips(model, pairs=1, frames=4, method="lerp", label=2)
    ends = model.sample(2, seed=0, label=2)
    assert images.shape == (1, 4, 1, 16, 16)
    assert (images[0, 0] - ends[0]).abs().max() < 1e-5
    assert (images[0, -1] - ends[1]).abs().max() < 1e-5


def test_heldout_metric_against_a_baseline_by_hand(built):
    """The baseline is the best of the 16 trained corners around each held-out theta."""
    import itertools

    from zoo_upconv.metrics import heldout_mse, heldout_scores
    from zoo_upconv.model import held_out_theta
    from zoo_upconv.transforms import grid_values, ranges, render

    model = zoo.from_pretrained(built)
    scores = heldout_scores(model.module, model.spec, n=5, seed=3)
    g = torch.Generator().manual_seed(3)
    labels, ids = torch.randint(10, (5,), generator=g), torch.randint(2, (5,), generator=g)
    target_theta, _ = held_out_theta(model.spec, 5, g)
    trained, _ = grid_values(ranges(model.spec.model), model.spec.model.grid)
    step = trained[:, 1] - trained[:, 0]
    total = 0.0
    for i in range(5):
        x = model.module.identity_images[labels[i], ids[i]][None]
        truth = render(x, target_theta[i:i + 1])
        nearest = [[v for v in trained[j].tolist()
                    if abs(v - float(target_theta[i, j])) <= float(step[j]) / 2 + 1e-5]
                   for j in range(4)]
        assert all(len(values) == 2 for values in nearest)  # a midpoint: two trained neighbours
        total += min(float((render(x, torch.tensor([corner])) - truth).pow(2).mean())
                     for corner in itertools.product(*nearest))
    assert scores["baseline"] == pytest.approx(total / 5, abs=1e-5)
    assert scores["ratio"] == pytest.approx(scores["generator"] / scores["baseline"], rel=1e-2)

    assert heldout_mse(model, None, torch.zeros(1)) == heldout_scores(model.module, model.spec)
    # registered for upconv alone: another conditional family with latent codes (a
    # class-conditional LAPGAN) never runs it
    from zoo.core.registry import get_family, get_registry

    metric = get_registry().metrics["heldout_mse"]
    lapgan = get_family("lapgan")
    assert {"latent", "conditional"} <= lapgan.capabilities
    assert not metric.applies_to(lapgan, "mnist5k")
    assert metric.applies_to(get_family("upconv"), "mnist5k")
