"""Docs that cannot go stale: the generated spec reference and hooks page match the
code, every hook is documented, and the site builds with ``mkdocs build --strict``."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest
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


def test_hooks_page_is_current():
    path = REPO / "docs" / "hooks.md"
    assert path.is_file() and path.read_text() == load_generator().hooks_page(), (
        "docs/hooks.md is stale: run python docs/generate.py")


def test_a_new_hook_makes_the_page_stale(monkeypatch):
    from zoo.core import hookspecs

    @hookspecs.hookspec
    def register_widgets(register):
        """Register widgets."""

    monkeypatch.setattr(hookspecs, "register_widgets", register_widgets, raising=False)
    fresh = load_generator().hooks_page()
    assert "## `register_widgets`" in fresh
    assert fresh != (REPO / "docs" / "hooks.md").read_text()  # so the test above would fail


def test_every_hook_is_documented():
    from zoo.core import hookspecs
    from zoo.core.plugins import hook_names

    page = (REPO / "docs" / "hooks.md").read_text()
    guide = (REPO / "docs" / "writing-a-plugin.md").read_text()
    assert len(hook_names()) >= 4
    for name in hook_names():
        doc = getattr(hookspecs, name).__doc__ or ""
        assert len(doc.strip().splitlines()) >= 3, f"hook {name} needs a fuller docstring"
        assert f"## `{name}`" in page, f"hook {name} is missing from docs/hooks.md"
        assert name in guide, f"docs/writing-a-plugin.md does not mention hook {name}"


def test_mkdocs_nav_covers_every_page():
    nav = re.findall(r":\s*(\S+\.md)\s*$", (REPO / "mkdocs.yml").read_text(), re.M)
    pages = sorted(p.name for p in (REPO / "docs").glob("*.md"))
    assert sorted(nav) == pages


def test_mkdocs_builds_strictly(tmp_path):
    if importlib.util.find_spec("mkdocs") is None:
        if os.environ.get("CI"):
            pytest.fail("mkdocs is not installed: pip install -e '.[test]'")
        pytest.skip("mkdocs is not installed: pip install -e '.[test]'")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
                           "-f", str(REPO / "mkdocs.yml"), "-d", str(tmp_path / "site")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "site" / "hooks" / "index.html").is_file()


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    command = next(line for line in readme.splitlines() if line.startswith("pip install -e '.["))
    install, _, run = command.partition(" && ")
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert install in ci and run in ci, (command, ci)


def test_documented_zoo_sample_flags_exist():
    """Every `zoo sample ... --flag` quoted in README.md, docs/ and the example's README is a
    flag zoo sample has (0.2 replaced --size, --steps ... by --opt; only the migration table
    names them)."""
    import typer

    from zoo.cli import app

    command = typer.main.get_command(app).commands["sample"]  # type: ignore[attr-defined]
    flags = {"--help"} | {flag for param in command.params for flag in param.opts}
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")),
             REPO / "examples" / "zoo-nonparametric" / "README.md"]
    texts = {str(page.relative_to(REPO)):
             page.read_text(encoding="utf-8").split("## Migrating a plugin")[0] for page in pages}
    stale = sorted({f"{name}: {flag}" for name, text in texts.items()
                    for use in re.findall(r"zoo sample [^`\n]*", text)
                    for flag in re.findall(r"(?<![\w-])--?[a-z][\w-]*", use)
                    if flag not in flags})
    assert not stale, stale


@pytest.mark.parametrize(("command", "shown"), [
    (["data", "pack"], "genzoo[data]"), (["sample"], "namespace/name[@revision]"),
    (["pull"], "namespace/name[@revision]"), (["demo"], "genzoo[demo]")])
def test_help_keeps_square_brackets(cli, monkeypatch, command, shown):
    """Help texts are rich markup: an unescaped [data] or [@revision] would vanish."""
    monkeypatch.setenv("COLUMNS", "400")
    result = cli(*command, "--help")
    assert result.code == 0
    assert shown in " ".join(result.out.split()), result.out
