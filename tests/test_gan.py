"""The original GAN: losses by hand, maxout against an explicit max, Algorithm 1's k, the
paper's sizes, deterministic sampling and latent interpolation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import zoo
from zoo.api import resolve_spec
from zoo.training.gan import discriminator_loss, generator_loss

#: A small network on 8x8 digits (fast to build and train).
SMALL = ["data.image_size=8", "model.latent_dim=4", "model.g_hidden=[16]",
         "model.d_units=[6]", "model.d_pieces=3"]


def log_sigmoid(v: float) -> float:
    """log(1 / (1 + e^-v)), by hand."""
    return -math.log(1 + math.exp(-v))


def trainer_for(overrides: list[str]):
    """A fresh trainer (fp32, CPU) for the small spec with ``overrides``."""
    from zoo_gan.model import GAN

    from zoo.training.runtime import make_accelerator

    _, spec = resolve_spec("gan", None, [*SMALL, "train.precision=fp32", *overrides])
    acc, _ = make_accelerator(spec)
    torch.manual_seed(0)
    family = GAN()
    return family.trainer(spec, family.build(spec), acc)


# --------------------------------------------------------------------------- the objective


def test_shared_losses_on_two_logits_by_hand():
    a, b = 0.7, -1.3  # D's logit on a real image and on a fake one
    loss_d = discriminator_loss(torch.tensor([a]), torch.tensor([b]))
    assert float(loss_d) == pytest.approx(-(log_sigmoid(a) + math.log(1 - 1 / (1 + math.exp(-b)))))
    assert float(generator_loss(torch.tensor([b]))) == pytest.approx(-log_sigmoid(b))


def test_the_trainer_step_computes_the_value_function_by_hand():
    """One real image and one noise vector: the step's losses are -[log s(a) + log(1 - s(b))]
    and -log s(b'), a = D(x), b = D(G(z)), b' = D(G(z)) after D's step (lr ~ 0, no dropout)."""
    t = trainer_for(["train.batch_size=1", "train.lr=1e-12", "model.d_input_dropout=0",
                     "model.d_dropout=0"])
    x = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    z = torch.randn(1, 4, generator=torch.Generator().manual_seed(1))  # the step's first draw
    with torch.no_grad():
        a, b = float(t.disc(x)), float(t.disc(t.model(z)))
    losses = t.step(x, None, torch.Generator().manual_seed(1))
    assert float(losses["loss_d"]) == pytest.approx(-(log_sigmoid(a) + log_sigmoid(-b)), rel=1e-5)
    assert float(losses["loss_g"]) == pytest.approx(-log_sigmoid(b), rel=1e-5)
    assert float(losses["d_real"]) == pytest.approx(1 / (1 + math.exp(-a)), rel=1e-5)


def test_k_discriminator_steps_per_generator_step():
    t = trainer_for(["train.d_steps=2", "train.batch_size=4"])
    x = torch.rand(4, 1, 8, 8)
    rng = torch.Generator().manual_seed(0)

    def snapshot() -> list[torch.Tensor]:
        return [p.detach().clone() for p in (*t.model.parameters(), *t.disc.parameters())]

    def moved(before: list[torch.Tensor], module: nn.Module) -> bool:
        params = list(t.model.parameters()) + list(t.disc.parameters())
        own = {id(p) for p in module.parameters()}
        return any(not torch.equal(b, p) for b, p in zip(before, params, strict=True)
                   if id(p) in own)

    for step, g_steps in ((0, False), (1, True), (2, False), (3, True)):
        t.steps_done = step
        before = snapshot()
        t.step(x, None, rng)
        assert moved(before, t.disc)
        assert moved(before, t.model) is g_steps, step


def test_start_sets_the_output_bias_to_the_logit_of_the_mean_image():
    t = trainer_for([])
    images = torch.rand(10, 1, 8, 8) * 0.98 + 0.01
    t.start(images)
    g = t.sampling_module()
    assert torch.allclose(torch.sigmoid(g.out.bias), images.mean(0).flatten(), atol=1e-6)
    assert torch.allclose(g(torch.zeros(1, 4)).mean(), images.mean(), atol=0.2)


def test_sgd_with_momentum_as_in_the_paper():
    t = trainer_for(["train.optimizer=sgd", "train.lr=0.1", "train.momentum=0.5"])
    for opt in (t.opt_g, t.opt_d):
        group = opt.param_groups[0]
        assert isinstance(opt.optimizer, torch.optim.SGD)
        assert (group["lr"], group["momentum"]) == (0.1, 0.5)


# --------------------------------------------------------------------------- the networks


def test_maxout_is_the_max_over_each_units_pieces():
    from zoo_gan.model import Maxout

    torch.manual_seed(0)
    layer = Maxout(5, 3, 4)
    x = torch.randn(2, 5)
    w, b = layer.linear.weight.detach(), layer.linear.bias.detach()
    want = torch.tensor([[max(float(w[j * 4 + p] @ x[n] + b[j * 4 + p]) for p in range(4))
                          for j in range(3)] for n in range(2)])
    assert torch.allclose(layer(x), want, atol=1e-6)


def test_the_papers_sizes_by_default():
    from zoo_gan.model import GAN, Maxout, build_discriminator

    _, spec = resolve_spec("gan", None, ["data.image_size=28"])
    g, d = GAN().build(spec), build_discriminator(spec)
    linears = [m for m in g.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (100, 1200), (1200, 1200), (1200, 784)]
    assert sum(p.numel() for p in g.parameters()) == 100 * 1200 + 1200 * 1200 + 1200 * 784 + (
        1200 + 1200 + 784)
    maxouts = [m for m in d.modules() if isinstance(m, Maxout)]
    assert [(m.linear.in_features, m.units, m.pieces) for m in maxouts] == [
        (784, 240, 5), (240, 240, 5)]
    assert [m.p for m in d.modules() if isinstance(m, nn.Dropout)] == [0.2, 0.5, 0.5]
    assert max(float(p.detach().abs().max()) for p in d.parameters()) <= 0.005
    assert max(float(p.detach().abs().max()) for p in g.parameters()) <= 0.05


@pytest.mark.parametrize(("size", "channels"), [(8, 1), (12, 3)])
def test_shapes_and_ranges(size, channels):
    from zoo_gan.model import GAN, build_discriminator

    _, spec = resolve_spec("gan", None, [*SMALL, f"data.image_size={size}",
                                         f"data.channels={channels}"])
    g, d = GAN().build(spec).eval(), build_discriminator(spec).eval()
    x = g(torch.randn(5, 4) * 10)
    assert x.shape == (5, channels, size, size) and x.min() >= 0 and x.max() <= 1
    assert d(x).shape == (5,)


def test_dropout_is_on_in_training_and_off_in_eval():
    from zoo_gan.model import build_discriminator

    _, spec = resolve_spec("gan", None, SMALL)
    d, x = build_discriminator(spec), torch.rand(3, 1, 8, 8)
    torch.manual_seed(0)
    assert not torch.equal(d.train()(x), d(x))
    assert torch.equal(d.eval()(x), d(x))


# --------------------------------------------------------------------------- a built model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A small GAN trained for 10 steps on 64 digits."""
    return zoo.build("gan", None, [*SMALL, "train.max_steps=10", "data.limit=64",
                                   "train.batch_size=16", "sample.n=4", "train.precision=fp32"],
                     tmp_path_factory.mktemp("gan") / "gan")


def test_sampling_is_deterministic_per_sample(tiny):
    model = zoo.from_pretrained(tiny)
    assert not any(isinstance(m, nn.Dropout) for m in model.module.modules())
    a, b = model.sample(6, seed=1), model.sample(6, seed=1)
    assert torch.equal(a, b) and a.shape == (6, 1, 8, 8)
    assert torch.allclose(model.sample(3, seed=1), a[:3], atol=1e-6)
    assert not torch.equal(model.sample(6, seed=2), a)


def test_visualize_interpolate_writes_a_png(tiny, cli):
    r = cli("visualize", "interpolate", tiny, "--pairs", "2", "--frames", "4")
    assert r.code == 0, r.err
    png = tiny / "visualize" / "interpolate-slerp.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
