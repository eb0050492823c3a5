"""Specs: validation messages, overrides, TOML round trip, schema (no torch needed)."""

from __future__ import annotations

import json
import tomllib

import pytest
from conftest import REPO

from zoo.api import resolve_spec
from zoo.core.errors import SpecError
from zoo.core.spec import apply_overrides, parse_override, spec_hash, to_toml, validate


def test_defaults_validate_and_required_keys_exist():
    _family, spec = resolve_spec("dcgan")
    assert spec.family == "dcgan" and spec.spec_version == 2
    for key in ("source", "image_size", "limit"):
        assert hasattr(spec.data, key)
    for key in ("max_steps", "epochs", "batch_size", "seed", "precision"):
        assert hasattr(spec.train, key)
    assert (spec.sample.n, spec.sample.seed) == (64, 0)


def test_unknown_key_names_path_and_suggests():
    with pytest.raises(SpecError, match=r"unknown key 'train\.batchsize'.*'train\.batch_size'"):
        resolve_spec("dcgan", None, ["train.batchsize=32"])
    with pytest.raises(SpecError, match=r"unknown key 'modle'.*'model'"):
        resolve_spec("dcgan", None, ["modle.latent_dim=3"])


def test_wrong_type_and_range_name_value_and_expectation():
    with pytest.raises(SpecError, match=r"'train\.batch_size' = 'many'.*valid integer"):
        resolve_spec("dcgan", None, ["train.batch_size=many"])
    with pytest.raises(SpecError, match=r"'train\.batch_size' = 0.*greater than or equal to 1"):
        resolve_spec("dcgan", None, ["train.batch_size=0"])
    with pytest.raises(SpecError, match=r"'train\.precision' = 'fp16'.*'fp32' or 'bf16'"):
        resolve_spec("dcgan", None, ["train.precision=fp16"])
    with pytest.raises(SpecError, match="DCGAN needs one of 8, 16, 32"):
        resolve_spec("dcgan", None, ["data.image_size=28"])


def test_override_values_are_parsed_as_toml():
    assert parse_override("train.lr=1e-3") == (["train", "lr"], 1e-3)
    assert parse_override("data.source=mnist5k") == (["data", "source"], "mnist5k")
    assert parse_override("train.fused_optimizer=false") == (["train", "fused_optimizer"], False)
    with pytest.raises(SpecError, match=r"KEY\.PATH=VALUE"):
        parse_override("train.lr")
    doc = apply_overrides({"train": {"seed": 1}}, ["train.seed=7", "data.limit=9"])
    assert doc == {"train": {"seed": 7}, "data": {"limit": 9}}


def test_max_steps_and_overrides_beat_spec_file(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('family = "dcgan"\n[train]\nepochs = 3\nseed = 5\n')
    _, spec = resolve_spec(None, f, ["train.seed=9"])
    assert (spec.train.epochs, spec.train.seed) == (3, 9)
    assert resolve_spec(None, f, ["train.max_steps=4"])[1].train.max_steps == 4


def test_missing_and_malformed_spec_files(tmp_path):
    with pytest.raises(SpecError, match="spec file not found"):
        resolve_spec("dcgan", tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nseed = 1\n")
    with pytest.raises(SpecError, match="not valid TOML"):
        resolve_spec("dcgan", bad)
    other = tmp_path / "other.toml"
    other.write_text('family = "vae"\n')
    with pytest.raises(SpecError, match="for family 'vae', not 'dcgan'"):
        resolve_spec("dcgan", other)


def test_newer_spec_version_is_refused():
    with pytest.raises(SpecError, match="spec_version 3 is newer"):
        resolve_spec("dcgan", None, ["spec_version=3"])


def test_printed_spec_round_trips():
    family, spec = resolve_spec("dcgan", None, ["data.limit=100", "train.lr=0.001"])
    text = to_toml(spec, "a header\nover two lines")
    again = validate(family.spec, tomllib.loads(text))
    assert again == spec and spec_hash(again) == spec_hash(spec)


def test_bundled_spec_file_is_the_named_model():
    _, from_file = resolve_spec("dcgan", REPO / "specs" / "dcgan-mnist.toml")
    _, named = resolve_spec("dcgan-mnist")
    assert from_file == named


def test_json_schema_describes_fields():
    family, _ = resolve_spec("dcgan")
    schema = family.spec.model_json_schema()
    text = json.dumps(schema)
    assert "latent_dim" in text and "Size of the noise vector z." in text
    assert schema["additionalProperties"] is False


def test_spec_is_frozen():
    _, spec = resolve_spec("dcgan")
    with pytest.raises(Exception, match="frozen"):
        spec.train.seed = 3
