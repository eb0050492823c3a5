"""zoo data pack and the wds: source: reproducible shards, their index, keys that survive
(dots, %, non-ASCII), --size, labels, the CLI's progress and summary, bad input."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from streamed import photo_folder

from zoo.api import pack_data
from zoo.core.errors import DataError
from zoo.core.spec import DataSpec
from zoo.data import decode_rows, open_source

pytest.importorskip("webdataset")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return photo_folder(tmp_path_factory.mktemp("photos"), 24)


@pytest.fixture(scope="module")
def packed(photos, tmp_path_factory):
    return pack_data(photos, tmp_path_factory.mktemp("packs") / "shards", shard_size=10,
                     progress=False)


def folder(path: Path, size: int = 16) -> DataSpec:
    return DataSpec(source="folder", path=str(path), image_size=size)


def test_pack_is_reproducible_indexed_and_keeps_dotted_keys(photos, packed, tmp_path):
    assert packed.count == 24 and packed.shards == [f"shard-{i:06d}.tar" for i in range(3)]
    assert packed.source == f"wds:{packed.out}/shard-{{000000..000002}}.tar"
    again = pack_data(photos, tmp_path / "again", shard_size=10, progress=False)
    for name in [*packed.shards, "index.tsv.gz", "index.json"]:
        assert (again.out / name).read_bytes() == (packed.out / name).read_bytes(), name
    source = open_source(DataSpec(source=packed.source), "train")
    files = open_source(folder(photos), "train")
    assert list(source.keys) == list(files.keys)
    assert {"img.v2.final.jpg", "chaton-été.jpg", "50%off.jpg"} <= {
        k.rpartition("/")[2] for k in source.keys}
    assert all(source.read(i) == files.read(i).read_bytes() for i in range(len(files)))
    doc = json.loads((packed.out / "index.json").read_text())
    assert doc["format"] == "genzoo-shards/1" and doc["count"] == 24
    assert [s["count"] for s in doc["shards"]] == [10, 10, 4]
    for shard in doc["shards"]:
        data = (packed.out / shard["name"]).read_bytes()
        assert shard["sha256"] == hashlib.sha256(data).hexdigest()
        assert shard["bytes"] == len(data)
    lines = gzip.decompress((packed.out / "index.tsv.gz").read_bytes()).decode().splitlines()
    assert lines[0] == "shard\tkey\tmember\toffset\tsize\tlabel" and len(lines) == 25
    # members are KEY.EXT with the key's dots escaped: webdataset's own reader agrees
    import webdataset

    samples = list(webdataset.WebDataset(
        [str(packed.out / s) for s in packed.shards], shardshuffle=False, empty_check=False))
    keys = sorted(s["__key__"].replace("%2E", ".").replace("%25", "%") + "." + ext
                  for s in samples for ext in s if ext in ("jpg", "png"))
    assert keys == sorted(files.keys)


def test_pack_spreads_classes_over_the_shards(packed):
    """Samples are written in the order of a hash of their keys, not by key: every shard of a
    class-structured folder holds several classes (so a streamed epoch's batches are not
    class-correlated), and the order is the same on every run (the shards compare equal
    above); the indexed source's keys stay sorted."""
    from zoo.data.pack import packing_order

    members = []
    for shard in packed.shards:
        with tarfile.open(packed.out / shard) as tar:
            members.append(tar.getnames())
    keys = [name.replace("%2E", ".").replace("%25", "%") for names in members for name in names]
    ordered = sorted(keys)
    assert keys == [ordered[i] for i in packing_order(ordered)] and keys != ordered
    for shard, names in zip(packed.shards, members, strict=True):
        tops = {name.split("/")[0] if "/" in name else "" for name in names}
        assert len(tops) >= 2, (shard, tops)
    source = open_source(DataSpec(source=packed.source), "train")
    assert list(source.keys) == sorted(source.keys)


def test_the_shard_header_scan_equals_the_index(packed, tmp_path, zoo_home):
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in packed.shards:
        shutil.copy(packed.out / name, copy / name)
    spec = DataSpec(source=f"wds:{copy}/shard-{{000000..000002}}.tar")
    scanned = open_source(spec, "train")
    indexed = open_source(DataSpec(source=packed.source), "train")
    assert list(scanned.keys) == list(indexed.keys)
    assert np.array_equal(scanned.offsets, indexed.offsets)
    assert list((zoo_home / "data").glob("wds-*.tsv.gz"))  # the scan is cached
    assert list(open_source(spec, "train").keys) == list(indexed.keys)
    # zoo data index writes the same index pack writes
    from zoo.api import index_data

    assert index_data(f"{copy}/shard-{{000000..000002}}.tar") == copy / "index.json"
    assert (copy / "index.tsv.gz").read_bytes() == (packed.out / "index.tsv.gz").read_bytes()


def test_pack_size_s_is_pixel_identical(photos, tmp_path):
    small = pack_data(photos, tmp_path / "small", size=16, shard_size=100, progress=False)
    shards = open_source(DataSpec(source=small.source, image_size=16), "train")
    files = open_source(folder(photos), "train")
    stem = {k.rpartition(".")[0]: i for i, k in enumerate(files.keys)}
    assert all(k.endswith(".png") for k in shards.keys)
    rows = np.arange(len(shards))
    mine = decode_rows(shards, rows, "RGB", 16).images
    theirs = decode_rows(files, np.asarray([stem[k[:-4]] for k in shards.keys]), "RGB", 16)
    assert np.array_equal(mine, theirs.images)


def test_in_memory_sources_are_packed_as_png_with_labels(tmp_path):
    from zoo.data import load_digits

    spec = DataSpec(source="digits", image_size=8)
    packed = pack_data("digits", tmp_path / "digits", split="train", shard_size=500,
                       progress=False)
    source = open_source(DataSpec(source=packed.source, label_column="cls"), "train")
    data = load_digits(spec, "train")
    assert len(source) == len(data.images) == packed.count and source.classes == 10
    assert np.array_equal(source.labels, data.labels.numpy())
    decoded = decode_rows(source, np.arange(len(source)), "L", 8)
    assert np.array_equal(decoded.images, data.images.numpy())
    without = open_source(DataSpec(source=packed.source), "train")
    assert without.labels is None
    limited = pack_data("digits", tmp_path / "limited", split="train", progress=False,
                        overrides=["data.limit=100"])
    assert limited.count == 100


def test_pack_cli_progress_and_summary(cli, photos, tmp_path):
    out = tmp_path / "cli"
    result = cli("data", "pack", photos, out, "--shard-size", "7")
    assert result.code == 0, result.err
    assert result.out == (f"wrote 24 images in 4 shards to {out} "
                          f"(data.source = \"wds:{out}/shard-{{000000..000003}}.tar\")\n")
    assert "packing" in result.err and "24/24" in result.err
    quiet = cli("data", "pack", photos, tmp_path / "quiet", "--quiet", "--shard-size", "100")
    assert quiet.code == 0 and quiet.err == ""
    assert quiet.out.endswith(f"(data.source = \"wds:{tmp_path / 'quiet'}/shard-000000.tar\")\n")
    # --force replaces shards written by pack, never another folder
    assert cli("data", "pack", photos, out, "--quiet", "--force").code == 0
    assert len(list(out.glob("*.tar"))) == 1


def test_bad_images_are_skipped_with_a_counted_warning(cli, photos, tmp_path):
    mixed = tmp_path / "mixed"
    shutil.copytree(photos, mixed)
    (mixed / "broken.png").write_bytes(b"not a png at all")
    result = cli("data", "pack", mixed, tmp_path / "out", "--quiet")
    assert result.code == 0, result.err
    assert "24 images (1 unreadable skipped)" in result.out
    assert "skipping cannot read image broken.png" in result.err
    strict = cli("data", "pack", mixed, tmp_path / "strict", "--quiet", "--set",
                 "data.strict=true")
    assert strict.code == 2 and "broken.png" in strict.err
    assert not (tmp_path / "strict").exists()


def test_bad_input_is_one_line_and_writes_nothing(cli, photos, tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("keep")
    cases = [
        (("data", "pack", photos, taken), "already exists; pass --force"),
        (("data", "pack", photos, taken, "--force"), "refusing to replace"),
        (("data", "pack", "no-such-source", tmp_path / "a"), "unknown data source"),
        (("data", "pack", tmp_path / "empty", tmp_path / "b"), "no images"),
        (("data", "pack", photos, tmp_path / "c", "--set", "train.seed=1"), "only data.KEY"),
        (("data", "pack", photos, tmp_path / "d", "--split", "val"), "--split 'val'"),
        (("data", "pack", "hf:parquet", tmp_path / "e"), "needs data.path"),
    ]
    (tmp_path / "empty").mkdir()
    for args, message in cases:
        result = cli(*args, "--quiet")
        assert result.code == 2, (args, result.err)
        assert result.err.startswith("error: ") and result.err.count("\n") == 1, result.err
        assert message in result.err, (args, result.err)
    assert (taken / "mine.txt").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "taken"]
    unreadable = tmp_path / "unreadable"
    unreadable.mkdir()
    (unreadable / "a.png").write_bytes(b"junk")
    result = cli("data", "pack", unreadable, tmp_path / "f", "--quiet")
    assert result.code == 2 and "none of the 1 images could be packed" in result.err
    assert not (tmp_path / "f").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_shards_that_are_not_indexable_are_one_line(packed, tmp_path):
    for name, message in [("a.tar.gz", "needs data.streaming = true"),
                          ("pipe:cat a.tar", "a shell command, which genzoo does not run"),
                          ("missing-{0..1}.tar", "no shard file")]:
        with pytest.raises(DataError, match=message):
            open_source(DataSpec(source=f"wds:{tmp_path / name}"
                                 if not name.startswith("pipe") else f"wds:{name}"), "train")
    (tmp_path / "junk.tar").write_bytes(b"\x01" * 2000)
    with pytest.raises(DataError, match="cannot read shard"):
        open_source(DataSpec(source=f"wds:{tmp_path / 'junk.tar'}"), "train")
    twice = tmp_path / "twice"
    twice.mkdir()
    shutil.copy(packed.out / packed.shards[0], twice / "a.tar")
    shutil.copy(packed.out / packed.shards[0], twice / "b.tar")
    with pytest.raises(DataError, match="names two images"):
        open_source(DataSpec(source=f"wds:{twice}/{{a,b}}.tar"), "train")


def test_a_shard_cut_short_is_a_bad_image_not_a_crash(packed, tmp_path):
    import pickle

    cut = tmp_path / "cut"
    shutil.copytree(packed.out, cut)
    source = open_source(DataSpec(source=f"wds:{cut}/shard-{{000000..000002}}.tar"), "train")
    clone = pickle.loads(pickle.dumps(source))  # a worker: opens the shards itself
    assert not hasattr(clone, "_h_fds") and clone.read(0) == source.read(0)
    last = cut / packed.shards[-1]
    with tarfile.open(last) as tar:
        first = tar.getmembers()[0]
    last.write_bytes(last.read_bytes()[: first.offset_data + 10])
    fresh = pickle.loads(pickle.dumps(source))
    cut_rows = np.flatnonzero(source.shard_of == 2)
    rows = np.asarray([*cut_rows, np.flatnonzero(source.shard_of == 0)[0]])
    decoded = decode_rows(fresh, rows, "RGB", 8)
    assert [key for key, _ in decoded.skipped] == [source.keys[int(i)] for i in cut_rows]
    assert "shorter than its index says" in decoded.skipped[0][1]
    assert len(decoded.images) == len(rows)  # replaced by the good row of the batch
    # opened again, the stale index is not trusted: the shard is scanned, its tail is gone
    with pytest.raises(DataError, match="cannot read shard"):
        open_source(DataSpec(source=source.name), "train")


def test_a_lying_index_is_one_line(packed, tmp_path):
    lying = tmp_path / "lying"
    shutil.copytree(packed.out, lying)
    index_bytes = (lying / "index.tsv.gz").read_bytes()
    lines = gzip.decompress((lying / "index.tsv.gz").read_bytes()).decode().splitlines()
    fields = lines[1].split("\t")
    fields[4] = str(10**12)  # a size far past the shard's end
    lines[1] = "\t".join(fields)
    (lying / "index.tsv.gz").write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    with pytest.raises(DataError, match=r"outside shard .* re-index the shards") as info:
        open_source(DataSpec(source=f"wds:{lying}/shard-{{000000..000002}}.tar"), "train")
    assert "\n" not in str(info.value)
    # numbers no shard holds (an int64 overflow), or not plain digits: a damaged index
    for column, value in ((3, "9" * 270), (4, str(2**63)), (5, "9" * 30), (5, "²"),
                          (3, "-1")):
        fields = gzip.decompress(index_bytes).decode().splitlines()
        row = fields[1].split("\t")
        row[column] = value
        fields[1] = "\t".join(row)
        (lying / "index.tsv.gz").write_bytes(gzip.compress(("\n".join(fields) + "\n").encode()))
        with pytest.raises(DataError, match=r"^damaged shard index .*is not a number") as info:
            open_source(DataSpec(source=f"wds:{lying}/shard-{{000000..000002}}.tar",
                                 label_column="cls"), "train")
        assert "\n" not in str(info.value) and len(str(info.value)) < 300


def test_a_pack_killed_before_is_tidied_up(cli, photos, tmp_path):
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = tmp_path / f".out.tmp-{dead.pid}-0123abcd"
    left.mkdir()
    (left / "shard-000000.tar").write_bytes(b"half")
    result = cli("data", "pack", photos, tmp_path / "out", "--quiet")
    assert result.code == 0, result.err
    assert "note: removed .out.tmp-" in result.err and not left.exists()


def test_hf_rows_without_an_extension_get_their_formats(photos, tmp_path):
    pytest.importorskip("datasets")
    from streamed import saved_hf

    saved = saved_hf(photos, tmp_path / "hf")
    packed = pack_data(f"hf:{saved}", tmp_path / "out", progress=False,
                       overrides=["data.label_column=label"])
    source = open_source(DataSpec(source=packed.source, label_column="cls"), "train")
    hf = open_source(DataSpec(source=f"hf:{saved}", label_column="label"), "train")
    files = sorted(p.suffix for p in photos.rglob("*.*"))
    assert sorted("." + k.rpartition(".")[2] for k in source.keys) == files
    assert [k.partition(".")[0] for k in source.keys] == list(hf.keys)
    assert np.array_equal(source.labels, hf.labels)
    assert all(source.read(i) == hf.read(i) for i in range(len(hf)))


def test_hf_to_pack_to_wds_keeps_the_keys_and_split_it_can(photos, tmp_path, capsys):
    pytest.importorskip("datasets")
    from streamed import saved_hf

    from zoo.data.split import view

    saved = saved_hf(photos, tmp_path / "hf")
    # keys naming files (data.key_column): the same keys, so the same hash split
    named = pack_data(f"hf:{saved}", tmp_path / "named", progress=False,
                      overrides=["data.key_column=path"])
    assert "warning" not in capsys.readouterr().err
    hf_spec = DataSpec(source=f"hf:{saved}", key_column="path", held_out=0.3)
    wds_spec = DataSpec(source=named.source, held_out=0.3)
    hf, wds = open_source(hf_spec, "train"), open_source(wds_spec, "train")
    assert list(wds.keys) == list(hf.keys)
    for split in ("train", "test"):
        assert ({hf.keys[int(i)] for i in view(hf, split, hf_spec)}
                == {wds.keys[int(i)] for i in view(wds, split, wds_spec)})
    # row-index keys cannot be kept: they get their format's extension, and a warning says so
    rows = pack_data(f"hf:{saved}", tmp_path / "rows", progress=False)
    err = capsys.readouterr().err
    assert err.count("keys without an image extension") == 1
    # the example is the first key packed (pack's hash order): some 12-digit row key
    assert re.search(r"\(e\.g\. '\d{12}'\)", err) and "hash split" in err
    source = open_source(DataSpec(source=rows.source), "train")
    assert [k.rpartition(".")[0] for k in source.keys] == [f"{i:012d}" for i in range(24)]
