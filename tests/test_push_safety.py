"""What ``zoo push`` may touch: only genzoo repos, only the model folder's own files, a card
whose front matter no spec value can break, and only the model's own scores in model-index."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import OTHER_TOKEN
from huggingface_hub import ModelCard
from safetensors import safe_open
from safetensors.torch import save_file
from test_errors import assert_one_line_error
from test_hub import api, repo_with

import zoo
from zoo.core.errors import SpecError

DIFFUSERS_CARD = b"---\nlibrary_name: diffusers\ntags:\n- diffusers\n---\n# a UNet\n"


@pytest.fixture
def folder(micro_dcgan: Path, tmp_path: Path) -> Path:
    """A copy of the micro DCGAN folder that a test may tamper with."""
    return Path(shutil.copytree(micro_dcgan, tmp_path / "model"))


def remote_files(hub, repo_id: str, revision: str | None = None) -> set[str]:
    return set(api(hub).list_repo_files(repo_id, revision=revision))


def set_hub(folder: Path, **hub: str) -> None:
    """Change the folder's ``hub`` spec section as if it had been built so (hashes follow)."""
    from zoo.artifact import record_checksums
    from zoo.core.spec import document_hash

    config = json.loads((folder / "config.json").read_text())
    config["spec"]["hub"].update(hub)
    config["spec_hash"] = document_hash(config["spec"])
    (folder / "config.json").write_text(json.dumps(config))
    weights = folder / "model.safetensors"
    with safe_open(str(weights), "pt") as fh:
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
        metadata = fh.metadata()
    save_file(tensors, str(weights), metadata={**metadata, "spec_hash": config["spec_hash"]})
    record_checksums(folder)  # as writing a folder does last


# --------------------------------------------------------------------------- 1. foreign repos


def test_push_refuses_a_repo_of_another_library(hub, cli, folder):
    files = {"README.md": DIFFUSERS_CARD, "config.json": b'{"_class_name": "UNet2DModel"}',
             "diffusion_pytorch_model.safetensors": b"x"}
    repo_with(hub, "me/unet", files)
    for args in ([], ["--revision", "dev"], ["--create-pr"]):
        assert_one_line_error(cli("push", folder, "me/unet", *args), "refusing to push to me/unet",
                              "holds a diffusers model")
    assert hub.commits_seen() == 1  # the repo's own commit only
    assert remote_files(hub, "me/unet") == {".gitattributes", *files}
    assert [b.name for b in api(hub).list_repo_refs("me/unet").branches] == ["main"]


def test_push_refuses_a_repo_that_holds_no_genzoo_model(hub, cli, folder):
    repo_with(hub, "me/bert", {"config.json": b'{"model_type": "bert"}',
                               "model.safetensors": (folder / "model.safetensors").read_bytes()})
    assert_one_line_error(cli("push", folder, "me/bert"), "refusing to push to me/bert",
                          "config.json is not a genzoo model config")
    repo_with(hub, "me/data", {"README.md": b"# my data\n", "data.csv": b"a,b\n"})
    assert_one_line_error(cli("push", folder, "me/data"), "refusing to push to me/data",
                          "not a genzoo model (data.csv)", "new or empty repo")
    card = b"---\nlibrary_name: genzoo\n---\n"  # a card alone does not make a genzoo model
    repo_with(hub, "me/card", {"README.md": card, "weights.bin": b"pickle"})
    assert_one_line_error(cli("push", folder, "me/card"), "not a genzoo model (weights.bin)")
    assert hub.commits_seen() == 3


def test_push_to_an_empty_repo_then_keeps_files_it_did_not_write(hub, cli, folder):
    repo_with(hub, "me/x", {"README.md": b"# soon a model\n"})  # no library_name: empty
    assert cli("push", folder, "me/x").code == 0
    api(hub).upload_file(path_or_fileobj=b"my notes", path_in_repo="notes.txt", repo_id="me/x")
    api(hub).upload_file(path_or_fileobj=b"license text", path_in_repo="LICENSE", repo_id="me/x")
    shutil.rmtree(folder / "training_state")
    assert cli("push", folder, "me/x").code == 0
    assert remote_files(hub, "me/x") == {".gitattributes", "README.md", "config.json",
                                         "model.safetensors", "metrics.json", "samples.png",
                                         "notes.txt", "LICENSE"}


def test_no_write_access_is_reported_before_the_repo_is_judged(hub, cli, folder):
    repo_with(hub, "other/unet", {"README.md": DIFFUSERS_CARD}, token=OTHER_TOKEN)
    assert_one_line_error(cli("push", folder, "other/unet"), "not authorised to push to other/unet",
                          "403")
    assert hub.commits_seen() == 1


# --------------------------------------------------------------------------- 2. what is uploaded


def test_push_uploads_only_the_model_folders_files(hub, cli, folder):
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04 a pickle")
    (folder / "notes.txt").write_text("mine")
    (folder / "extra").mkdir()
    (folder / "extra" / "grid.png").write_bytes(b"png")
    (folder / "training_state" / "optimizer.pt").write_bytes(b"\x80\x04")
    (folder / "visualize").mkdir()
    (folder / "visualize" / "filters.png").write_bytes((folder / "samples.png").read_bytes())
    (folder / "visualize" / "index.json").write_text('{"filters.png": {"caption": "filters"}}')
    (folder / "pyramid.png").write_bytes((folder / "samples.png").read_bytes())
    (folder / "memorisation.png").write_bytes((folder / "samples.png").read_bytes())
    (folder / ".cache").mkdir()
    (folder / ".cache" / "x").write_text("hidden")
    r = cli("push", folder, "me/x")
    assert r.code == 0, r.err
    assert r.err.startswith("warning: not uploading files that are not part of a genzoo model")
    for name in ("extra/grid.png", "notes.txt", "pytorch_model.bin", "training_state/optimizer.pt"):
        assert name in r.err
    assert remote_files(hub, "me/x") == {
        ".gitattributes", "README.md", "config.json", "model.safetensors", "metrics.json",
        "samples.png", "pyramid.png", "memorisation.png", "visualize/filters.png",
        "visualize/index.json", "training_state/state.json", "training_state/state.safetensors"}
    assert zoo.push(folder, "me/x").skipped == ["extra/grid.png", "notes.txt",
                                                "pytorch_model.bin",
                                                "training_state/optimizer.pt"]


@pytest.mark.parametrize("link", ["samples.png", "pyramid.png", "training_state/state.json",
                                  "visualize"])
def test_push_refuses_symbolic_links(hub, cli, folder, tmp_path, link):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "id_rsa.png").write_text("private key")
    target = folder / link
    if target.is_file():
        target.unlink()
    target.symlink_to(secret if link == "visualize" else secret / "id_rsa.png")
    assert_one_line_error(cli("push", folder, "me/x"), "refusing to push",
                          f"{link} is a symbolic link")
    assert hub.requests == []


def test_push_refuses_a_special_file(hub, cli, folder):
    import os

    (folder / "metrics.json").unlink()
    os.mkfifo(folder / "metrics.json")  # reading it would hang
    assert_one_line_error(cli("push", folder, "me/x"), "metrics.json is not a regular file")
    assert hub.requests == []


def test_push_refuses_a_truncated_training_state(hub, cli, folder):
    state = folder / "training_state" / "state.safetensors"
    state.write_bytes(state.read_bytes()[:-64])
    assert_one_line_error(cli("push", folder, "me/x"), "truncated", "state.safetensors")
    (folder / "training_state" / "state.json").write_text("{")
    state.unlink()
    assert_one_line_error(cli("push", folder, "me/x"), "state.json", "not valid JSON")
    assert hub.requests == []


@pytest.mark.parametrize("name", ["state.safetensors", "state.json"])
def test_push_refuses_half_a_training_state(hub, cli, folder, name):
    """config.json records the state's sha256, but a recorded training_state file may be
    absent (a Hub download leaves it there): push must not publish half a checkpoint."""
    (folder / "training_state" / name).unlink()
    assert_one_line_error(cli("push", folder, "me/x"), "training state is incomplete",
                          f"training_state/{name} missing")
    assert hub.requests == []
    shutil.rmtree(folder / "training_state")  # the model alone is fine
    assert cli("push", folder, "me/x").code == 0


@pytest.mark.parametrize("name", ["model.safetensors", "training_state/state.safetensors"])
def test_push_refuses_weights_whose_sha256_does_not_match(hub, cli, folder, name):
    """One flipped byte in the tensor data (headers intact) is caught by the checksums
    config.json records (issue 17, item 13: verified at push)."""
    path = folder / name
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01  # inside the last tensor's data
    path.write_bytes(bytes(data))
    assert_one_line_error(cli("push", folder, "me/x"), "do not match the sha256")
    assert hub.requests == []


# --------------------------------------------------------------------------- 3. the card's YAML


@pytest.mark.parametrize("license", ["other: see LICENSE", "mit\nlibrary_name: diffusers",
                                     "MIT", "other"])
def test_license_must_be_a_hub_identifier(license):
    from zoo.core.registry import get_family
    from zoo.core.spec import validate

    family = get_family("dcgan")
    with pytest.raises(SpecError, match=r"hub\.license"):
        validate(family.spec, {"family": "dcgan", "hub": {"license": license}})
    hub = validate(family.spec, {"family": "dcgan", "hub": {"license": "other",
                                                           "license_name": "my-license"}}).hub
    assert (hub.license, hub.license_name) == ("other", "my-license")


def test_a_license_cannot_inject_card_metadata(hub, cli, folder):
    set_hub(folder, license="mit\nlibrary_name: diffusers")
    assert_one_line_error(cli("push", folder, "me/x"), "hub.license", "not a Hub license")
    assert hub.requests == []


def test_card_front_matter_is_valid_yaml_with_license_name(hub, folder):
    set_hub(folder, license="other", license_name="my-license")
    zoo.push(folder, "me/x")
    assert ("POST", "/api/validate-yaml") in hub.requests
    info = api(hub).model_info("me/x")
    assert info.library_name == "genzoo"
    assert info.card_data.license == "other" and info.card_data.license_name == "my-license"
    assert zoo.from_pretrained("me/x").repo_id == "me/x"


def test_card_validation_rejects_unknown_licenses():
    from zoo.testing.hubserver import card_errors

    assert card_errors({"license": "other", "license_name": "mine"}) == []
    assert card_errors({"license": "other: see LICENSE"})
    assert card_errors({"license": "not-a-license"})


# --------------------------------------------------------------------------- 4. model-index


def test_model_index_holds_only_the_models_own_scores(folder):
    from zoo.folder.write import card_text

    metrics = json.loads((folder / "metrics.json").read_text())
    metrics["eval"] = {"fid@digits": 4.6, "class_coverage": 10, "mean_confidence": 0.75,
                       "reference_fid@digits": 0.19, "classifier_accuracy": 0.986,
                       "samples": 1000, "seed": 0, "untrained_fid@digits": 329.1,
                       "kid_subset_size@digits": 1000, "train_images@digits": 4500,
                       "memorisation_threshold@digits": 0.25, "reference_images@digits": 500,
                       "convention@digits": "genzoo digit classifier",
                       "baseline_frechet_distance": 300.0, "class_counts": [1, 2]}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    card = ModelCard(card_text(folder, repo_id="me/x"))
    scores = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert scores == {"fid@digits": 4.6, "class_coverage": 10, "mean_confidence": 0.75}
    assert "| eval.reference_fid@digits | 0.19 |" in card.text  # still shown, as a reference
