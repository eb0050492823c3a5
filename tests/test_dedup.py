"""zoo dedup: multi-index search equals brute force, the denoising objective by hand,
grouping on a tiny near-duplicate set, reports, the clean copy, and bad input."""

from __future__ import annotations

import csv
import hashlib
import json
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from zoo_dedup.benchset import write_benchset
from zoo_dedup.hashing import (
    CodeSet,
    brute_force_pairs,
    find_groups,
    groups_from_pairs,
    near_pairs,
    pack_bits,
    unit_rows,
    unpack_bits,
)

from zoo.api import resolve_spec

# --------------------------------------------------------------------------- hashing


def planted_codes(n: int = 600, bits: int = 128, seed: int = 0) -> CodeSet:
    """Sparse random codes with planted copies at 0-6 flipped bits, mirrors and vectors."""
    rng = np.random.default_rng(seed)
    vectors = np.maximum(rng.normal(size=(n, bits)) - 0.5, 0)
    vectors[100:160] = vectors[:60] + 0.02 * rng.random((60, bits))
    mirror_vectors = np.maximum(rng.normal(size=(n, bits)) - 0.5, 0)
    mirror_vectors[200:230] = vectors[60:90]
    codes, mirrors = vectors > 0, mirror_vectors > 0
    codes[100:160] = codes[:60]
    for i in range(100, 160):  # 0..6 flipped bits
        flip = rng.choice(bits, size=(i - 100) % 7, replace=False)
        codes[i, flip] ^= True
    return CodeSet(pack_bits(codes), bits, pack_bits(mirrors), unit_rows(vectors),
                   unit_rows(mirror_vectors))


def test_pack_unpack_round_trip():
    bits = np.random.default_rng(1).random((7, 100)) < 0.5
    assert np.array_equal(unpack_bits(pack_bits(bits), 100), bits)


@pytest.mark.parametrize("k", [0, 1, 3, 6, 12])
@pytest.mark.parametrize("angle", [None, 3.0])
@pytest.mark.parametrize("flip", [True, False])
def test_multi_index_search_equals_brute_force(k, angle, flip):
    codes = planted_codes()
    if not flip:
        codes = CodeSet(codes.codes, codes.n_bits, vectors=codes.vectors)
    fast, slow = near_pairs(codes, k, angle), brute_force_pairs(codes, k, angle)
    assert np.array_equal(fast, slow)
    if angle is None and k >= 6:
        assert len(fast) >= 60  # every planted copy is found
    if flip and angle is None:
        assert {(60 + i, 200 + i) for i in range(30)} <= {tuple(p) for p in fast.tolist()}


def test_groups_are_transitive_and_ordered():
    pairs = np.array([[5, 7], [1, 2], [2, 9], [3, 4]])
    assert groups_from_pairs(10, pairs) == [[1, 2, 9], [3, 4], [5, 7]]
    assert find_groups(CodeSet(pack_bits(np.zeros((3, 8), bool)), 8), 0) == [[0, 1, 2]]


# --------------------------------------------------------------------------- the model


def make(*sets: str):
    _, spec = resolve_spec("dedup-ae", None, ["train.precision=fp32", *sets])
    from zoo.core.registry import get_family

    impl = get_family("dedup-ae").load()
    torch.manual_seed(0)
    return spec, impl, impl.build(spec)


def test_input_width_follows_channels():
    _, _, grey = make()
    _, _, rgb = make("data.channels=3")
    assert grey.encoder[1].in_features == 1024 and grey.code_dim == 128
    assert rgb.encoder[1].in_features == 3072 and rgb.decoder[1].out_features == 3072


def test_denoising_objective_against_an_independent_computation():
    from zoo_dedup.model import HashTrainer

    spec, _, model = make("data.image_size=8", "model.code_dim=8", "model.blur=1.0",
                          "model.noise_std=0.3", "model.mask_fraction=0.25")
    model.eval()  # dropout off: the objective is then a deterministic function of the rng
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    fake = types.SimpleNamespace(model=model, spec=spec)
    loss, _ = HashTrainer.objective(fake, x, torch.Generator().manual_seed(5))

    # by hand, in float64 NumPy: the same draws, corruption, features, layers and loss
    rng = torch.Generator().manual_seed(5)
    noise = torch.randn(x.shape, generator=rng).double().numpy()
    keep = (torch.rand(x.shape, generator=rng) >= 0.25).double().numpy()
    xs = x.double().numpy()
    corrupted = np.clip(xs + 0.3 * noise, 0, 1) * keep
    t = np.arange(-2, 3)
    g = np.exp(-(t**2) / 2.0)
    g /= g.sum()
    padded = np.pad(corrupted[:, 0], ((0, 0), (2, 2), (2, 2)), mode="edge")
    blurred = np.zeros((3, 8, 8))
    for i in range(8):
        for j in range(8):
            blurred[:, i, j] = (padded[:, i : i + 5, j : j + 5] * np.outer(g, g)).sum((1, 2))
    flat = blurred.reshape(3, -1)
    flat = (flat - flat.mean(1, keepdims=True)) / (flat.std(1, ddof=1, keepdims=True) + 1e-3)
    w1, b1 = (p.detach().double().numpy() for p in (model.encoder[1].weight,
                                                     model.encoder[1].bias))
    w2, b2 = (p.detach().double().numpy() for p in (model.decoder[1].weight,
                                                     model.decoder[1].bias))
    logits = np.maximum(flat @ w1.T + b1, 0) @ w2.T + b2
    target = xs.reshape(3, -1)
    bce = np.maximum(logits, 0) - logits * target + np.log1p(np.exp(-np.abs(logits)))
    assert float(loss.detach()) == pytest.approx(bce.sum(1).mean(), rel=1e-5)


def test_dropout_acts_on_the_code_only_in_training():
    from zoo_dedup.model import hash_bits

    _, impl, model = make("data.image_size=8", "model.code_dim=64")
    x = torch.rand(4, 1, 8, 8)
    model.train()
    assert not torch.equal(model(x)[1], model(x)[1])
    model.eval()
    assert torch.equal(model(x)[1], model(x)[1])
    h = impl.encode(model, x)
    assert torch.equal(hash_bits(model, x), h > 0) and (h >= 0).all()


def test_brightness_does_not_change_the_hash():
    from zoo_dedup.model import hash_bits

    _, _, model = make("data.image_size=8")
    x = torch.rand(4, 1, 8, 8) * 0.8
    assert torch.equal(hash_bits(model.eval(), x), hash_bits(model, x * 1.2))


# --------------------------------------------------------------------------- end to end


def smooth_images(n: int, seed: int = 0) -> np.ndarray:
    """n distinct random smooth 28x28 grey images (upsampled 7x7 noise)."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(n, 1, 7, 7, generator=g)
    big = F.interpolate(small, size=28, mode="bicubic", align_corners=False).clamp(0, 1)
    return (big[:, 0] * 255).round().to(torch.uint8).numpy()


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory) -> tuple[Path, dict]:
    """40 distinct images, 10 with one copy and 3 with two (no crops), and the truth."""
    import zoo_dedup.benchset as benchset

    root = tmp_path_factory.mktemp("nearset")
    saved = benchset.TRANSFORMS
    benchset.TRANSFORMS = ("flip", "jpeg50", "noise", "brightness")  # crops need training
    try:
        made = write_benchset(root, seed=0, originals=40, copies=10, triples=3,
                              digits=smooth_images(40))
    finally:
        benchset.TRANSFORMS = saved
    assert made.n_images == 56 and made.n_pairs == 19
    return made.images, json.loads(made.truth.read_text())


@pytest.fixture(scope="module")
def tiny_model(tiny_set, tmp_path_factory) -> Path:
    """A dedup-ae trained on the tiny set through zoo dedup itself."""
    from zoo_dedup.pipeline import dedup

    out = tmp_path_factory.mktemp("dd") / "model"
    result = dedup(str(tiny_set[0]), save_model=out, progress=False,
                   overrides=["train.max_steps=150", "train.precision=fp32"])
    assert (out / "model.safetensors").is_file() and result.model == out.resolve()
    return out


def groups_by_name(groups: list[list[str]]) -> set[frozenset[str]]:
    return {frozenset(Path(p).name for p in g) for g in groups}


def test_copies_are_grouped_and_distinct_images_are_not(tiny_set, tiny_model, cli, tmp_path):
    images, truth = tiny_set
    report = tmp_path / "groups.json"
    r = cli("dedup", images, "--model", tiny_model, "--report", report, "--quiet")
    assert r.code == 0, r.err
    assert "56 images: 13 groups" in r.out and "images/s" in r.out
    assert groups_by_name(json.loads(report.read_text())["groups"]) == {
        frozenset(g) for g in truth["groups"]}


def test_without_flip_invariance_mirrors_are_separate(tiny_set, tiny_model, cli, tmp_path):
    images, truth = tiny_set
    report = tmp_path / "groups.json"
    r = cli("dedup", images, "--model", tiny_model, "--no-flip", "--report", report, "--quiet")
    assert r.code == 0, r.err
    flipped = {name for name, kind in truth["transform_of"].items() if kind == "flip"}
    found = groups_by_name(json.loads(report.read_text())["groups"])
    assert flipped and not any(flipped & g for g in found)


def test_reports_json_and_csv(tiny_set, tiny_model, cli, tmp_path, monkeypatch):
    images, _ = tiny_set
    monkeypatch.chdir(images.parent)
    r = cli("dedup", "images", "--model", tiny_model, "--report", tmp_path / "g.json",
            "--report", tmp_path / "g.csv", "--quiet")
    assert r.code == 0, r.err
    doc = json.loads((tmp_path / "g.json").read_text())
    assert list(doc) == ["groups"] and len(doc["groups"]) == 13
    for group in doc["groups"]:
        assert group == sorted(group) and all(p.startswith("images/") for p in group)
    rows = list(csv.DictReader((tmp_path / "g.csv").open()))
    assert list(rows[0]) == ["group", "path", "keep"]
    assert [r["path"] for r in rows] == [p for g in doc["groups"] for p in g]
    assert sum(r["keep"] == "1" for r in rows) == 13


def test_write_clean_keeps_one_per_group_and_leaves_originals(tiny_set, tiny_model, cli,
                                                              tmp_path):
    images, truth = tiny_set

    def fingerprint(folder: Path) -> dict[str, tuple[str, float]]:
        return {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime)
                for p in sorted(folder.iterdir())}

    before = fingerprint(images)
    clean = tmp_path / "clean"
    r = cli("dedup", images, "--model", tiny_model, "--write-clean", clean, "--quiet")
    assert r.code == 0, r.err
    assert fingerprint(images) == before
    kept = sorted(p.name for p in clean.iterdir())
    assert len(kept) == 56 - sum(len(g) - 1 for g in truth["groups"]) == 40
    for group in truth["groups"]:
        assert [n for n in sorted(group) if n in kept] == [sorted(group)[0]]
    first = sorted(truth["groups"])[0][0]
    assert (clean / first).read_bytes() == (images / first).read_bytes()


def test_training_needs_a_new_folder_or_force(tiny_set, tiny_model, cli):
    r = cli("dedup", tiny_set[0], "--save-model", tiny_model, "--quiet")
    assert r.code == 2 and "already exists" in r.err and "--model" in r.err


@pytest.mark.parametrize("case", ["missing", "not-images", "suffix", "clean-exists",
                                  "clean-inside", "not-a-model", "set-with-model",
                                  "save-with-model"])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, tiny_set, tiny_model, cli,
                                                         tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    images = tiny_set[0]
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "exists").mkdir()
    report = tmp_path / "out.json"
    args = {
        "missing": ["no/such/folder"],
        "not-images": [empty],
        "suffix": [images, "--model", tiny_model, "--report", tmp_path / "out.txt"],
        "clean-exists": [images, "--model", tiny_model, "--write-clean", tmp_path / "exists"],
        "clean-inside": [images, "--model", tiny_model, "--write-clean", images / "clean"],
        "not-a-model": [images, "--model", empty],
        "set-with-model": [images, "--model", tiny_model, "--set", "train.max_steps=1"],
        "save-with-model": [images, "--model", tiny_model, "--save-model", tmp_path / "m"],
    }[case]
    r = cli("dedup", *args, "--report", report, "--quiet")
    assert r.code == 2, (r.out, r.err)
    assert r.err.startswith("error: ") and r.err.count("\n") == 1, r.err
    assert not report.exists() and not (tmp_path / "runs").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "exists"]
    assert not (images / "clean").exists()


def test_a_registered_data_set_is_a_source():
    from zoo_dedup.images import iter_chunks, open_source

    src = open_source("digits")
    assert len(src) == 1797 and src.paths[0] == "digits/train/0"
    first = next(iter_chunks(src, 32, 1, chunk=100))
    assert first.shape == (100, 1, 32, 32) and first.dtype == np.uint8
