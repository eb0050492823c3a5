"""End to end: build, sample, determinism, resume, and the model folder's contents."""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch
from conftest import MICRO, REPO
from safetensors.torch import load_file

import zoo
from zoo.api import resolve_spec
from zoo.training.loop import Interrupted, fit


def assert_same_tensors(a, b) -> None:
    """Bitwise-equal tensors in two safetensors files (headers may order metadata differently)."""
    ta, tb = load_file(str(a)), load_file(str(b))
    assert ta.keys() == tb.keys()
    for key in ta:
        assert ta[key].dtype == tb[key].dtype and torch.equal(ta[key], tb[key]), key


FILES = ("config.json", "model.safetensors", "README.md", "samples.png", "metrics.json")


def test_model_folder_contents(tiny_dcgan):
    for name in FILES:
        assert (tiny_dcgan / name).is_file(), name
    assert (tiny_dcgan / "training_state" / "state.safetensors").is_file()
    config = json.loads((tiny_dcgan / "config.json").read_text())
    assert config["family"] == "dcgan" and config["spec"]["train"]["max_steps"] == 20
    assert config["plugin"]["distribution"] == "genzoo"
    metrics = json.loads((tiny_dcgan / "metrics.json").read_text())
    assert metrics["train"]["steps"] == 20 and metrics["train"]["images_seen"] == 20 * 64
    card = (tiny_dcgan / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: genzoo\n") and "![samples](samples.png)" in card
    # no temporary or checkpoint folders left beside it
    assert sorted(p.name for p in tiny_dcgan.parent.iterdir()) == [tiny_dcgan.name]


def test_weights_hold_g_only_and_d_in_training_state(tiny_dcgan):
    weights = load_file(str(tiny_dcgan / "model.safetensors"))
    assert all(k.startswith("net.") for k in weights)
    state = load_file(str(tiny_dcgan / "training_state" / "state.safetensors"))
    assert any(k.startswith("module/discriminator/") for k in state)
    assert any(k.startswith("optim/generator/") for k in state)


def test_sampling_is_seeded_per_image(tiny_dcgan):
    model = zoo.from_pretrained(tiny_dcgan)
    a = model.sample(8, seed=3)
    b = model.sample(8, seed=3)
    c = model.sample(16, seed=3)
    assert torch.equal(a, b)
    assert torch.equal(a, c[:8])
    assert not torch.equal(a, model.sample(8, seed=4))
    other_batching = model.sample(16, seed=3, batch_size=5)
    assert torch.allclose(c, other_batching, atol=1e-5)
    assert a.shape == (8, 1, 32, 32) and a.dtype == torch.float32
    assert float(a.min()) >= 0 and float(a.max()) <= 1


def test_cli_sample_is_reproducible(tiny_dcgan, tmp_path, cli):
    for name in ("a.png", "b.png"):
        r = cli("sample", tiny_dcgan, "--seed", "3", "-n", "8", "-o", tmp_path / name)
        assert r.code == 0, r.err
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_cli_info(tiny_dcgan, cli):
    r = cli("info", tiny_dcgan, "--json")
    assert r.code == 0, r.err
    info = json.loads(r.out)
    assert info["family"] == "dcgan" and info["parameters"] > 0
    assert "model.safetensors" in info["files"] and info["metrics"]["train"]["steps"] == 20


def test_same_seed_gives_bitwise_identical_weights(micro_dcgan, tmp_path):
    family, spec = resolve_spec("dcgan", None, [*MICRO, "train.precision=fp32"])
    again = fit(family, spec, tmp_path / "again", progress=False)
    assert_same_tensors(again / "model.safetensors", micro_dcgan / "model.safetensors")


def test_bf16_builds_are_deterministic_too(tmp_path):
    family, spec = resolve_spec("dcgan", None, [*MICRO, "train.max_steps=6"])
    a = fit(family, spec, tmp_path / "a", progress=False)
    b = fit(family, spec, tmp_path / "b", progress=False)
    assert_same_tensors(a / "model.safetensors", b / "model.safetensors")


def test_interrupt_then_resume_equals_uninterrupted(micro_dcgan, tmp_path):
    """Stop at step 10 of 20 (as Ctrl-C would), --resume, and match the straight run."""
    family, spec = resolve_spec("dcgan", None, [*MICRO, "train.precision=fp32"])
    out = tmp_path / "run"

    def stop_at_10(step: int) -> None:
        if step == 10:  # the user presses Ctrl-C during step 10
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted, match="interrupted at step 10 of 20"):
        fit(family, spec, out, progress=False, on_step=stop_at_10)
    assert not out.exists() and (tmp_path / "run.ckpt" / "state.json").is_file()
    fit(family, spec, out, resume=True, progress=False)
    assert not (tmp_path / "run.ckpt").exists()
    assert_same_tensors(out / "model.safetensors", micro_dcgan / "model.safetensors")
    state = "training_state/state.safetensors"
    assert_same_tensors(out / state, micro_dcgan / state)


def test_channels_last_changes_speed_not_results(micro_dcgan, tmp_path):
    """DCGAN trains channels-last by default; NCHW gives the same weights up to rounding.

    The written weights are plain contiguous tensors either way (safetensors
    stores no strides), and the default build is the channels-last one.
    """
    from safetensors import safe_open

    family, spec = resolve_spec("dcgan", None, [*MICRO, "train.precision=fp32",
                                                "run.channels_last=false"])
    assert resolve_spec("dcgan", None, [])[1].run.channels_last
    nchw = fit(family, spec, tmp_path / "nchw", progress=False)
    with safe_open(micro_dcgan / "model.safetensors", "pt") as a, \
            safe_open(nchw / "model.safetensors", "pt") as b:
        keys = sorted(a.keys())
        assert keys == sorted(b.keys())
        for key in keys:
            x, y = a.get_tensor(key), b.get_tensor(key)
            assert x.is_contiguous()
            torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-6, msg=key)


def test_resume_a_finished_build_for_more_steps(micro_dcgan, tmp_path):
    """10 steps, then --resume with max_steps=20, equals 20 straight steps."""
    family, spec10 = resolve_spec("dcgan", None, [*MICRO, "train.precision=fp32",
                                                  "train.max_steps=10"])
    out = fit(family, spec10, tmp_path / "run", progress=False)
    _, spec20 = resolve_spec("dcgan", None, [*MICRO, "train.precision=fp32"])
    fit(family, spec20, out, resume=True, progress=False)
    assert_same_tensors(out / "model.safetensors", micro_dcgan / "model.safetensors")


def test_periodic_checkpoints(tmp_path):
    family, spec = resolve_spec("dcgan", None, [*MICRO, "run.checkpoint_every=5"])
    seen = []

    def look(step: int) -> None:
        if step in (5, 10, 15):
            seen.append(json.loads((tmp_path / "run.ckpt" / "state.json").read_text())["step"])

    fit(family, spec, tmp_path / "run", progress=False, on_step=look)
    assert seen == [5, 10, 15]
    assert not (tmp_path / "run.ckpt").exists()


def test_build_refuses_to_overwrite(micro_dcgan, cli):
    r = cli("build", "dcgan", "--set", "train.max_steps=1", "--out", micro_dcgan)
    assert r.code == 2 and "already exists" in r.err and "--force" in r.err


def test_dry_run_prints_spec_and_writes_nothing(tmp_path, cli):
    r = cli("build", "dcgan-mnist", "--dry-run", "--out", tmp_path / "x")
    assert r.code == 0 and 'family = "dcgan"' in r.out
    assert not (tmp_path / "x").exists()


def test_named_model_builds_through_the_cli(tmp_path, cli):
    out = tmp_path / "m"
    r = cli("build", "dcgan-mnist", "--spec", REPO / "specs" / "dcgan-mnist.toml",
            *[arg for s in MICRO for arg in ("--set", s)], "--out", out, "--quiet")
    assert r.code == 0, r.err
    assert zoo.from_pretrained(out).spec.data.source == "mnist5k"


def test_weight_average_follows_the_warmed_up_decay(tmp_path):
    """model.safetensors holds the EMA: after step 1 it is the model; after step 2 the
    mix d * w1 + (1 - d) * w2 with d = min(decay, 1 - 2 ** (-2/3)) (timm's warmup)."""
    base = ["data.limit=128", "train.batch_size=32", "model.hidden=[16]", "model.code_dim=4",
            "data.image_size=8", "train.ema_decay=0.9"]
    family, one = resolve_spec("ae", None, [*base, "train.max_steps=1"])
    _, two = resolve_spec("ae", None, [*base, "train.max_steps=2"])
    out1, out2 = fit(family, one, tmp_path / "one"), fit(family, two, tmp_path / "two")
    state1 = load_file(out1 / "training_state" / "state.safetensors")
    state2 = load_file(out2 / "training_state" / "state.safetensors")
    ema1, ema2 = load_file(out1 / "model.safetensors"), load_file(out2 / "model.safetensors")
    d = min(0.9, 1 - 2 ** (-2 / 3))
    weights = [k for k in ema2 if k.endswith("weight")]
    assert weights
    for k in weights:
        w1, w2 = state1[f"module/model/{k}"], state2[f"module/model/{k}"]
        assert torch.equal(ema1[k], w1) and not torch.equal(w1, w2)
        torch.testing.assert_close(ema2[k], d * w1 + (1 - d) * w2)


def test_resume_with_a_weight_average(tmp_path):
    family, spec = resolve_spec("dcgan", None, [*MICRO, "train.precision=fp32",
                                                "train.ema_decay=0.9"])
    straight = fit(family, spec, tmp_path / "straight", progress=False)
    _, spec10 = resolve_spec("dcgan", None, [*MICRO, "train.precision=fp32",
                                             "train.ema_decay=0.9", "train.max_steps=10"])
    out = fit(family, spec10, tmp_path / "run", progress=False)
    fit(family, spec, out, resume=True, progress=False)
    assert_same_tensors(out / "model.safetensors", straight / "model.safetensors")


def test_a_folder_written_before_a_key_existed_still_loads(micro_dcgan, tmp_path):
    """A folder from a genzoo that lacked ``train.ema_decay`` loads, with the default."""
    import shutil

    from safetensors.torch import save_file

    from zoo.artifact import weights_metadata
    from zoo.core.spec import document_hash

    old = tmp_path / "old"
    shutil.copytree(micro_dcgan, old)
    config = json.loads((old / "config.json").read_text())
    del config["spec"]["train"]["ema_decay"]
    config["spec_hash"] = document_hash(config["spec"])
    (old / "config.json").write_text(json.dumps(config))
    save_file(load_file(old / "model.safetensors"), str(old / "model.safetensors"),
              metadata=weights_metadata("dcgan", config["spec_hash"]))
    model = zoo.from_pretrained(old)
    assert model.spec.train.ema_decay == 0
    assert torch.equal(model.sample(4, seed=1), zoo.from_pretrained(micro_dcgan).sample(4, seed=1))
