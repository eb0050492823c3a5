"""``zoo probe``: the torch logistic regression against scikit-learn, the ``features``
capability of the family contract, every built-in family's features, and the command."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import torch.nn.functional as F
from zoo_ddpm.model import FEATURE_TIMES

from zoo import Family, FamilyRecord
from zoo.api import resolve_spec
from zoo.core.spec import Spec
from zoo.evaluation.logistic import Linear, choose_c, fit, objective, stratified_folds
from zoo.evaluation.probe import balanced_subset, standardise
from zoo.training.trained import fresh_modules
from zoo.training.trainer import Trainer

# --------------------------------------------------------------------------- the classifier


def problem(n: int = 300, f: int = 12, k: int = 4, seed: int = 0):
    """A small well-conditioned multinomial problem: standardised Gaussian features."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(k, f, generator=g)
    x = torch.randn(n, f, generator=g, dtype=torch.float64)
    y = (x.float() @ w.T + torch.randn(n, k, generator=g)).argmax(1)
    return standardise(x, x)[0], y


@pytest.mark.parametrize("c", [0.01, 1.0])
def test_logistic_regression_matches_scikit_learn(c):
    from sklearn.linear_model import LogisticRegression

    x, y = problem()
    ours = fit(x, y, 4, c, tol=1e-9)
    sk = LogisticRegression(C=c, tol=1e-10, max_iter=10_000).fit(x.numpy(), y.numpy())
    theirs = Linear(torch.tensor(sk.coef_), torch.tensor(sk.intercept_))
    # the same objective (sklearn's C * sum CE + ||W||^2 / 2, divided by C n), same minimiser
    assert float(objective(ours, x, y, c)) == pytest.approx(float(objective(theirs, x, y, c)),
                                                            abs=1e-9)
    assert torch.allclose(ours.weight, theirs.weight, atol=1e-4)
    # intercepts are defined up to a shared constant (softmax): compare them centred
    assert torch.allclose(ours.bias - ours.bias.mean(), theirs.bias - theirs.bias.mean(),
                          atol=1e-4)
    x_test, y_test = problem(seed=1)
    sk_acc = float((sk.predict(x_test.numpy()) == y_test.numpy()).mean())
    assert abs(ours.accuracy(x_test, y_test) - sk_acc) <= 0.01


def test_objective_is_mean_cross_entropy_plus_scaled_penalty():
    x, y = problem(n=20, f=3, k=3)
    model = Linear(torch.ones(3, 3, dtype=torch.float64) * 0.1,
                   torch.tensor([0.0, 1.0, -1.0], dtype=torch.float64))
    by_hand = sum(-torch.log_softmax(model.logits(x[i : i + 1]), 1)[0, y[i]]
                  for i in range(20)) / 20 + 0.09 / (2 * 0.5 * 20)
    assert float(objective(model, x, y, 0.5)) == pytest.approx(float(by_hand))


def test_folds_and_subsets_are_stratified_and_seeded():
    y = torch.arange(10).repeat(9)  # 9 of each class
    folds = stratified_folds(y, 3, torch.Generator().manual_seed(0))
    assert sorted(torch.cat(folds).tolist()) == list(range(90))
    assert all(torch.bincount(y[f], minlength=10).tolist() == [3] * 10 for f in folds)
    subset = balanced_subset(y, 50, seed=1)
    assert torch.bincount(y[subset]).tolist() == [5] * 10
    assert torch.equal(subset, balanced_subset(y, 50, seed=1))
    assert not torch.equal(subset, balanced_subset(y, 50, seed=2))
    c, scores = choose_c(*problem(n=90), 4)
    assert c in scores and scores[c] == max(scores.values())


# --------------------------------------------------------------------------- the contract


class Probed(Family):
    trainer_class = Trainer

    def build(self, spec):
        return torch.nn.Identity()

    def sample(self, model, noise, spec, options):
        return torch.zeros(1)

    def features(self, model, images, spec, trained):
        return images.flatten(1)


class WrongFeatures(Probed):
    def features(self, model, images):  # the contract passes spec and trained too
        return images.flatten(1)


def record(cls) -> FamilyRecord:
    return FamilyRecord(name="fake", summary="s", paper="none", spec=Spec,
                        impl=f"{__name__}:{cls.__name__}")


def test_overriding_features_is_the_capability():
    assert "features" in record(Probed).capabilities
    assert Probed.contract_errors() == []
    assert any(e.startswith("defines features(self, model, images), which cannot take")
               for e in WrongFeatures.contract_errors())


# --------------------------------------------------------------------------- the families

#: Tiny specs of every built-in family with features, and the width each documents.
TINY = {
    "ae": (["data.image_size=8", "model.hidden=[16]", "model.code_dim=5"], 5),
    "sparse-ae": (["data.image_size=8", "model.hidden=[16]", "model.code_dim=5"], 5),
    "denoising-ae": (["data.image_size=8", "model.hidden=[16]", "model.code_dim=5"], 5),
    "contractive-ae": (["data.image_size=8", "model.hidden=[]", "model.code_dim=5"], 5),
    "conv-ae": (["data.image_size=8", "model.channels=[4,8]", "model.code_dim=6"], 6),
    "vae": (["data.image_size=8", "model.hidden=[16]", "model.code_dim=3"], 3),
    "aae": (["data.image_size=8", "model.hidden=[16]", "model.code_dim=2"], 2),
    "k-sparse-ae": (["data.image_size=8", "model.hidden=[]", "model.code_dim=20",
                     "model.k=2", "model.alpha=3"], 20),
    # D's layers at 8x8 (4 channels) and 4x4 (8), each max-pooled to 4x4
    "dcgan": (["data.image_size=16", "model.base_channels=4", "model.disc_channels=4",
               "model.latent_dim=4"], (4 + 8) * 16),
    "gan": (["data.image_size=8", "model.latent_dim=4", "model.g_hidden=[16]",
             "model.d_units=[6,5]", "model.d_pieces=2"], 6 + 5),
    # coarse D: 2 hidden layers of 8; finer D: conv layers of 4, 8, 8 channels pooled to 4x4
    "lapgan": (["data.image_size=16", "model.levels=2", "model.hidden=8", "model.channels=4",
                "model.num_classes=10"], 2 * 8 + (4 + 8 + 8) * 16),
    "ddpm": (["data.image_size=8", "model.channels=8", "model.channel_mult=[1,2]",
              "model.attention_levels=[]", "model.timesteps=10", "model.groups=4"],
             16 * len(FEATURE_TIMES)),  # the middle block's width at each feature step
    "draw": (["data.image_size=12", "model.steps=3", "model.enc_hidden=8",
              "model.dec_hidden=8", "model.z_size=4"], 3 * 4),
}


def test_every_family_with_features_is_covered():
    from zoo.evaluation.probe import families_with_features

    assert set(families_with_features()) >= set(TINY)
    assert "upconv" not in families_with_features()  # no inference network


@pytest.mark.parametrize("family", sorted(TINY))
def test_features_have_the_documented_shape_and_are_deterministic(family):
    overrides, width = TINY[family]
    rec, spec = resolve_spec(family, None, overrides)
    impl = rec.load()
    model, modules = fresh_modules(impl, spec, seed=0)
    c = 1
    size = spec.data.image_size
    images = torch.rand(5, c, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a = impl.features(model, images, spec, modules)
        b = impl.features(model, images, spec, modules)
        first = impl.features(model, images[:2], spec, modules)
    assert a.shape == (5, width) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert torch.allclose(first, a[:2], atol=1e-5)  # row i from image i alone
    again, modules_again = fresh_modules(impl, spec, seed=0)  # a seeded random network
    with torch.no_grad():
        assert torch.equal(impl.features(again, images, spec, modules_again), a)


def test_dcgan_features_are_the_discriminators_layers_max_pooled_to_4x4():
    rec, spec = resolve_spec("dcgan", None, [*TINY["dcgan"][0], "data.image_size=32"])
    impl = rec.load()
    model, modules = fresh_modules(impl, spec, seed=3)
    disc = modules["discriminator"]
    outputs = []
    hooks = [m.register_forward_hook(lambda mod, i, o: outputs.append(o.clone()))
             for m in disc.net if isinstance(m, torch.nn.LeakyReLU)]
    images = torch.rand(3, 1, 32, 32)
    with torch.no_grad():
        disc(images * 2 - 1)
        for h in hooks:
            h.remove()
        ours = impl.features(model, images, spec, modules)
    assert [o.shape[-1] for o in outputs] == [16, 8, 4]
    explicit = torch.cat([F.max_pool2d(o, o.shape[-1] // 4).flatten(1) for o in outputs], 1)
    assert torch.allclose(ours, explicit)


# --------------------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def probed(micro_dcgan, tmp_path_factory):
    """A copy of the micro DCGAN folder (the probe writes into it)."""
    return shutil.copytree(micro_dcgan, tmp_path_factory.mktemp("probe") / "dcgan")


def test_probe_writes_metrics_and_the_card(cli, probed):
    result = cli("probe", probed, "--labels", "20", "--seeds", "2", "--json")
    assert result.code == 0, result.err
    scores = json.loads(result.out)
    metrics = json.loads((probed / "metrics.json").read_text())["probe"]
    assert metrics == scores
    for kind in ("features", "pixels", "random"):
        assert 0.1 <= metrics[f"{kind}.20"] <= 1 and metrics[f"{kind}.20.std"] >= 0
    assert metrics["features.dim"] == (8 + 16) * 16 and metrics["pixels.dim"] == 16 * 16
    assert metrics["test_images"] == 500 and metrics["seeds"] == 2
    card = (probed / "README.md").read_text()
    assert "## Linear probe" in card and "| labels | features | pixels | random network |" in card
    assert f"| 20 | {100 * metrics['features.20']:.1f} ± " in card
    assert "| probe.features.20 |" not in card  # not repeated among the metrics rows


def test_probe_refuses_bad_labels_in_one_line(cli, probed):
    result = cli("probe", probed, "--labels", "100,lots")
    assert result.code == 2 and len(result.err.strip().splitlines()) == 1
    assert "--labels 'lots'" in result.err
    result = cli("probe", probed, "--labels", "100000")
    assert result.code == 2 and len(result.err.strip().splitlines()) == 1
    assert "100,000 labels asked for, but the training split has" in result.err
    metrics = json.loads((probed / "metrics.json").read_text())
    assert "100000" not in json.dumps(metrics.get("probe", {}))


def test_missing_training_state_is_one_line(cli, probed, tmp_path):
    folder = shutil.copytree(probed, tmp_path / "no-state")
    shutil.rmtree(folder / "training_state")
    result = cli("probe", folder, "--labels", "20", "--seeds", "1")
    assert result.code == 2, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "no training_state/" in lines[0] and "zoo pull" in lines[0]


def test_unlabelled_data_is_one_line(tmp_path):
    from PIL import Image

    from zoo.core.errors import DataError
    from zoo.core.spec import DataSpec
    from zoo.evaluation.probe import labelled_splits

    for i in range(12):
        Image.new("L", (8, 8), 20 * i).save(tmp_path / f"{i}.png")
    with pytest.raises(DataError, match="has no labels") as info:
        labelled_splits(DataSpec(source="folder", path=str(tmp_path), image_size=8))
    assert "\n" not in str(info.value)


def test_a_family_without_features_is_one_line(cli, tmp_path):
    import zoo

    folder = zoo.build("upconv", None, [
        "data.image_size=8", "model.identities_per_class=1", "model.stream_width=8",
        "model.joint_width=16", "model.channels=8", "train.max_steps=1", "data.limit=64",
        "sample.n=4", "train.precision=fp32"], tmp_path / "upconv")
    result = cli("probe", folder)
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "exposes no features" in lines[0] and "dcgan" in lines[0]
