"""The public Python API, zoo.api: every command's function gives what the command prints."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

import zoo
from zoo import api
from zoo.core.errors import ZooError


def test_every_public_function_is_documented_and_typed():
    for name in api.__all__:
        obj = getattr(api, name)
        assert inspect.getdoc(obj), name
        if inspect.isfunction(obj):
            sig = inspect.signature(obj)
            assert sig.return_annotation is not inspect.Signature.empty, name
            assert all(p.annotation is not inspect.Parameter.empty
                       for p in sig.parameters.values()), name


def test_importing_the_api_and_listing_imports_no_torch():
    probe = ("import sys; from zoo import api; api.list_entries(); api.spec_text('ddpm'); "
             "api.plugins(); api.plan_build('dcgan-mnist'); "
             "heavy = ('torch', 'torchvision', 'timm', 'accelerate'); "
             "print(sorted(m for m in heavy if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    assert (proc.returncode, proc.stdout.strip()) == (0, "[]"), proc.stderr


def test_list_entries_is_zoo_list_json(cli):
    r = cli("list", "dc*", "--exclude", "*-mnist", "--json")
    assert r.code == 0
    assert api.list_entries(["dc*"], ["*-mnist"]) == json.loads(r.out)
    rows = {row["name"]: row for row in api.list_entries()}
    assert rows["dcgan"]["kind"] == "family" and rows["dcgan"]["plugin"]
    assert rows["dcgan-mnist"]["kind"] == "model" and rows["dcgan-mnist"]["family"] == "dcgan"


@pytest.mark.parametrize("args", [["ddpm"], ["dcgan", "--set", "train.max_steps=7"]])
def test_spec_text_is_zoo_spec(cli, args):
    overrides = args[2:]
    assert api.spec_text(args[0], overrides) == cli("spec", *args).out
    schema = json.loads(api.spec_text(args[0], overrides, schema=True))
    assert json.loads(cli("spec", *args, "--schema").out) == schema


def test_spec_text_shows_the_sampling_options():
    assert "steps" in api.spec_text("ddpm")
    assert "steps" in json.loads(api.spec_text("ddpm", schema=True))[
        "x-sampling-options"]["properties"]


def test_plugins_is_zoo_plugins_json(cli):
    assert api.plugins() == json.loads(cli("plugins", "--json").out)
    assert any("dcgan" in row["families"] for row in api.plugins())


def test_plan_build_checks_without_training(tmp_path: Path):
    plan = api.plan_build("dcgan-mnist", overrides=["train.max_steps=3"])
    assert plan.out == Path("runs") / "dcgan-mnist" and plan.family.name == "dcgan"
    assert plan.spec.train.max_steps == 3 and "max_steps = 3" in plan.toml()
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(ZooError, match="symbolic links"):
        api.plan_build("dcgan", out=loop / "out")
    assert not list(tmp_path.glob("*.tmp*"))


def test_check_families_fails_on_an_unknown_name_before_any_work():
    with pytest.raises(ZooError, match="no-such-family"):
        api.check_families(["dcgan", "no-such-family"])


def test_write_samples_checks_the_output_before_loading(tmp_path: Path):
    with pytest.raises(ZooError, match="does not exist"):  # not "no such model"
        api.write_samples(tmp_path / "no-model", tmp_path / "missing" / "grid.png", n=4)


def test_info_and_write_samples_match_the_commands(cli, micro_dcgan: Path, tmp_path: Path):
    assert api.info(micro_dcgan) == json.loads(cli("info", micro_dcgan, "--json").out)
    assert api.info(micro_dcgan, verify=True)["sha256"] == "verified"
    model = zoo.from_pretrained(micro_dcgan)
    assert model.write_samples(tmp_path / "api.npy", n=5, seed=3, batch_size=2) == "npy"
    r = cli("sample", micro_dcgan, "-n", "5", "--seed", "3", "-o", tmp_path / "cli.npy")
    assert r.code == 0
    assert (tmp_path / "api.npy").read_bytes() == (tmp_path / "cli.npy").read_bytes()
    assert api.write_samples(micro_dcgan, tmp_path / "pngs", n=3) == "folder"
    assert len(list((tmp_path / "pngs").iterdir())) == 3


def test_set_hub_options_is_what_endpoint_and_offline_set(monkeypatch):
    from zoo.hub import endpoint_url, is_offline

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    try:
        api.set_hub_options(endpoint="http://hub.invalid:1", offline=True)
        assert endpoint_url() == "http://hub.invalid:1" and is_offline()
    finally:
        api.set_hub_options()
    assert endpoint_url() != "http://hub.invalid:1"


def test_write_samples_label_needs_a_conditional_family(micro_dcgan: Path, tmp_path: Path):
    with pytest.raises(ZooError, match="conditional"):
        api.write_samples(micro_dcgan, tmp_path / "a.png", n=2, label=3)
    with pytest.raises(ZooError, match="label"):  # as an option: unknown, options listed
        zoo.from_pretrained(micro_dcgan).write_samples(tmp_path / "b.png", n=2, label=3)
    assert not list(tmp_path.iterdir())
