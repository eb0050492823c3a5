"""data.streaming: shards (plain .tar, .tar.gz) and an hf data set read as one seeded stream
per epoch; the same batches for any process and worker count, each image of an epoch once,
mid-epoch resume bitwise, evaluation and pack over a stream, pipe: shards refused."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from test_data_distributed import free_port, global_batches, read
from test_data_distributed import make_folder as numbered_folder
from test_data_feed import FOLDER_MICRO, assert_resume_at_6_of_12_matches, make_folder

from zoo.api import from_pretrained, pack_data, resolve_spec
from zoo.core.errors import DataError
from zoo.core.spec import DataSpec
from zoo.data import StreamSource, load_images, open_source
from zoo.evaluation.real import held_out
from zoo.training.feed import open_feed
from zoo.training.loop import fit

pytest.importorskip("webdataset")

B = 8
#: A micro DCGAN over streamed shards (the folder build's settings, the source replaced).
STREAM_MICRO = [item for item in FOLDER_MICRO if not item.startswith("data.source")]


def gzip_shards(packed, folder: Path) -> str:
    """Gzip copies of packed shards (no index beside them: size unknown); their pattern."""
    folder.mkdir()
    for i, name in enumerate(packed.shards):
        (folder / f"s{i}.tar.gz").write_bytes(
            gzip.compress((packed.out / name).read_bytes(), mtime=0))
    return f"wds:{folder}/s{{0..{len(packed.shards) - 1}}}.tar.gz"


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> dict[str, str]:
    """Two sets of shards: 40 random photos (``photos``: .tar with index, 10 a shard, and
    ``photos_gz``) and 64 grey images numbered by their pixel value (``numbered``, 8 a shard:
    a decoded batch names its images)."""
    root = tmp_path_factory.mktemp("streaming")
    photos = pack_data(make_folder(root / "photos"), root / "shards", shard_size=10,
                       progress=False)
    numbered = pack_data(numbered_folder(root / "numbered", 64), root / "nshards",
                         shard_size=8, progress=False)
    return {"photos": photos.source, "photos_gz": gzip_shards(photos, root / "gz"),
            "numbered": numbered.source, "numbered_gz": gzip_shards(numbered, root / "ngz")}


def numbered_spec(source: str, *more: str):
    """A dcgan spec streaming the numbered images: every one a training image (n = 64; counted)."""
    return resolve_spec("dcgan", None, [
        f"data.source={source}", "data.streaming=true", "data.held_out=1e-9",
        "data.image_size=8", "data.channels=1", f"train.batch_size={B}",
        "data.shuffle_buffer=16", *more])[1]


def test_streaming_loaders_answer_a_stream_source(shards):
    data = open_source(DataSpec(source=shards["photos"], streaming=True), "train")
    assert isinstance(data, StreamSource) and data.total == 40


@pytest.mark.parametrize(("kind", "steps"), [("numbered", "train.epochs=3"),
                                             ("numbered", "train.max_steps=20"),
                                             ("numbered_gz", "train.max_steps=20")])
def test_the_sequence_is_the_same_for_any_worker_count_and_resumes(shards, kind, steps):
    """Plain shards with train.epochs (n known and counted: 8 steps an epoch) and with
    max_steps (n not counted), gzip shards (n unknown: max_steps): W=0 and W=2 give the same
    batches; each epoch holds every image once; a feed started at step 5 continues the
    sequence."""
    spec = numbered_spec(shards[kind], steps)
    assert open_feed(spec, workers=0).n == (64 if "epochs" in steps else None)
    one = read(open_feed(spec, workers=0), 0, 20)
    assert read(open_feed(spec, workers=2), 0, 20) == one
    for epoch in range(2):
        assert sorted(i for batch in one[8 * epoch:8 * epoch + 8] for i in batch) == list(
            range(64))
    assert one[:8] != one[8:16]  # a new order every epoch
    assert read(open_feed(spec, workers=2), 5, 20) == one[5:]
    assert read(open_feed(spec, workers=0), 11, 20) == one[11:]


def test_wrap_runs_the_epochs_into_each_other(shards):
    spec = numbered_spec(shards["numbered"], "data.last_batch=wrap", "train.batch_size=24",
                         "train.epochs=2")
    feed = open_feed(spec, workers=0)
    assert feed.n == 64
    got = read(feed, 0, 6)  # ceil(2·64/24)
    flat = [i for batch in got for i in batch]
    assert sorted(flat[:64]) == sorted(flat[64:128]) == list(range(64))
    assert read(open_feed(spec, workers=2), 2, 6) == got[2:]


def test_fit_images_are_the_start_of_epoch_0(shards):
    spec = numbered_spec(shards["numbered"], "data.fit_images=5")
    feed = open_feed(spec, workers=0)
    first = read(open_feed(spec, workers=0), 0, 1)[0]
    assert (feed.fit_images()[:, 0, 0, 0] * 255).round().long().tolist() == first[:5]
    assert feed.checkpoint()["kind"] == "stream"


def test_a_streamed_build_resumed_mid_epoch_equals_uninterrupted(shards, tmp_path):
    """Two workers read the shards (36 training images after the hash split, counted: 4
    steps an epoch, 3 epochs); Ctrl-C at step 6 of 12, --resume: weights and state equal the
    straight build's."""
    family, spec = resolve_spec("dcgan", None, [
        *STREAM_MICRO, f"data.source={shards['photos']}", "data.streaming=true",
        "train.epochs=3"])
    straight = fit(family, spec, tmp_path / "straight", progress=False)
    data = json.loads((straight / "metrics.json").read_text())
    assert data["data"] == {"source": shards["photos"], "kind": "stream", "images": 36,
                            "workers": 2, "skipped": 0, "skipped_keys": []}
    assert data["train"]["epochs"] == 3.0
    # zoo eval's held-out images: the stream's, in stream order (the shards are packed in
    # key-hash order, the indexed source reads them in key order: the same images)
    model = from_pretrained(straight)
    want, _ = load_images(DataSpec(source=shards["photos"], image_size=16), "test")
    got = held_out(model)
    assert len(got) == len(want) > 0
    assert sorted(got.flatten(1).tolist()) == sorted(want.flatten(1).tolist())
    assert_resume_at_6_of_12_matches(family, spec, tmp_path / "run", straight)


def spoiled_copy(shards: dict[str, str], folder: Path) -> tuple[str, str]:
    """The numbered shards, the first image of shard 0 replaced by junk; (pattern, its key)."""
    import tarfile

    from braceexpand import braceexpand

    paths = [Path(p) for p in braceexpand(shards["numbered"].partition(":")[2])]
    folder.mkdir()
    for path in paths[1:]:
        (folder / path.name).write_bytes(path.read_bytes())
    with tarfile.open(paths[0]) as src, tarfile.open(folder / paths[0].name, "w") as out:
        bad = None
        for member in src.getmembers():
            data = src.extractfile(member).read()
            if bad is None and member.name.endswith(".png"):
                bad, data = member.name, b"\x89PNG junk"
            member.size = len(data)
            out.addfile(member, io.BytesIO(data))
    return f"wds:{folder}/{{{','.join(p.name for p in paths)}}}", bad


def test_a_bad_image_is_replaced_and_counted_and_strict_stops(shards, tmp_path):
    source, bad = spoiled_copy(shards, tmp_path / "spoiled")
    spec = numbered_spec(source, "train.max_steps=8")
    feed = open_feed(spec, workers=2)
    got = read(feed, 0, 8)
    assert len(got) == 8 and len({i for batch in got for i in batch}) == 63  # one replaced
    assert feed.summary()["skipped"] == 1 and feed.summary()["skipped_keys"] == [bad]
    with pytest.raises(DataError, match=r"data\.strict = true") as info:
        read(open_feed(numbered_spec(source, "train.max_steps=8", "data.strict=true"),
                       workers=2), 0, 8)
    assert "\n" not in str(info.value)


def test_an_unreadable_shard_is_one_line(shards, tmp_path):
    folder = tmp_path / "gz"
    folder.mkdir()
    (folder / "s0.tar.gz").write_bytes(gzip.compress(b"not a tar file" * 100))
    spec = numbered_spec(f"wds:{folder}/s0.tar.gz", "train.max_steps=2")
    with pytest.raises(DataError, match="cannot read shard") as info:
        read(open_feed(spec, workers=2), 0, 2)
    assert "\n" not in str(info.value)


def test_max_steps_does_not_count_the_stream(shards, monkeypatch):
    """With train.max_steps the training images are not counted: opening the feed reads no
    shard (a count read the whole stream at every start and resume)."""
    from zoo.data.stream import ShardStream

    opened = []
    real = ShardStream.iter_shard
    monkeypatch.setattr(ShardStream, "iter_shard",
                        lambda self, shard: (opened.append(shard), real(self, shard))[1])
    feed = open_feed(numbered_spec(shards["numbered"], "train.max_steps=4"), workers=0)
    assert feed.n is None and feed.epochs(4) is None and opened == []
    assert len(read(feed, 0, 4)) == 4


def test_a_stream_of_unknown_size_needs_max_steps(shards):
    spec = numbered_spec(shards["numbered_gz"])
    with pytest.raises(DataError, match=r"set train\.max_steps") as info:
        open_feed(spec, workers=0)
    assert "\n" not in str(info.value)


def test_pipe_shards_are_refused_not_run(tmp_path):
    marker = tmp_path / "ran"
    # as webdataset.gopen reads a scheme: any case, leading blanks, with "://" further on
    for shard in (f"pipe:touch {marker}", f"PIPE:touch {marker} ://x", f" Pipe:touch {marker}",
                  f"{tmp_path}/a.tar,pipe:touch {marker}"):
        spec = DataSpec(source=f"wds:{{{shard}}}" if "," in shard else f"wds:{shard}",
                        streaming=True)
        with pytest.raises(DataError, match="shell command") as info:
            open_source(spec, "train")
        assert "download the shards" in str(info.value) and "\n" not in str(info.value)
    assert not marker.exists()


def test_evaluation_and_pack_read_a_stream(shards, tmp_path):
    """The first held-out images of a stream are the indexed source's that pack wrote first (in
    the order of a hash of the keys), given in key order; pack from gzip shards gives the same
    images."""
    from zoo.data.pack import packing_order
    from zoo.data.split import view

    streamed = DataSpec(source=shards["photos_gz"], streaming=True, image_size=16)
    indexed = DataSpec(source=shards["photos"], image_size=16)
    got, _ = load_images(streamed, "test", at_most=3)
    source = open_source(indexed, "test")
    keys = [source.keys[int(row)] for row in view(source, "test", indexed)]
    want, _ = load_images(indexed, "test")
    first = np.sort(packing_order(keys)[:3])  # the rows of view order == key order
    assert torch.equal(got, want[torch.from_numpy(first)])
    repacked = pack_data(shards["photos_gz"], tmp_path / "re", overrides=["data.streaming=true"],
                         progress=False)
    assert repacked.count == 40
    assert torch.equal(load_images(DataSpec(source=repacked.source, image_size=16), "train")[0],
                       load_images(indexed, "train")[0])


def test_an_hf_data_set_streams_into_a_feed(tmp_path):
    """A parquet file (size unknown: max_steps) and a save_to_disk folder (size known: the
    training images counted), the latter the same for W=0 and W=2."""
    pytest.importorskip("datasets")
    from datasets import load_from_disk
    from streamed import photo_folder, saved_hf

    saved = saved_hf(photo_folder(tmp_path / "photos", 30), tmp_path / "saved")
    load_from_disk(str(saved)).to_parquet(str(tmp_path / "pq" / "d.parquet"))
    common = ["data.streaming=true", "data.key_column=path", "data.label_column=label",
              "data.image_size=8", f"train.batch_size={B}"]
    _, spec = resolve_spec("dcgan", None, [
        "data.source=hf:parquet", f"data.path={tmp_path / 'pq' / 'd.parquet'}", *common,
        "train.max_steps=4"])
    feed = open_feed(spec, workers=0)
    batches = list(feed.batches(0, 4))
    feed.close()
    assert feed.n is None and len(batches) == 4
    assert all(x.shape == (B, 3, 8, 8) and len(labels) == B for x, labels in batches)
    _, spec = resolve_spec("dcgan", None, [f"data.source=hf:{saved}", *common])
    feed = open_feed(spec, workers=0)
    assert 0 < feed.n < 30  # the hash split's training images, counted
    one = [x for x, _ in feed.batches(0, 5)]
    feed.close()
    two = open_feed(spec, workers=2)
    assert all(torch.equal(a, b) for a, (b, _) in zip(one, two.batches(0, 5), strict=True))
    two.close()


# --------------------------------------------------------------------------- 2 processes


def _rank(rank: int, world: int, port: int, source: str, queue) -> None:
    import multiprocessing

    import torch.distributed as dist

    multiprocessing.set_start_method("fork", force=True)  # as test_data_distributed's
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    try:
        spec = numbered_spec(source, "train.max_steps=12")
        mine = {"batches": read(open_feed(spec, rank=rank, world=world, workers=2), 0, 12),
                "resumed": read(open_feed(spec, rank=rank, world=world, workers=2), 5, 12)}
        gathered: list = [None] * world
        dist.all_gather_object(gathered, mine)
        if rank == 0:
            queue.put(gathered)
    finally:
        dist.destroy_process_group()


def test_two_processes_two_workers_see_the_one_process_sequence(shards):
    spec = numbered_spec(shards["numbered"], "train.max_steps=12")
    one = read(open_feed(spec, workers=1), 0, 12)
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    mp.spawn(_rank, args=(2, free_port(), shards["numbered"], queue), nprocs=2, join=True)
    two = queue.get()
    assert global_batches(two, "batches") == one
    assert sorted(i for batch in one[:8] for i in batch) == list(range(64))  # epoch 0, once
    assert global_batches(two, "resumed") == one[5:]


def test_a_stream_resume_may_switch_between_max_steps_and_epochs(tmp_path):
    """A stream's checkpoint names its shards; its image count is unknown under
    train.max_steps and counted under train.epochs, so switching between them resumes,
    while other shards or another count are refused in one line."""
    from zoo.core.errors import ArtifactError
    from zoo.training.checkpoint import _same_images

    spec = DataSpec(source="wds:/s/{0..1}.tar", streaming=True)
    full = type("S", (), {"data": spec})()
    counted = {"kind": "stream", "images": 36, "keys": "shards-a"}
    unknown = {"kind": "stream", "images": None, "keys": "shards-a"}
    _same_images(tmp_path, counted, unknown, full)
    _same_images(tmp_path, unknown, counted, full)
    for changed in ({**counted, "keys": "shards-b"}, {**counted, "images": 40}):
        with pytest.raises(ArtifactError, match="training images changed") as info:
            _same_images(tmp_path, counted, changed, full)
        assert "\n" not in str(info.value)
