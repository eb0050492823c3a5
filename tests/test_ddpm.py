"""DDPM: the forward process, the posterior, the samplers, training, and loading."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys

import pytest
import torch
from zoo_ddpm.diffusion import Diffusion, betas_for, psnr
from zoo_ddpm.unet import UNet

from zoo.core.errors import SpecError
from zoo.core.registry import get_family
from zoo.core.spec import validate

SCHEDULES = ("linear", "cosine")


# --------------------------------------------------------------------------- forward process


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_closed_form_matches_iterating_the_one_step_process(schedule):
    """x_t drawn by T one-step updates x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps
    has the closed form's mean sqrt(abar_t) x_0 and variance 1 - abar_t."""
    diffusion = Diffusion(betas_for(schedule, 1000))
    gen = torch.Generator().manual_seed(0)
    x0 = torch.linspace(-1, 1, 64)  # 64 "pixels"
    x = x0.expand(10_000, 64).clone()  # 10,000 draws of each
    betas = diffusion.betas
    checked = 0
    for t in range(1, 1001):
        beta = float(betas[t - 1])
        x = math.sqrt(1 - beta) * x + math.sqrt(beta) * torch.randn(x.shape, generator=gen)
        if t in (1, 10, 100, 500, 1000):
            abar = float(diffusion.abar[t - 1])
            mean, var = math.sqrt(abar) * x0, 1 - abar
            std_error_of_mean = (x.mean(0) - mean).abs().max() / math.sqrt(var)
            assert std_error_of_mean < 0.05  # per pixel, in units of the closed-form std
            z = (x - mean) / math.sqrt(var)  # pooled: should be N(0, 1)
            assert abs(float(z.mean())) < 0.01
            assert abs(float(z.var()) - 1) < 0.01
            checked += 1
    assert checked == 5


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_q_sample_is_the_closed_form(schedule):
    diffusion = Diffusion(betas_for(schedule, 100))
    x0, noise = torch.rand(3, 1, 4, 4) * 2 - 1, torch.randn(3, 1, 4, 4)
    index = torch.tensor([0, 49, 99])
    abar = diffusion.abar[index].view(-1, 1, 1, 1)
    expected = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
    torch.testing.assert_close(diffusion.q_sample(x0, index, noise), expected)


def test_schedules_are_sane():
    linear = betas_for("linear", 1000)
    assert float(linear[0]) == pytest.approx(1e-4) and float(linear[-1]) == pytest.approx(0.02)
    cosine = Diffusion(betas_for("cosine", 1000))
    assert 0 < float(cosine.abar[-1]) < 1e-4  # ends (almost) at pure noise
    assert float(cosine.abar[0]) > 0.999
    assert torch.all(cosine.abar[1:] < cosine.abar[:-1])


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("t", [2, 50, 999])
def test_posterior_matches_bayes_rule_by_hand(schedule, t):
    """q(x_{t-1}|x_t,x_0) ∝ q(x_t|x_{t-1}) q(x_{t-1}|x_0): a product of two Gaussians."""
    betas = [float(b) for b in betas_for(schedule, 1000)]
    abar_prev = math.prod(1 - b for b in betas[: t - 1])
    alpha, beta = 1 - betas[t - 1], betas[t - 1]
    x0, xt = 0.3, -0.7
    precision = 1 / (1 - abar_prev) + alpha / beta
    var = 1 / precision
    mean = var * (math.sqrt(abar_prev) * x0 / (1 - abar_prev) + math.sqrt(alpha) * xt / beta)

    diffusion = Diffusion(betas_for(schedule, 1000))
    got_mean, got_var = diffusion.q_posterior(torch.tensor([x0]), torch.tensor([xt]),
                                              torch.tensor([t - 1]))
    assert float(got_mean) == pytest.approx(mean, rel=1e-5, abs=1e-6)
    assert float(got_var) == pytest.approx(var, rel=1e-5)


def test_posterior_at_the_first_step_is_x0():
    diffusion = Diffusion(betas_for("linear", 1000))
    mean, var = diffusion.q_posterior(torch.tensor([0.25]), torch.tensor([0.9]),
                                      torch.tensor([0]))
    assert float(mean) == pytest.approx(0.25) and float(var) == 0.0


def test_v_prediction_round_trip():
    """Given the true v, the (x_0, eps) split recovers both exactly."""
    diffusion = Diffusion(betas_for("cosine", 100), prediction="v")
    x0, noise = torch.rand(4, 1, 3, 3) * 1.8 - 0.9, torch.randn(4, 1, 3, 3)
    index = torch.tensor([0, 10, 50, 99])
    xt = diffusion.q_sample(x0, index, noise)
    got_x0, got_eps = diffusion.split(diffusion.target(x0, noise, index), xt, index)
    torch.testing.assert_close(got_x0, x0, atol=1e-4, rtol=0)
    torch.testing.assert_close(got_eps, noise, atol=1e-3, rtol=0)


# --------------------------------------------------------------------------- samplers


def test_ddim_with_every_step_and_eta_1_is_the_ddpm_posterior():
    """The DDIM update (eta = 1, all T steps) has the posterior's mean and variance."""
    diffusion = Diffusion(betas_for("linear", 1000))
    gen = torch.Generator().manual_seed(0)
    for index in (999, 500, 20, 1):
        xt = torch.randn(2, 1, 4, 4, generator=gen)
        output = torch.randn(2, 1, 4, 4, generator=gen)  # any network output
        x0, _ = diffusion.split(output, xt, torch.full((2,), index))
        mean, var = diffusion.q_posterior(x0, xt, torch.full((2,), index))
        zero, one = torch.zeros_like(xt), torch.ones_like(xt)
        step_mean = diffusion.ddim_step(output, xt, index, index - 1, 1.0, lambda z=zero: z)
        step_plus_sigma = diffusion.ddim_step(output, xt, index, index - 1, 1.0, lambda o=one: o)
        torch.testing.assert_close(step_mean, mean, atol=1e-4, rtol=1e-4)  # float32 near T
        torch.testing.assert_close(step_plus_sigma - step_mean, var.sqrt().expand_as(xt),
                                   atol=1e-5, rtol=1e-4)


def test_ddim_eta0_is_deterministic_given_the_initial_noise():
    diffusion = Diffusion(betas_for("linear", 100))
    net = UNet(1, 8, [1, 2], 1, [1], 4, 0.0).eval()
    torch.nn.init.normal_(net.head[-1].weight, std=0.1)  # not the all-zero initial output
    x_T = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        first = diffusion.sample(net, x_T.clone(), steps=20, eta=0.0)
        again = diffusion.sample(net, x_T.clone(), steps=20, eta=0.0)
        other = diffusion.sample(net, x_T.clone() + 0.1, steps=20, eta=0.0)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_ddim_eta0_with_every_step_tracks_the_posterior_mean():
    """Each eta = 0 step lands within (sqrt(1 - abar_{t-1}) - sqrt(1 - abar_{t-1} - beta~_t))
    |eps| of the DDPM posterior mean (< 1.01 % of |eps| on the linear schedule), and both
    paths end at the data for the ideal denoiser of a one-image data set."""
    diffusion = Diffusion(betas_for("linear", 1000))
    image = torch.rand(1, 1, 8, 8) * 2 - 1

    def net(xt, t):  # the ideal eps-predictor when the data is this one image
        abar = diffusion.abar[t].view(-1, 1, 1, 1)
        return (xt - abar.sqrt() * image) / (1 - abar).sqrt()

    gen = torch.Generator().manual_seed(0)
    for index in (999, 500, 100, 10, 1):
        t = torch.full((1,), index)
        xt = diffusion.q_sample(image, t, torch.randn(1, 1, 8, 8, generator=gen))
        x0, eps = diffusion.split(net(xt, t), xt, t)
        mean, var = diffusion.q_posterior(x0, xt, t)
        step = diffusion.ddim_step(net(xt, t), xt, index, index - 1, 0.0, None)
        abar_prev = float(diffusion.abar_prev[index])
        gap = math.sqrt(1 - abar_prev) - math.sqrt(1 - abar_prev - float(var))
        assert gap < 0.0101
        torch.testing.assert_close(step - mean, gap * eps, atol=1e-5, rtol=1e-3)

    x_T = torch.randn(1, 1, 8, 8, generator=gen)
    ddim = diffusion.sample(net, x_T.clone(), steps=1000, eta=0.0)
    x = x_T.clone()
    for index in range(999, -1, -1):  # x_{t-1} = posterior mean, no noise
        t = torch.full((1,), index)
        x, _ = diffusion.q_posterior(diffusion.split(net(x, t), x, t)[0], x, t)
    torch.testing.assert_close(ddim, x, atol=1e-4, rtol=0)
    torch.testing.assert_close(ddim, image, atol=1e-4, rtol=0)


def test_ddim_timesteps_are_evenly_spaced_and_end_at_zero():
    diffusion = Diffusion(betas_for("linear", 1000))
    order = diffusion.timesteps(50)
    assert len(order) == 50 and order[0] == 999 and order == sorted(order, reverse=True)
    assert {a - b for a, b in itertools.pairwise(order)} == {20}
    assert diffusion.timesteps(1000) == list(range(999, -1, -1))


def test_tiny_model_overfit_to_one_image_reproduces_it_from_noise():
    """Acceptance: a tiny UNet trained on one digit regenerates it with DDIM (PSNR > 25 dB).

    v-prediction: with eps-prediction the same 400 steps leave one of four
    samples at 13.6 dB (an eps error is amplified by sqrt(1 - abar) / sqrt(abar)
    in the x_0 estimate at high noise)."""
    from zoo.data import load_images

    images, _ = load_images(validate(get_family("ddpm").spec,
                                     {"family": "ddpm", "data": {"image_size": 16}}).data, "train")
    image = images[:1] * 2 - 1
    torch.manual_seed(0)
    net = UNet(1, 16, [1, 2], 1, [], 4, 0.0)
    diffusion = Diffusion(betas_for("linear", 1000), prediction="v")
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(400):
        loss = diffusion.loss(net, image.expand(32, -1, -1, -1), gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.inference_mode():
        x_T = torch.randn(4, 1, 16, 16, generator=gen)
        out = diffusion.sample(net.eval(), x_T, steps=50, eta=0.0)
    for sample in out:
        assert psnr((sample + 1) / 2, (image[0] + 1) / 2) > 25


# --------------------------------------------------------------------------- spec


def test_spec_rejects_a_unet_that_cannot_be_built():
    spec_cls = get_family("ddpm").spec
    with pytest.raises(SpecError, match="groups"):
        validate(spec_cls, {"family": "ddpm", "model": {"channels": 12, "groups": 8}})
    with pytest.raises(SpecError, match="attention_levels"):
        validate(spec_cls, {"family": "ddpm", "model": {"attention_levels": [3]}})
    with pytest.raises(SpecError, match="divisible"):
        validate(spec_cls, {"family": "ddpm", "data": {"image_size": 30}})
    with pytest.raises(SpecError, match="sampler"):
        validate(spec_cls, {"family": "ddpm", "sample": {"sampler": "euler"}})


def test_unet_shapes_and_parameter_count_follow_the_spec():
    net = UNet(3, 16, [1, 2, 2], 1, [1, 2], 4, 0.0)
    x = torch.randn(2, 3, 16, 16)
    assert net(x, torch.tensor([0, 999])).shape == x.shape
    smaller = UNet(3, 16, [1, 2], 1, [1], 4, 0.0)
    assert sum(p.numel() for p in smaller.parameters()) < sum(p.numel() for p in net.parameters())


# --------------------------------------------------------------------------- build, sample, load

TINY = ["data.image_size=16", "data.limit=64", "model.channels=8", "model.channel_mult=[1, 2]",
        "model.num_res_blocks=1", "model.attention_levels=[1]", "model.groups=4",
        "model.timesteps=50", "train.max_steps=3", "train.batch_size=8", "sample.n=4",
        "sample.steps=5", "train.precision=fp32"]


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory):
    """A tiny DDPM build, and the trainer's in-memory weight average."""
    from zoo.api import resolve_spec
    from zoo.training.loop import fit

    family, spec = resolve_spec("ddpm", overrides=TINY)
    impl = family.load()
    made = []
    original = impl.trainer

    def capture(spec, model, accelerator):
        made.append(original(spec, model, accelerator))
        return made[-1]

    out = tmp_path_factory.mktemp("ddpm") / "tiny"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(impl, "trainer", capture)
        fit(family, spec, out, progress=False)
    return out, made[0]


def test_model_folder_holds_the_weight_average(tiny_build):
    from safetensors.torch import load_file

    out, trainer = tiny_build
    saved = load_file(out / "model.safetensors")
    ema = trainer.ema.module.state_dict()
    assert saved.keys() == ema.keys()
    assert all(torch.equal(saved[k], ema[k]) for k in saved)
    state = load_file(out / "training_state" / "state.safetensors")
    raw = {k.removeprefix("module/model/"): v for k, v in state.items()
           if k.startswith("module/model/")}
    assert raw.keys() == saved.keys()
    assert any(not torch.equal(raw[k], saved[k]) for k in saved)  # raw weights differ


def test_saved_weights_sample_bitwise_like_the_in_memory_model_in_a_fresh_process(tiny_build):
    from zoo.core.registry import get_family
    from zoo.sampling.sample import sample_images

    out, trainer = tiny_build
    family = get_family("ddpm")
    in_memory = sample_images(family, trainer.sampling_module(), trainer.spec, 6, seed=4,
                              batch_size=4, eta=0.5)
    code = ("import sys, json, zoo; m = zoo.from_pretrained(sys.argv[1]); "
            "print(json.dumps(m.sample(6, seed=4, batch_size=4, eta=0.5).flatten().tolist()))")
    proc = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True,
                          text=True, check=True)
    fresh = torch.tensor(json.loads(proc.stdout.splitlines()[-1])).view_as(in_memory)
    assert torch.equal(in_memory, fresh)


@pytest.mark.parametrize("options", [{"sampler": "ddpm"}, {"sampler": "ddim", "eta": 1.0},
                                     {"sampler": "ddim", "eta": 0.0, "steps": 3}])
def test_image_i_depends_only_on_seed_and_i(tiny_build, options):
    import zoo

    model = zoo.from_pretrained(tiny_build[0])
    five = model.sample(5, seed=7, batch_size=2, **options)
    assert five.shape == (5, 1, 16, 16) and five.min() >= 0 and five.max() <= 1
    three = model.sample(3, seed=7, batch_size=2, **options)
    assert torch.equal(five[:2], three[:2])  # the same chunk of 2: bitwise
    torch.testing.assert_close(five[:3], three, atol=1e-4, rtol=0)  # chunks of 1 and 2
    torch.testing.assert_close(five, model.sample(5, seed=7, batch_size=5, **options),
                               atol=1e-4, rtol=0)
    assert not torch.equal(five[0], five[1])


def test_zoo_sample_takes_sampler_options(tiny_build, tmp_path):
    out = tmp_path / "grid.png"
    proc = subprocess.run(["zoo", "sample", str(tiny_build[0]), "-n", "4", "--opt", "sampler=ddim",
                           "--opt", "steps=4", "--opt", "eta=0.5", "-o", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert out.is_file()


def test_sampler_options_on_a_family_without_them_fail_in_one_line(micro_dcgan, tmp_path):
    proc = subprocess.run(["zoo", "sample", str(micro_dcgan), "--opt", "steps=10",
                           "-o", str(tmp_path / "x.png")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "no sampling option 'steps'" in proc.stderr
    assert not (tmp_path / "x.png").exists()


@pytest.fixture
def unet_calls(monkeypatch):
    """How many times a DDPM UNet ran (one call per sampling step and batch)."""
    from zoo_ddpm.unet import UNet

    calls = []
    original = UNet.forward

    def forward(self, *args, **kwargs):
        calls.append(len(args[0]))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(UNet, "forward", forward)
    return calls


def test_opt_steps_sets_the_ddim_steps(tiny_build, cli, tmp_path, unet_calls):
    """zoo sample RUN --opt steps=20 samples with 20 DDIM steps, the images model.sample(n,
    steps=20) gives; unset, the spec's sample.steps (5) applies."""
    import numpy as np

    import zoo
    from zoo.sampling.sample import to_uint8

    r = cli("sample", tiny_build[0], "-n", "2", "--opt", "steps=20", "-o", tmp_path / "x.npy")
    assert r.code == 0, r.err
    assert len(unet_calls) == 20
    model = zoo.from_pretrained(tiny_build[0])
    assert np.array_equal(np.load(tmp_path / "x.npy"), to_uint8(model.sample(2, steps=20)))
    unet_calls.clear()
    model.sample(2)
    assert len(unet_calls) == 5


def test_opt_sampler_ddpm_is_the_ancestral_sampler(tiny_build, cli, tmp_path, unet_calls):
    """--opt sampler=ddpm runs all T = 50 steps, whatever --opt steps says."""
    import numpy as np

    import zoo
    from zoo.sampling.sample import to_uint8

    r = cli("sample", tiny_build[0], "-n", "2", "--opt", "sampler=ddpm", "--opt", "steps=3",
            "-o", tmp_path / "x.npy")
    assert r.code == 0, r.err
    assert len(unet_calls) == 50
    model = zoo.from_pretrained(tiny_build[0])
    assert np.array_equal(np.load(tmp_path / "x.npy"), to_uint8(model.sample(2, sampler="ddpm")))


def test_an_unknown_option_is_one_line_listing_the_options(tiny_build, cli, tmp_path):
    r = cli("sample", tiny_build[0], "-n", "2", "--opt", "foo=1", "-o", tmp_path / "x.png")
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1
    assert "no sampling option 'foo'" in r.err and "sampler, steps, eta" in r.err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(("option", "says"), [("steps=0", "steps = 0"), ("eta=2", "eta = 2"),
                                              ("steps=10001", "steps = 10001"),
                                              ("sampler=euler", "sampler = euler"),
                                              ("steps=2.5", "steps = 2.5")])
def test_a_bad_option_value_is_one_line(tiny_build, cli, tmp_path, option, says):
    r = cli("sample", tiny_build[0], "-n", "2", "--opt", option, "-o", tmp_path / "x.png")
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1, r.err
    assert r.err.startswith("error: ") and says in r.err
    assert not (tmp_path / "x.png").exists()


def test_zoo_spec_lists_the_sampling_options_with_defaults(cli):
    r = cli("spec", "ddpm")
    assert r.code == 0, r.err
    options = r.out[r.out.index("# Sampling options"):].splitlines()
    assert [line.split("=")[0].strip("# ") for line in options[1:]] == ["sampler", "steps", "eta"]
    assert all(" = unset  # " in line and "spec's sample." in line for line in options[1:])
    schema = json.loads(cli("spec", "ddpm", "--schema").out)["x-sampling-options"]
    assert schema["properties"]["steps"]["anyOf"][0] == {"type": "integer", "minimum": 1,
                                                         "maximum": 10_000}


def test_python_api_takes_the_sampling_options(tiny_build, unet_calls):
    import zoo

    model = zoo.from_pretrained(tiny_build[0])
    three = model.sample(2, steps=3)
    assert three.shape == (2, 1, 16, 16) and len(unet_calls) == 3
    with pytest.raises(zoo.ZooError, match=r"no sampling option 'bogus'.*sampler, steps, eta"):
        model.sample(2, bogus=1)
    with pytest.raises(zoo.ZooError, match="eta"):
        model.sample(2, eta=-0.5)


def test_loading_skips_weight_initialisers_and_restores_them(tiny_build, monkeypatch):
    """Loading switches torch.nn.init off only while it builds the module, even on errors."""
    import zoo
    from zoo.artifact import initialisers_skipped

    originals = {n: getattr(torch.nn.init, n) for n in ("kaiming_uniform_", "zeros_", "normal_")}
    with initialisers_skipped():
        t = torch.ones(3)
        assert torch.nn.init.zeros_(t) is t and torch.equal(t, torch.ones(3))
    model = zoo.from_pretrained(tiny_build[0])
    assert all(getattr(torch.nn.init, n) is f for n, f in originals.items())
    assert not any(p.is_meta for p in model.module.parameters())

    def broken(spec):
        raise RuntimeError("build failed")

    monkeypatch.setattr(get_family("ddpm").load(), "build", broken)
    with pytest.raises(RuntimeError, match="build failed"):
        zoo.from_pretrained(tiny_build[0])
    assert all(getattr(torch.nn.init, n) is f for n, f in originals.items())


def test_a_short_linear_schedule_stays_a_valid_diffusion():
    """The linear schedule is rescaled by 1000 / T; for small T the betas are capped below 1."""
    diffusion = Diffusion(betas_for("linear", 10))
    assert torch.all(diffusion.betas < 1) and torch.all(torch.isfinite(diffusion.abar))
    assert torch.all(diffusion.posterior_var >= 0)


@pytest.mark.parametrize("tokens", [49, 300])  # the explicit product, then torch's fused kernel
def test_attention_is_softmax_of_scaled_scores_times_values(tokens):
    from zoo_ddpm.unet import EXPLICIT_ATTENTION_TOKENS, attention

    assert (tokens > EXPLICIT_ATTENTION_TOKENS) == (tokens == 300)
    q, k, v = torch.randn(3, 2, tokens, 16, dtype=torch.float64).unbind(0)
    weights = torch.softmax(q @ k.transpose(1, 2) / 4.0, dim=-1)  # sqrt(16) = 4
    torch.testing.assert_close(attention(q, k, v), weights @ v)


def test_norm_silu_is_silu_of_group_norm_and_stays_bf16_under_autocast():
    from zoo_ddpm.unet import norm_silu

    norm = torch.nn.GroupNorm(4, 16)
    torch.nn.init.normal_(norm.weight)
    x = torch.randn(2, 16, 5, 5)
    assert torch.equal(norm_silu(norm, x), torch.nn.functional.silu(norm(x)))
    with torch.autocast("cpu", torch.bfloat16):
        half = norm_silu(norm, x.bfloat16())
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), torch.nn.functional.silu(norm(x)), atol=0.05,
                               rtol=0.02)


def test_bf16_sampling_runs_under_autocast_and_stays_close_to_fp32(tiny_build, tmp_path):
    import zoo

    model = zoo.from_pretrained(tiny_build[0])
    exact = model.sample(4, seed=3, steps=3)
    half = model.sample(4, seed=3, steps=3, precision="bf16")
    assert half.dtype == torch.float32 and half.shape == exact.shape
    assert not torch.equal(half, exact)  # the UNet really ran in bf16
    torch.testing.assert_close(half, exact, atol=0.05, rtol=0)
    out = tmp_path / "half.npz"
    proc = subprocess.run(["zoo", "sample", str(tiny_build[0]), "-n", "4", "--opt", "steps=3",
                           "--precision", "bf16", "-o", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    bad = subprocess.run(["zoo", "sample", str(tiny_build[0]), "-n", "4", "--precision", "fp8",
                          "-o", str(tmp_path / "bad.npz")], capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "error: sampling: precision = 'fp8' must be one of fp32, bf16"]
    assert not (tmp_path / "bad.npz").exists()
