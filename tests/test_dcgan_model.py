"""DCGAN follows the paper's architecture guidelines, for every supported size."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from zoo.api import resolve_spec


def build_pair(size: int, channels: int):
    from zoo_dcgan.model import DCGAN, build_discriminator

    _, spec = resolve_spec("dcgan", None, [f"data.image_size={size}", f"data.channels={channels}",
                                           "model.base_channels=8", "model.disc_channels=8"])
    torch.manual_seed(0)
    return spec, DCGAN().build(spec), build_discriminator(spec)


@pytest.mark.parametrize("size", [16, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_and_ranges(size, channels):
    spec, g, d = build_pair(size, channels)
    z = torch.randn(5, spec.model.latent_dim, 1, 1)
    x = g.eval()(z)
    assert x.shape == (5, channels, size, size)
    assert x.min() >= -1 and x.max() <= 1
    assert d.eval()(x).shape == (5,)


def test_paper_guidelines():
    _, g, d = build_pair(64, 3)
    for net in (g, d):
        kinds = {type(m) for m in net.modules()}
        assert not kinds & {nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Linear}
    g_layers, d_layers = list(g.net), list(d.net)
    # G: transposed convs only; BN after each but the last; ReLU inside, Tanh at the output
    convs = [m for m in g_layers if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    assert all(isinstance(m, nn.ConvTranspose2d) for m in convs)
    assert isinstance(g_layers[-1], nn.Tanh) and isinstance(g_layers[-2], nn.ConvTranspose2d)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in g_layers) == len(convs) - 1
    assert all(isinstance(m, nn.ReLU) for m in g_layers if isinstance(m, nn.ReLU | nn.LeakyReLU))
    # D: strided convs, no BN on the input layer, LeakyReLU(0.2), BN elsewhere
    convs = [m for m in d_layers if isinstance(m, nn.Conv2d)]
    assert all(m.stride == (2, 2) for m in convs[:-1])
    assert isinstance(d_layers[1], nn.LeakyReLU) and d_layers[1].negative_slope == 0.2
    assert sum(isinstance(m, nn.BatchNorm2d) for m in d_layers) == len(convs) - 2
    assert not any(isinstance(m, nn.ReLU) for m in d_layers)


def test_initialisation_is_normal_002():
    _, g, d = build_pair(64, 1)
    weights = torch.cat([m.weight.detach().flatten() for net in (g, d) for m in net.modules()
                         if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)])
    assert abs(weights.mean()) < 1e-3 and weights.std() == pytest.approx(0.02, rel=0.05)
    scales = torch.cat([m.weight.detach() for net in (g, d) for m in net.modules()
                        if isinstance(m, nn.BatchNorm2d)])
    assert scales.mean() == pytest.approx(1.0, abs=0.01)


def test_64px_matches_the_reference_width_schedule():
    """ngf=64 at 64x64 gives the paper's 1024(=ngf*8)... widths scaled: 512-256-128-64."""
    _, spec = resolve_spec("dcgan", None, ["data.image_size=64", "data.channels=3"])
    from zoo_dcgan.model import DCGAN

    g = DCGAN().build(spec)
    outs = [m.out_channels for m in g.net if isinstance(m, nn.ConvTranspose2d)]
    assert outs == [512, 256, 128, 64, 3]
    assert sum(p.numel() for p in g.parameters()) == 3_576_704


def test_objective_is_the_gan_value_function():
    """D's loss is -[log D(x) + log(1 - D(G(z)))], G's is -log D(G(z)) (non-saturating)."""
    from zoo_dcgan.model import DCGAN

    from zoo.training.runtime import make_accelerator

    _, spec = resolve_spec("dcgan", None, ["data.image_size=16", "model.base_channels=4",
                                           "model.disc_channels=4", "train.precision=fp32",
                                           "train.lr=1e-12", "train.batch_size=8"])
    acc, _ = make_accelerator(spec)
    torch.manual_seed(0)
    family = DCGAN()
    t = family.trainer(spec, family.build(spec), acc)
    images = torch.rand(8, 1, 16, 16)
    rng = torch.Generator().manual_seed(1)
    d_state = {k: v.clone() for k, v in t.disc.state_dict().items()}
    g_state = {k: v.clone() for k, v in t.model.state_dict().items()}
    z = torch.randn(8, spec.model.latent_dim, 1, 1, generator=torch.Generator().manual_seed(1))
    losses = t.step(images, None, rng)
    # recompute by hand with the pre-step weights (lr ~ 0 so the step barely moves them)
    from zoo_dcgan.model import Discriminator, Generator

    g = Generator(spec.model.latent_dim, 1, 16, 4)
    g.load_state_dict(g_state)
    d = Discriminator(1, 16, 4)
    d.load_state_dict(d_state)
    with torch.no_grad():
        fake = g.train()(z)
        p_real = torch.sigmoid(d.train()(images * 2 - 1))
        p_fake = torch.sigmoid(d(fake))
        loss_d = -(torch.log(p_real).mean() + torch.log(1 - p_fake).mean())
        assert float(losses["loss_d"]) == pytest.approx(float(loss_d), rel=1e-4)
        loss_g = -torch.log(torch.sigmoid(d(fake))).mean()
        assert float(losses["loss_g"]) == pytest.approx(float(loss_g), rel=1e-3)

