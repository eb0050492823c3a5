"""Acceptance 3: the same images as a folder, as a Hugging Face data set keyed by their
relative paths and as WebDataset shards from ``zoo data pack`` are one data set: the same
train and held-out keys, the same decoded rows, and a DCGAN trained on each is bitwise the
same."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import MICRO
from streamed import photo_folder, saved_hf

from zoo.core.spec import DataSpec
from zoo.data import decode_rows, open_source
from zoo.data.split import view

pytest.importorskip("datasets")
pytest.importorskip("webdataset")


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    """``data.*`` overrides of the three sources of the same 40 images."""
    from zoo.api import pack_data

    root = tmp_path_factory.mktemp("agree")
    photos = photo_folder(root / "photos", 40)
    saved = saved_hf(photos, root / "hf", labels=False)
    packed = pack_data(photos, root / "shards", shard_size=16, progress=False)
    return {
        "folder": {"source": "folder", "path": str(photos)},
        "hf": {"source": f"hf:{saved}", "key_column": "path"},
        "wds": {"source": packed.source},
    }


def test_the_three_sources_have_the_same_split_and_rows(three):
    found = {}
    for name, keys in three.items():
        spec = DataSpec(image_size=16, **keys)
        source = open_source(spec, "train")
        found[name] = {}
        for split in ("train", "test"):
            rows = view(source, split, spec)
            decoded = decode_rows(source, rows, "RGB", 16)
            assert not decoded.skipped
            found[name][split] = ([source.keys[int(i)] for i in rows], decoded.images)
    for split in ("train", "test"):
        keys, images = found["folder"][split]
        assert keys  # 40 images: both splits have some
        for other in ("hf", "wds"):
            assert found[other][split][0] == keys, (other, split)
            assert np.array_equal(found[other][split][1], images), (other, split)


def test_hf_and_wds_train_the_dcgan_the_folder_trains(three, tmp_path):
    import torch
    from safetensors.torch import load_file

    import zoo

    weights = {}
    for name, keys in three.items():
        overrides = [*MICRO, "train.precision=fp32", "train.max_steps=20",
                     "train.batch_size=8", "train.bn_batches=2",
                     *(f"data.{k}={v}" for k, v in keys.items())]
        out = zoo.build("dcgan", None, overrides, tmp_path / name)
        weights[name] = load_file(out / "model.safetensors")
    for other in ("hf", "wds"):
        assert weights[other].keys() == weights["folder"].keys()
        for tensor, value in weights["folder"].items():
            assert torch.equal(weights[other][tensor], value), (other, tensor)
