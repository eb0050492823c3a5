"""The autoencoders (every family zoo_ae registers): objectives against independent
computations, training beats the mean image, AAE posterior matches its prior, exact
save/load round trips."""

from __future__ import annotations

import math
import shutil

import pytest
import torch

import zoo
from zoo.api import resolve_spec
from zoo.core.errors import ArtifactError
from zoo.core.registry import get_registry

#: Every autoencoder family: a new one registered by zoo_ae is trained and round-tripped too.
FAMILIES = sorted(name for name, record in get_registry().families.items()
                  if record.impl.startswith("zoo_ae."))


def test_the_autoencoder_families_are_found():
    assert {"ae", "sparse-ae", "denoising-ae", "contractive-ae", "conv-ae", "vae",
            "aae"} <= set(FAMILIES)


def make(family: str, *sets: str):
    _, spec = resolve_spec(family, None, ["train.precision=fp32", *sets])
    torch.manual_seed(0)
    from zoo.core.registry import get_family

    impl = get_family(family).load()
    return spec, impl, impl.build(spec)


# --------------------------------------------------------------------------- objectives


@pytest.mark.parametrize("hidden", [[], [32]])
def test_contractive_penalty_equals_autograd_jacobian(hidden):
    from zoo_ae.contractive import closed_form_applies, jacobian_penalty

    _, _, model = make("contractive-ae", "data.image_size=8", f"model.hidden={hidden}",
                          "model.code_dim=5")
    assert closed_form_applies(model) == (hidden == [])
    x = torch.rand(4, 1, 8, 8)
    ours, _ = jacobian_penalty(model, x)
    for i in range(4):
        jac = torch.autograd.functional.jacobian(lambda v: model.encoder(v)[0], x[i : i + 1])
        reference = jac.pow(2).sum()
        assert float(ours[i].detach()) == pytest.approx(float(reference), rel=1e-5)


def test_contractive_penalty_is_differentiable_in_the_weights():
    from zoo_ae.contractive import jacobian_penalty

    _, _, model = make("contractive-ae", "data.image_size=8", "model.code_dim=5")
    penalty, _ = jacobian_penalty(model, torch.rand(3, 1, 8, 8))
    penalty.sum().backward()
    assert model.encoder[1][0].weight.grad.abs().sum() > 0


def test_sparse_kl_by_hand_on_three_units():
    from zoo_ae.sparse import kl_sparsity

    codes = torch.tensor([[0.1, 0.5, 0.9], [0.3, 0.5, 0.7]])  # rho_hat = 0.2, 0.5, 0.8
    rho = 0.2

    def kl(q):
        return rho * math.log(rho / q) + (1 - rho) * math.log((1 - rho) / (1 - q))

    assert float(kl_sparsity(codes, rho)) == pytest.approx(kl(0.2) + kl(0.5) + kl(0.8), rel=1e-6)
    assert float(kl_sparsity(torch.full((4, 3), rho), rho)) == pytest.approx(0, abs=1e-6)


def test_vae_kl_closed_form_and_iwae_k1_is_the_elbo():
    from zoo_ae.vae import elbo_terms, gaussian_kl

    mu = torch.tensor([[0.5, -1.0]])
    logvar = torch.tensor([[math.log(0.25), math.log(4.0)]])
    by_hand = 0.5 * ((0.25 + 0.25 - 1 - math.log(0.25)) + (1 + 4 - 1 - math.log(4)))
    assert float(gaussian_kl(mu, logvar)) == pytest.approx(by_hand, rel=1e-6)

    _, vae, model = make("vae", "data.image_size=8", "model.hidden=[16]", "model.code_dim=3")
    log_likelihood = vae.log_likelihood
    x = torch.bernoulli(torch.rand(1, 1, 8, 8), generator=torch.Generator().manual_seed(0))
    # k = 1 is log p(x|z) + log p(z) - log q(z|x) at one z: check against torch.distributions
    k1 = log_likelihood(model, x, k=1, generator=torch.Generator().manual_seed(7))
    eps = torch.randn(1, 3, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        mu, logvar = model.posterior(x)
        z = mu + (0.5 * logvar).exp() * eps
        logits = model.decoder(z)
        from torch.distributions import Bernoulli, Normal

        by_hand = (Bernoulli(logits=logits).log_prob(x).sum()
                   + Normal(0, 1).log_prob(z).sum()
                   - Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum())
    assert float(k1[0]) == pytest.approx(float(by_hand), rel=1e-5)
    # ... whose expectation over z is the ELBO with the closed-form KL
    draws = 4000
    many = log_likelihood(model, x.expand(draws, 1, 8, 8), k=1,
                          generator=torch.Generator().manual_seed(3))
    eps = torch.randn(draws, 3, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        recon, kl = elbo_terms(model, x.expand(draws, 1, 8, 8), eps, "bernoulli")
    elbo = float(-(recon.mean() + kl[0]))
    spread = float(many.std()) / draws**0.5 + float(recon.std()) / draws**0.5
    assert float(many.mean()) == pytest.approx(elbo, abs=4 * spread)


def test_iwae_bound_tightens_with_k():
    _, vae, model = make("vae", "data.image_size=8", "model.hidden=[16]", "model.code_dim=3")
    log_likelihood = vae.log_likelihood
    x = torch.bernoulli(torch.rand(20, 1, 8, 8), generator=torch.Generator().manual_seed(0))
    lls = [float(log_likelihood(model, x, k=k, generator=torch.Generator().manual_seed(1)).mean())
           for k in (1, 10, 200)]
    assert lls[0] < lls[1] < lls[2]
    chunked = log_likelihood(model, x[:2], k=50, generator=torch.Generator().manual_seed(2),
                             chunk=7)
    whole = log_likelihood(model, x[:2], k=50, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(chunked, whole, atol=1e-5)


def test_denoising_trainer_feeds_corrupted_inputs_and_scores_clean_ones(monkeypatch):
    import zoo_ae.denoising as dae
    from zoo_ae.nets import recon_loss

    from zoo.training.runtime import make_accelerator

    spec, impl, model = make("denoising-ae", "data.image_size=8", "model.code_dim=4",
                             "model.mask_fraction=0.5")
    trainer = impl.trainer(spec, model, make_accelerator(spec)[0])
    seen = {}
    real_corrupt = dae.corrupt

    def spy(x, model_spec, rng, draws):
        seen["clean"], seen["noisy"] = x.clone(), real_corrupt(x, model_spec, rng, draws)
        return seen["noisy"]

    monkeypatch.setattr(dae, "corrupt", spy)
    fed = []
    model.register_forward_pre_hook(lambda mod, args: fed.append(args[0].clone()))
    x = torch.rand(6, 1, 8, 8) * 0.9 + 0.1
    loss, _ = trainer.objective(x, torch.Generator().manual_seed(0))
    assert torch.equal(fed[0], seen["noisy"]) and not torch.equal(fed[0], x)
    assert float((fed[0] == 0).float().mean()) == pytest.approx(0.5, abs=0.1)
    with torch.no_grad():
        expected = recon_loss(model(seen["noisy"])[1], x, "bernoulli").mean()
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-5)
    assert torch.equal(impl.reconstruct(model, x), impl.reconstruct(model, x))  # no noise


@pytest.mark.parametrize("kind", ["gaussian", "masking", "salt_pepper"])
def test_corruptions(kind):
    from zoo_ae.denoising import corrupt

    spec, _, _ = make("denoising-ae", f"model.corruption={kind}")
    x = torch.full((2, 1, 28, 28), 0.5)
    y = corrupt(x, spec.model, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1
    assert not torch.equal(x, y) and torch.equal(x, torch.full_like(x, 0.5))
    if kind == "salt_pepper":
        changed = y != 0.5
        assert set(y[changed].unique().tolist()) <= {0.0, 1.0}


def test_k_sparse_code_keeps_the_k_largest_units_and_backpropagates_through_them_only():
    from zoo_ae.nets import recon_loss

    _, impl, model = make("k-sparse-ae", "data.image_size=8", "model.code_dim=20", "model.k=3",
                          "model.alpha=2")
    x = torch.rand(5, 1, 8, 8)
    linear = model.encoder[1][0]
    dense = linear(x.flatten(1))  # the linear code before the top-k
    codes, logits = model(x)  # what training sees
    assert ((codes != 0).sum(1) == 3).all()
    top = dense.topk(3, dim=1)
    assert torch.equal(codes.gather(1, top.indices), top.values)
    # support-set backprop: a code unit gets a gradient from the images that kept it only
    recon_loss(logits, x, "bernoulli").sum().backward()
    kept_by = [set(row.tolist()) for row in top.indices]
    for unit in range(20):
        if any(unit in kept for kept in kept_by):
            assert linear.weight.grad[unit].abs().sum() > 0
        else:
            assert linear.weight.grad[unit].abs().sum() == 0 and linear.bias.grad[unit] == 0
    h = dense.detach().requires_grad_(True)
    model.encoder[2](h).sum().backward()
    assert torch.equal(h.grad, (codes != 0).float())
    # encode gives the paper's features, the alpha * k = 6 largest units, in either mode;
    # reconstructions decode the k-sparse code the decoder was trained on
    with torch.no_grad():
        for mode in (model.train(), model.eval()):
            encoded = impl.encode(mode, x)
            assert ((encoded != 0).sum(1) == 6).all()
            top6 = dense.topk(6, dim=1)
            assert torch.equal(encoded.gather(1, top6.indices), top6.values.detach())
            assert torch.equal(impl.reconstruct(mode, x), impl.decode(mode, codes))
    # alpha * k beyond the code size keeps the whole code
    _, _, wide = make("k-sparse-ae", "data.image_size=8", "model.code_dim=20", "model.k=15")
    assert (impl.encode(wide, x) != 0).all()


# --------------------------------------------------------------------------- training


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """Each family trained on mnist5k for a small budget (fp32 for exactness)."""
    root = tmp_path_factory.mktemp("ae-runs")
    budgets = {"aae": 1200, "vae": 600, "sparse-ae": 1000, "denoising-ae": 800}
    return {f: zoo.build(f, None, [f"train.max_steps={budgets.get(f, 500)}",
                                   "train.precision=fp32", "sample.n=16"], root / f)
            for f in FAMILIES}


@pytest.mark.parametrize("family", FAMILIES)
def test_training_beats_the_mean_image_twice_over(trained, family):
    from zoo.evaluation.evaluate import reconstruction_metrics

    metrics = reconstruction_metrics(zoo.from_pretrained(trained[family]))
    assert metrics["recon_vs_mean_image"] >= 2.0, metrics


def test_aae_aggregated_posterior_matches_the_prior(trained):
    from zoo.data import load_images

    model = zoo.from_pretrained(trained["aae"])
    codes = model.encode(load_images(model.spec.data, "test")[0])
    assert codes.mean(0).abs().max() < 0.2
    assert (codes.std(0) - 1).abs().max() < 0.25


def test_aae_mixture_prior_samples():
    from zoo_ae.aae import mixture_means, prior_sample

    eps = torch.randn(5000, 8, generator=torch.Generator().manual_seed(0))
    comp = torch.arange(5000) % 10
    z = prior_sample("mixture10", eps, comp)
    means = mixture_means(8)
    assert torch.allclose(z[comp == 3].mean(0), means[3], atol=0.1)
    assert z[:, 0][comp == 0].std() == pytest.approx(0.5, rel=0.1)


@pytest.mark.parametrize("family", FAMILIES)
def test_round_trip_is_exact_and_capabilities_work(trained, family):
    from zoo.data import load_images
    from zoo.training.runtime import make_accelerator

    folder = trained[family]
    loaded = zoo.from_pretrained(folder)
    # rebuild the in-memory model from training_state and compare outputs bitwise
    spec = loaded.spec
    impl = loaded.family.load()
    from zoo.training.checkpoint import load_training_state

    acc, _ = make_accelerator(spec)
    trainer = impl.trainer(spec, impl.build(spec), acc)
    load_training_state(folder / "training_state", trainer,
                        torch.Generator().manual_seed(0), spec)
    memory = trainer.sampling_module()
    x = load_images(spec.data, "test")[0][:8]
    with torch.no_grad():
        for name in ("encode", "reconstruct"):
            a = getattr(impl, name)(memory, x)
            b = getattr(loaded, name)(x)
            assert torch.equal(a, b), name
    images = loaded.sample(4, seed=1)
    assert images.shape == (4, 1, 28, 28) and torch.equal(images, loaded.sample(4, seed=1))
    assert loaded.decode(loaded.encode(x)).shape == x.shape


def test_loading_rejects_wrong_family_or_spec(trained, tmp_path):
    from safetensors.torch import load_file, save_file

    from zoo.artifact import weights_metadata

    vae = tmp_path / "vae"
    shutil.copytree(trained["vae"], vae)
    weights = vae / "model.safetensors"
    tensors = load_file(str(weights))
    save_file(tensors, str(weights), metadata=weights_metadata("aae", "x" * 16))
    with pytest.raises(ArtifactError, match="holds 'aae' weights, but the spec is 'vae'"):
        zoo.from_pretrained(vae)
    save_file(tensors, str(weights), metadata=weights_metadata("vae", "x" * 16))
    with pytest.raises(ArtifactError, match="trained with another spec"):
        zoo.from_pretrained(vae)


def test_vae_eval_reports_iwae_nll(tmp_path, cli):
    out = zoo.build("vae", None, ["train.max_steps=50", "data.binarize=static", "data.limit=512",
                                  "sample.n=4"], tmp_path / "vae")
    r = cli("eval", out, "-n", "100", "--iwae-k", "20")
    assert r.code == 0, r.err
    result = zoo.from_pretrained(out).metrics["eval"]
    assert 50 < result["iwae_nll"] < 600 and result["iwae_k"] == 20
    assert "statically binarised" in result["iwae_data"]
    assert {"recon_mse", "mean_image_mse", "fid@digits"} <= set(result)


def test_capability_errors_are_one_line(micro_dcgan, cli):
    model = zoo.from_pretrained(micro_dcgan)
    from zoo.core.errors import CapabilityError

    with pytest.raises(CapabilityError, match="does not support 'encode'"):
        model.encode(torch.rand(1, 1, 16, 16))


def test_model_cards_say_how_deterministic_autoencoders_sample(trained):
    assert "no prior: samples decode codes drawn from a Gaussian" in (
        trained["ae"] / "README.md").read_text()
    assert "no prior" not in (trained["vae"] / "README.md").read_text()


@pytest.mark.parametrize("size", [28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_conv_autoencoder_shapes(size, channels):
    spec, impl, model = make("conv-ae", f"data.image_size={size}", f"data.channels={channels}")
    x = torch.rand(2, channels, size, size)
    with torch.no_grad():
        codes = impl.encode(model, x)
        assert codes.shape == (2, spec.model.code_dim)
        assert impl.reconstruct(model, x).shape == x.shape
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())
    no_bottleneck = make("conv-ae", f"data.image_size={size}", "model.code_dim=null")[2]
    flat = 64 * (size // 4) ** 2
    assert impl.encode(no_bottleneck, torch.rand(1, 1, size, size)).shape == (1, flat)


def test_mse_loss_is_selectable():
    from zoo_ae.nets import recon_loss

    logits = torch.zeros(2, 1, 2, 2)
    x = torch.ones(2, 1, 2, 2)
    assert torch.allclose(recon_loss(logits, x, "mse"), torch.full((2,), 4 * 0.25))
    assert torch.allclose(recon_loss(logits, x, "bernoulli"), torch.full((2,), 4 * math.log(2)))
