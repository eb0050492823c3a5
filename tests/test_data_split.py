"""Item 5 of issue 20: the held-out split of an indexed source is a stable hash of each key.

Adding images moves no old one between the splits, ``data.limit`` is a stable subset,
training and ``zoo eval`` agree on the held-out images, and a folder model trained before the
hash split is still scored on the seeded split it was trained against.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import MICRO
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import zoo
from zoo.core.spec import DataSpec, document_hash
from zoo.data import KeyTable, load_folder, split_indices
from zoo.data.files import FolderSource
from zoo.data.source import ImageSource
from zoo.data.split import key_hash, view
from zoo.evaluation.evaluate import reconstruction_metrics
from zoo.evaluation.real import held_out


class Keys(ImageSource):
    """A source of keys only (the split never reads an image)."""

    def __init__(self, keys: list[str]) -> None:
        self.name = "keys"
        self.keys, _ = KeyTable.sorted(keys)


def keys_of(source: ImageSource, rows: np.ndarray) -> set[str]:
    return {source.keys[int(i)] for i in rows}


def names(n: int, start: int = 0) -> list[str]:
    return [f"class{i % 3}/img_{i:05}.jpg" for i in range(start, start + n)]


def splits(keys: list[str], **data) -> tuple[set[str], set[str]]:
    source, spec = Keys(keys), DataSpec(source="folder", **data)
    return (keys_of(source, view(source, "train", spec)),
            keys_of(source, view(source, "test", spec)))


def test_train_and_test_partition_every_key_at_about_held_out():
    keys = names(6000)
    for fraction in (0.1, 0.25):
        train, test = splits(keys, held_out=fraction)
        assert not train & test and train | test == set(keys)
        expected = fraction * len(keys)
        assert abs(len(test) - expected) < 4 * np.sqrt(expected * (1 - fraction))
        assert test == {k for k in keys if key_hash(k) < fraction * 2**64}


def test_adding_files_moves_no_old_key():
    old = names(500)
    train, test = splits(old)
    grown_train, grown_test = splits(old + names(700, start=500))
    assert train <= grown_train and test <= grown_test
    assert not (grown_train | grown_test) - set(names(1200))


def test_limit_is_a_stable_subset():
    old, new = names(500), names(300, start=500)
    limited = splits(old, limit=100)[0]
    assert len(limited) == 100 and limited <= splits(old)[0]
    assert splits(list(reversed(old)), limit=100)[0] == limited  # not the listing order
    grown = splits(old + new, limit=100)[0]
    # newcomers enter only by hashing lower; every old key that stays was in the old subset
    assert grown - limited <= set(new) and (grown & set(old)) <= limited
    assert len(grown & limited) >= 100 - len(grown - limited)
    assert splits(old, limit=100)[1] == splits(old)[1]  # the test view ignores data.limit


def _levels_folder(root: Path, n: int) -> dict[str, int]:
    """``n`` flat grey PNGs, each a distinct level (so a decoded image names its key), in a
    subfolder and at the top (Path order differs from key order: ``a/`` vs ``a-``)."""
    levels = {}
    for i in range(n):
        key = f"a/{i:03}.png" if i % 2 else f"a-{i:03}.png"
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        level = 3 * i + 10
        Image.fromarray(np.full((20, 20), level, np.uint8)).save(root / key)
        levels[key] = level
    return levels


def _levels(images: torch.Tensor) -> list[int]:
    return [round(float(x.mean()) * 255) for x in images]


@pytest.fixture(scope="module")
def folder_model(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    root = tmp_path_factory.mktemp("split") / "data"
    levels = _levels_folder(root, 60)
    out = tmp_path_factory.mktemp("split-model") / "m"
    zoo.build("dcgan", None, [*MICRO, "train.max_steps=1", "train.precision=fp32",
                              "data.source=folder", f"data.path={root}", "data.channels=1"], out)
    return out, levels


def test_training_and_eval_agree_on_the_held_out_images(folder_model):
    out, levels = folder_model
    stored = json.loads((out / "config.json").read_text())["spec"]["data"]
    assert stored["split"] == "auto"  # written explicitly: the legacy rule never applies
    model = zoo.from_pretrained(out)
    test = sorted(k for k in levels if key_hash(k) < 0.1 * 2**64)
    assert test and len(test) < len(levels)
    assert _levels(held_out(model)) == [levels[k] for k in test]  # key order
    train = load_folder(model.spec.data, "train")
    assert keys_of(train, view(train, "test", model.spec.data)) == set(test)
    model.spec = model.spec.model_copy(update={"data": model.spec.data.model_copy(
        update={"eval_images": 2})})
    # a limit keeps the keys that hash lowest (a sample across the folder), in key order
    assert _levels(held_out(model)) == [levels[k] for k in sorted(sorted(test, key=key_hash)[:2])]


def test_the_reconstruction_baseline_reads_at_most_fit_images(folder_model, monkeypatch):
    from zoo.data import sources

    out, _ = folder_model
    model = zoo.from_pretrained(out)
    model.spec = model.spec.model_copy(update={"data": model.spec.data.model_copy(
        update={"fit_images": 5, "eval_images": 3})})
    decoded = []
    real = sources.decode_view

    def counted(*args, **kwargs):
        images, labels = real(*args, **kwargs)
        decoded.append(len(images))
        return images, labels

    monkeypatch.setattr(sources, "decode_view", counted)
    monkeypatch.setattr(type(model), "reconstruct", lambda self, x: x, raising=False)
    reconstruction_metrics(model)
    assert sorted(decoded) == [3, 5]


def test_a_legacy_folder_model_keeps_its_seeded_split(folder_model, tmp_path):
    out, levels = folder_model
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    for file in out.iterdir():
        if file.is_file():
            (legacy / file.name).write_bytes(file.read_bytes())
    config = json.loads((out / "config.json").read_text())
    del config["spec"]["data"]["split"]  # as written before data.split existed
    config["spec_hash"] = document_hash(config["spec"])
    (legacy / "config.json").write_text(json.dumps(config))
    weights = legacy / "model.safetensors"  # its weights carry the same (legacy) hash
    with safe_open(weights, "pt") as f:
        metadata = {**f.metadata(), "spec_hash": config["spec_hash"]}
    save_file(load_file(weights), weights, metadata=metadata)
    model = zoo.from_pretrained(legacy)
    assert model.spec.data.split == "seeded"
    # the folder source before it was indexed: files in Path order, split_indices of them
    files = sorted(Path(model.spec.data.path).rglob("*.png"))
    rows = split_indices(len(files), None, "test")
    old = [levels[files[i].relative_to(model.spec.data.path).as_posix()] for i in rows]
    assert _levels(held_out(model)) == old
    assert sorted(old) != sorted(levels[k] for k in levels if key_hash(k) < 0.1 * 2**64)


def test_visualize_decodes_only_its_limit_of_a_folder(folder_model, monkeypatch, tmp_path):
    from types import SimpleNamespace

    from zoo.data import rows
    from zoo.visualize.deconv import load_data

    out, _ = folder_model
    model = zoo.from_pretrained(out)
    read = []
    real = rows.decode_raw
    monkeypatch.setattr(rows, "decode_raw", lambda raw, *a, **k: read.append(raw) or real(
        raw, *a, **k))
    target = SimpleNamespace(shape=(1, 16, 16))
    images = load_data(model, target, None, 7)
    assert len(images) == len(read) == 7
    read.clear()
    other = tmp_path / "other"
    _levels_folder(other, 30)
    seeded = model.spec.model_copy(update={"data": model.spec.data.model_copy(
        update={"split": "seeded"})})  # another folder takes none of the model's split keys
    monkeypatch.setattr(FolderSource, "seeded_rows", None)
    images = load_data(zoo.model.ZooModel(model.family, seeded, model.module, out), target,
                       str(other), 5)
    assert len(images) == len(read) == 5 and all(Path(p).is_relative_to(other) for p in read)


def load_indexed(spec: DataSpec, split: str) -> FolderSource:
    """A registered (non-folder) data source answering with an indexed source: the folder
    ``$ZOO_TEST_INDEXED``."""
    root = Path(os.environ["ZOO_TEST_INDEXED"])
    return FolderSource(root, sorted(root.rglob("*.png")))


def test_dedup_reads_a_registered_indexed_source_once(tmp_path, monkeypatch):
    from zoo_dedup.images import dataset_split, open_source

    from zoo.core.records import DatasetRecord
    from zoo.core.registry import get_registry

    levels = _levels_folder(tmp_path / "data", 40)
    monkeypatch.setenv("ZOO_TEST_INDEXED", str(tmp_path / "data"))
    monkeypatch.setitem(get_registry().datasets, "indexed-test", DatasetRecord(
        "indexed-test", "a test source", "test_data_split:load_indexed", channels=1))
    source = open_source("indexed-test")
    train, test = (dataset_split("indexed-test", split, 16) for split in ("train", "test"))
    assert len(source) == len(train) + len(test) == len(levels)  # every image once
    assert sorted(_levels(train.float() / 255) + _levels(test.float() / 255)) == sorted(
        levels.values())
    assert train.shape[1:] == (1, 16, 16)
