"""Builds killed with SIGKILL at random moments never leave half a model.

Twenty tiny builds (checkpoints every two steps) are killed outright after a
random delay (seeded); each is followed by a ``zoo build`` of the same OUT:
``--resume`` if a checkpoint survived, ``--force`` if the model folder did,
else a fresh build. Every other killed build overwrites the previous model
folder (``--force``), so kills also land between the renames of an
overwrite. Before the follow-up, OUT is absent or a complete model folder
and any checkpoint is complete; the follow-up reports every stale temporary
and removes it, and its model equals an uninterrupted build's, bit for bit.
The killed builds are forked from this process (torch is imported already),
so each costs its training time only.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import sys
import time
from pathlib import Path

import pytest
from test_build import FILES, assert_same_tensors
from test_build_safety import set_args

import zoo
from zoo.artifact import leftovers, weights_header
from zoo.training.checkpoint import META, TENSORS

AE = ["data.source=digits", "data.image_size=8", "data.limit=64", "model.hidden=[16]",
      "model.code_dim=4", "train.batch_size=16", "train.max_steps=12",
      "run.checkpoint_every=2", "train.precision=fp32", "sample.n=4"]
KILLS = 20
pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="forks the builds it kills")


def _build_in_child(argv: list[str], log: str) -> None:
    """The forked child: ``zoo build ARGV`` with its output in ``log``."""
    import torch

    torch.set_num_threads(1)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    from zoo.cli import main

    sys.argv = ["zoo", *argv]
    main()


def assert_complete_or_absent(out: Path) -> str:
    """OUT after a kill: absent, or a model folder that loads; say which."""
    if not out.exists():
        return "absent"
    for name in FILES:
        assert (out / name).is_file(), f"half-written {out}: no {name}"
    zoo.from_pretrained(out)
    return "complete"


def assert_checkpoint_complete(ckpt: Path) -> bool:
    if not ckpt.exists():
        return False
    assert (ckpt / META).is_file(), f"half-written {ckpt}"
    weights_header(ckpt / TENSORS)
    return True


def test_builds_killed_at_random_moments_leave_nothing_half_written(tmp_path, cli):
    reference = tmp_path / "reference"  # in this process, so that the children start warm
    assert cli("build", "ae", *set_args(AE), "--out", reference, "--quiet").code == 0
    out = tmp_path / "runs" / "ae"
    args = ["ae", *set_args(AE), "--out", str(out), "--quiet"]
    fork = multiprocessing.get_context("fork")
    started = time.perf_counter()
    child = fork.Process(target=_build_in_child, args=(["build", *args], str(tmp_path / "log")))
    child.start()
    child.join()
    assert child.exitcode == 0, (tmp_path / "log").read_text()
    span = 1.2 * (time.perf_counter() - started)  # kills land anywhere in a build, or after it
    os.rename(out, tmp_path / "timed")
    rng = random.Random(0)
    seen: dict[str, int] = {}
    for i in range(KILLS):
        log = tmp_path / f"log{i}"
        over = ["--force"] if out.exists() else []  # then the kill may catch an overwrite
        child = fork.Process(target=_build_in_child, args=(["build", *args, *over], str(log)))
        child.start()
        time.sleep(rng.uniform(0, span))
        os.kill(child.pid, signal.SIGKILL)
        child.join()  # reaped: its pid no longer runs
        assert child.exitcode in (-signal.SIGKILL, 0), log.read_text()

        state = assert_complete_or_absent(out)
        resumable = assert_checkpoint_complete(out.with_name("ae.ckpt"))
        stale = [t.path.name for t in leftovers(out) + leftovers(out.with_name("ae.ckpt"))]
        lock = out.with_name(".ae.lock")
        holder = lock.read_text() if lock.exists() else ""
        follow = "--resume" if resumable else "--force" if state == "complete" else None
        r = cli("build", *args, *([follow] if follow else []))
        assert r.code == 0, f"kill {i} ({state}, {follow}): {r.err}"
        for name in stale:
            assert f"from {name}, left by a build (pid {child.pid})" in r.err or \
                f"note: removed {name} " in r.err, f"kill {i}: {name} not reported: {r.err}"
        if holder:
            assert f"took over the lock of a build that is no longer running (pid " \
                   f"{child.pid} on" in r.err
        assert sorted(p.name for p in out.parent.iterdir()) == ["ae"], f"kill {i}: {r.err}"
        assert_same_tensors(out / "model.safetensors", reference / "model.safetensors")
        key = f"{state}{', checkpoint' if resumable else ''}{', temporaries' if stale else ''}"
        key += ", restored" if "note: restored" in r.err else ""
        seen[key] = seen.get(key, 0) + 1
        if i % 2:  # every other killed build starts from nothing, the others overwrite
            os.rename(out, tmp_path / f"done{i}")
    print(f"after the kills (within {span:.2f} s):", seen)
