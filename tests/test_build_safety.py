"""What a build does with its destination: checked before training, locked while it runs,
cleaned up after a killed build, stopped by SIGTERM like Ctrl-C, and never left unloadable."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import MICRO
from test_build import assert_same_tensors

import zoo
from zoo.api import resolve_spec
from zoo.core.errors import ArtifactError, Interrupted
from zoo.training.lock import BuildLock
from zoo.training.loop import fit

#: A very small autoencoder build: about a second on a busy CPU.
AE = ["data.source=digits", "data.image_size=8", "data.limit=64", "model.hidden=[16]",
      "model.code_dim=4", "train.batch_size=16", "train.max_steps=6", "train.precision=fp32",
      "sample.n=4"]


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    return done.pid


def hidden(folder: Path) -> list[str]:
    """Names of the hidden entries (temporaries, lock files) in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def set_args(overrides: list[str]) -> list[str]:
    return [arg for s in overrides for arg in ("--set", s)]


# --------------------------------------------------------------------------- item 5


def test_an_unwritable_out_fails_before_training(tmp_path, cli, monkeypatch):
    """``touch f; zoo build ... --out f/sub``: one line at once, not a traceback after training."""
    (tmp_path / "f").touch()
    monkeypatch.setattr("zoo.data.open_source", lambda *a, **k: pytest.fail("training started"))
    r = cli("build", "ae", *set_args(AE), "--out", tmp_path / "f" / "sub", "--quiet")
    assert r.code == 2, r.err
    assert r.err.strip() == f"error: cannot write {tmp_path / 'f' / 'sub'}: " \
                            f"{tmp_path / 'f'} is a file, not a folder"


def test_a_failed_build_leaves_no_folders_or_lock_behind(tmp_path, cli):
    """The lock creates the folders above OUT; a build that fails removes them again."""
    out = tmp_path / "a" / "b" / "run"
    r = cli("build", "ae", *set_args([*AE, "data.limit=8"]), "--out", out, "--quiet")
    assert r.code == 2 and "fewer than train.batch_size" in r.err
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- item 6


def test_a_second_build_of_the_same_out_stops_at_once(tmp_path, cli):
    """While one build runs, another of the same OUT gets one line naming the holder, exit 2;
    the first finishes normally."""
    family, spec = resolve_spec("ae", None, AE)
    out = tmp_path / "run"
    second = []

    def start_another(step: int) -> None:
        if step == 2:
            second.append(cli("build", "ae", *set_args(AE), "--out", out, "--quiet"))
            second.append(cli("build", "ae", *set_args(AE), "--out", out, "--force", "--quiet"))

    fit(family, spec, out, progress=False, on_step=start_another)
    for r in second:
        assert r.code == 2
        assert r.err.startswith(f"error: another build (pid {os.getpid()} on ") and \
            f"is writing {out}" in r.err and r.err.count("\n") == 1
    zoo.from_pretrained(out)
    assert hidden(tmp_path) == []  # the lock file went with the build


def test_the_final_rename_does_not_replace_a_folder_that_appeared(tmp_path):
    """Without --force, a folder that appeared at OUT during training is kept, and the new
    model is put beside it rather than silently replacing it."""
    family, spec = resolve_spec("ae", None, AE)
    out = tmp_path / "run"

    def someone_writes_out(step: int) -> None:
        if step == 2:  # as a build that does not take the lock would (or genzoo before it)
            out.mkdir()
            (out / "config.json").write_text("keep me")

    with pytest.raises(ArtifactError, match=r"appeared while it was being written; the new one "
                                            r"is in .*run\.new-"):
        fit(family, spec, out, progress=False, on_step=someone_writes_out)
    assert (out / "config.json").read_text() == "keep me"
    kept = tmp_path / f"run.new-{os.getpid()}"
    zoo.from_pretrained(kept)


def test_a_lock_left_by_a_killed_build_is_taken_over(tmp_path, cli):
    out = tmp_path / "run"
    (tmp_path / ".run.lock").write_text(f"{dead_pid()} somehost\n")
    r = cli("build", "ae", *set_args(AE), "--out", out, "--quiet")
    assert r.code == 0, r.err
    assert "note: took over the lock of a build that is no longer running (pid " in r.err
    assert hidden(tmp_path) == []


def test_a_lock_file_that_is_a_link_is_never_written_through(tmp_path, cli, monkeypatch):
    """A symbolic link (or a FIFO) where the lock file goes: one line, exit 2, before any
    training; the link's target is not overwritten with the build's pid."""
    monkeypatch.setattr("zoo.data.open_source", lambda *a, **k: pytest.fail("training started"))
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    (tmp_path / ".run.lock").symlink_to(target)
    r = cli("build", "ae", *set_args(AE), "--out", tmp_path / "run", "--quiet")
    assert r.code == 2 and r.err.count("\n") == 1, r.err
    assert "is a symbolic link, not a build lock; remove it" in r.err
    assert target.read_text() == "keep me"
    os.mkfifo(tmp_path / ".fifo.lock")
    r = cli("build", "ae", *set_args(AE), "--out", tmp_path / "fifo", "--quiet")
    assert r.code == 2 and r.err.count("\n") == 1, r.err
    assert "is not a regular file" in r.err


def test_a_lock_file_with_foreign_content_names_no_pid(tmp_path, cli):
    """A lock file genzoo did not write is taken over without quoting it as a pid."""
    (tmp_path / ".run.lock").write_text("not a pid at all\n")
    r = cli("build", "ae", *set_args(AE), "--out", tmp_path / "run", "--quiet")
    assert r.code == 0, r.err
    assert "no longer running (another process)" in r.err and "pid not" not in r.err


def test_force_never_replaces_a_folder_that_only_has_a_config_json(tmp_path, cli, monkeypatch):
    """Most projects have a config.json (or a state.json): ``--force`` replaces a folder only
    when that file is genzoo's (``"format": "genzoo/1"``), or damaged beside genzoo's weights."""
    monkeypatch.setattr("zoo.data.open_source", lambda *a, **k: pytest.fail("training started"))
    for meta in ("config.json", "state.json"):
        project = tmp_path / meta.split(".")[0]
        project.mkdir()
        (project / meta).write_text('{"name": "my app"}')
        (project / "main.py").write_text("important")
        r = cli("build", "ae", *set_args(AE), "--out", project, "--force", "--quiet")
        assert r.code == 2 and r.err == f"error: refusing to replace {project}: not a genzoo " \
                                         "model folder\n", r.err
        assert (project / "main.py").read_text() == "important"


def test_force_still_replaces_a_damaged_model_folder(tmp_path, cli):
    from zoo.artifact import replaceable

    out = tmp_path / "run"
    assert cli("build", "ae", *set_args(AE), "--out", out, "--quiet").code == 0
    assert replaceable(out) and replaceable(out / "training_state")
    (out / "config.json").write_text("{")  # damaged: genzoo's weights are still beside it
    assert replaceable(out)
    (out / "model.safetensors").unlink()
    assert not replaceable(out)


def test_out_inside_a_model_folder_or_checkpoint_is_refused(tmp_path, cli, monkeypatch):
    """A model written inside another would be deleted by a later ``--force`` of the outer."""
    out = tmp_path / "run"
    assert cli("build", "ae", *set_args(AE), "--out", out, "--quiet").code == 0
    monkeypatch.setattr("zoo.data.open_source", lambda *a, **k: pytest.fail("training started"))
    for inner in (out / "inner", out / "training_state" / "deeper" / "x"):
        r = cli("build", "ae", *set_args(AE), "--out", inner, "--quiet")
        assert r.code == 2 and r.err.count("\n") == 1, r.err
        assert "is inside the genzoo folder" in r.err
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["README.md", "config.json", "metrics.json", "model.safetensors", "samples.png",
         "training_state"])


def test_resume_through_a_linked_checkpoint_leaves_no_link_behind(tmp_path):
    """``OUT.ckpt`` a symbolic link to a checkpoint elsewhere: --resume reads it, and the
    finished build removes the link (not what it points to), leaving nothing hidden."""
    family, spec = resolve_spec("ae", None, [*AE, "train.max_steps=8"])
    out = tmp_path / "run"
    with pytest.raises(Interrupted):
        fit(family, spec, out, progress=False, on_step=lambda s: s == 4 and os.kill(
            os.getpid(), signal.SIGINT))
    elsewhere = tmp_path / "kept" / "ckpt"
    elsewhere.parent.mkdir()
    os.rename(tmp_path / "run.ckpt", elsewhere)
    (tmp_path / "run.ckpt").symlink_to(elsewhere)
    fit(family, spec, out, resume=True, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept", "run"]
    assert (elsewhere / "state.json").is_file()


def test_out_named_like_a_checkpoint_is_refused(tmp_path, cli, monkeypatch):
    """``--out x.ckpt`` would be overwritten, then deleted, by a build of ``x`` (which takes
    another lock): refused before training."""
    monkeypatch.setattr("zoo.data.open_source", lambda *a, **k: pytest.fail("training started"))
    r = cli("build", "ae", *set_args(AE), "--out", tmp_path / "x.ckpt", "--quiet")
    assert r.code == 2 and r.err.count("\n") == 1, r.err
    assert "a name ending in .ckpt is the checkpoint of a build of x" in r.err
    assert list(tmp_path.iterdir()) == []


def test_a_second_sigterm_aborts_with_one_line_and_status_143(tmp_path, cli, monkeypatch):
    """Signal, signal again: stop at once (no new checkpoint, no temporary), one line, and the
    status of the signal (143 for SIGTERM), not typer's silent 130."""
    import functools

    import zoo.training.loop

    def twice(step: int) -> None:
        if step == 3:
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(zoo.training.loop, "fit",
                        functools.partial(zoo.training.loop.fit, on_step=twice))
    r = cli("build", "ae", *set_args(AE), "--out", tmp_path / "run", "--quiet")
    assert r.code == 143, r.err
    assert r.err.strip().splitlines()[-1] == (
        "error: aborted at once by a second SIGTERM; nothing more was written (a checkpoint "
        "written before is kept)")
    assert list(tmp_path.iterdir()) == []


def test_out_inside_the_data_folder_is_refused(tmp_path, cli, monkeypatch):
    """``cd photos && zoo build dcgan --set data.source=folder --set data.path=.`` wrote
    runs/dcgan/samples.png among the photos: the next build trained on it."""
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("L", (8, 8)).save(photos / "a.png")
    monkeypatch.chdir(photos)
    monkeypatch.setattr("zoo.data.open_source", lambda *a, **k: pytest.fail("training started"))
    r = cli("build", "ae", *set_args(AE), "--set", "data.source=folder", "--set", "data.path=.",
            "--quiet")
    assert r.code == 2 and r.err.count("\n") == 1, r.err
    assert "is inside data.path ., where its samples.png would be read" in r.err
    assert sorted(p.name for p in photos.iterdir()) == ["a.png"]


def test_paths_through_a_loop_of_links_are_one_line(tmp_path, cli, monkeypatch,
                                                     micro_dcgan):
    """``--out``, ``-o``, ``--report``, ``--write-clean``, ``--save-model`` and a dedup SOURCE
    through a loop of symbolic links: one line each, not a RuntimeError traceback."""
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    loop = tmp_path / "a"
    monkeypatch.setattr("zoo.data.open_source", lambda *a, **k: pytest.fail("training started"))
    images = tmp_path / "images"
    images.mkdir()
    from PIL import Image

    Image.new("L", (8, 8)).save(images / "a.png")
    runs = [cli("build", "ae", *set_args(AE), "--out", loop / "x", "--quiet"),
            cli("build", "ae", *set_args(AE), "--out", loop, "--dry-run"),
            cli("sample", micro_dcgan, "-n", "2", "-o", loop / "x.npy"),
            cli("dedup", images, "--report", loop / "x.json"),
            cli("dedup", images, "--write-clean", loop / "clean"),
            cli("dedup", loop, "--report", tmp_path / "x.json"),
            cli("dedup", images, "--save-model", loop / "m", "--quiet")]
    for r in runs:
        assert r.code == 2 and r.err.count("\n") == 1, r.err
        assert "cannot follow its symbolic links (a loop of symbolic links)" in r.err, r.err


@pytest.mark.parametrize("where", [".", "..", "run"])
def test_out_that_is_or_holds_the_current_folder_is_refused(where, tmp_path, cli, monkeypatch):
    """``cd run && zoo build ... --out . --force`` renamed the shell's folder away."""
    here = tmp_path / "run"
    here.mkdir()
    monkeypatch.chdir(here)
    monkeypatch.setattr("zoo.data.open_source", lambda *a, **k: pytest.fail("training started"))
    out = {"run": here}.get(where, where)
    r = cli("build", "ae", *set_args(AE), "--out", out, "--force", "--quiet")
    assert r.code == 2 and r.err.count("\n") == 1, r.err
    assert "is (or holds) the current folder" in r.err
    assert here.is_dir() and list(here.iterdir()) == []


@pytest.mark.parametrize("kind", ["file", "folder", "dangling link"])
def test_something_else_at_out_ckpt_is_refused_before_training(kind, tmp_path, cli,
                                                                monkeypatch):
    """A file (or a foreign folder) named OUT.ckpt: a checkpoint failed on it mid-training,
    and a finished ``--force`` build hid it as ``.OUT.ckpt.del-...`` for the next to delete."""
    ckpt = tmp_path / "run.ckpt"
    if kind == "file":
        ckpt.write_text("mine")
    elif kind == "folder":
        ckpt.mkdir()
        (ckpt / "notes.txt").write_text("mine")
    else:
        ckpt.symlink_to(tmp_path / "nowhere")
    monkeypatch.setattr("zoo.data.open_source", lambda *a, **k: pytest.fail("training started"))
    r = cli("build", "ae", *set_args(AE), "--out", tmp_path / "run", "--force", "--quiet")
    assert r.code == 2 and r.err.count("\n") == 1, r.err
    assert f"{ckpt} is in the way and is not a genzoo checkpoint; move it" in r.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.ckpt"]


def test_out_at_the_root_is_one_line(cli):
    r = cli("build", "ae", *set_args(AE), "--out", "/", "--quiet")
    assert (r.code, r.err) == (2, "error: cannot write /: give a folder below it\n")


# --------------------------------------------------------------------------- item 7

#: ``zoo build`` that prints "at step N" and pauses a moment after each step, so that a
#: test can signal it at a known step.
SLOW_BUILD = """
import sys, time
import zoo.training.loop

real_fit = zoo.training.loop.fit

def fit(*args, **kwargs):
    def on_step(step):
        print(f"at step {step}", file=sys.stderr, flush=True)
        time.sleep(0.3)
    return real_fit(*args, on_step=on_step, **kwargs)

zoo.training.loop.fit = fit
from zoo.cli import main
sys.argv = ["zoo", *sys.argv[1:]]
main()
"""


def test_sigterm_checkpoints_and_resume_matches_the_uninterrupted_build(micro_dcgan, tmp_path):
    """SIGTERM (what schedulers and ``kill`` send) stops at the step boundary, writes OUT.ckpt
    and exits 143; ``--resume`` then gives bit-identical weights."""
    out = tmp_path / "run"
    spec = [*MICRO, "train.precision=fp32"]
    # as many threads as this process, whose fixture is the reference: float sums are
    # bitwise the same only for the same thread count
    env = dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()))
    child = subprocess.Popen([sys.executable, "-c", SLOW_BUILD, "build", "dcgan",
                              *set_args(spec), "--out", str(out), "--quiet"],
                             stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = []
        for line in child.stderr:
            lines.append(line)
            if line.startswith("at step 3"):
                child.send_signal(signal.SIGTERM)
                break
        err = "".join(lines) + child.stderr.read()
        code = child.wait(timeout=120)
    finally:
        child.kill()
        child.wait()
    assert code == 143, err
    assert "error: terminated (SIGTERM) at step 3 of 20; checkpoint in" in err
    assert not out.exists() and (tmp_path / "run.ckpt" / "state.json").is_file()
    family, resolved = resolve_spec("dcgan", None, spec)
    fit(family, resolved, out, resume=True, progress=False)
    assert_same_tensors(out / "model.safetensors", micro_dcgan / "model.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


# --------------------------------------------------------------------------- item 8


def test_stale_temporaries_are_reported_and_removed(tmp_path, cli):
    """Temporaries of a killed build (its pid is gone) go at the next build of that OUT, one
    note each; a live writer's, and other folders' temporaries, stay."""
    dead, live = dead_pid(), os.getppid()
    stale = [f".run.tmp-{dead}-0123abcd", f".run.ckpt.tmp-{dead}-89abcdef",
             f".run.del-{dead}-00000000"]
    kept = [f".run.tmp-{live}-0123abcd", f".other.tmp-{dead}-0123abcd"]
    for name in stale + kept:
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.safetensors").write_bytes(b"x" * 4096)
    precious = tmp_path / "precious"  # a link in the way is removed, not what it points to
    precious.mkdir()
    (precious / "data").write_text("mine")
    (tmp_path / f".run.old-{dead}-fedcba98").symlink_to(precious)
    out = tmp_path / "run"
    r = cli("build", "ae", *set_args(AE), "--out", out, "--quiet")
    assert r.code == 0, r.err
    for name in stale:
        assert f"note: removed {name} (4 KB), left by a build (pid {dead}) that is no longer " \
               "running" in r.err
    assert f"note: removed .run.old-{dead}-fedcba98 (0 KB)" in r.err
    assert hidden(tmp_path) == sorted(kept)
    assert (precious / "data").read_text() == "mine"
    zoo.from_pretrained(out)


@pytest.mark.skipif(not Path("/proc/stat").is_file(), reason="process start times: Linux")
def test_a_temporary_whose_pid_was_reused_is_removed(tmp_path, cli):
    """A killed build's pid may belong to another process by the time of the next build (pids
    are small and reused quickly in containers): a temporary older than the process now
    holding its pid is stale too; one the process may have made stays."""
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        old, new = f".run.tmp-{other.pid}-0123abcd", f".run.ckpt.tmp-{other.pid}-89abcdef"
        for name in (old, new):
            (tmp_path / name).mkdir()
            (tmp_path / name / "model.safetensors").write_bytes(b"x" * 4096)
        hour_ago = time.time() - 3600
        os.utime(tmp_path / old, (hour_ago, hour_ago))
        r = cli("build", "ae", *set_args(AE), "--out", tmp_path / "run", "--quiet")
        assert r.code == 0, r.err
        assert f"note: removed {old} (4 KB), left by a build (pid {other.pid})" in r.err
        assert hidden(tmp_path) == [new]
    finally:
        other.kill()
        other.wait()


# --------------------------------------------------------------------------- item 9


def interrupted_at_step_4(tmp_path: Path) -> Path:
    """An AE build of 6 steps stopped at step 4 (as Ctrl-C would): OUT.ckpt holds step 4."""
    family, spec = resolve_spec("ae", None, AE)
    out = tmp_path / "run"

    def stop(step: int) -> None:
        if step == 4:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(zoo.core.errors.Interrupted):
        fit(family, spec, out, progress=False, on_step=stop)
    return out


def test_a_checkpoint_caught_between_two_renames_is_restored(tmp_path, cli):
    """Killed between the two renames of a checkpoint overwrite: the previous checkpoint sits
    in ``.OUT.ckpt.old-PID-…`` and the new one in ``.OUT.ckpt.tmp-PID-…``; ``--resume`` puts
    the old one back and resumes from it (and matches the straight build)."""
    family, spec = resolve_spec("ae", None, AE)
    straight = fit(family, spec, tmp_path / "straight", progress=False)
    out = interrupted_at_step_4(tmp_path)
    dead = dead_pid()
    old = tmp_path / f".run.ckpt.old-{dead}-0123abcd"
    os.replace(tmp_path / "run.ckpt", old)
    shutil.copytree(old, tmp_path / f".run.ckpt.tmp-{dead}-89abcdef")
    r = cli("build", "ae", *set_args(AE), "--out", out, "--resume", "--quiet")
    assert r.code == 0, r.err
    assert f"note: restored {tmp_path / 'run.ckpt'} from {old.name}, left by a build " \
           f"(pid {dead}) that was killed while replacing it" in r.err
    assert f"note: removed .run.ckpt.tmp-{dead}-89abcdef" in r.err
    assert_same_tensors(out / "model.safetensors", straight / "model.safetensors")
    assert hidden(tmp_path) == []


def test_a_model_folder_caught_between_two_renames_is_restored(micro_dcgan, tmp_path, cli):
    dead = dead_pid()
    shutil.copytree(micro_dcgan, tmp_path / f".run.old-{dead}-0123abcd")
    out = tmp_path / "run"
    r = cli("build", "dcgan", "--out", out, "--quiet")
    assert r.code == 2 and f"error: {out} already exists" in r.err
    assert "note: restored" in r.err
    assert torch.equal(zoo.from_pretrained(out).sample(2, seed=1),
                       zoo.from_pretrained(micro_dcgan).sample(2, seed=1))


# --------------------------------------------------------------------------- item 10


def test_a_module_with_a_non_persistent_buffer_is_not_written(tmp_path, monkeypatch):
    """The AE samples from a Gaussian fitted after training; kept in a non-persistent buffer,
    the written folder would not load: the build fails instead and writes nothing."""
    from zoo_ae.vanilla import VanillaAE

    real_build = VanillaAE.build

    def leaky_build(self, spec):
        model = real_build(self, spec)
        model.register_buffer("code_mean", model.code_mean, persistent=False)
        return model

    monkeypatch.setattr(VanillaAE, "build", leaky_build)
    family, spec = resolve_spec("ae", None, AE)
    with pytest.raises(ArtifactError, match=r"run was not written: the model folder does not "
                                            r"load back \(.*code_mean"):
        fit(family, spec, tmp_path / "run", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_module_that_samples_from_unsaved_state_is_not_written(tmp_path, monkeypatch):
    """A value the sampler needs, set during training but outside the state dict (a plain
    attribute), makes the reloaded model sample differently: the build fails, nothing
    written."""
    from zoo_ae.nets import AETrainer
    from zoo_ae.vanilla import VanillaAE

    real_build, real_sample = VanillaAE.build, VanillaAE.sample
    real_finish = AETrainer.finish

    def build(self, spec):
        model = real_build(self, spec)
        model.contrast = 1.0
        return model

    def sample(self, model, noise, spec, options):
        return real_sample(self, model, noise, spec, options) * model.contrast

    def finish(self, images, labels, rng):
        real_finish(self, images, labels, rng)
        self.sampling_module().contrast = 0.5

    monkeypatch.setattr(VanillaAE, "build", build)
    monkeypatch.setattr(VanillaAE, "sample", sample)
    monkeypatch.setattr(AETrainer, "finish", finish)
    family, spec = resolve_spec("ae", None, AE)
    with pytest.raises(ArtifactError, match="its samples differ from the trained module's"):
        fit(family, spec, tmp_path / "run", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_lock_is_released_on_every_exit_path(tmp_path):
    out = tmp_path / "x" / "run"
    with pytest.raises(RuntimeError), BuildLock(out):
        raise RuntimeError
    assert not (tmp_path / "x").exists()
    with BuildLock(out) as lock:
        assert lock.path.read_text().startswith(f"{os.getpid()} ")
        with pytest.raises(ArtifactError, match="another build"), BuildLock(out):
            pass
    assert not (tmp_path / "x").exists()


def test_the_process_launcher_passes_sigterm_on(tmp_path):
    """``zoo build --processes N`` waits for torchrun; a SIGTERM it gets goes to torchrun (which
    passes it to the processes, that checkpoint), and it exits 143 when they stop."""
    import threading

    from zoo.training.launch import _run_forwarding_sigterm

    ready = tmp_path / "ready"
    child = ("import pathlib, signal, sys, time\n"
             "signal.signal(signal.SIGTERM, lambda *a: sys.exit(7))\n"
             f"pathlib.Path({str(ready)!r}).touch()\n"
             "time.sleep(60)\n")

    def terminate_when_ready() -> None:
        deadline = time.monotonic() + 60
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=terminate_when_ready, daemon=True).start()
    started = time.monotonic()
    assert _run_forwarding_sigterm([sys.executable, "-c", child], dict(os.environ)) == 143
    assert time.monotonic() - started < 50
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_name_too_long_for_the_temporaries_fails_before_training(tmp_path, cli):
    out = tmp_path / ("m" * 240)  # fine as a name, but not with ".ckpt.tmp-PID-…" added
    r = cli("build", "ae", *set_args(AE), "--out", out, "--quiet")
    assert r.code == 2 and r.err.startswith(f"error: cannot write {out}: ") and \
        "too long" in r.err.lower()
    assert list(tmp_path.iterdir()) == []
