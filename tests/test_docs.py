"""Docs that cannot go stale: the generated spec reference matches the code."""

from __future__ import annotations

import importlib.util
import json

from conftest import REPO


def load_generator():
    spec = importlib.util.spec_from_file_location("docs_generate", REPO / "docs" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_spec_reference_is_current():
    for name, text in load_generator().expected_files().items():
        path = REPO / "docs" / "specs" / name
        assert path.is_file() and path.read_text() == text, (
            f"docs/specs/{name} is stale: run python docs/generate.py")


def test_plugins_listing(cli):
    r = cli("plugins", "--json")
    assert r.code == 0, r.err
    rows = {row["name"]: row for row in json.loads(r.out)}
    assert rows["dcgan"]["families"] == ["dcgan"] and rows["dcgan"]["builtin"]
    assert "mnist5k" in rows["zoo.data"]["datasets"]
