"""The real images' features are cached by content under ``$ZOO_HOME/cache/reference``:
reused by a second evaluation (the network never sees the real images again), recomputed
when an image changes or an entry is damaged, and never needed for the scores themselves
(an unwritable cache is one warning). ``zoo eval --reference-only`` fills it."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest
from PIL import Image
from test_feature_plugins import PIXELS_PLUGIN, digits_gan, register, run, snapshot

__all__ = ["digits_gan", "run"]  # fixtures used here


@pytest.fixture
def pixels(tmp_path, monkeypatch):
    """The counting test plugin ('pixels' sees SEEN['pixels'] images in all)."""
    from zoo.core.plugins import reset_plugins

    (tmp_path / "plugin").mkdir()
    yield register(tmp_path / "plugin", monkeypatch, PIXELS_PLUGIN)
    reset_plugins()


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A fresh, empty reference cache for one test."""
    from zoo.evaluation import reference

    folder = tmp_path / "reference-cache"
    monkeypatch.setattr(reference, "cache_dir", lambda: folder)
    return folder


def entries(cache: Path) -> dict[str, tuple[int, int, bytes]]:
    """The cache's entries: name -> (inode, mtime in ns, bytes)."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(cache.glob("*.safetensors"))}


def real_counts(folder: Path) -> tuple[int, int]:
    """How many held-out and training images ``zoo eval`` embeds for a model folder."""
    import zoo
    from zoo.evaluation.real import held_out_images, train_sample

    data = zoo.from_pretrained(folder).spec.data
    return len(held_out_images(data)), len(train_sample(data))


def test_a_second_eval_reuses_the_cached_reference_features(pixels, cache, run, cli):
    test, train = real_counts(run)
    r = cli("eval", run, "-n", "40", "--features", "pixels")
    assert r.code == 0, r.err
    assert pixels.SEEN["pixels"] == test + train + 40
    assert "training (computed" in r.err
    first, stored = json.loads((run / "metrics.json").read_text())["eval"], entries(cache)
    assert len(stored) == 2 and all(name.startswith("pixels-") for name in stored)
    r = cli("eval", run, "-n", "40", "--features", "pixels")
    assert r.code == 0, r.err
    assert pixels.SEEN["pixels"] == test + train + 40 + 40  # only the samples, this time
    assert "training (cached" in r.err
    assert entries(cache) == stored  # not rewritten
    second = json.loads((run / "metrics.json").read_text())["eval"]
    assert {k: v for k, v in second.items() if "@" in k} == \
        {k: v for k, v in first.items() if "@" in k}


def write_digits(folder: Path, count: int = 60) -> list[Path]:
    """``count`` distinct 16x16 grey PNGs."""
    import numpy as np

    folder.mkdir()
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"img{i:03d}.png"
        Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_a_changed_image_is_a_new_key_and_recomputed(pixels, cache, tmp_path, cli):
    import os

    paths = write_digits(tmp_path / "images")
    args = ("eval", "--reference-only", tmp_path / "images", "--set", "data.image_size=16",
            "--features", "pixels")
    r = cli(*args)
    assert r.code == 0, r.err
    assert r.out.count("computed and cached") == 2, r.out
    stored, seen = entries(cache), pixels.SEEN["pixels"]
    r = cli(*args)
    assert r.out.count("already cached") == 2, r.out
    assert pixels.SEEN["pixels"] == seen and entries(cache) == stored
    # every image changes one pixel in place: same file names, same dimensions, same mtime
    for path in paths:
        stat = path.stat()
        image = Image.open(path)
        image.putpixel((0, 0), (image.getpixel((0, 0)) + 128) % 256)
        image.save(path)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    r = cli(*args)
    assert r.code == 0, r.err
    assert r.out.count("computed and cached") == 2, r.out
    assert pixels.SEEN["pixels"] == 2 * seen
    assert len(entries(cache)) == 4  # new keys beside the old entries


@pytest.mark.parametrize("damage", ["truncated", "garbage", "wrong shape", "nan"])
def test_a_damaged_entry_is_recomputed_not_trusted(pixels, cache, run, cli, damage):
    import torch
    from safetensors.torch import load, load_file, save_file

    test, train = real_counts(run)
    assert cli("eval", "--reference-only", run, "--features", "pixels").code == 0
    good = entries(cache)
    for path in cache.glob("*.safetensors"):
        if damage == "truncated":
            path.write_bytes(path.read_bytes()[:100])
        elif damage == "garbage":
            path.write_bytes(b"\xff" * 64)
        else:
            bad = torch.zeros(3, 64) if damage == "wrong shape" else \
                torch.full((test if "test" in path.name else train, 64), float("nan"))
            save_file({"features": bad}, str(path))
    seen = pixels.SEEN["pixels"]
    r = cli("eval", run, "-n", "40", "--features", "pixels")
    assert r.code == 0, r.err
    assert "(computed" in r.err and "Traceback" not in r.err
    assert pixels.SEEN["pixels"] == seen + test + train + 40
    assert sorted(entries(cache)) == sorted(good)  # rewritten whole, under the same keys
    for name in good:  # (the header's metadata order may differ: compare the tensors)
        assert load_file(str(cache / name))["features"].equal(
            load(good[name][2])["features"])


def test_reference_only_on_a_data_source_then_a_model_eval_uses_the_cache(micro_dcgan, cache,
                                                                         tmp_path, cli):
    folder = Path(shutil.copytree(micro_dcgan, tmp_path / "micro"))
    r = cli("eval", "--reference-only", "mnist5k", "--features", "digits",
            "--set", "data.image_size=16", "--set", "data.limit=256")
    assert r.code == 0, r.err
    assert r.out.count("computed and cached") == 2, r.out
    assert "digits features of " in r.out
    r = cli("eval", folder, "-n", "40", "--features", "digits")
    assert r.code == 0, r.err
    assert "features of the real images" in r.err and "training (cached" in r.err, r.err
    again = cli("eval", "--reference-only", folder)  # the model's own data spec: the same
    assert again.code == 0 and again.out.count("already cached") == 2, again.out


@pytest.mark.parametrize(("args", "message"), [
    (("mnist6k",), "unknown data source 'mnist6k'; did you mean 'mnist5k'"),
    (("mnist5k", "--set", "data.imag_size=16"), "imag_size"),
    (("mnist5k", "--set", "train.max_steps=3"), "data"),
    (("MODEL", "--set", "data.image_size=16"), "--set applies to a data source"),
    (("MODEL", "--features", "pixles"), "unknown feature network 'pixles'"),
])
def test_bad_reference_only_input_is_one_line(pixels, cache, run, cli, args, message):
    args = tuple(str(run) if a == "MODEL" else a for a in args)
    r = cli("eval", "--reference-only", *args)
    assert r.code == 2, (r.out, r.err)
    errors = [line for line in r.err.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: ") and message in errors[0], r.err
    assert not list(cache.glob("*"))


def test_set_without_reference_only_is_one_line_and_writes_nothing(run, cli):
    before = snapshot(run)
    r = cli("eval", run, "--set", "data.image_size=16")
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1, r.err
    assert "--set applies only with --reference-only" in r.err
    assert snapshot(run) == before


def test_against_train_scores_against_the_training_images(pixels, cache, run, cli):
    assert cli("eval", run, "-n", "40", "--features", "pixels").code == 0
    on_test = json.loads((run / "metrics.json").read_text())["eval"]
    r = cli("eval", run, "-n", "40", "--features", "pixels", "--against", "train")
    assert r.code == 0, r.err
    on_train = json.loads((run / "metrics.json").read_text())["eval"]
    assert on_test["against@pixels"] == "test" and on_train["against@pixels"] == "train"
    assert on_train["fid@pixels"] != on_test["fid@pixels"]
    test, train = real_counts(run)
    assert on_train["reference_images@pixels"] == train != test
    before = snapshot(run)
    r = cli("eval", run, "-n", "40", "--features", "pixels", "--against", "bogus")
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1 and "bogus" in r.err, r.err
    assert snapshot(run) == before


def test_an_unwritable_cache_still_evaluates_with_one_warning(pixels, run, tmp_path, cli,
                                                              monkeypatch):
    import zoo.data.warn
    from zoo.evaluation import reference

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setattr(reference, "cache_dir", lambda: blocker / "reference")
    monkeypatch.setattr(zoo.data.warn, "_warned", set())
    r = cli("eval", run, "-n", "40", "--features", "pixels")
    assert r.code == 0, r.err
    warnings = [line for line in r.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "cannot cache reference features" in warnings[0], r.err
    assert "fid@pixels" in json.loads((run / "metrics.json").read_text())["eval"]
    assert blocker.read_text().startswith("a file")


def test_concurrent_writers_of_one_entry_leave_one_valid_entry(pixels, cache):
    import torch

    from zoo.evaluation.extractor import embed, load_extractor
    from zoo.evaluation.reference import reference_features

    extractor = load_extractor("pixels")
    images = torch.rand(300, 1, 16, 16)
    results, errors = [], []

    def write() -> None:
        try:
            results.append(reference_features(images, extractor, "pixels", "test images"))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    expected = embed(extractor, images)
    assert all(features.equal(expected) for features, _ in results)
    assert [p.name for p in cache.iterdir()] == [next(iter(entries(cache)))]  # no temp files
    features, cached = reference_features(images, extractor, "pixels", "test images")
    assert cached and features.equal(expected)


def test_kept_blocks_keep_other_networks_and_replace_the_same_one(pixels, cache, run, cli):
    assert cli("eval", run, "-n", "40", "--features", "digits", "--no-memorisation").code == 0
    digits = json.loads((run / "metrics.json").read_text())["eval"]
    assert cli("eval", run, "-n", "40", "--features", "pixels").code == 0
    both = json.loads((run / "metrics.json").read_text())["eval"]
    assert {k: v for k, v in both.items() if k.endswith("@digits")} == \
        {k: v for k, v in digits.items() if k.endswith("@digits")}
    assert "fid@pixels" in both and "fid@digits" in both
    r = cli("eval", run, "-n", "50", "--seed", "3", "--features", "digits")
    assert r.code == 0, r.err
    again = json.loads((run / "metrics.json").read_text())["eval"]
    assert {k: v for k, v in again.items() if k.endswith("@pixels")} == \
        {k: v for k, v in both.items() if k.endswith("@pixels")}
    assert again["fid@digits"] != digits["fid@digits"]  # replaced: another sample
    assert "memorised@digits" in again and "memorised@digits" not in digits
    assert again["samples"] == 50 and again["seed"] == 3
