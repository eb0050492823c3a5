"""The training feed: exact epochs (drop and wrap), the same global batches for any process
count, mid-epoch resume, dynamic binarisation, and builds over a folder decoded in workers."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_build import assert_same_tensors

from zoo.api import resolve_spec
from zoo.core.errors import ArtifactError, DataError, Interrupted, SpecError
from zoo.core.spec import TrainSpec
from zoo.data.source import KeyTable
from zoo.data.split import held_out_mask
from zoo.training.feed import Order, RankBatches, open_feed, total_steps
from zoo.training.loop import fit

#: A micro DCGAN over a folder of 16-pixel images, decoded by two DataLoader workers.
FOLDER_MICRO = ["model.base_channels=8", "model.disc_channels=8",
                "data.image_size=16", "model.latent_dim=16", "train.batch_size=8",
                "train.bn_batches=2", "sample.n=4", "train.precision=fp32",
                "data.source=folder", "run.data_workers=2"]


def make_folder(root: Path, count: int = 40, seed: int = 0) -> Path:
    """``count`` random 16-pixel RGB PNGs in two subfolders."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        (root / f"d{i % 2}").mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"d{i % 2}" / f"im{i:02d}.png")
    return root


def in_train(name: str) -> bool:
    """Whether the hash split (default held_out) trains on a file of this key."""
    table, _ = KeyTable.sorted([name])
    return not held_out_mask(table, 0.1)[0]


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    return make_folder(tmp_path_factory.mktemp("feed") / "images")


def folder_spec(path: Path, *more: str, steps: int | None = 12):
    length = [f"train.max_steps={steps}"] if steps else []
    return resolve_spec("dcgan", None, [*FOLDER_MICRO, *length, f"data.path={path}", *more])


# --------------------------------------------------------------------------- the order


@pytest.mark.parametrize("last_batch", ["drop", "wrap"])
def test_every_image_of_an_epoch_once(last_batch):
    """n = 30, B = 8 (n % B != 0): drop sees 24 distinct images an epoch and a different
    tail each epoch; wrap runs the epochs into each other and sees every image of every
    epoch exactly once."""
    n, size, epochs = 30, 8, 3
    order = Order(n, size, seed=7, last_batch=last_batch)
    total = total_steps(TrainSpec(epochs=epochs, batch_size=size), n, last_batch)
    stream = torch.cat([order.global_batch(s) for s in range(total)]).tolist()
    if last_batch == "drop":
        assert total == epochs * (n // size) == 9
        per = (n // size) * size
        epochs_seen = [stream[e * per:(e + 1) * per] for e in range(epochs)]
        assert all(len(set(seen)) == per for seen in epochs_seen)
        assert len({frozenset(range(n)) - set(seen) for seen in epochs_seen}) > 1
    else:
        assert total == -(-epochs * n // size) == 12
        for e in range(epochs):
            assert sorted(stream[e * n:(e + 1) * n]) == list(range(n))
        assert order.epochs(total) == pytest.approx(total * size / n)


@pytest.mark.parametrize("last_batch", ["drop", "wrap"])
def test_two_ranks_split_the_one_rank_sequence(last_batch):
    order = Order(30, 8, seed=3, last_batch=last_batch)
    rows = np.arange(100, 130)  # view positions map to source rows
    one = list(RankBatches(order, 0, 1, 0, 10, rows))
    halves = [list(RankBatches(order, r, 2, 0, 10, rows)) for r in (0, 1)]
    assert [a + b for a, b in zip(*halves, strict=True)] == one
    assert all(len(b) == 4 for half in halves for b in half)
    assert list(RankBatches(order, 1, 2, 4, 10, rows)) == halves[1][4:]


# --------------------------------------------------------------------------- the feed


def collect(feed, start: int, total: int, rng=None) -> list[torch.Tensor]:
    try:
        return [x.clone() for x, _ in feed.batches(start, total, rng)]
    finally:
        feed.close()


@pytest.mark.parametrize("world", [1, 2])
def test_mid_epoch_resume_continues_the_sequence(images, world):
    """Steps 0..11 straight equal steps 0..4 then a new feed from step 5 (epoch 1 starts at
    step 4 of this 36-image view), on each of 1 and 2 ranks."""
    _, spec = folder_spec(images, "data.last_batch=wrap")
    for rank in range(world):
        straight = collect(open_feed(spec, rank=rank, world=world, workers=0), 0, 12)
        head = collect(open_feed(spec, rank=rank, world=world, workers=0), 0, 5)
        tail = collect(open_feed(spec, rank=rank, world=world, workers=1), 5, 12)
        assert len(straight) == 12 and all(len(x) == 8 // world for x in straight)
        assert all(torch.equal(a, b) for a, b in zip(straight, head + tail, strict=True))


def test_dynamic_binarisation_is_the_same_for_any_process_count(images):
    _, spec = folder_spec(images, "data.binarize=dynamic")
    one = collect(open_feed(spec, workers=0), 0, 6, torch.Generator().manual_seed(1))
    ranks = [collect(open_feed(spec, rank=r, world=2, workers=0), 0, 6,
                     torch.Generator().manual_seed(1)) for r in (0, 1)]
    assert all(set(x.unique().tolist()) <= {0.0, 1.0} for x in one)
    for step, x in enumerate(one):
        assert torch.equal(torch.cat([ranks[0][step], ranks[1][step]]), x)


def test_fit_images_are_the_start_of_epoch_0(images):
    _, spec = folder_spec(images, "data.fit_images=5")
    feed = open_feed(spec, workers=0)
    first = next(iter(feed.batches(0, 1)))[0]
    feed.close()
    fit_images = feed.fit_images()
    assert fit_images.shape == (5, 3, 16, 16) and torch.equal(fit_images, first[:5])
    _, everything = folder_spec(images, "data.fit_images=1000")
    assert len(open_feed(everything, workers=0).fit_images()) == open_feed(everything).n


def test_static_binarisation_of_a_streamed_source_is_one_line(images):
    _, spec = folder_spec(images, "data.binarize=static")
    with pytest.raises(SpecError, match=r"data\.binarize = 'static' needs the whole training "
                       "split") as info:
        open_feed(spec)
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------- builds


def assert_resume_at_6_of_12_matches(family, spec, out: Path, straight: Path) -> None:
    """A build of ``spec`` (12 steps) stopped by Ctrl-C at step 6 and resumed into ``out``
    has the weights and training state of the uninterrupted build ``straight``."""

    def stop_at_6(step: int) -> None:
        if step == 6:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted, match="interrupted at step 6 of 12"):
        fit(family, spec, out, progress=False, on_step=stop_at_6)
    fit(family, spec, out, resume=True, progress=False)
    for name in ("model.safetensors", "training_state/state.safetensors"):
        assert_same_tensors(out / name, straight / name)


def test_interrupt_then_resume_a_folder_build_equals_uninterrupted(images, tmp_path):
    """Two workers decode the folder; Ctrl-C at step 6 of 12 (mid-epoch: 4 steps an
    epoch), --resume, and the weights and training state equal the straight build's."""
    family, spec = folder_spec(images)
    straight = fit(family, spec, tmp_path / "straight", progress=False)
    data = json.loads((straight / "metrics.json").read_text())["data"]
    assert data == {"source": "folder", "kind": "indexed", "images": 36, "workers": 2,
                    "skipped": 0, "skipped_keys": []}
    assert_resume_at_6_of_12_matches(family, spec, tmp_path / "run", straight)


def test_resume_refuses_changed_images(tmp_path):
    folder = make_folder(tmp_path / "images", count=20)
    family, spec = folder_spec(folder, "run.data_workers=0")
    out = tmp_path / "run"

    def stop_at_2(step: int) -> None:
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted):
        fit(family, spec, out, progress=False, on_step=stop_at_2)
    name = next(f"new{i}.png" for i in range(100) if in_train(f"new{i}.png"))
    Image.new("RGB", (16, 16), (9, 9, 9)).save(folder / name)
    with pytest.raises(ArtifactError) as info:
        fit(family, spec, out, resume=True, progress=False)
    n = open_feed(spec).n
    ckpt = (tmp_path / "run.ckpt").resolve()
    assert str(info.value) == (f"cannot resume {ckpt}: the training images "
                               f"changed ({n - 1} -> {n} images; data.path {folder})")


def test_a_bad_image_is_skipped_counted_and_strict_stops(tmp_path, cli):
    folder = make_folder(tmp_path / "images", count=20)
    name = next(f"bad{i}.png" for i in range(100) if in_train(f"bad{i}.png"))
    (folder / name).write_bytes(b"\x89PNG\r\n\x1a\n not really")
    family, spec = folder_spec(folder, "data.last_batch=wrap", "run.data_workers=1",
                               steps=None)
    out = fit(family, spec, tmp_path / "run", progress=False)
    data = json.loads((out / "metrics.json").read_text())["data"]
    assert data["skipped"] == 1 and data["skipped_keys"] == [name]
    args = [a for s in [*FOLDER_MICRO, f"data.path={folder}", "data.strict=true",
                        "data.last_batch=wrap"] for a in ("--set", s)]
    r = cli("build", "dcgan", *args, "--out", tmp_path / "strict", "--quiet")
    assert r.code == 2, r.err
    lines = [line for line in r.err.splitlines() if not line.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and name in lines[0], r.err
    assert "data.strict" in lines[0]
    assert not (tmp_path / "strict").exists() and not (tmp_path / "strict.ckpt").exists()


def test_too_few_images_for_a_batch_is_one_line(tmp_path):
    folder = make_folder(tmp_path / "images", count=4)
    _, spec = folder_spec(folder)
    with pytest.raises(DataError, match=r"^folder gives \d training images, fewer than "
                       "train.batch_size = 8$"):
        open_feed(spec)


STALLED_WORKER = """
import os, time
from torch.utils.data import DataLoader, Dataset
from zoo.data.torch_io import worker_init

class Stalls(Dataset):
    def __len__(self):
        return 4
    def __getitem__(self, i):
        if i:
            time.sleep(3600)  # a worker stuck reading (a dead server, a hung disk)
        return os.getpid()

it = iter(DataLoader(Stalls(), batch_size=None, num_workers=1, worker_init_fn=worker_init))
print(int(next(it)), flush=True)
"""


def test_a_stuck_worker_does_not_keep_the_process_from_exiting():
    """The DataLoader stops a worker that does not finish with SIGTERM; a worker that ignored
    it kept the process waiting for ever at exit (and survived it)."""
    import subprocess
    import sys

    try:
        done = subprocess.run([sys.executable, "-c", STALLED_WORKER], capture_output=True,
                              text=True, timeout=20)
        pid = int(done.stdout.split()[0])
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        if out.split():
            os.kill(int(out.split()[0]), signal.SIGKILL)  # the orphaned worker
        pytest.fail("the process hung at exit waiting for its stuck DataLoader worker")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_stalled_worker_is_one_line_after_twice_zoo_data_timeout(images, monkeypatch):
    """A worker that never delivers its batch: the loop waits 2 × ZOO_DATA_TIMEOUT, then one
    line (and the stuck worker is stopped)."""
    import time

    from zoo.data.torch_io import ImageBatches

    def stalls(self, rows):
        time.sleep(3600)

    monkeypatch.setattr(ImageBatches, "__getitems__", stalls)  # the forked worker has it too
    monkeypatch.setenv("ZOO_DATA_TIMEOUT", "0.5")
    _, spec = folder_spec(images)
    feed = open_feed(spec, workers=1)
    began = time.monotonic()
    with pytest.raises(DataError) as info:
        next(iter(feed.batches(0, 4)))
    feed.close()
    assert time.monotonic() - began < 15
    assert str(info.value) == (f"folder {images}: no batch from the data loader workers within "
                               "1 s (a stalled read?); set ZOO_DATA_TIMEOUT to wait longer")


def test_sigterm_to_the_whole_process_group_checkpoints(images, tmp_path):
    """SIGTERM sent to every process (``kill -TERM -PGID``, systemd, a scheduler) reaches
    the DataLoader workers too: they end quietly and the build still stops at the step
    boundary with its checkpoint (no traceback for a worker killed by a signal)."""
    import subprocess
    import sys

    from test_build_safety import SLOW_BUILD

    args = [a for s in [*FOLDER_MICRO, f"data.path={images}", "train.max_steps=30"]
            for a in ("--set", s)]
    child = subprocess.Popen([sys.executable, "-c", SLOW_BUILD, "build", "dcgan", *args,
                              "--out", str(tmp_path / "run"), "--quiet"],
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        lines = []
        for line in child.stderr:
            lines.append(line)
            if line.startswith("at step 3"):
                os.killpg(child.pid, signal.SIGTERM)
                break
        err = "".join(lines) + child.stderr.read()
        code = child.wait(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    assert code == 143, err
    assert "Traceback" not in err and "error: terminated (SIGTERM) at step 3 of 30" in err, err
    assert (tmp_path / "run.ckpt" / "state.json").is_file()
