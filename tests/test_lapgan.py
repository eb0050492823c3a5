"""LAPGAN: exact pyramids, level shapes, conditioning, coarse-to-fine sampling."""

from __future__ import annotations

import pytest
import torch

import zoo
from zoo.api import resolve_spec

TINY = ["train.max_steps=8", "data.limit=128", "train.batch_size=32", "model.hidden=32",
        "model.channels=8", "model.latent_dim=8", "sample.n=8", "train.precision=fp32"]


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("levels", [2, 3, 4])
def test_pyramid_collapses_to_the_image(channels, levels):
    from zoo_lapgan.pyramid import collapse, laplacian_pyramid

    x = torch.rand(3, channels, 32, 32, generator=torch.Generator().manual_seed(levels))
    pyramid = laplacian_pyramid(x, levels)
    assert [p.shape[-1] for p in pyramid] == [32 // 2 ** (levels - 1 - k) for k in range(levels)]
    assert (collapse(pyramid) - x).abs().max() < 1e-5


def test_pyramid_filters_are_low_pass_and_mean_preserving():
    from zoo_lapgan.pyramid import downsample, upsample

    flat = torch.full((1, 1, 16, 16), 0.7)
    assert torch.allclose(downsample(flat), torch.full((1, 1, 8, 8), 0.7), atol=1e-6)
    assert torch.allclose(upsample(flat), torch.full((1, 1, 32, 32), 0.7), atol=1e-6)
    checker = (torch.arange(16)[:, None] + torch.arange(16)[None, :]) % 2
    assert downsample(checker.float()[None, None]).std() < 0.1  # highest frequency removed


def build(*sets):
    from zoo_lapgan.model import LAPGAN

    _, spec = resolve_spec("lapgan", None, [*TINY, *sets])
    torch.manual_seed(0)
    return spec, LAPGAN().build(spec).eval()


@pytest.mark.parametrize("channels", [1, 3])
def test_level_shapes_and_range(channels):
    from zoo_lapgan import LAPGANOptions
    from zoo_lapgan.model import LAPGAN

    from zoo.sampling.sample import PerSampleNoise

    spec, model = build(f"data.channels={channels}")
    with torch.no_grad():
        images, levels = LAPGAN().sample(model, PerSampleNoise(0, range(4)), spec,
                                         LAPGANOptions(return_pyramid=True))
    assert [lvl.shape for lvl in levels] == [(4, channels, s, s) for s in (8, 16, 32)]
    assert images.shape == (4, channels, 32, 32) and torch.equal(images, levels[-1])
    assert float(images.min()) >= 0 and float(images.max()) <= 1


def test_fine_levels_are_conditioned_on_the_coarse_image():
    _, model = build()
    gen = model.generators[1]
    cond = torch.rand(2, 1, 16, 16) * 2 - 1
    noise = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        a = gen(cond, noise)
        b = gen(-cond, noise)
    assert a.shape == (2, 1, 16, 16) and not torch.allclose(a, b)


def test_build_sample_and_card(tmp_path, cli):
    out = zoo.build("lapgan", None, TINY, tmp_path / "lap")
    assert (out / "pyramid.png").is_file()
    assert "pyramid.png" in (out / "README.md").read_text()
    model = zoo.from_pretrained(out)
    a = model.sample(8, seed=2)
    images, levels = model.sample(16, seed=2, return_pyramid=True)
    assert torch.equal(a, images[:8]) and len(levels) == 3 and levels[0].shape[-1] == 8
    for how in (["--label", "3"], ["--opt", "label=3"]):
        r = cli("sample", out, *how, "-o", tmp_path / "x.png")
        assert r.code == 2 and "unconditional" in r.err and len(r.err.strip().splitlines()) == 1
        assert not (tmp_path / "x.png").exists()


@pytest.fixture(scope="module")
def conditional(tmp_path_factory):
    """A tiny class-conditional LAPGAN (10 digit classes)."""
    return zoo.build("lapgan", None, [*TINY, "model.num_classes=10"],
                     tmp_path_factory.mktemp("lapgan") / "cond")


def test_class_conditional_sampling(conditional, tmp_path, cli):
    model = zoo.from_pretrained(conditional)
    threes = model.sample(4, seed=0, label=3)
    sevens = model.sample(4, seed=0, label=7)
    assert not torch.equal(threes, sevens)
    r = cli("sample", conditional, "--label", "3", "-n", "4", "-o", tmp_path / "three.png")
    assert r.code == 0, r.err


def test_label_flag_and_label_option_are_the_same(conditional, tmp_path, cli):
    import numpy as np

    from zoo.sampling.sample import to_uint8

    for name, how in (("flag", ["--label", "3"]), ("opt", ["--opt", "label=3"])):
        r = cli("sample", conditional, *how, "-n", "4", "-o", tmp_path / f"{name}.npy")
        assert r.code == 0, r.err
    flag, opt = (np.load(tmp_path / f"{n}.npy") for n in ("flag", "opt"))
    model = zoo.from_pretrained(conditional)
    assert np.array_equal(flag, opt) and np.array_equal(flag, to_uint8(model.sample(4, label=3)))
    images, levels = model.sample(4, label=3, return_pyramid=True)
    assert np.array_equal(to_uint8(images), flag) and [g.shape[-1] for g in levels] == [8, 16, 32]


def test_a_label_outside_the_classes_is_one_line(conditional, tmp_path, cli):
    for how in (["--label", "10"], ["--opt", "label=10"], ["--opt", "label=-1"]):
        r = cli("sample", conditional, *how, "-n", "2", "-o", tmp_path / "x.png")
        assert r.code == 2 and len(r.err.strip().splitlines()) == 1, r.err
        assert not (tmp_path / "x.png").exists()
    assert "classes 0 to 9" in cli("sample", conditional, "--label", "10", "-o",
                                   tmp_path / "x.png").err


def test_spec_rejects_a_pyramid_that_does_not_fit():
    from zoo.core.errors import SpecError

    with pytest.raises(SpecError, match="divisible by 8 and leave a coarsest level"):
        resolve_spec("lapgan", None, ["data.image_size=28", "model.levels=4"])


def test_eval_reports_label_accuracy_for_conditional_models(conditional, cli):
    r = cli("eval", conditional, "-n", "100")
    assert r.code == 0, r.err
    result = zoo.from_pretrained(conditional).metrics["eval"]
    assert 0 <= result["label_accuracy"] <= 1 and len(result["label_accuracy_per_digit"]) == 10


def test_loads_in_a_fresh_process(tmp_path):
    """Loading builds on the meta device; the family's module-level state must survive it."""
    import subprocess
    import sys

    out = zoo.build("lapgan", None, TINY, tmp_path / "lap")
    code = (f"import zoo; m = zoo.from_pretrained({str(out)!r}); "
            "print(float(m.sample(3, seed=1).sum()))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert float(proc.stdout) == pytest.approx(float(zoo.from_pretrained(out).sample(3, seed=1)
                                                     .sum()), rel=1e-6)


def test_every_coarse_network_uses_the_class():
    """The class reaches G's every layer and D's projection term."""
    from zoo_lapgan.model import CoarseDiscriminator, CoarseGenerator

    torch.manual_seed(0)
    gen, disc = CoarseGenerator(8, 10, 1, 8, 16).eval(), CoarseDiscriminator(10, 1, 8, 16)
    z, x = torch.randn(2, 8), torch.randn(2, 1, 8, 8)
    y3, y7 = (torch.nn.functional.one_hot(torch.tensor([d, d]), 10).float() for d in (3, 7))
    with torch.no_grad():
        assert not torch.allclose(gen(z, y3), gen(z, y7))
        # with the input concatenation cut, the class still changes D through the projection
        disc.features[0].weight[:, -10:] = 0
        assert not torch.allclose(disc(x, None, y3), disc(x, None, y7))


def test_class_conditional_needs_labelled_data(tmp_path, cli):
    from PIL import Image

    data = tmp_path / "pics"
    data.mkdir()
    for i in range(40):
        Image.new("L", (32, 32), 4 * i).save(data / f"{i}.png")
    out = tmp_path / "cond"
    r = cli("build", "lapgan", "--out", out, *(a for s in TINY for a in ("--set", s)),
            "--set", "model.num_classes=10", "--set", "data.source=folder",
            "--set", f"data.path={data}", "--set", "data.limit=null")
    assert r.code == 2 and "needs labelled data" in r.err
    assert len(r.err.strip().splitlines()) == 1
    assert not out.exists() and not (tmp_path / "cond.ckpt").exists()


def test_coarsest_level_trains_on_two_time_scales():
    from zoo_lapgan.model import LAPGANTrainer

    from zoo.training.runtime import make_accelerator

    spec, model = build("train.coarse_lr_g=1e-4", "train.coarse_lr_d=6e-4", "train.lr=3e-4")
    trainer = LAPGANTrainer(spec, model.train(), make_accelerator(spec)[0])
    assert [o.param_groups[0]["lr"] for o in trainer.opt_g] == [1e-4, 3e-4, 3e-4]
    assert [o.param_groups[0]["lr"] for o in trainer.opt_d] == [6e-4, 3e-4, 3e-4]


def test_precision_reaches_the_step_through_the_forward_only():
    """bf16: the finer generators compute in bf16 inside their forward and hand back fp32;
    the coarsest level stays fp32; the saved generators sample in fp32."""
    from zoo_lapgan.model import LAPGANTrainer
    from zoo_lapgan.pyramid import gaussian_pyramid

    from zoo.training.runtime import make_accelerator
    from zoo.training.trainer import Trainer

    assert not hasattr(Trainer, "autocast")  # no second route around the forward
    spec, model = build("train.precision=bf16", "train.ema_decay=0")
    trainer = LAPGANTrainer(spec, model.train(), make_accelerator(spec)[0])
    real = gaussian_pyramid(torch.rand(4, 1, 32, 32) * 2 - 1, 3)

    def run(gens) -> tuple[list[torch.dtype], list[torch.dtype]]:
        first = [g.hidden[0][0] if k == 0 else g.net[0] for k, g in enumerate(gens)]
        inner: list[torch.dtype] = []
        hooks = [m.register_forward_hook(lambda m, i, o: inner.append(o.dtype)) for m in first]
        outs = [g(*trainer.level_inputs(k, real, None, torch.Generator())[0])
                for k, g in enumerate(gens)]
        for hook in hooks:
            hook.remove()
        return inner, [o.dtype for o in outs]

    f32, bf16 = torch.float32, torch.bfloat16
    assert run(trainer.gens) == ([f32, bf16, bf16], [f32, f32, f32])
    saved = trainer.sampling_module()
    assert not any(hasattr(m, "_original_forward") for m in saved.modules())
    assert run(saved.generators) == ([f32, f32, f32], [f32, f32, f32])


def test_with_a_weight_average_the_saved_generators_sample_in_fp32_too():
    """train.ema_decay > 0 (LAPGAN's default): the folder stores the average, a copy made
    before any forward was set to bf16; training forwards stay bf16 until training ends."""
    from zoo_lapgan.model import LAPGANTrainer
    from zoo_lapgan.pyramid import gaussian_pyramid

    from zoo.training.runtime import make_accelerator

    spec, model = build("train.precision=bf16", "train.ema_decay=0.9")
    trainer = LAPGANTrainer(spec, model.train(), make_accelerator(spec)[0])
    real = gaussian_pyramid(torch.rand(4, 1, 32, 32) * 2 - 1, 3)
    inner: list[torch.dtype] = []

    def finest(gens) -> None:
        hook = gens[-1].net[0].register_forward_hook(lambda m, i, o: inner.append(o.dtype))
        out = gens[-1](*trainer.level_inputs(2, real, None, torch.Generator())[0])
        hook.remove()
        inner.append(out.dtype)

    finest(trainer.gens)
    saved = trainer.sampling_module()
    assert saved is trainer.ema.module
    assert not any(hasattr(m, "_original_forward") for m in saved.modules())
    finest(saved.generators)
    assert inner == [torch.bfloat16, torch.float32, torch.float32, torch.float32]


def test_label_and_a_different_label_option_are_one_line(conditional, tmp_path, cli):
    r = cli("sample", conditional, "-n", "2", "--label", "3", "--opt", "label=4", "-o",
            tmp_path / "x.png")
    assert r.code == 2 and r.err.count("\n") == 1, r.err
    assert "--label 3 and --opt label=4 disagree" in r.err
    assert not (tmp_path / "x.png").exists()
    same = cli("sample", conditional, "-n", "2", "--label", "3", "--opt", "label=3", "-o",
               tmp_path / "y.png")
    assert same.code == 0, same.err
