"""Random spec documents and ``--set`` values for every family: the only outcomes are a
valid spec or a one-line ``ZooError`` (exit 2 through the CLI), never another exception."""

from __future__ import annotations

import json
import tomllib

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from zoo.api import resolve_spec
from zoo.core.errors import ZooError
from zoo.core.registry import get_registry
from zoo.core.spec import Spec, spec_hash, to_toml, validate

FAMILIES = sorted(get_registry().families)
SECTIONS = ["model", "data", "train", "sample", "hub"]


def _field_names(model: type[BaseModel], out: set[str]) -> set[str]:
    for name, field in model.model_fields.items():
        out.add(name)
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            _field_names(field.annotation, out)
    return out


REAL_KEYS = sorted(set().union(*(_field_names(r.spec, set())
                                 for r in get_registry().families.values())))
REAL_WORDS = ["mnist5k", "digits", "folder", "torchvision:MNIST", "fp32", "bf16", "auto",
              "cuda", "static", "dynamic", "ddim", "ddpm", "sigmoid", "mse", "me/model", "main",
              "mit", *FAMILIES]

keys = st.one_of(st.sampled_from(REAL_KEYS), st.sampled_from(SECTIONS),
                 st.text(min_size=1, max_size=12))
scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1, 2, 3, 7, 8, 16, 28, 32, 64, 2**31, 2**63 - 1, 2**63, 10**26]),
    st.floats(),  # nan and infinities included
    st.sampled_from([0.0, 0.5, 1.0, 1e-3, 1e26, -0.0]),
    st.text(max_size=16),
    st.sampled_from(REAL_WORDS),
    st.dates(),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)
sections = st.dictionaries(st.one_of(st.sampled_from(REAL_KEYS), keys), values, max_size=5)
documents = st.dictionaries(
    st.one_of(st.sampled_from([*SECTIONS, "family", "spec_version"]), keys),
    st.one_of(sections, values, st.sampled_from(FAMILIES), st.sampled_from([1, 2, 0])),
    max_size=5,
)


@st.composite
def overrides(draw) -> str:
    """``a.b=v`` with real and junk keys, TOML values and raw text."""
    path = draw(st.lists(keys, min_size=1, max_size=3))
    if draw(st.booleans()):
        path = [draw(st.sampled_from(SECTIONS)), *path[:2]]
    value = draw(st.one_of(
        values.map(lambda v: tomli_w.dumps({"v": v}).partition("=")[2].strip()),
        st.text(max_size=20),
        st.just("null"),
    ))
    return ".".join(path) + "=" + value


def check(family: str | None, spec_file, sets: list[str]) -> None:
    """The property: a valid, printable, hashable spec, or a one-line ZooError."""
    try:
        record, spec = resolve_spec(family, spec_file, sets)
    except ZooError as exc:
        message = str(exc)
        assert message and "\n" not in message and "\r" not in message, message
        assert len(message) < 2000, message[:300]
        return
    assert isinstance(spec, Spec) and spec.family == record.name
    spec_hash(spec)
    assert validate(record.spec, tomllib.loads(to_toml(spec))) == spec  # dry-run output


FUZZ = settings(max_examples=12, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])


def dump(doc: dict, suffix: str) -> str:
    """TOML, or JSON (where a ``null`` can also appear: the one value TOML lacks)."""
    if suffix == ".toml":
        return tomli_w.dumps(doc)
    return json.dumps(doc, default=lambda v: None)  # dates become null


@pytest.mark.parametrize("family", FAMILIES)
@FUZZ
@given(doc=documents, sets=st.lists(overrides(), max_size=3), by_name=st.booleans(),
       suffix=st.sampled_from([".toml", ".json"]))
def test_random_documents_and_overrides(family, doc, sets, by_name, suffix, tmp_path):
    if not by_name:  # the family comes from the file (which may name none, or another)
        doc.setdefault("family", family)
    f = tmp_path / f"fuzz{suffix}"
    f.write_text(dump(doc, suffix), encoding="utf-8")
    check(family if by_name else None, f, sets)


@pytest.mark.parametrize("family", FAMILIES)
@settings(FUZZ, max_examples=10)
@given(sets=st.lists(overrides(), min_size=1, max_size=4))
def test_random_overrides_alone(family, sets):
    check(family, None, sets)


@settings(FUZZ, max_examples=60)
@given(family=st.sampled_from(FAMILIES), data=st.binary(max_size=300),
       suffix=st.sampled_from([".toml", ".json"]))
def test_random_bytes(family, data, suffix, tmp_path):
    f = tmp_path / f"bytes{suffix}"
    f.write_bytes(data)
    check(family, f, [])


@settings(FUZZ, max_examples=15)
@given(family=st.sampled_from(FAMILIES), doc=documents, sets=st.lists(overrides(), max_size=2))
def test_random_documents_through_the_cli(cli, family, doc, sets, tmp_path):
    f = tmp_path / "cli.toml"
    f.write_text(tomli_w.dumps(doc), encoding="utf-8")
    args = ["build", family, "--spec", f, "--dry-run"]
    for text in sets:
        args += ["--set", text]
    r = cli(*args)
    if r.code == 0:
        assert "dry run: would write" in r.out
    else:
        assert r.code == 2, (r.code, r.err[-1000:])
        lines = r.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), r.err[-1000:]
