"""Spec resolution holds up: overrides keep the family's defaults, hostile files and
option values are one line and exit 2, absurd values are bounded (no torch needed)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import tomli_w
from pydantic import model_validator

from zoo.api import resolve_spec
from zoo.core.errors import Interrupted, SpecError
from zoo.core.registry import get_family, get_registry
from zoo.core.spec import MAX_INT, MAX_STEPS

FAMILIES = sorted(get_registry().families)
MODELS = sorted(get_registry().models)


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.code == 2, (result.code, result.err[-2000:])
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err[-2000:]
    assert lines[0].startswith("error: ") and "Traceback" not in result.err
    assert len(lines[0]) < 1000, lines[0][:200]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def leaves(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a.b": value}`` for every key that is not a table."""
    out = {}
    for key, value in doc.items():
        if isinstance(value, dict):
            out.update(leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def as_override(key: str, value: Any) -> str:
    text = "null" if value is None else tomli_w.dumps({"v": value}).partition("=")[2].strip()
    return f"{key}={text}"


def resolved(name: str, *sets: str, spec_file=None) -> dict[str, Any]:
    return resolve_spec(name, spec_file, list(sets))[1].model_dump(mode="json")


# --------------------------------------------------------------------------- 1: key by key


def test_a_limit_override_keeps_the_vae_image_size(cli):
    """The issue's case: ``--set data.limit=64`` used to reset data.image_size to 32."""
    assert resolved("vae")["data"]["image_size"] == 28
    doc = resolved("vae", "data.limit=64")
    assert (doc["data"]["image_size"], doc["data"]["limit"]) == (28, 64)
    r = cli("build", "vae", "--set", "data.limit=64", "--dry-run")
    assert r.code == 0 and "image_size = 28" in r.out


@pytest.mark.parametrize("family", FAMILIES)
def test_overriding_one_key_keeps_every_other_key(family, tmp_path):
    """Setting any one key, by --set or in a spec file, leaves every other key as it was."""
    default = resolved(family)
    values = leaves(default)
    for key, value in values.items():
        if key in ("family", "spec_version"):
            continue
        # the key set to its own value: nothing at all may change
        assert resolved(family, as_override(key, value)) == default, key
        section, _, name = key.rpartition(".")
        f = tmp_path / "one.toml"
        f.write_text(f"[{section}]\n{tomli_w.dumps({name: value})}" if value is not None
                     and section else "")
        assert resolved(family, spec_file=f) == default, key


@pytest.mark.parametrize("name", MODELS)
def test_named_models_keep_their_family_defaults(name):
    """A named model's overrides are merged onto the family's defaults, key by key."""
    named = get_registry().models[name]
    family_doc = resolved(named.family)
    doc = resolved(name)
    given = leaves(named.spec)
    for key, value in leaves(family_doc).items():
        expected = given.get(key, value)
        assert leaves(doc)[key] == expected, (key, leaves(doc)[key], expected)
    # and an override on the named model keeps its other keys
    assert leaves(resolved(name, "sample.seed=3")) == {**leaves(doc), "sample.seed": 3}


def test_one_layer_autoencoders_keep_their_learning_rate():
    """A [train] override used to rebuild the section and drop the family's lr of 3e-3 to
    the class default 1e-3; the named models pin 1e-3, the rate their figures were made at."""
    for family in ("ae", "sparse-ae", "denoising-ae", "contractive-ae"):
        assert resolved(family)["train"]["lr"] == 0.003
        assert resolved(family, "train.epochs=30")["train"]["lr"] == 0.003
        assert resolved(f"{family}-mnist")["train"]["lr"] == 0.001


def test_null_unsets_an_optional_key_and_a_section_cannot_be_null():
    assert resolved("dcgan", "data.limit=5", "data.limit=null")["data"]["limit"] is None
    with pytest.raises(SpecError, match="'data' = None"):
        resolve_spec("dcgan", None, ["data=null"])
    with pytest.raises(SpecError, match="cannot change the family"):
        resolve_spec("dcgan", None, ["family=vae"])
    with pytest.raises(SpecError, match="spec_version 3 is newer"):
        resolve_spec("dcgan", None, ["spec_version=3"])


def test_conformance_tiny_builds_use_the_family_data():
    from zoo.testing.conformance import tiny_overrides

    for name in FAMILIES:
        record = get_registry().families[name]
        doc = resolved(name, *tiny_overrides(record))
        assert doc["data"]["image_size"] == resolved(name)["data"]["image_size"], name


# --------------------------------------------------------------------------- 2: hostile files


def test_invalid_utf8_is_one_line(cli, tmp_path):
    f = tmp_path / "bad.toml"
    f.write_bytes(b'family = "dcgan"\n[train]\nprecision = "\xff\xfe"\n')
    assert_one_line_error(cli("build", "--spec", f, "--dry-run"), "not UTF-8", "0xff")


@pytest.mark.parametrize("suffix,text", [
    (".toml", "a = " + "[" * 5000 + "]" * 5000),
    (".toml", "a = " + "{b = " * 5000 + "1" + "}" * 5000),
    (".json", "[" * 5000 + "]" * 5000),
    (".json", '{"a": ' * 5000 + "1" + "}" * 5000),
], ids=["toml-arrays", "toml-tables", "json-arrays", "json-objects"])
def test_deep_nesting_is_one_line(cli, tmp_path, suffix, text):
    f = tmp_path / f"deep{suffix}"
    f.write_text(text)
    assert_one_line_error(cli("build", "dcgan", "--spec", f, "--dry-run"), "nested deeper")


def test_deep_overrides_are_one_line(cli):
    r = cli("build", "dcgan", "--set", "model.x=" + "[" * 5000, "--dry-run")
    assert_one_line_error(r, "nested deeper")
    r = cli("build", "dcgan", "--set", "a." * 5000 + "a=1", "--dry-run")
    assert_one_line_error(r, "nested deeper")


def test_a_huge_data_path_is_one_line(cli, tmp_path):
    f = tmp_path / "long.toml"
    f.write_text('[data]\nsource = "folder"\npath = "' + "a" * 100_000 + '"\n')
    assert_one_line_error(cli("build", "dcgan", "--spec", f, "--dry-run"), "data.path")
    # under the string limit, but no file system takes it: refused before it is probed
    for path in ("a" * 4000, "é/" * 2100):
        r = cli("build", "dcgan", "--set", "data.source=folder", "--set", f"data.path={path}",
                "--out", tmp_path / "out")
        assert_one_line_error(r, "data.path")
    assert not (tmp_path / "out").exists()


def test_other_unreadable_documents_are_one_line(cli, tmp_path):
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * (1 << 20) + "\n")
    assert_one_line_error(cli("build", "dcgan", "--spec", big, "--dry-run"), "1,048,576 bytes")
    surrogate = tmp_path / "s.json"
    surrogate.write_text('{"data": {"source": "\\ud800"}}')
    assert_one_line_error(cli("build", "dcgan", "--spec", surrogate, "--dry-run"),
                          "not valid Unicode")
    huge_int = tmp_path / "i.json"
    huge_int.write_text('{"train": {"seed": ' + "9" * 5000 + "}}")
    assert_one_line_error(cli("build", "dcgan", "--spec", huge_int, "--dry-run"))
    nan = tmp_path / "nan.json"
    nan.write_text('{"train": {"ema_decay": NaN}}')
    assert_one_line_error(cli("build", "dcgan", "--spec", nan, "--dry-run"), "finite")
    newline_key = tmp_path / "k.json"
    newline_key.write_text('{"train": {"a\\nb": 1}}')
    assert_one_line_error(cli("build", "dcgan", "--spec", newline_key, "--dry-run"),
                          "unknown key")


def test_a_spec_path_that_is_no_regular_file_is_one_line(cli, tmp_path):
    """A folder, a FIFO (never opened: reading it would block) or a device: "not a regular
    file", not "not found"."""
    import os

    os.mkfifo(tmp_path / "fifo.toml")
    for path in (tmp_path, tmp_path / "fifo.toml", "/dev/zero"):
        assert_one_line_error(cli("build", "dcgan", "--spec", path, "--dry-run"),
                              f"spec file {path} is not a regular file")


# --------------------------------------------------------------------------- 3: CLI options


@pytest.mark.parametrize("args,option", [
    (["sample", "m", "-n", "0"], "-n"),
    (["sample", "m", "-n", "-1"], "-n"),
    (["sample", "m", "-n", "abc"], "-n"),
    (["sample", "m", "--seed", "-1"], "--seed"),
    (["sample", "m", "--seed", str(2**63)], "--seed"),
    (["sample", "m", "--nrow", "0"], "--nrow"),
    (["sample", "m", "--batch-size", "0"], "--batch-size"),
    (["build", "dcgan", "--processes", "0"], "--processes"),
    (["build", "dcgan", "--no-such-option"], "--no-such-option"),
    (["sample"], "path"),
    (["no-such-command"], "no-such-command"),
])
def test_bad_option_values_are_one_line(cli, args, option):
    r = cli(*args)
    assert_one_line_error(r, option)
    assert "╭" not in r.err + r.out and "Usage:" not in r.err


def test_help_still_prints_help(cli):
    for args in (["--help"], ["build", "--help"], ["plugin", "check", "--help"]):
        r = cli(*args)
        assert r.code == 0 and "Usage" in r.out, (args, r)
    r = cli()  # no arguments: the help, exit 2 (click's no_args_is_help)
    assert r.code == 2 and "Usage" in r.out and "error" not in r.err


def test_interrupts_exit_130(cli, monkeypatch):
    import zoo.model

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(zoo.model, "resolve_spec", interrupted)
    assert cli("spec", "dcgan").code == 130

    def stopped(*args, **kwargs):
        raise Interrupted("interrupted at step 3 of 9")

    monkeypatch.setattr(zoo.model, "resolve_spec", stopped)
    r = cli("spec", "dcgan")
    assert r.code == 130 and r.err.strip() == "error: interrupted at step 3 of 9"


# --------------------------------------------------------------------------- 4: bounds


@pytest.mark.parametrize("override,fragment", [
    ("train.max_steps=1e26", "train.max_steps"),
    (f"train.max_steps={MAX_STEPS + 1}", "train.max_steps"),
    ("train.epochs=10000000", "train.epochs"),
    (f"train.seed={2**63}", "train.seed"),
    (f"sample.seed={2**63}", "sample.seed"),
    (f"train.seed={2**70}", "train.seed"),
    ("run.checkpoint_every=100000000000", "run.checkpoint_every"),
    ("hub.repo_id=" + "a" * 2_000_000, "hub.repo_id"),
    ("hub.repo_id=me/" + "a" * 94, "hub.repo_id"),
    ("hub.repo_id=no-namespace", "hub.repo_id"),
    ("hub.repo_id='me/a b'", "hub.repo_id"),
    ("hub.revision=" + "v" * 300, "hub.revision"),
    ('hub.revision="a\\nb"', "hub.revision"),
    ("train.ema_decay=nan", "train.ema_decay"),
    ("data.source=" + "x" * 4100, "data.source"),
], ids=lambda v: v[:40])
def test_absurd_values_are_refused(override, fragment):
    with pytest.raises(SpecError) as info:
        resolve_spec("dcgan", None, [override])
    message = str(info.value)
    assert fragment in message and "\n" not in message and len(message) < 1000


@pytest.mark.parametrize("family", ["ae", "dedup-ae", "vae"])
def test_bounds_hold_where_a_family_redeclares_the_field(family):
    """AETrain and DedupTrain redeclare train.epochs without a bound; the shared one holds."""
    with pytest.raises(SpecError, match=r"train\.epochs"):
        resolve_spec(family, None, ["train.epochs=10000000"])


def test_the_largest_allowed_values_still_validate():
    doc = resolved("dcgan", f"train.max_steps={MAX_STEPS}", f"train.seed={MAX_INT}",
                   f"sample.seed={MAX_INT}", "hub.repo_id=me/" + "a" * 93,
                   "hub.revision=refs/pr/1")
    assert doc["train"]["max_steps"] == MAX_STEPS and doc["hub"]["repo_id"].startswith("me/")
    json.dumps(doc)  # stays plain data


# --------------------------------------------------------------------------- last: example plugin


def test_example_families_keep_their_data_under_overrides(nonparametric, tmp_path):
    """texture/inpaint/superres set their data section with default_factory (the pattern
    docs/writing-a-plugin.md teaches); the conformance kit's tiny build used to get
    mnist5k at 32x32 instead. Last in the module: the fixture loads the example plugin."""
    from zoo.testing.conformance import tiny_overrides

    for name in ("texture", "inpaint", "superres"):
        record = get_registry().families[name]
        default = resolved(name)
        assert default["data"]["source"] != "mnist5k"
        tiny = resolved(name, *tiny_overrides(record))
        assert {k: v for k, v in tiny["data"].items() if k != "limit"} == {
            k: v for k, v in default["data"].items() if k != "limit"}, name
        f = tmp_path / "seed.toml"
        f.write_text("[train]\nseed = 3\n[data]\nlimit = 10\n")
        doc = resolved(name, spec_file=f)
        assert doc["data"] == {**default["data"], "limit": 10}
        assert doc["train"] == {**default["train"], "seed": 3}


def test_a_spec_validator_that_breaks_is_one_line(monkeypatch):
    """A family's model validator raising something pydantic does not wrap (TypeError)."""
    from zoo.core.errors import ZooError
    from zoo.core.spec import validate

    record = get_registry().families["dcgan"]

    class Broken(record.spec):
        @model_validator(mode="after")
        def _broken(self):
            raise TypeError("unsupported operand\nsecond line")

    with pytest.raises(ZooError, match="Broken failed on this spec: TypeError") as info:
        validate(Broken, {"family": "dcgan"})
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("repo_id", ["me/ok-1.2", "me/a\u00fc", "me/a..b", "me/x.git", "me",
                                     "a/b/c", "x" * 48 + "/" + "y" * 48, "x" * 48 + "/" + "y" * 47])
def test_the_spec_and_the_hub_share_one_repo_id_rule(repo_id):
    """A spec's hub.repo_id validates exactly when push and loading take it as a Hub id."""
    from zoo.core.errors import SpecError
    from zoo.core.spec import validate
    from zoo.hub import is_repo_id as hub_rule

    family = get_family("dcgan")
    try:
        validate(family.spec, {"family": "dcgan", "hub": {"repo_id": repo_id}})
        accepted = True
    except SpecError:
        accepted = False
    assert accepted == hub_rule(repo_id)
