"""DRAW: the filterbanks, read and write against the paper's formulas written as loops, the
per-step KL against torch.distributions, the loss and the IWAE estimate against an explicit
ELBO, the canvas steps, and the kit with attention off."""

from __future__ import annotations

import math

import pytest
import torch

from zoo.api import resolve_spec

TINY = ["model.steps=3", "model.enc_hidden=16", "model.dec_hidden=16", "model.z_size=4",
        "model.read_size=2", "model.write_size=3", "data.image_size=12"]


def build(*sets):
    from zoo_draw.model import DRAW

    _, spec = resolve_spec("draw", None, [*TINY, *sets])
    torch.manual_seed(0)
    model = DRAW().build(spec).eval()
    with torch.no_grad():  # non-trivial attention parameters and initial states
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return spec, model


def loop_filterbank(gx_, log_sigma2, log_delta_, n, size):
    """F_X by the paper's formulas, one (i, a) at a time, 1-based as in the paper."""
    gx = (size + 1) / 2 * (gx_ + 1)
    delta = (size - 1) / max(n - 1, 1) * math.exp(log_delta_)
    sigma2 = math.exp(log_sigma2)
    rows = []
    for i in range(1, n + 1):
        mu = gx + (i - n / 2 - 0.5) * delta
        row = [math.exp(-((a - mu) ** 2) / (2 * sigma2)) for a in range(1, size + 1)]
        rows.append([v / sum(row) for v in row])
    return torch.tensor(rows, dtype=torch.float64)


@pytest.mark.parametrize("n", [1, 2, 5])
def test_filterbank_matches_the_paper_loop(n):
    from zoo_draw.attention import filterbanks

    size = 9
    p = torch.tensor([[0.2, -0.4, 0.3, -0.2, 0.1], [-0.3, 0.5, -1.0, -0.2, -0.3]],
                     dtype=torch.float64)
    fx, fy, gamma = filterbanks(p, size, n)
    for b in range(2):
        gx_, gy_, log_sigma2, log_delta_, log_gamma = p[b].tolist()
        assert torch.allclose(fx[b], loop_filterbank(gx_, log_sigma2, log_delta_, n, size))
        assert torch.allclose(fy[b], loop_filterbank(gy_, log_sigma2, log_delta_, n, size))
        assert math.isclose(float(gamma[b]), math.exp(log_gamma))
    assert torch.allclose(fx.sum(-1), torch.ones(2, n, dtype=torch.float64))
    far = filterbanks(torch.tensor([[-9.0, 0.0, -3.0, 0.0, 0.0]]), size, n)[0]
    assert torch.isfinite(far).all() and float(far.sum()) < 1e-6  # off the image: eps, no 0/0


def test_centred_single_filter_sits_on_the_middle_pixel():
    from zoo_draw.attention import filterbanks

    fx, _, _ = filterbanks(torch.tensor([[0.0, 0.0, math.log(0.01), 0.0, 0.0]]), 9, 1)
    assert fx[0, 0].argmax() == 4 and float(fx[0, 0, 4]) > 0.999  # pixel 5 of 1..9


def test_starting_grids_sit_on_the_image_and_writes_keep_their_intensity():
    from zoo_draw.attention import centred_bias, filterbanks, write_patch

    for n in (2, 5):
        fx, _, gamma = filterbanks(torch.tensor([centred_bias(28, n)]), 28, n)
        centres = (fx[0] * torch.arange(1, 29)).sum(-1)  # each filter's mean pixel
        assert float(gamma) == 1 and 4 < float(centres.min()) < float(centres.max()) < 25
    fx, fy, gamma = filterbanks(torch.tensor([centred_bias(28, 5, write=True)]), 28, 5)
    canvas = write_patch(torch.ones(1, 1, 5, 5), fx, fy, gamma)
    assert 0.7 < float(canvas.max()) < 2  # ones write about ones (blobs overlap), not 1/20


@pytest.mark.parametrize("channels", [1, 3])
def test_read_and_write_match_explicit_sums(channels):
    """gamma sum_{b,a} F_Y[j,b] x[b,a] F_X[i,a] and 1/gamma sum_{j,i} F_Y[j,b] w[j,i] F_X[i,a]."""
    from zoo_draw.attention import filterbanks, read_glimpse, write_patch

    g = torch.Generator().manual_seed(channels)
    size, n = 6, 3
    fx, fy, gamma = filterbanks(0.5 * torch.randn(2, 5, generator=g, dtype=torch.float64),
                                size, n)
    x = torch.rand(2, channels, size, size, generator=g, dtype=torch.float64)
    w = torch.randn(2, channels, n, n, generator=g, dtype=torch.float64)
    glimpse, canvas = read_glimpse(x, fx, fy, gamma), write_patch(w, fx, fy, gamma)
    for bi in range(2):
        for c in range(channels):
            for j in range(n):
                for i in range(n):
                    want = gamma[bi] * sum(fy[bi, j, b] * x[bi, c, b, a] * fx[bi, i, a]
                                           for b in range(size) for a in range(size))
                    assert torch.isclose(glimpse[bi, c, j, i], want)
            for b in range(size):
                for a in range(size):
                    want = sum(fy[bi, j, b] * w[bi, c, j, i] * fx[bi, i, a]
                               for j in range(n) for i in range(n)) / gamma[bi]
                    assert torch.isclose(canvas[bi, c, b, a], want)


def test_model_reads_glimpses_and_writes_patches():
    """The network's read is the two glimpses of (x, x_hat) with the read layer's filters;
    its write the write layer's patch through the write filters."""
    from zoo_draw.attention import filterbanks, read_glimpse, write_patch

    _, model = build()
    x, x_hat, h = torch.rand(2, 1, 12, 12), torch.rand(2, 1, 12, 12), torch.randn(2, 16)
    fx, fy, gamma = filterbanks(model.read_attention(h), 12, 2)
    want = torch.cat([read_glimpse(x, fx, fy, gamma).flatten(1),
                      read_glimpse(x_hat, fx, fy, gamma).flatten(1)], 1)
    assert torch.allclose(model.read(x, x_hat, h), want)
    fx, fy, gamma = filterbanks(model.write_attention(h), 12, 3)
    patch = model.write_layer(h).view(2, 1, 3, 3)
    assert torch.allclose(model.write(h), write_patch(patch, fx, fy, gamma))
    _, plain = build("model.attention=false")
    assert torch.equal(plain.read(x, x_hat, h), torch.cat([x.flatten(1), x_hat.flatten(1)], 1))
    assert torch.equal(plain.write(h), plain.write_layer(h).view(2, 1, 12, 12))


def test_per_step_kl_is_the_closed_form():
    from torch.distributions import Normal, kl_divergence
    from zoo_draw.model import gaussian_kl

    g = torch.Generator().manual_seed(1)
    mu, log_sigma = torch.randn(3, 4, 5, generator=g), 0.5 * torch.randn(3, 4, 5, generator=g)
    want = kl_divergence(Normal(mu, log_sigma.exp()), Normal(0.0, 1.0)).sum(-1)
    assert torch.allclose(gaussian_kl(mu, log_sigma), want, atol=1e-6)
    by_hand = 0.5 * (mu ** 2 + (2 * log_sigma).exp() - 1 - 2 * log_sigma).sum(-1)
    assert torch.allclose(gaussian_kl(mu, log_sigma), by_hand, atol=1e-6)


def unrolled(model, x, eps):
    """The paper's eqs. 3-8 step by step, independent of DRAWNet.forward: (c_T, log q, log p_z
    summed over steps, the KL summed over steps)."""
    from torch.distributions import Normal

    n = len(x)
    c = model.canvas0.expand(n, -1, -1, -1)
    h_enc, c_enc = model.h_enc0.expand(n, -1), torch.zeros(n, 16)
    h_dec, c_dec = model.h_dec0.expand(n, -1), torch.zeros(n, 16)
    log_q = log_p = kl = 0
    for t in range(model.steps):
        r = model.read(x, x - torch.sigmoid(c), h_dec)
        h_enc, c_enc = model.encoder(torch.cat([r, h_dec], 1), (h_enc, c_enc))
        mu, log_sigma = model.posterior(h_enc).chunk(2, 1)
        q = Normal(mu, log_sigma.exp())
        z = mu + log_sigma.exp() * eps[:, t]
        log_q = log_q + q.log_prob(z).sum(1)
        log_p = log_p + Normal(0.0, 1.0).log_prob(z).sum(1)
        kl = kl + torch.distributions.kl_divergence(q, Normal(0.0, 1.0)).sum(1)
        h_dec, c_dec = model.decoder(z, (h_dec, c_dec))
        c = c + model.write(h_dec)
    return c, log_q, log_p, kl


@pytest.mark.parametrize("attention", ["true", "false"])
def test_loss_is_reconstruction_plus_summed_kl(attention):
    from torch.distributions import Bernoulli
    from zoo_draw.model import draw_loss

    _, model = build(f"model.attention={attention}")
    g = torch.Generator().manual_seed(2)
    x = (torch.rand(3, 1, 12, 12, generator=g) > 0.5).float()
    eps = torch.randn(3, 3, 4, generator=g)
    with torch.no_grad():
        lx, lz = draw_loss(model, x, eps)
        c_t, _, _, kl = unrolled(model, x, eps)
    assert torch.allclose(lx, -Bernoulli(logits=c_t).log_prob(x).flatten(1).sum(1), atol=1e-4)
    assert torch.allclose(lz, kl, atol=1e-5)


def test_iwae_at_k1_is_the_elbo_with_the_same_noise():
    """log w = log p(x|c_T) + sum_t log N(z_t; 0, I) - log q(z_t|...), with the noise the
    estimator draws from its generator (k x T x z per image, in order)."""
    from torch.distributions import Bernoulli
    from zoo_draw.model import DRAW, draw_loss

    spec, model = build()
    x = (torch.rand(3, 1, 12, 12, generator=torch.Generator().manual_seed(3)) > 0.5).float()
    got = DRAW().log_likelihood(model, x, 1, spec, torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    eps = torch.cat([torch.randn(1, 3, 4, generator=g) for _ in range(3)])
    with torch.no_grad():
        c_t, log_q, log_p, _ = unrolled(model, x, eps)
        want = Bernoulli(logits=c_t).log_prob(x).flatten(1).sum(1) + log_p - log_q
        # and in expectation -(L^x + L^z): log N(z; 0, I) - log q(z) averages to -KL
        many = torch.randn(4000, 3, 4, generator=g)
        xs = x[:1].expand(4000, -1, -1, -1)
        lx, lz = draw_loss(model, xs, many)
        c_t, log_q, log_p, _ = unrolled(model, xs, many)
        gap = Bernoulli(logits=c_t).log_prob(xs).flatten(1).sum(1) + log_p - log_q + lx + lz
    assert torch.allclose(got, want, atol=1e-4)
    assert abs(float(gap.mean())) < 4 * float(gap.std()) / 4000 ** 0.5


def test_iwae_tightens_with_k_and_does_not_depend_on_chunk():
    from zoo_draw.model import DRAW

    spec, model = build()
    x = (torch.rand(2, 1, 12, 12, generator=torch.Generator().manual_seed(4)) > 0.5).float()
    one = DRAW().log_likelihood(model, x, 64, spec, torch.Generator().manual_seed(0), chunk=64)
    chunked = DRAW().log_likelihood(model, x, 64, spec, torch.Generator().manual_seed(0),
                                    chunk=10)
    assert torch.allclose(one, chunked, atol=1e-4)
    k1 = torch.stack([DRAW().log_likelihood(model, x, 1, spec, torch.Generator().manual_seed(s))
                      for s in range(64)]).mean(0)
    assert (one > k1).all()  # the IWAE bound beats the average ELBO


def test_log_likelihood_refuses_grey_images():
    from zoo_draw.model import DRAW

    from zoo.core.errors import CapabilityError

    spec, model = build()
    with pytest.raises(CapabilityError, match="binary images only"):
        DRAW().log_likelihood(model, torch.full((1, 1, 12, 12), 0.5), 2, spec,
                              torch.Generator())


@pytest.mark.parametrize("channels", [1, 3])
def test_return_steps_layout(channels):
    from zoo_draw import DRAWOptions
    from zoo_draw.model import DRAW

    from zoo.sampling.sample import PerSampleNoise

    spec, model = build(f"data.channels={channels}", "data.binarize=none")
    noise = PerSampleNoise(0, range(4))
    with torch.no_grad():
        images, steps = DRAW().sample(model, noise, spec, DRAWOptions(return_steps=True))
        plain = DRAW().sample(model, noise, spec, DRAWOptions())
        codes = DRAW().latent(model, noise, spec)
        generated = DRAW().generate(model, codes, spec, DRAWOptions())
    assert len(steps) == 3 and all(s.shape == (4, channels, 12, 12) for s in steps)
    assert all(float(s.min()) >= 0 and float(s.max()) <= 1 for s in steps)
    assert torch.equal(images, steps[-1]) and torch.equal(plain, images)
    assert codes.shape == (4, 3 * 4) and torch.equal(generated, images)
    # canvas t is the sigmoid of c_0 + the first t writes of the decoder
    with torch.no_grad():
        z = codes.view(4, 3, 4)
        h = (model.h_dec0.expand(4, -1), torch.zeros(4, 16))
        c = model.canvas0.expand(4, -1, -1, -1)
        for t in range(3):
            h = model.decoder(z[:, t], h)
            c = c + model.write(h[0])
            assert torch.allclose(steps[t], torch.sigmoid(c), atol=1e-6)


def test_spec_refuses_patches_larger_than_the_image():
    from zoo.core.errors import SpecError

    with pytest.raises(SpecError, match="read_size"):
        resolve_spec("draw", None, ["data.image_size=8", "model.write_size=9"])


def test_attention_off_conforms():
    from zoo.testing.conformance import assert_conforms

    assert_conforms("draw", ["model.attention=false"])
