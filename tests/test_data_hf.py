"""The hf: data source: Hugging Face data sets made locally with ``datasets`` itself (nothing is
downloaded): keys, labels, splits, columns, errors, offline mode, worker processes."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO
from streamed import photo_folder, saved_hf

from zoo.core.errors import DataError
from zoo.core.spec import DataSpec
from zoo.data import decode_rows, open_source
from zoo.data.split import view

pytest.importorskip("datasets")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return photo_folder(tmp_path_factory.mktemp("photos"), 24)


@pytest.fixture(scope="module")
def saved(photos, tmp_path_factory):
    return saved_hf(photos, tmp_path_factory.mktemp("hf") / "saved")


def hf(source: str, **keys) -> DataSpec:
    return DataSpec(source=source, image_size=16, **keys)


def test_a_saved_data_set_with_a_key_column_is_the_folder(photos, saved):
    folder = open_source(DataSpec(source="folder", path=str(photos), image_size=16), "train")
    spec = hf(f"hf:{saved}", key_column="path", label_column="label")
    source = open_source(spec, "train")
    assert list(source.keys) == list(folder.keys)
    assert source.classes == 3
    names = ["cats", "dogs", "top"]
    assert [names[int(y)] for y in source.labels] == [
        k.split("/")[0] if "/" in k else "top" for k in source.keys]
    for i in range(len(source)):  # save_to_disk embeds the files' own bytes
        assert source.read(i) == folder.read(i).read_bytes()
    for split in ("train", "test"):
        rows = view(source, split, spec)
        assert np.array_equal(rows, view(folder, split, spec))
        assert np.array_equal(decode_rows(source, rows, "RGB", 16).images,
                              decode_rows(folder, rows, "RGB", 16).images)


def test_row_keys_are_zero_padded_in_row_order(saved):
    source = open_source(hf(f"hf:{saved}"), "train")
    assert list(source.keys) == [f"{i:012d}" for i in range(24)]
    assert source.labels is None and not source.presplit


def test_parquet_and_imagefolder_with_data_path(photos, saved, tmp_path):
    from datasets import load_from_disk

    load_from_disk(str(saved)).to_parquet(str(tmp_path / "pq" / "part-0.parquet"))
    parquet = open_source(hf("hf:parquet", path=str(tmp_path / "pq" / "*.parquet"),
                             key_column="path"), "train")
    disk = open_source(hf(f"hf:{saved}", key_column="path"), "train")
    assert list(parquet.keys) == list(disk.keys)
    assert all(parquet.read(i) == disk.read(i) for i in range(len(disk)))
    classes = tmp_path / "classes"
    for i, file in enumerate(sorted(photos.rglob("*.png"))[:6]):
        (classes / "ab"[i % 2]).mkdir(parents=True, exist_ok=True)
        (classes / "ab"[i % 2] / f"{i}.png").write_bytes(file.read_bytes())
    folder = open_source(hf("hf:imagefolder", path=str(classes), label_column="label"), "train")
    assert len(folder) == 6 and folder.classes == 2  # imagefolder's labels: the subfolders
    assert sorted(folder.labels.tolist()) == [0, 0, 0, 1, 1, 1]
    assert all(str(folder.read(i)).startswith(str(classes)) for i in range(6))  # the files


def test_own_splits_are_used_as_they_are(photos, tmp_path):
    from datasets import DatasetDict, load_from_disk

    one = load_from_disk(str(saved_hf(photos, tmp_path / "one")))
    DatasetDict({"train": one.select(range(16)), "validation": one.select(range(16, 24))}
                ).save_to_disk(str(tmp_path / "dict"))
    spec = hf(f"hf:{tmp_path / 'dict'}", splits={"train": "train", "test": "validation"},
              key_column="path", limit=10)
    train, test = open_source(spec, "train"), open_source(spec, "test")
    assert train.presplit and (len(train), len(test)) == (16, 8)
    assert len(view(test, "test", spec)) == 8 and len(view(train, "train", spec)) == 10
    assert set(train.keys).isdisjoint(test.keys)
    # without data.splits: its train split, divided by the hash split
    plain = open_source(hf(f"hf:{tmp_path / 'dict'}"), "test")
    assert len(plain) == 16 and not plain.presplit
    with pytest.raises(DataError, match=r"no split 'test'.*train, validation"):
        open_source(hf(f"hf:{tmp_path / 'dict'}", splits={"train": "train", "test": "test"}),
                    "test")
    with pytest.raises(DataError, match=r"data.splits names no 'test' split"):
        open_source(hf(f"hf:{tmp_path / 'dict'}", splits={"train": "train"}), "test")


@pytest.mark.parametrize(("keys", "message"), [
    ({"image_column": "picture"}, r"has no column 'picture' \(data.image_column\); its columns: "
     "image, path, label"),
    ({"image_column": "path"}, "data.image_column 'path' of .* is not an image column"),
    ({"label_column": "path"}, "data.label_column 'path' .* must hold integer labels"),
    ({"key_column": "nope"}, r"has no column 'nope' \(data.key_column\)"),
    ({"key_column": "label"}, "data.key_column 'label' .* must hold strings"),
])
def test_bad_columns_are_one_line(saved, keys, message):
    with pytest.raises(DataError, match=message) as info:
        open_source(hf(f"hf:{saved}", **keys), "train")
    assert "\n" not in str(info.value)


def test_a_key_column_with_a_repeated_key_is_one_line(photos, tmp_path):
    from datasets import load_from_disk

    ds = load_from_disk(str(saved_hf(photos, tmp_path / "s")))
    ds = ds.remove_columns("path").add_column("path", ["same"] * 2 + [f"k{i}" for i in range(22)])
    ds.save_to_disk(str(tmp_path / "dup"))
    with pytest.raises(DataError, match="the key 'same' names two images"):
        open_source(hf(f"hf:{tmp_path / 'dup'}", key_column="path"), "train")


def test_packaged_builders_need_data_path_streamed_or_not():
    for streaming in (False, True):
        with pytest.raises(DataError, match=r"'hf:parquet' needs data.path"):
            open_source(hf("hf:parquet", streaming=streaming), "train")


def test_workers_reopen_the_arrow_files_lazily(saved):
    source = open_source(hf(f"hf:{saved}", key_column="path"), "train")
    first = source.read(3)
    state = pickle.dumps(source)
    assert len(state) < 4000  # the rows stay in the Arrow files, not in the pickle
    clone = pickle.loads(state)
    assert not hasattr(clone, "_h_rows")
    assert clone.read(3) == first and list(clone.keys) == list(source.keys)


PROBE = """
import sys
from zoo.core.spec import DataSpec
from zoo.data import open_source
try:
    open_source(DataSpec(source=sys.argv[1]), "train")
except Exception as exc:
    print(type(exc).__name__, exc)
"""


def test_offline_a_missing_data_set_is_one_line_naming_it(saved):
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", PROBE, "hf:someone/no-such-set"],
                          capture_output=True, text=True, cwd=REPO, timeout=60, env=env)
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("DataError cannot load data source "
                                                   "'hf:someone/no-such-set'"), proc
    assert "offline" in lines[0].lower()
    # a local data set still opens offline
    proc = subprocess.run([sys.executable, "-c", PROBE, f"hf:{saved}"], capture_output=True,
                          text=True, cwd=REPO, timeout=60, env=env)
    assert proc.stdout == "" and proc.returncode == 0, proc.stderr


def test_key_column_values_are_nfc_like_a_folders_paths(photos, tmp_path):
    import unicodedata

    from datasets import load_from_disk

    ds = load_from_disk(str(saved_hf(photos, tmp_path / "s")))
    decomposed = [unicodedata.normalize("NFD", k) for k in ds["path"]]
    assert decomposed != list(ds["path"])  # one name has an accent
    ds.remove_columns("path").add_column("path", decomposed).save_to_disk(str(tmp_path / "nfd"))
    source = open_source(hf(f"hf:{tmp_path / 'nfd'}", key_column="path"), "train")
    folder = open_source(DataSpec(source="folder", path=str(photos)), "train")
    assert list(source.keys) == list(folder.keys)


def _path_only_parquet(photos, out, outside):
    """A parquet data set of path-only image cells: the photos under ``photos`` and, in rows
    3 and 7, ``outside`` (a file that would decode fine)."""
    from datasets import Dataset, Features, Value
    from datasets import Image as HFImage

    files = sorted(str(p) for p in photos.rglob("*.png"))[:10]
    files[3] = files[7] = str(outside)
    cells = [{"bytes": None, "path": f} for f in files]
    Dataset.from_dict({"image": cells, "name": [f"k{i}" for i in range(10)]},
                      features=Features({"image": HFImage(decode=False), "name": Value("string")})
                      ).to_parquet(str(out / "part-0.parquet"))
    return out


def test_a_path_outside_the_data_set_is_never_read(photos, tmp_path):
    from zoo.data.stream import decode_samples, read_all

    outside = tmp_path / "secret" / "private.png"  # decodes fine: only the place is wrong
    outside.parent.mkdir()
    outside.write_bytes(sorted(photos.rglob("*.png"))[0].read_bytes())
    # the images inside data.path: photos copied beside the parquet file
    inside = tmp_path / "pq"
    for f in photos.rglob("*.png"):
        (inside / f.relative_to(photos)).parent.mkdir(parents=True, exist_ok=True)
        (inside / f.relative_to(photos)).write_bytes(f.read_bytes())
    _path_only_parquet(inside, inside, outside)
    spec = hf("hf:parquet", path=str(inside / "*.parquet"), key_column="name")
    source = open_source(spec, "train")
    with pytest.raises(DataError, match=r"row 'k3'.*outside the data set's files; not read"):
        source.read(3)
    assert isinstance(source.read(2), bytes | str)
    decoded = decode_rows(source, np.arange(10), "RGB", 16)
    assert sorted(key for key, _ in decoded.skipped) == ["k3", "k7"]
    with pytest.raises(DataError, match="outside the data set's files"):
        decode_rows(source, np.arange(10), "RGB", 16, strict=True)
    stream = open_source(hf("hf:parquet", path=str(inside / "*.parquet"), key_column="name",
                            streaming=True), "train")
    bad: list[str] = []
    images, _ = decode_samples(stream.name, list(read_all(stream)), "RGB", 16,
                               lambda i, key, reason: bad.append(key))
    assert sorted(bad) == ["k3", "k7"] and len(images) == 8
    with pytest.raises(DataError, match="outside the data set's files"):
        decode_samples(stream.name, list(read_all(stream)), "RGB", 16,
                       lambda *a: None, strict=True)


def test_imagefolder_of_a_zip_of_pngs_decodes_indexed_and_streamed(photos, tmp_path):
    import zipfile

    from zoo.data.stream import decode_samples, read_all

    files = sorted(photos.rglob("*.png"))[:7]
    with zipfile.ZipFile(tmp_path / "imgs.zip", "w") as z:
        for i, f in enumerate(files):
            z.writestr(f"im{i}.png", f.read_bytes())
    spec = hf("hf:imagefolder", path=str(tmp_path / "imgs.zip"))
    source = open_source(spec, "train")
    decoded = decode_rows(source, np.arange(len(source)), "RGB", 16, strict=True)
    assert len(decoded.images) == 7 and not decoded.skipped
    stream = open_source(hf("hf:imagefolder", path=str(tmp_path / "imgs.zip"), streaming=True),
                         "train")
    images, _ = decode_samples(stream.name, list(read_all(stream)), "RGB", 16,
                               lambda *a: None, strict=True)
    assert len(images) == 7


def test_a_growing_data_set_keeps_its_old_keys_and_split(tmp_path):
    import io

    from datasets import Dataset, Features
    from datasets import Image as HFImage
    from PIL import Image

    png = io.BytesIO()
    Image.new("L", (4, 4)).save(png, format="PNG")
    cells = [{"bytes": png.getvalue(), "path": None}] * 1001  # row 1000: a fourth digit
    grown = Dataset.from_dict({"image": cells}, features=Features({"image": HFImage()}))
    grown.save_to_disk(str(tmp_path / "1001"))
    grown.select(range(999)).flatten_indices().save_to_disk(str(tmp_path / "999"))
    spec = {n: hf(f"hf:{tmp_path / str(n)}", held_out=0.3) for n in (999, 1001)}
    small, big = (open_source(spec[n], "train") for n in (999, 1001))
    assert list(big.keys)[:999] == list(small.keys)
    for split in ("train", "test"):
        old = {small.keys[int(i)] for i in view(small, split, spec[999])}
        new = {big.keys[int(i)] for i in view(big, split, spec[1001])}
        assert old == new - {big.keys[999], big.keys[1000]} and len(old) > 100


@pytest.mark.parametrize("path", [
    "/etc/hostname",
    "{tmp}/../elsewhere.png",
    "zip://a.png::/elsewhere/x.zip",
    "zip://a.png::file:///elsewhere/x.zip",
    "file:///etc/hostname::{tmp}/x.zip",
    "https://example.com/x.png",
    "hf://datasets/someone/other/x.png",
    "hf://datasets/me/set/../../someone/other/x.png",
])
def test_paths_outside_the_data_set_are_refused_unread(tmp_path, monkeypatch, path):
    from zoo.data.hf import Cells

    monkeypatch.chdir(tmp_path)  # a relative glob: its folder is the working one
    (tmp_path / "a.png").write_bytes(b"x")
    cells = Cells(hf("hf:parquet", path="*.parquet"))
    assert cells.raw({"bytes": None, "path": str(tmp_path / "a.png")}, "row") == str(
        tmp_path / "a.png")
    with pytest.raises(DataError, match="outside the data set's files; not read"):
        cells.raw({"bytes": None, "path": path.format(tmp=tmp_path)}, "row")
    hub = Cells(hf("hf:me/set"))
    with pytest.raises(DataError, match="outside the data set's files; not read"):
        hub.raw({"bytes": None, "path": path.format(tmp=tmp_path)}, "row")
