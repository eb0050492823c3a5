"""Data sources: bundled sets, fixed stratified splits, folders, transforms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from zoo.core.errors import DataError
from zoo.core.spec import DataSpec
from zoo.data import load_images, split_indices, to_float


def test_mnist5k_split_is_fixed_stratified_and_disjoint():
    spec = DataSpec(source="mnist5k", image_size=28)
    train, _y_train = load_images(spec, "train")
    test, y_test = load_images(spec, "test")
    assert train.shape == (4500, 1, 28, 28) and test.shape == (500, 1, 28, 28)
    assert torch.bincount(y_test).tolist() == [50] * 10
    assert float(train.min()) >= 0.0 and float(train.max()) == 1.0
    train_set = {bytes(x.numpy().tobytes()) for x in (train * 255).round().byte()}
    assert not any(bytes(x.numpy().tobytes()) in train_set for x in (test * 255).round().byte())
    assert torch.equal(load_images(spec, "test")[0], test)


def test_split_does_not_depend_on_the_limit_or_training_seed():
    labels = np.repeat(np.arange(3), 10)
    a = split_indices(30, labels, "test")
    assert sorted(np.bincount(labels[a])) == [1, 1, 1]
    assert set(a).isdisjoint(split_indices(30, labels, "train"))
    assert np.array_equal(a, split_indices(30, labels, "test"))
    spec = DataSpec(source="digits", image_size=8, limit=50)
    images, _ = load_images(spec, "train")
    assert len(images) == 50
    assert len(load_images(spec, "test")[0]) == 179  # 10 % per class; the limit is train-only


def test_folder_images_are_resized_and_center_cropped(tmp_path):
    for i in range(10):
        Image.new("RGB", (40, 20), (255, 0, 0)).save(tmp_path / f"{i}.png")
    (tmp_path / "sub").mkdir()
    Image.new("L", (30, 30), 128).save(tmp_path / "sub" / "grey.jpg")
    images, labels = load_images(DataSpec(source="folder", path=str(tmp_path), image_size=16),
                                 "train")
    assert labels is None and images.shape[1:] == (3, 16, 16)
    grey, _ = load_images(DataSpec(source="folder", path=str(tmp_path), image_size=8,
                                   channels=1), "train")
    assert grey.shape[1:] == (1, 8, 8)


def test_folder_errors(tmp_path):
    with pytest.raises(DataError, match="no images"):
        load_images(DataSpec(source="folder", path=str(tmp_path)), "train")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="cannot read image"):
        load_images(DataSpec(source="folder", path=str(tmp_path)), "train")


def test_to_float_converts_channels_and_size():
    x = torch.full((2, 1, 28, 28), 255, dtype=torch.uint8)
    out = to_float(x, 3, 32)
    assert out.shape == (2, 3, 32, 32) and torch.allclose(out, torch.ones_like(out))
    rgb = torch.zeros(1, 3, 4, 6, dtype=torch.uint8)
    rgb[:, 1] = 255
    grey = to_float(rgb, 1, 4)
    assert grey.shape == (1, 1, 4, 4) and torch.allclose(grey, torch.full_like(grey, 0.587))


@pytest.mark.parametrize("lie", ["keys_list", "labels_float", "labels_short", "empty"])
def test_a_plugin_source_that_breaks_the_contract_is_one_line(lie, monkeypatch):
    """An ImageSource whose keys are no KeyTable, or whose labels are not one integer a key,
    is refused when opened (a PluginError line naming the source), not in a worker later."""
    from zoo.core import registry
    from zoo.core.errors import PluginError
    from zoo.data import ImageSource, KeyTable, open_source

    class Lying(ImageSource):
        name = "lying"

        def __init__(self) -> None:
            self.keys, _ = KeyTable.sorted(["a.png", "b.png"])
            if lie == "keys_list":
                self.keys = ["a.png", "b.png"]
            elif lie == "labels_float":
                self.labels = np.array([0.5, 1.0])
            elif lie == "labels_short":
                self.labels = np.array([1])
            elif lie == "empty":
                self.keys, _ = KeyTable.sorted([])

    monkeypatch.setattr(registry, "dataset_loader", lambda source: lambda spec, split: Lying())
    with pytest.raises(PluginError, match="data source 'folder' returned an ImageSource") as info:
        open_source(DataSpec(source="folder", path="."), "train")
    assert "\n" not in str(info.value)
