"""Bad input: one clear line on stderr, exit status 2, nothing half-written."""

from __future__ import annotations

import re
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from zoo.artifact import weights_metadata


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.code == 2, (result.code, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("error: ") and "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture
def out(tmp_path):
    return tmp_path / "out"


def test_unknown_spec_key_suggests(cli, out):
    r = cli("build", "dcgan", "--set", "train.max_step=3", "--out", out)
    assert_one_line_error(r, "unknown key 'train.max_step'", "did you mean 'train.max_steps'")
    assert not out.exists() and not list(out.parent.iterdir())


def test_unknown_key_in_spec_file(cli, out, tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text('family = "dcgan"\n[model]\nlatent_dims = 10\n')
    r = cli("build", "--spec", spec, "--out", out)
    assert_one_line_error(r, "unknown key 'model.latent_dims'", "'model.latent_dim'")
    assert not out.exists()


def test_wrong_type(cli, out):
    r = cli("build", "dcgan", "--set", "train.epochs=lots", "--out", out)
    assert_one_line_error(r, "'train.epochs' = 'lots'", "valid integer")
    assert not out.exists()


def test_unknown_family_suggests(cli, out):
    r = cli("build", "dcgam", "--out", out)
    assert_one_line_error(r, "unknown family or model 'dcgam'", "did you mean 'dcgan'")
    assert not out.exists()
    assert_one_line_error(cli("spec", "dgcan"), "did you mean 'dcgan'")


def test_missing_spec_file(cli, out, tmp_path):
    r = cli("build", "dcgan", "--spec", tmp_path / "missing.toml", "--out", out)
    assert_one_line_error(r, "spec file not found", "missing.toml")
    assert not out.exists()


def test_unknown_data_source(cli, out):
    r = cli("build", "dcgan", "--set", "data.source=mnist6k", "--out", out, "--quiet")
    assert_one_line_error(r, "unknown data source 'mnist6k'", "did you mean 'mnist5k'")
    assert not out.exists()


def test_torchvision_data_not_on_disk(cli, out, tmp_path):
    r = cli("build", "dcgan", "--set", "data.source=torchvision:MNIST", "--set",
            f"data.path={tmp_path / 'empty'}", "--out", out, "--quiet")
    assert_one_line_error(r, "torchvision data set MNIST is not on disk", "cannot be downloaded")
    assert not out.exists()


def test_folder_source_without_path(cli, out):
    r = cli("build", "dcgan", "--set", "data.source=folder", "--out", out, "--quiet")
    assert_one_line_error(r, "needs data.path")


@pytest.fixture
def broken(micro_dcgan, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(micro_dcgan, copy)
    return copy


def test_corrupt_safetensors(cli, broken, tmp_path):
    (broken / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    png = tmp_path / "grid.png"
    r = cli("sample", broken, "-o", png)
    assert_one_line_error(r, "corrupt or truncated safetensors file")
    assert not png.exists()


def test_truncated_safetensors(cli, broken, tmp_path):
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    png = tmp_path / "grid.png"
    assert_one_line_error(cli("sample", broken, "-o", png), "truncated", "model.safetensors")
    assert not png.exists()
    assert_one_line_error(cli("info", broken), "truncated")
    assert_one_line_error(cli("eval", broken), "truncated")


def test_tensors_that_do_not_match_the_spec(cli, broken):
    weights = broken / "model.safetensors"
    state = load_file(str(weights))
    del state["net.0.weight"]
    state["net.99.weight"] = torch.zeros(3)
    state["net.1.bias"] = torch.zeros(7)
    config = (broken / "config.json").read_text()
    import json

    meta = weights_metadata("dcgan", json.loads(config)["spec_hash"])
    save_file(state, str(weights), metadata=meta)
    r = cli("sample", broken, "-o", broken / "x.png")
    assert_one_line_error(r, "does not match its spec", "missing: net.0.weight",
                          "unexpected: net.99.weight", "wrong shape: net.1.bias [7]")


def test_weights_from_another_spec(cli, broken):
    weights = broken / "model.safetensors"
    save_file(load_file(str(weights)), str(weights), metadata=weights_metadata("dcgan", "0" * 16))
    assert_one_line_error(cli("sample", broken), "trained with another spec")


def test_not_a_model_folder(cli, tmp_path):
    assert_one_line_error(cli("sample", tmp_path), "not a genzoo model folder")
    assert_one_line_error(cli("info", tmp_path / "nowhere"), "no model folder at")


def test_tampered_config(cli, broken):
    path = broken / "config.json"
    path.write_text(path.read_text().replace('"latent_dim": 16', '"latent_dim": 17'))
    assert_one_line_error(cli("sample", broken), "spec_hash does not match")


def test_eval_of_a_photo_model_without_inception_weights_is_one_line(cli, tmp_path,
                                                                     monkeypatch):
    import zoo

    images = tmp_path / "imgs"
    images.mkdir()
    from PIL import Image

    for i in range(40):
        Image.new("RGB", (20, 12), (i * 6, 100, 200)).save(images / f"{i}.png")
    out = zoo.build("dcgan", None, ["data.source=folder", f"data.path={images}",
                                    "data.image_size=8", "train.max_steps=1",
                                    "train.batch_size=8", "model.base_channels=4",
                                    "model.disc_channels=4", "sample.n=4", "train.bn_batches=1"],
                    tmp_path / "rgb")
    assert zoo.from_pretrained(out).sample(2).shape == (2, 3, 8, 8)
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert_one_line_error(cli("eval", out), "weights-inception-2015-12-05-6726825d.pth",
                          "cache/features")
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_force_never_replaces_a_folder_that_is_not_a_model(cli, tmp_path):
    precious = tmp_path / "photos"
    precious.mkdir()
    (precious / "holiday.jpg").write_bytes(b"\xff\xd8")
    r = cli("build", "dcgan", "--set", "train.max_steps=1", "--out", precious, "--force",
            "--quiet")
    assert_one_line_error(r, "refusing to replace", "not a genzoo model folder")
    assert (precious / "holiday.jpg").read_bytes() == b"\xff\xd8"


def test_sample_into_a_missing_folder(cli, micro_dcgan, tmp_path):
    r = cli("sample", micro_dcgan, "-o", tmp_path / "nowhere" / "grid.png")
    assert_one_line_error(r, "does not exist")


def test_resume_refuses_a_changed_spec(cli, micro_dcgan, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(micro_dcgan, run)
    from conftest import MICRO

    sets = [arg for s in [*MICRO, "train.precision=fp32", "train.max_steps=30", "train.lr=0.01"]
            for arg in ("--set", s)]
    r = cli("build", "dcgan", *sets, "--out", run, "--resume", "--quiet")
    assert_one_line_error(r, "cannot resume", "train.lr (0.0002 -> 0.01)")


def test_a_plugin_hook_that_raises_is_one_line(monkeypatch, capsys):
    """Skipped with one warning line (issue 18, item 17); fatal, one line, when strict."""
    from zoo.core.errors import PluginError
    from zoo.core.registry import _collect

    class Impl:
        plugin_name, argnames = "dcgan", ("register",)

        def function(self, register):
            raise RuntimeError("boom")

    class Hook:
        def get_hookimpls(self):
            return [Impl()]

    assert _collect(Hook(), "family") == {}
    warning = capsys.readouterr().err.strip()
    assert "\n" not in warning
    assert re.search(r"plugin 'dcgan' .* failed while registering.*boom", warning)
    monkeypatch.setenv("ZOO_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match=r"plugin 'dcgan' .* failed while registering.*boom"):
        _collect(Hook(), "family")
