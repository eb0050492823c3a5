"""Publishing to and loading from the Hub, against the loopback server (zoo.testing.hubserver)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import OTHER_TOKEN, REPO
from huggingface_hub import CommitOperationAdd, HfApi, ModelCard
from safetensors.torch import load_file
from test_errors import assert_one_line_error

import zoo
from zoo.core.errors import HubError
from zoo.hub import download, endpoint_url, is_offline

#: A tiny autoencoder: two training steps, 16x16, ~33k parameters, about a second to build.
TINY_AE = ["train.max_steps=2", "data.limit=64", "data.image_size=16", "sample.n=4"]


@pytest.fixture(scope="session")
def versions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two versions of one tiny model (different training seeds)."""
    runs = tmp_path_factory.mktemp("hub-runs")
    return tuple(zoo.build("ae", None, [*TINY_AE, f"train.seed={seed}"], runs / f"v{seed + 1}")
                 for seed in (0, 1))


@pytest.fixture
def v1(versions, tmp_path) -> Path:
    """A copy of version 1 that a test may change or delete."""
    return Path(shutil.copytree(versions[0], tmp_path / "v1"))


def weights(model: zoo.ZooModel) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.module.state_dict().items()}


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def api(hub, token: str | None = None) -> HfApi:
    return HfApi(endpoint=hub.url, token=token or os.environ["HF_TOKEN"])


def repo_with(hub, repo_id: str, files: dict[str, bytes], token: str | None = None) -> str:
    """Create a repo holding ``files`` directly through huggingface_hub; returns the commit."""
    client = api(hub, token)
    client.create_repo(repo_id)
    ops = [CommitOperationAdd(path, data) for path, data in files.items()]
    return client.create_commit(repo_id, ops, commit_message="files").oid


# --------------------------------------------------------------------------- acceptance


def test_round_trip_in_a_fresh_process(hub, cli, v1, tmp_path):
    original = zoo.from_pretrained(v1).sample(6, seed=3)
    r = cli("push", v1, "me/x")
    assert r.code == 0, r.err
    commit = hub.log("me/x")[0]["id"]
    assert r.out.strip() == f"{hub.url}/me/x/commit/{commit}"
    shutil.rmtree(v1)
    out = tmp_path / "samples.safetensors"
    code = ("import sys, zoo; from safetensors.torch import save_file; "
            "m = zoo.from_pretrained('me/x'); "
            "save_file({'x': m.sample(6, seed=3)}, sys.argv[1]); print(m.commit)")
    proc = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == commit
    assert torch.equal(load_file(str(out))["x"], original)


def test_revisions_branches_and_tags(hub, cli, versions):
    first, second = (weights(zoo.from_pretrained(v)) for v in versions)
    v1_commit = zoo.push(versions[0], "me/x").commit
    api(hub).create_tag("me/x", tag="v1")
    api(hub).create_branch("me/x", branch="stable")
    assert cli("push", versions[1], "me/x", "--revision", "dev").code == 0  # a new branch
    assert same_weights(weights(zoo.from_pretrained("me/x")), first)  # main still v1
    assert same_weights(weights(zoo.from_pretrained("me/x", revision="dev")), second)
    zoo.push(versions[1], "me/x", message="v2")

    latest = zoo.from_pretrained("me/x")
    assert same_weights(weights(latest), second) and latest.commit != v1_commit
    for revision in ("v1", "stable", v1_commit):
        model = zoo.from_pretrained("me/x", revision=revision)
        assert same_weights(weights(model), first) and model.commit == v1_commit, revision
    assert same_weights(weights(zoo.from_pretrained("me/x@v1")), first)
    log = hub.log("me/x")  # initial commit, v1, v2: a real history
    assert log[0]["title"] == "v2" and log[1]["id"] == v1_commit and len(log) == 3


def test_offline_loads_from_the_cache_and_fails_clearly_without_it(
        hub, cli, v1, tmp_path, monkeypatch):
    zoo.push(v1, "me/x")
    online = zoo.from_pretrained("me/x")
    hub.stop()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cached = zoo.from_pretrained("me/x")
    assert cached.commit == online.commit and same_weights(weights(cached), weights(online))
    assert cli("sample", "me/x", "-n", "2", "-o", tmp_path / "g.png").code == 0

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(HubError, match="not in the Hub cache and offline mode is on"):
        zoo.from_pretrained("me/x")
    r = cli("sample", "me/x", "-o", tmp_path / "h.png")
    assert_one_line_error(r, "me/x@main is not in the Hub cache", "offline mode is on")
    assert not (tmp_path / "h.png").exists()


def test_cache_answers_when_the_hub_is_down(hub, v1, monkeypatch):
    zoo.push(v1, "me/x")
    commit = zoo.from_pretrained("me/x").commit
    hub.stop()
    assert zoo.from_pretrained("me/x").commit == commit  # not offline: falls back to the cache
    assert zoo.from_pretrained("me/x", local_files_only=True).commit == commit


def test_push_of_a_corrupt_folder_uploads_nothing(hub, cli, v1):
    weights_file = v1 / "model.safetensors"
    weights_file.write_bytes(weights_file.read_bytes()[:-100])
    assert_one_line_error(cli("push", v1, "me/x"), "truncated", "model.safetensors")
    assert hub.requests == [] and hub.commits_seen() == 0


def test_card_front_matter_parses_and_embeds_the_samples(hub, v1):
    metrics = json.loads((v1 / "metrics.json").read_text())
    metrics["eval"] = {"frechet_distance": 12.5, "class_coverage": 10, "samples": 1000,
                       "class_counts": [1, 2], "iwae_note": "skipped"}
    (v1 / "metrics.json").write_text(json.dumps(metrics))
    zoo.push(v1, "me/x", revision="v1")
    assert ("POST", "/api/validate-yaml") in hub.requests  # the server checked the metadata
    text = (download("me/x", "v1").path / "README.md").read_text()
    card = ModelCard(text)
    data = card.data
    assert data.library_name == "genzoo" and data.license == "mit"
    assert data.pipeline_tag == "unconditional-image-generation"
    assert data.tags == ["genzoo", "ae", "image-generation"] and data.datasets == ["mnist"]
    assert data.model_name == "me/x"
    scores = {r.metric_type: r.metric_value for r in data.eval_results}
    assert scores == {"frechet_distance": 12.5, "class_coverage": 10}
    assert {r.dataset_type for r in data.eval_results} == {"mnist"}
    files = api(hub).list_repo_files("me/x", revision="v1")
    assert "samples.png" in files and "![samples](samples.png)" in card.text
    parameters = zoo.from_pretrained(v1).num_parameters
    for fragment in ('zoo.from_pretrained("me/x", revision="v1")', "zoo sample me/x@v1",
                     "Science 2006", f"Parameters: {parameters:,}", 'family = "ae"'):
        assert fragment in card.text, fragment
    assert (v1 / "README.md").read_text() != text  # the local card is left as it was


def test_card_validation_rejects_what_the_hub_would():
    from zoo.testing.hubserver import card_errors

    assert card_errors({"library_name": "genzoo", "license": "mit", "tags": ["a"]}) == []
    assert card_errors({"license": "MIT License"})
    assert card_errors({"model-index": [{"name": "x", "results": [{"task": {}}]}]})
    assert card_errors({"pipeline_tag": "image-generation"})


# --------------------------------------------------------------------------- errors


def test_repo_not_found(hub, cli, tmp_path):
    r = cli("sample", "me/nothing", "-o", tmp_path / "g.png")
    assert_one_line_error(r, "repo not found: me/nothing", hub.url, "no local folder me/nothing")
    assert_one_line_error(cli("info", "me/nothing"), "repo not found: me/nothing")


def test_private_repo_is_not_found_for_others(hub, cli, v1, monkeypatch):
    assert cli("push", v1, "me/secret", "--private").code == 0
    assert zoo.from_pretrained("me/secret").repo_id == "me/secret"
    monkeypatch.setenv("HF_TOKEN", OTHER_TOKEN)
    assert_one_line_error(cli("info", "me/secret"), "repo not found: me/secret",
                          "a private repo needs a token")


def test_revision_not_found(hub, cli, v1):
    zoo.push(v1, "me/x")
    assert_one_line_error(cli("sample", "me/x@nope"), "revision 'nope' not found in me/x")
    with pytest.raises(HubError, match="revision 'nope' not found"):
        zoo.from_pretrained("me/x", revision="nope")
    assert_one_line_error(cli("pull", "me/x@nope"), "revision 'nope' not found")


def test_no_network_is_one_line_and_fast(cli, v1, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    start = time.perf_counter()
    r = cli("sample", "me/x", "-o", tmp_path / "g.png")
    assert_one_line_error(r, "cannot reach the Hub at http://127.0.0.1:9", "--offline",
                          "HF_HUB_OFFLINE=1")
    assert_one_line_error(cli("pull", "me/x"), "cannot reach the Hub")
    assert_one_line_error(cli("push", v1, "me/x"), "cannot reach the Hub")
    assert_one_line_error(cli("list", "--remote"), "cannot reach the Hub")
    assert time.perf_counter() - start < 10  # no retry loop (huggingface_hub's lasts ~23 s)


def test_not_authorised(hub, cli, v1, monkeypatch):
    repo_with(hub, "other/x", {"a.txt": b"a"}, token=OTHER_TOKEN)
    assert_one_line_error(cli("push", v1, "other/x"), "not authorised to push to other/x",
                          "403", "hf auth login")
    assert_one_line_error(cli("push", v1, "other/new"), "not authorised to push to other/new")
    monkeypatch.delenv("HF_TOKEN")
    assert_one_line_error(cli("push", v1, "me/x"), "not authorised to push to me/x", "401")
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    assert_one_line_error(cli("push", v1, "me/x"), "not authorised", "Invalid credentials")
    assert hub.commits_seen() == 1 and hub.log("other/x")[0]["title"] == "files"


def test_file_missing_from_the_repo(hub, cli, v1):
    files = {p: (v1 / p).read_bytes() for p in ("config.json", "README.md", "samples.png")}
    repo_with(hub, "me/broken", files)
    assert_one_line_error(cli("sample", "me/broken"), "file missing from me/broken@main",
                          "model.safetensors", "the repo has:")


def test_repo_of_another_library(hub, cli, v1):
    card = b"---\nlibrary_name: diffusers\ntags:\n- diffusers\n---\n# a UNet\n"
    repo_with(hub, "me/unet", {"README.md": card, "config.json": b'{"_class_name": "UNet2D"}',
                               "diffusion_pytorch_model.safetensors": b"x"})
    assert_one_line_error(cli("sample", "me/unet"), "me/unet@main holds a diffusers model",
                          "not a genzoo model")
    repo_with(hub, "me/plain", {"config.json": b'{"model_type": "bert"}',
                                "model.safetensors": (v1 / "model.safetensors").read_bytes()})
    assert_one_line_error(cli("info", "me/plain"), "me/plain holds no genzoo model",
                          "not a genzoo/1 config")
    assert_one_line_error(cli("pull", "me/unet"), "holds a diffusers model")


def test_push_needs_a_repo_id_and_a_branch(hub, cli, v1):
    assert_one_line_error(cli("push", v1), "no repo id", "hub.repo_id")
    assert_one_line_error(cli("push", v1, "me/x", "--revision", "a" * 40), "push to a branch")
    assert_one_line_error(cli("push", v1, "not a repo"), "not a Hub model id")
    assert hub.requests == []


# --------------------------------------------------------------------------- commands


def test_pull_to_the_cache_and_to_a_folder(hub, cli, v1, tmp_path):
    zoo.push(v1, "me/x")
    r = cli("pull", "me/x")
    assert r.code == 0, r.err
    cached = Path(r.out.strip())
    assert cached.name == hub.log("me/x")[0]["id"]
    assert (cached / "training_state" / "state.safetensors").is_file()  # everything
    local = tmp_path / "copy"
    r = cli("pull", "me/x@main", "--local-dir", local)
    assert r.code == 0 and Path(r.out.strip()) == local.resolve()
    assert torch.equal(zoo.from_pretrained(local).sample(2), zoo.from_pretrained(v1).sample(2))
    info = json.loads(cli("info", local, "--json").out)
    assert "model.safetensors" in info["files"] and not any(
        f.startswith(".") for f in info["files"])
    assert_one_line_error(cli("pull", "me/nothing", "--local-dir", tmp_path / "none"),
                          "repo not found")
    assert not list(tmp_path.glob("*none*"))  # nothing half-written, no temporary left


def test_info_and_sample_take_hub_ids(hub, cli, v1, tmp_path):
    zoo.push(v1, "me/x")
    info = json.loads(cli("info", "me/x", "--json").out)
    assert info["repo_id"] == "me/x" and info["commit"] == hub.log("me/x")[0]["id"]
    assert info["family"] == "ae" and "training_state/state.json" not in info["files"]
    r = cli("sample", "me/x", "-n", "4", "-o", tmp_path / "g.png")
    assert r.code == 0 and (tmp_path / "g.png").is_file()


def test_eval_of_a_hub_model_leaves_the_cache_as_downloaded(hub, cli, v1, tmp_path,
                                                           monkeypatch):
    import zoo.evaluation.evaluate
    import zoo.evaluation.extractor
    import zoo.evaluation.quality

    # The digit classifier is tested elsewhere; training it here would cost minutes.
    monkeypatch.setattr(zoo.evaluation.extractor, "load_extractor", lambda name: None)
    monkeypatch.setattr(zoo.evaluation.quality, "quality_metrics",
                        lambda *args, **kwargs: zoo.evaluation.quality.Quality({"fd": 1.0}, None))
    monkeypatch.setattr(zoo.evaluation.evaluate, "digit_class_metrics", lambda images: {})
    zoo.push(v1, "me/x")
    r = cli("eval", "me/x", "-n", "10", "--iwae-k", "2")
    assert r.code == 0, r.err
    assert "recon_mse" in r.out and "zoo pull me/x --local-dir" in r.err
    cached = download("me/x").path
    assert "eval" not in json.loads((cached / "metrics.json").read_text())
    fresh = api(hub).hf_hub_download("me/x", "README.md", cache_dir=tmp_path / "fresh")
    assert (cached / "README.md").read_text() == Path(fresh).read_text()


def test_push_replaces_the_files_in_one_commit_and_opens_pull_requests(hub, cli, v1):
    (v1 / "notes.png").write_bytes(b"not really a png")
    zoo.push(v1, "me/x")
    (v1 / "notes.png").unlink()
    shutil.rmtree(v1 / "training_state")
    zoo.push(v1, "me/x")
    assert "notes.png" not in api(hub).list_repo_files("me/x")
    assert "training_state/state.json" not in api(hub).list_repo_files("me/x")
    assert len(hub.log("me/x")) == 3 and hub.commits_seen() == 2
    (v1 / "notes.png").write_bytes(b"back again")
    r = cli("push", v1, "me/x", "--create-pr", "--message", "please")
    assert r.code == 0 and r.out.strip() == f"{hub.url}/me/x/discussions/1"
    assert hub.log("me/x", "refs/pr/1")[0]["title"] == "please"
    assert len(hub.log("me/x")) == 3  # main did not move


def test_named_model_maps_to_its_pinned_revision(hub, versions, tmp_path, monkeypatch):
    from zoo.core.registry import get_registry

    pinned = zoo.push(versions[0], "me/x").commit
    zoo.push(versions[1], "me/x")
    registry = tmp_path / "registry.toml"
    registry.write_text(f'[models.ae-tiny]\nfamily = "ae"\ndescription = "tiny"\n'
                        f'[models.ae-tiny.hub]\nrepo_id = "me/x"\nrevision = "{pinned}"\n'
                        f'[models.ae-local]\nfamily = "ae"\ndescription = "not published"\n')
    monkeypatch.setenv("ZOO_REGISTRY", str(registry))
    get_registry.cache_clear()
    try:
        model = zoo.from_pretrained("ae-tiny")
        assert model.commit == pinned
        assert same_weights(weights(model), weights(zoo.from_pretrained(versions[0])))
        with pytest.raises(HubError, match="'ae-local' is not published"):
            zoo.from_pretrained("ae-local")
        with pytest.raises(zoo.ZooError, match="did you mean 'ae-tiny'"):
            zoo.from_pretrained("ae-tiyn")
    finally:
        monkeypatch.delenv("ZOO_REGISTRY")
        get_registry.cache_clear()


def test_list_remote_shows_genzoo_models_without_importing_torch(hub, cli, v1):
    zoo.push(v1, "me/ae-small")
    zoo.push(v1, "me/other")
    repo_with(hub, "me/unet", {"README.md": b"---\nlibrary_name: diffusers\n---\n"})
    zoo.from_pretrained("me/ae-small")
    rows = json.loads(cli("list", "--remote", "--json").out)
    assert [r["id"] for r in rows] == ["me/ae-small", "me/other"]
    assert rows[0]["family"] == "ae" and rows[0]["downloads"] == 1
    rows = json.loads(cli("list", "--remote", "*small", "--json").out)
    assert [r["id"] for r in rows] == ["me/ae-small"]
    probe = ("import sys; from zoo.cli import main; sys.argv = ['zoo', 'list', '--remote'];\n"
             "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code\n"
             "assert 'torch' not in sys.modules, 'torch imported'")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "me/ae-small" in proc.stdout and "ae" in proc.stdout


def test_global_options_hold_for_one_command(hub, cli, v1, monkeypatch):
    zoo.push(v1, "me/x")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    r = cli("--endpoint", hub.url, "info", "me/x", "--json")
    assert r.code == 0 and json.loads(r.out)["repo_id"] == "me/x"
    assert_one_line_error(cli("--offline", "info", "me/y"), "not in the Hub cache",
                          "offline mode is on")
    assert not is_offline() and endpoint_url() == "http://127.0.0.1:9"
