"""The memorisation check of ``zoo eval``: a family that copies training images is caught,
one that draws held-out images is not, and the strip (``memorisation.png``) shows the
copies above their training originals, captioned on the card and never left stale.

Two test families, registered in-process on mnist5k (28×28, one channel): ``copycat``
samples training images verbatim, ``heldout`` held-out ones; each row is picked by the
sample's own noise, so the seed decides which images come out.
"""

from __future__ import annotations

import functools
import json
from types import SimpleNamespace
from typing import Literal

import numpy as np
import pytest
import torch
from PIL import Image
from pydantic import Field
from torch import nn

from zoo import Family, FamilyRecord, FeatureExtractor, FeatureRecord, hookimpl
from zoo.core.spec import DataSpec, SampleSpec, Spec, TrainSpec
from zoo.evaluation.distances import MEMORISED_PERCENTILE, memorisation
from zoo.training.trainer import Trainer

SIZE, PAD, PAIRS = 28, 2, 8  # the strip: 2 rows of 8 tiles, make_grid's 2-pixel padding
#: Builds: a couple of idle steps on the first 1,000 training digits.
BUILD = ["train.max_steps=2", "data.limit=1000"]

# --------------------------------------------------------------------------- the plugin


class IdleTrain(TrainSpec):
    batch_size: int = Field(16, ge=1, le=65536, description="Images per (idle) step.")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="Nothing runs in it.")


class FewSamples(SampleSpec):
    n: int = Field(16, ge=1, le=100_000, description="Images in the sample grid.")


def _mnist() -> DataSpec:
    return DataSpec(source="mnist5k", image_size=SIZE)


class CopycatSpec(Spec):
    family: Literal["copycat"] = "copycat"
    data: DataSpec = Field(default_factory=_mnist)
    train: IdleTrain = Field(default_factory=IdleTrain)
    sample: FewSamples = Field(default_factory=FewSamples)


class HeldoutSpec(CopycatSpec):
    family: Literal["heldout"] = "heldout"


class Dummy(nn.Module):
    """One parameter, never trained: the model folder needs weights."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))


class IdleTrainer(Trainer):
    def step(self, images, labels, rng):
        return {}


@functools.cache
def pool(data: DataSpec, split: str) -> torch.Tensor:
    """The images a family copies: the training images as the model was trained on them
    (what zoo eval compares with), or the held-out split."""
    from zoo.evaluation.real import held_out_images, train_sample

    return train_sample(data) if split == "train" else held_out_images(data)


class Copycat(Family):
    """Samples training images verbatim, row j picked by sample j's noise."""

    trainer_class = IdleTrainer
    independent_samples = True
    split = "train"

    def build(self, spec):
        return Dummy()

    def sample(self, model, noise, spec, options):
        images = pool(spec.data, self.split)
        rows = noise.randint(len(images)).cpu()
        return images[rows].to(model.weight.device)


class Heldout(Copycat):
    """Samples held-out images: new to the model, drawn from the data distribution."""

    split = "test"


class Pixels(FeatureExtractor):
    """Grey pixels, 4×4 average-pooled (49-d for 28×28): a second feature network."""

    dims, identity, convention = 49, "test-pixels-v1", "grey pixels / 255, 4x4 average pool"

    def __call__(self, images):
        grey = images.float().mean(1, keepdim=True) / 255
        return nn.functional.avg_pool2d(grey, 4).flatten(1)


def load_pixels() -> Pixels:
    return Pixels()


@hookimpl
def register_families(register):
    for name, spec, impl in (("copycat", CopycatSpec, "Copycat"),
                             ("heldout", HeldoutSpec, "Heldout")):
        register(FamilyRecord(name=name, summary=f"{name} images, verbatim", paper="none",
                              spec=spec, impl=f"{__name__}:{impl}"))


@hookimpl
def register_features(register):
    register(FeatureRecord("pixels", "pooled grey pixels", f"{__name__}:load_pixels"))


@pytest.fixture(scope="module")
def plugin():
    """The two families and the pixel features, registered in-process for this module."""
    from zoo.core.plugins import load_plugins, reset_plugins
    from zoo.core.registry import get_registry

    load_plugins().register(SimpleNamespace(register_families=register_families,
                                            register_features=register_features),
                            name="memorisation-test")
    get_registry.cache_clear()
    yield
    reset_plugins()


@pytest.fixture(scope="module")
def folders(plugin, tmp_path_factory):
    import zoo

    out = tmp_path_factory.mktemp("memo")
    return {name: zoo.build(name, overrides=BUILD, out=out / name)
            for name in ("copycat", "heldout")}


# --------------------------------------------------------------------------- helpers


def evaluate(cli, folder, *args: str) -> dict:
    r = cli("eval", folder, "-n", "200", *args)
    assert r.code == 0, r.err
    return json.loads((folder / "metrics.json").read_text())["eval"]


def tiles(path) -> np.ndarray:
    """The strip's 2×8 tiles (uint8, 28×28 each), after checking its layout."""
    image = np.asarray(Image.open(path).convert("L"))
    assert image.shape == (2 * SIZE + 3 * PAD, PAIRS * SIZE + (PAIRS + 1) * PAD)
    step = SIZE + PAD
    cells = np.stack([np.stack([image[PAD + r * step:][:SIZE, PAD + c * step:][:, :SIZE]
                                for c in range(PAIRS)]) for r in range(2)])
    padding = image.copy()
    for r in range(2):
        for c in range(PAIRS):
            padding[PAD + r * step:][:SIZE, PAD + c * step:][:, :SIZE] = 255
    assert (padding == 255).all()  # only white between the tiles
    return cells


def as_uint8(images: torch.Tensor) -> set[bytes]:
    """Images in [0, 1] as the PNG stores them, one byte string each."""
    return {row.tobytes() for row in
            images[:, 0].mul(255).round().clamp(0, 255).to(torch.uint8).numpy()}


# --------------------------------------------------------------------------- the tests


def test_memorisation_by_hand_against_numpy():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(60, 2))
    held_out = rng.normal(size=(300, 2))
    samples = np.concatenate([train[:7] + 1e-6, rng.normal(size=(13, 2))])
    found = memorisation(*(torch.from_numpy(a) for a in (samples, train, held_out)))

    def nearest(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = np.sqrt(((points[:, None, :] - train[None, :, :]) ** 2).sum(-1))
        return d.min(1), d.argmin(1)

    threshold = np.percentile(nearest(held_out)[0], 1)
    distance, index = nearest(samples)
    assert MEMORISED_PERCENTILE == 1.0
    assert found.threshold == pytest.approx(threshold, rel=1e-12)
    # (torch.cdist goes through |x|² + |y|² - 2x·y: float64 rounding near 0)
    np.testing.assert_allclose(found.distance.numpy(), distance, rtol=1e-9, atol=1e-8)
    assert found.index.tolist() == index.tolist()
    assert found.fraction == pytest.approx((distance < threshold).mean())
    assert found.index[:7].tolist() == list(range(7))  # the near-copies find their originals
    assert found.fraction >= 7 / 20


def test_copies_are_caught_and_held_out_images_are_not(folders, cli):
    from zoo.hub import is_model_file

    copycat = evaluate(cli, folders["copycat"], "--features", "digits")
    heldout = evaluate(cli, folders["heldout"], "--features", "digits")
    assert copycat["memorised@digits"] >= 0.95
    assert heldout["memorised@digits"] <= 0.05
    assert copycat["train_images@digits"] == heldout["train_images@digits"] == 1000
    assert copycat["memorisation_strip"] == heldout["memorisation_strip"] == "digits"
    assert is_model_file("memorisation.png")  # zoo push publishes it

    data = DataSpec(source="mnist5k", image_size=SIZE, limit=1000)
    train = as_uint8(pool(data, "train"))
    test = as_uint8(pool(data, "test"))
    # copies: each on top of itself, its own nearest training image
    top, bottom = tiles(folders["copycat"] / "memorisation.png")
    assert (top == bottom).all()
    assert {t.tobytes() for t in top} <= train
    assert len({t.tobytes() for t in top}) > 1  # not one image eight times
    # held-out images above the training images closest to them
    top, bottom = tiles(folders["heldout"] / "memorisation.png")
    assert {t.tobytes() for t in top} <= test and {t.tobytes() for t in bottom} <= train
    assert not (top == bottom).all(axis=(1, 2)).any()

    for folder, scores in ((folders["copycat"], copycat), (folders["heldout"], heldout)):
        card = (folder / "README.md").read_text()
        percent = f"{100 * scores['memorised@digits']:.1f} %"
        caption = (f"Memorisation check (`zoo eval`): top row, the samples closest to a "
                   f"training image; bottom row, their nearest training images. {percent} of "
                   f"the samples are closer to a training image than 99 % of held-out images "
                   f"come (features `digits`).\n\n![memorisation](memorisation.png)")
        assert caption in card


def test_the_seed_picks_the_images(folders):
    import zoo

    model = zoo.from_pretrained(folders["copycat"])
    assert not model.sample(4, seed=0).equal(model.sample(4, seed=1))
    assert model.sample(4, seed=0).equal(model.sample(4, seed=0))


def test_a_strip_never_outlives_its_numbers(folders, cli):
    folder = folders["copycat"]
    strip = folder / "memorisation.png"
    # the strip from other features stays while their numbers do
    pixels = evaluate(cli, folder, "--features", "pixels")
    assert pixels["memorised@pixels"] >= 0.95 and pixels["memorisation_strip"] == "pixels"
    shown = strip.read_bytes()
    kept = evaluate(cli, folder, "--features", "digits", "--no-memorisation")
    assert "memorised@digits" not in kept and "fid@digits" in kept
    assert kept["memorised@pixels"] == pixels["memorised@pixels"]
    assert kept["memorisation_strip"] == "pixels" and strip.read_bytes() == shown
    assert "(features `pixels`)." in (folder / "README.md").read_text()
    # its own features evaluated without the check: strip and numbers go together
    gone = evaluate(cli, folder, "--features", "pixels", "--no-memorisation")
    assert not strip.exists()
    assert not {"memorised@pixels", "memorised@digits", "memorisation_strip"} & set(gone)
    assert "fid@pixels" in gone and "fid@digits" in gone
    card = (folder / "README.md").read_text()
    assert "memorisation.png" not in card and "Memorisation check" not in card
    # and the check again: it comes back
    again = evaluate(cli, folder, "--features", "digits")
    assert again["memorisation_strip"] == "digits" and strip.is_file()
    assert "![memorisation](memorisation.png)" in (folder / "README.md").read_text()
