"""Data-parallel training: 2 CPU processes (torchrun or accelerate launch, gloo)
against one process.

``train.batch_size`` is the global batch, so the same spec trains the same
model whatever the process count: exactly (to fp32 rounding) for a VAE, and
with each process's batch-norm statistics for a GAN (loss curves close).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

VAE = ["vae", "--set", "data.source=digits", "--set", "data.image_size=8",
       "--set", "model.hidden=[32]", "--set", "model.code_dim=4",
       "--set", "train.batch_size=32", "--set", "train.precision=fp32", "--quiet"]
DCGAN = ["dcgan", "--set", "data.source=digits", "--set", "data.image_size=32",
         "--set", "model.base_channels=8", "--set", "model.disc_channels=8",
         "--set", "model.latent_dim=16", "--set", "train.batch_size=32",
         "--set", "train.precision=fp32", "--set", "train.bn_batches=2",
         "--set", "run.log_every=5", "--quiet"]


def zoo_build(args: list[str], out: Path, steps: int, processes: int = 1,
              resume: bool = False) -> subprocess.CompletedProcess:
    """Run ``zoo build`` in a subprocess; fail the test with its stderr if it fails."""
    cmd = [sys.executable, "-m", "zoo", "build", *args, "--set", f"train.max_steps={steps}",
           "--out", str(out)]
    if processes > 1:
        cmd += ["--processes", str(processes)]
    if resume:
        cmd.append("--resume")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def max_difference(a: Path, b: Path) -> float:
    """Largest absolute difference over all tensors of two weight files (same keys)."""
    x, y = load_file(a), load_file(b)
    assert x.keys() == y.keys()
    return max(float((x[k].double() - y[k].double()).abs().max()) for k in x if x[k].numel())


def losses(folder: Path) -> dict[str, float]:
    return json.loads((folder / "metrics.json").read_text())["train"]["losses"]


def loss_curve(folder: Path) -> list[dict[str, float]]:
    return json.loads((folder / "metrics.json").read_text())["train"]["loss_curve"]


@pytest.fixture(scope="module")
def vae_runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ddp-vae")
    runs = {"one": root / "one", "two": root / "two", "split": root / "split"}
    zoo_build(VAE, runs["one"], 12)
    done = zoo_build(VAE, runs["two"], 12, processes=2)
    assert done.stdout.count("wrote") == 1  # only the main process reports
    zoo_build(VAE, runs["split"], 6, processes=2)  # 6 steps on 2 processes ...
    zoo_build(VAE, runs["split"], 12, resume=True)  # ... then 6 more on one
    return runs


def test_two_processes_train_the_same_vae_as_one(vae_runs):
    one, two = vae_runs["one"], vae_runs["two"]
    assert max_difference(one / "model.safetensors", two / "model.safetensors") < 1e-5
    assert json.loads((two / "metrics.json").read_text())["train"]["processes"] == 2
    for key, value in losses(one).items():  # logged losses are the global batch's
        assert losses(two)[key] == pytest.approx(value, rel=1e-4)


def test_only_the_main_process_writes(vae_runs):
    parent = vae_runs["two"].parent
    assert sorted(p.name for p in parent.iterdir()) == ["one", "split", "two"]
    files = sorted(p.name for p in vae_runs["two"].iterdir())
    assert files == sorted(p.name for p in vae_runs["one"].iterdir())


def test_resume_a_two_process_checkpoint_with_one_process(vae_runs):
    one, split = vae_runs["one"], vae_runs["split"]
    assert max_difference(one / "model.safetensors", split / "model.safetensors") < 1e-5
    assert json.loads((split / "metrics.json").read_text())["train"]["processes"] == 1


def test_accelerate_launch_trains_the_same_vae(vae_runs, tmp_path):
    """``accelerate launch`` (its multi-process mode; on CPUs it forms a gloo group)
    gives what ``--processes 2`` gives."""
    out = tmp_path / "accelerate"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
           "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", "-m", "zoo", "build", *VAE,
           "--set", "train.max_steps=12", "--out", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((out / "metrics.json").read_text())["train"]["processes"] == 2
    two = vae_runs["two"]
    assert max_difference(two / "model.safetensors", out / "model.safetensors") < 1e-6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["accelerate"]


def test_two_process_gan_follows_the_single_process_loss_curve(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    zoo_build(DCGAN, one, 30)
    zoo_build(DCGAN, two, 30, processes=2)
    a, b = loss_curve(one), loss_curve(two)  # global-batch means of every 5 steps
    assert [w["step"] for w in a] == [w["step"] for w in b] == [5, 10, 15, 20, 25, 30]
    for wa, wb in zip(a, b, strict=True):
        for key in ("loss_d", "loss_g"):
            assert wb[key] == pytest.approx(wa[key], rel=0.05), (key, a, b)
    # the generators differ only through D's and G's per-process batch-norm statistics
    assert max_difference(one / "model.safetensors", two / "model.safetensors") < 0.5


def test_processes_must_divide_the_global_batch(tmp_path):
    cmd = [sys.executable, "-m", "zoo", "build", *VAE, "--set", "train.batch_size=33",
           "--processes", "2", "--out", str(tmp_path / "x")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: train.batch_size = 33 is the global batch; it must be divisible by "
        "--processes 2"]
    assert not (tmp_path / "x").exists()


def test_an_existing_out_is_refused_before_launching(tmp_path):
    out = tmp_path / "x"
    out.mkdir()
    cmd = [sys.executable, "-m", "zoo", "build", *VAE, "--processes", "2", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {out.resolve()} already exists; pass --force to replace it or --resume"]
