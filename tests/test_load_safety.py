"""Loading a damaged or hostile model folder: one line and exit 2, never a traceback, and
nothing written into it; the sha256 of the weights recorded and checked."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from test_errors import assert_one_line_error

import zoo
from zoo.artifact import (
    CHECKSUMS,
    CONFIG,
    METRICS,
    TRAINING_STATE,
    WEIGHTS,
    ArtifactError,
    read_json,
    record_checksums,
    verify_folder,
    weights_metadata,
)
from zoo.core.errors import HubError


@pytest.fixture
def model(micro_dcgan: Path, tmp_path: Path) -> Path:
    """A copy of the micro DCGAN folder that a test may damage."""
    return Path(shutil.copytree(micro_dcgan, tmp_path / "model"))


def split(path: Path) -> tuple[dict, bytes]:
    """The header (parsed) and the tensor bytes of a safetensors file."""
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def write_split(path: Path, header: dict | bytes, body: bytes) -> None:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + body)


def edit_header(path: Path, edit: Callable[[dict], None]) -> None:
    header, body = split(path)
    edit(header)
    write_split(path, header, body)


def resave(folder: Path, change: Callable[[dict[str, torch.Tensor]], None],
           metadata: dict[str, str] | None = None) -> None:
    """Rewrite model.safetensors with changed tensors, keeping (or replacing) its metadata."""
    path = folder / WEIGHTS
    state = load_file(str(path))
    change(state)
    with open(path, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        kept = json.loads(fh.read(n)).get("__metadata__")
    save_file(state, str(path), metadata=metadata if metadata is not None else kept)


def first_float(header: dict) -> str:
    return next(k for k, v in header.items() if k != "__metadata__" and v["dtype"] == "F32")


def test_a_fresh_folder_records_and_passes_its_checksums(model, cli):
    recorded = read_json(model / CONFIG)[CHECKSUMS]
    assert set(recorded) == {WEIGHTS, f"{TRAINING_STATE}/state.safetensors"}
    verify_folder(model)
    r = cli("info", model, "--verify")
    assert r.code == 0 and "sha256 verified" in r.out, r.err


# --------------------------------------------------------------------------- 10: dtypes


def test_float64_weights_are_refused(model, cli):
    resave(model, lambda s: s.update({k: v.double() for k, v in s.items()
                                      if v.is_floating_point()}))
    assert_one_line_error(cli("sample", model, "-n", "2", "-o", model.parent / "g.png"),
                          "wrong dtype", "F64 vs F32")
    with pytest.raises(ArtifactError, match="wrong dtype"):
        zoo.from_pretrained(model)


def test_a_dtype_changed_in_the_header_is_refused(model, cli):
    def to_int(header: dict) -> None:
        header[first_float(header)]["dtype"] = "I32"  # same byte size, offsets still fit

    edit_header(model / WEIGHTS, to_int)
    assert_one_line_error(cli("sample", model, "-n", "2", "-o", model.parent / "g.png"),
                          "wrong dtype", "I32 vs F32")
    assert_one_line_error(cli("eval", model, "-n", "10"), "wrong dtype")


# --------------------------------------------------------------------------- 11: header sanity


@pytest.mark.parametrize("damage", ["unknown dtype", "overlapping offsets"])
def test_a_header_safetensors_would_reject_is_one_line(model, cli, damage):
    def edit(header: dict) -> None:
        names = sorted((v["data_offsets"], k) for k, v in header.items() if k != "__metadata__")
        if damage == "unknown dtype":
            header[names[0][1]]["dtype"] = "F33"
        else:  # the second tensor starts inside the first; the total length is kept
            (a0, _), _ = names[0]
            (b0, b1), second = names[1]
            header[second]["data_offsets"] = [a0, a0 + (b1 - b0)]

    edit_header(model / WEIGHTS, edit)
    r = cli("sample", model, "-n", "2", "-o", model.parent / "g.png")
    assert_one_line_error(r, "corrupt", "unknown dtype" if damage == "unknown dtype" else "byte")
    with pytest.raises(ArtifactError):
        zoo.from_pretrained(model)


def test_a_shape_that_overflows_64_bits_is_refused(model, cli):
    """Python's integers never overflow, the safetensors library's do: a shape whose product
    passes 2**64 before a 0 dimension (an empty tensor to Python) is a file that library
    cannot open, so ``info --verify`` and push must not pass it (training state included)."""
    state = model / TRAINING_STATE / "state.safetensors"

    def edit(header: dict) -> None:
        end = max(v["data_offsets"][1] for k, v in header.items() if k != "__metadata__")
        header["zz.empty"] = {"dtype": "F32", "shape": [1 << 40, 1 << 40, 0],
                              "data_offsets": [end, end]}

    edit_header(state, edit)
    record_checksums(model)
    assert_one_line_error(cli("info", model, "--verify"), "state.safetensors", "overflows 64 bits")


# --------------------------------------------------------------------------- 12: caps


def test_deeply_nested_config_json_is_one_line(model, cli):
    (model / CONFIG).write_text("[" * 200_000)
    assert_one_line_error(cli("info", model), "nested more than")
    assert_one_line_error(cli("sample", model, "-o", model.parent / "g.png"), "nested more than")


def test_deeply_nested_safetensors_header_is_one_line(model, cli):
    _, body = split(model / WEIGHTS)
    write_split(model / WEIGHTS, b"[" * 200_000, body)
    assert_one_line_error(cli("info", model), "nested more than")
    assert_one_line_error(cli("sample", model, "-o", model.parent / "g.png"), "nested more than")


def test_a_huge_config_json_is_refused(model, cli):
    config = read_json(model / CONFIG)
    config["padding"] = "x" * (2 << 20)
    (model / CONFIG).write_text(json.dumps(config))
    assert_one_line_error(cli("info", model), "larger than the 1,048,576 bytes")


def test_deeply_nested_training_state_json_is_one_line(model, cli):
    from conftest import MICRO

    (model / TRAINING_STATE / "state.json").write_text("[" * 200_000)
    sets = [a for s in [*MICRO, "train.precision=fp32", "train.max_steps=21"] for a in ("--set", s)]
    r = cli("build", "dcgan", *sets, "--out", model, "--resume", "--quiet")
    assert_one_line_error(r, "state.json", "nested more than")


def test_hub_config_check_survives_deep_json(tmp_path):
    from zoo.hub import _check_config

    (tmp_path / CONFIG).write_text("{\"a\":" * 100_000)
    with pytest.raises(HubError, match="holds no genzoo model"):
        _check_config(tmp_path, "me/deep")


@pytest.mark.parametrize("text", ["[]", "[1, 2]", '"scores"', "null"])
def test_metrics_json_that_is_not_an_object_is_one_line(model, cli, text):
    """A tampered or hostile metrics.json (a Hub repo's is downloaded with the model):
    ``info`` prints it, ``push`` and ``eval`` render the card from it."""
    (model / METRICS).write_text(text)
    assert_one_line_error(cli("info", model), "metrics.json", "not a JSON object")
    with pytest.raises(ArtifactError, match="not a JSON object"):
        zoo.from_pretrained(model).metrics  # noqa: B018


def test_an_error_naming_a_repos_values_sends_no_escape_sequences(hub, cli):
    from test_hub import repo_with

    card = b'---\nlibrary_name: "x\\e]0;pwned\\a\\e[2J"\n---\n'  # YAML escapes: ESC, BEL
    repo_with(hub, "me/odd", {"README.md": card, "config.json": b"{}",
                              "model.safetensors": b"x"})
    r = cli("info", "me/odd")
    assert_one_line_error(r, "holds a x\\x1b]0;pwned\\x07")
    assert "\x1b" not in r.err and "\x07" not in r.err


def test_a_visualize_index_with_odd_entries_still_lists_the_images(model, cli):
    (model / "visualize").mkdir()
    (model / "visualize" / "filters.png").write_bytes((model / "samples.png").read_bytes())
    (model / "visualize" / "index.json").write_text('{"filters.png": 1}')
    r = cli("info", model)
    assert r.code == 0, r.err
    assert "visualization: visualize/filters.png (filters)" in r.out


def test_a_config_whose_parameter_count_is_not_a_number_is_one_line(hub, model, cli):
    for value in ("many", 1.5, -1, None, [1]):
        config = read_json(model / CONFIG)
        config["parameters"] = value  # outside the spec: no hash covers it
        (model / CONFIG).write_text(json.dumps(config))
        assert_one_line_error(cli("push", model, "me/x"), "'parameters' is not a number")
        metrics = (model / METRICS).read_bytes()
        assert_one_line_error(cli("eval", model, "-n", "10"), "'parameters' is not a number")
        assert (model / METRICS).read_bytes() == metrics  # refused before scoring, not after
    assert hub.requests == []


def test_info_prints_a_folders_strings_as_they_are(model, cli):
    """Strings from a downloaded config or metrics.json are never rich markup, and terminal
    escape sequences in them are shown escaped, not sent to the terminal."""
    hostile = "[bold red]x[/] \x1b]0;pwned\x07\x1b[2J"
    config = read_json(model / CONFIG)
    config["genzoo_version"] = hostile  # outside the spec: no hash covers it
    (model / CONFIG).write_text(json.dumps(config))
    (model / METRICS).write_text(json.dumps({"eval": {"[link=http://x]note[/link]": 1}}))
    r = cli("info", model)
    assert r.code == 0, r.err
    assert "\x1b" not in r.out and "\x07" not in r.out
    assert "[bold red]x[/]" in r.out and "\\x1b]0;pwned" in r.out
    assert "[link=http://x]note[/link]" in r.out


# --------------------------------------------------------------------------- 13: content


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01  # inside the last tensor's data
    path.write_bytes(bytes(data))


def test_a_flipped_weights_byte_is_found_by_info_verify_and_eval(model, cli):
    flip_a_byte(model / WEIGHTS)
    metrics = (model / METRICS).read_bytes()
    assert_one_line_error(cli("info", model, "--verify"), "do not match the sha256")
    assert_one_line_error(cli("eval", model, "-n", "10"), "do not match the sha256")
    assert (model / METRICS).read_bytes() == metrics  # nothing written into the damaged folder
    with pytest.raises(ArtifactError, match="sha256"):
        verify_folder(model)


def test_a_flipped_training_state_byte_is_found(model):
    flip_a_byte(model / TRAINING_STATE / "state.safetensors")
    with pytest.raises(ArtifactError, match=r"state\.safetensors: contents do not match"):
        verify_folder(model)


@pytest.mark.parametrize("digest", ["zz", "", "0" * 63, "g" * 64, " " + "0" * 64])
def test_a_recorded_sha256_that_is_no_sha256_is_named(model, cli, digest):
    """Not "contents do not match" (the file is fine): the record itself is malformed."""
    config = read_json(model / CONFIG)
    config[CHECKSUMS][WEIGHTS] = digest
    (model / CONFIG).write_text(json.dumps(config))
    assert_one_line_error(cli("info", model, "--verify"),
                          "'sha256' is not a map of weights files to sha256")


def test_an_unrecorded_weights_file_is_refused(model):
    state = model / TRAINING_STATE
    shutil.copy(state / "state.safetensors", state / "x.safetensors")
    with pytest.raises(ArtifactError, match="not among the files"):
        verify_folder(model)


def test_a_folder_without_checksums_still_loads_unverified(model, cli):
    config = read_json(model / CONFIG)
    del config[CHECKSUMS]
    (model / CONFIG).write_text(json.dumps(config))
    zoo.from_pretrained(model)
    verify_folder(model)
    r = cli("info", model, "--verify")
    assert r.code == 0 and "sha256 unverified" in r.out, r.err


# --------------------------------------------------------------------------- 14: zoo info


def rename_tensor(folder: Path) -> None:
    edit_header(folder / WEIGHTS, lambda h: h.update({"renamed": h.pop(first_float(h))}))


def drop_metadata(folder: Path) -> None:
    edit_header(folder / WEIGHTS, lambda h: h.pop("__metadata__"))


def other_family_weights(folder: Path) -> None:
    meta = weights_metadata("ae", read_json(folder / CONFIG)["spec_hash"])
    resave(folder, lambda s: None, meta)


def other_family_config(folder: Path) -> None:
    from zoo.core.spec import document_hash

    config = read_json(folder / CONFIG)
    config["spec"] = {"family": "ae", "spec_version": config["spec"]["spec_version"]}
    config["spec_hash"] = document_hash(config["spec"])
    (folder / CONFIG).write_text(json.dumps(config))


def wrong_dtype(folder: Path) -> None:
    edit_header(folder / WEIGHTS, lambda h: h[first_float(h)].update(dtype="I32"))


def edited_spec_with_recomputed_hash(folder: Path) -> None:
    from zoo.core.spec import document_hash

    config = read_json(folder / CONFIG)
    config["spec"]["model"]["latent_dim"] += 1
    config["spec_hash"] = document_hash(config["spec"])
    (folder / CONFIG).write_text(json.dumps(config))


@pytest.mark.parametrize(("damage", "says"), [
    (rename_tensor, "missing"), (drop_metadata, "not a genzoo weights file"),
    (other_family_weights, "holds 'ae' weights"), (other_family_config, "holds 'dcgan' weights"),
    (wrong_dtype, "wrong dtype"), (edited_spec_with_recomputed_hash, "wrong shape"),
], ids=lambda v: getattr(v, "__name__", ""))
def test_info_says_what_is_wrong(model, cli, damage, says):
    damage(model)
    assert_one_line_error(cli("info", model), says)
    with pytest.raises(ArtifactError, match=says):
        zoo.from_pretrained(model)


# --------------------------------------------------------------------------- 15: non-finite


def nan_weights(folder: Path) -> None:
    """A model that trained into NaN: consistent files (checksums recorded after)."""
    resave(folder, lambda s: s[first_float(split(folder / WEIGHTS)[0])].view(-1).__setitem__(
        0, float("nan")))
    record_checksums(folder)


def test_nan_weights_warn_at_sample_and_fail_eval(model, cli):
    nan_weights(model)
    verify_folder(model)  # the files are what was written: only the values are bad
    r = cli("sample", model, "-n", "2", "-o", model.parent / "g.png")
    assert r.code == 0, r.err
    warnings = r.err.strip().splitlines()
    assert len(warnings) == 1 and warnings[0].startswith("warning: ") and "non-finite" in r.err
    metrics = (model / METRICS).read_bytes()
    assert_one_line_error(cli("eval", model, "-n", "10"), "non-finite weights")
    assert (model / METRICS).read_bytes() == metrics


# --------------------------------------------------------------------------- 16: data paths


def with_data_path(folder: Path, data_path: Path) -> None:
    """Point the spec's data at an image folder, keeping the folder consistent."""
    from zoo.core.spec import document_hash

    config = read_json(folder / CONFIG)
    config["spec"]["data"].update(source="folder", path=str(data_path), channels=1)
    config["spec_hash"] = document_hash(config["spec"])
    (folder / CONFIG).write_text(json.dumps(config))
    resave(folder, lambda s: None, weights_metadata("dcgan", config["spec_hash"]))
    record_checksums(folder)


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """A folder of a few PNGs, standing in for private files on the user's machine."""
    from zoo.sampling.sample import save_png

    folder = tmp_path / "private"
    folder.mkdir()
    for i in range(4):
        save_png(torch.full((1, 16, 16), i / 4), folder / f"{i}.png")
    return folder


def test_a_hub_models_data_path_is_never_followed(hub, model, images, cli, tmp_path):
    with_data_path(model, images)
    zoo.push(model, "me/pathy")
    out = tmp_path / "vis"
    r = cli("visualize", "deconv", "me/pathy", "--module", "classifier", "-o", out)
    assert_one_line_error(r, "came from the Hub", "never followed", "--data")
    assert not out.exists()
    pulled = zoo.hub.pull("me/pathy", local_dir=tmp_path / "pulled").path
    assert_one_line_error(cli("eval", pulled, "-n", "10"), "never followed")


@pytest.mark.parametrize("source", ["wds:{PRIVATE}/shard-{{000000..000001}}.tar",
                                    "wds:https://example.org/s-{{0..3}}.tar", "hf:{PRIVATE}"])
def test_a_hub_models_data_source_naming_files_is_never_followed(hub, model, images, cli,
                                                                  tmp_path, source):
    """A data source can name files too (shards, a saved data set): not followed either."""
    from zoo.core.spec import document_hash

    config = read_json(model / CONFIG)
    config["spec"]["data"].update(source=source.format(PRIVATE=images), channels=1)
    config["spec_hash"] = document_hash(config["spec"])
    (model / CONFIG).write_text(json.dumps(config))
    resave(model, lambda s: None, weights_metadata("dcgan", config["spec_hash"]))
    record_checksums(model)
    zoo.push(model, "me/sourcey")
    pulled = zoo.hub.pull("me/sourcey", local_dir=tmp_path / "pulled").path
    assert_one_line_error(cli("eval", pulled, "-n", "10"), "data.source", "never followed")


def test_a_snapshot_in_another_hub_cache_is_a_hub_model(hub, model, images, cli, tmp_path):
    """Downloaded with ``cache_dir=`` (not the default cache), then loaded by its path."""
    with_data_path(model, images)
    zoo.push(model, "me/pathy")
    snapshot = zoo.from_pretrained("me/pathy", cache_dir=tmp_path / "my-cache").path
    assert not snapshot.is_relative_to(tmp_path / "hf-cache")
    out = tmp_path / "vis"
    r = cli("visualize", "deconv", snapshot, "--module", "classifier", "-o", out)
    assert_one_line_error(r, "came from the Hub", "never followed", "--data")
    assert not out.exists()


def test_a_local_folders_own_data_path_is_followed(model, images):
    from zoo.visualize.deconv import load_data
    from zoo.visualize.targets import resolve_target

    with_data_path(model, images)
    loaded = zoo.from_pretrained(model)
    target = resolve_target(loaded, "model", probe=False)
    assert len(load_data(loaded, target, None, 10)) > 0
