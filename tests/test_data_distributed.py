"""Exactly once on many processes: 2 processes (gloo on CPU) × 2 DataLoader workers each read a
folder through the training feed; together they see every image of an epoch once, in the
sequence one process sees, and a feed restarted at a step continues that sequence."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from PIL import Image

from zoo.api import resolve_spec
from zoo.data import load_folder
from zoo.training.feed import IndexedFeed

B, WORKERS, RESUME_AT = 8, 2, 5
BAD = "img999.png"
#: (name, last_batch, images, steps): drop with n % B == 0 (one epoch), wrap with n % B != 0
#: (two epochs run into each other: ceil(2·60/8) steps).
CASES = [("drop", "drop", 64, 8), ("wrap", "wrap", 60, 15)]


def make_folder(root: Path, count: int) -> Path:
    """Grey 8-pixel PNGs whose every pixel is the image's number: a decoded batch names the
    images it holds."""
    root.mkdir(parents=True)
    for i in range(count):
        Image.new("L", (8, 8), i).save(root / f"img{i:03d}.png")
    (root / BAD).write_bytes(b"not an image")  # the last row: in no case but the summary's
    return root


def feed_for(folder: Path, last_batch: str, count: int, rank: int, world: int,
             workers: int) -> IndexedFeed:
    """The feed of rank ``rank`` over the folder's first ``count`` images (every one a
    training image: the rows are given, not split)."""
    _, spec = resolve_spec("dcgan", None, [
        "data.source=folder", f"data.path={folder}", "data.image_size=8", "data.channels=1",
        f"train.batch_size={B}", f"data.last_batch={last_batch}"])
    source = load_folder(spec.data, "train")
    return IndexedFeed(spec, source, np.arange(count), rank=rank, world=world, workers=workers)


def read(feed: IndexedFeed, start: int, total: int) -> list[list[int]]:
    """The image numbers of each batch the feed gives from ``start`` to ``total``."""
    try:
        return [(x[:, 0, 0, 0] * 255).round().long().tolist()
                for x, _ in feed.batches(start, total)]
    finally:
        feed.close()


def sequences(folder: Path, rank: int, world: int, workers: int) -> dict[str, list]:
    """This rank's batches for each case: straight, and restarted at ``RESUME_AT``."""
    out = {}
    for name, last_batch, count, steps in CASES:
        out[name] = read(feed_for(folder, last_batch, count, rank, world, workers), 0, steps)
        out[name + "-resumed"] = read(feed_for(folder, last_batch, count, rank, world, workers),
                                      RESUME_AT, steps)
    return out


def _rank(rank: int, world: int, port: int, folder: str, queue) -> None:
    import multiprocessing

    import torch.distributed as dist

    # a process spawned here would spawn its DataLoader workers too (each importing torch
    # again); torchrun's processes, as zoo build --processes starts them, fork theirs
    multiprocessing.set_start_method("fork", force=True)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    try:
        mine = sequences(Path(folder), rank, world, WORKERS)
        # one epoch over all 65 rows, the bad one too: one process meets it, both report it
        feed = feed_for(Path(folder), "wrap", 65, rank, world, WORKERS)
        read(feed, 0, 9)
        mine["met"] = sorted(feed.skipped)
        mine["summary"] = feed.summary()
        gathered: list = [None] * world
        dist.all_gather_object(gathered, mine)
        if rank == 0:
            queue.put(gathered)
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def global_batches(per_rank: list[dict[str, list]], key: str) -> list[list[int]]:
    """Each step's global batch: the ranks' rows in rank order."""
    return [[i for part in rows for i in part]
            for rows in zip(*(ranks[key] for ranks in per_rank), strict=True)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, dict[str, list]]:
    """The batches of one process (2 workers) and of 2 processes × 2 workers."""
    folder = make_folder(tmp_path_factory.mktemp("distributed") / "images", 64)
    one = sequences(folder, 0, 1, WORKERS)
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    mp.spawn(_rank, args=(2, free_port(), str(folder), queue), nprocs=2, join=True)
    two = queue.get()
    return {"one": {key: global_batches([one], key) for key in one},
            "two": {key: global_batches(two, key) for key in one},
            "summaries": [ranks["summary"] for ranks in two],
            "met": [ranks["met"] for ranks in two]}


@pytest.mark.parametrize("processes", ["one", "two"])
def test_two_processes_two_workers_see_every_key_once(runs, processes):
    batches = runs[processes]
    drop = [i for batch in batches["drop"] for i in batch]
    assert sorted(drop) == list(range(64))  # one epoch, n % B == 0: each image once
    wrap = [i for batch in batches["wrap"] for i in batch]
    assert len(wrap) == 15 * B
    assert sorted(wrap[:60]) == sorted(wrap[60:120]) == list(range(60))  # each epoch, once
    assert batches == runs["one"]  # the same sequence as one process


@pytest.mark.parametrize("processes", ["one", "two"])
@pytest.mark.parametrize("case", ["drop", "wrap"])
def test_mid_epoch_resume_continues_the_sequence(runs, processes, case):
    batches = runs[processes]
    assert batches[case + "-resumed"] == batches[case][RESUME_AT:]


def test_every_process_reports_the_bad_images_any_one_met(runs):
    assert sorted(runs["met"]) == [[], [BAD]]  # one process met it
    for summary in runs["summaries"]:
        assert summary["skipped"] == 1 and summary["skipped_keys"] == [BAD]
        assert summary["kind"] == "indexed" and summary["images"] == 65
