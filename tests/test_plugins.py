"""Plugin loading rules, with fixture distributions installed as real entry points.

Each fixture is a module plus a ``*.dist-info`` folder (METADATA and
entry_points.txt) in a temporary folder on ``PYTHONPATH``, so
``importlib.metadata`` finds it exactly like a pip-installed plugin; ``zoo``
runs in a fresh process to load it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

RUN_ZOO = "import sys; from zoo.cli import main; sys.argv[0] = 'zoo'; main()"

RAISES_ON_IMPORT = "raise RuntimeError('boom at import')\n"

TWIN = '''
from typing import Literal

from zoo import FamilyRecord, hookimpl
from zoo_dcgan import DCGANSpec


class TwinSpec(DCGANSpec):
    family: Literal["twin"] = "twin"


@hookimpl
def register_families(register):
    register(FamilyRecord(name="twin", summary="{summary}", paper="none", spec=TwinSpec,
                          impl="zoo_dcgan.model:DCGAN"))
'''

MISSPELLED_HOOK = '''
from zoo import hookimpl


@hookimpl
def register_familes(register):  # sic
    pass
'''


def install(root: Path, dist: str, version: str, module: str, source: str) -> None:
    """Make ``dist`` (with entry point ``module = module`` in group zoo) importable from root."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[zoo]\n{module} = {module}\n")


@pytest.fixture
def zoo_with(tmp_path):
    """Run ``zoo ARGS`` in a fresh process that sees the fixture distributions in tmp_path."""

    def run(*args: str, allow: str, strict: bool = False) -> subprocess.CompletedProcess:
        env = {**os.environ, "PYTHONPATH": str(tmp_path), "ZOO_LOAD_PLUGINS": allow}
        env.pop("ZOO_STRICT_PLUGINS", None)
        if strict:
            env["ZOO_STRICT_PLUGINS"] = "1"
        return subprocess.run([sys.executable, "-c", RUN_ZOO, *args], capture_output=True,
                              text=True, env=env, timeout=120)

    return run


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    """The single ``error:`` line of a run that exited with status 2."""
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def test_a_plugin_that_raises_on_import_is_skipped_with_a_warning(tmp_path, zoo_with):
    install(tmp_path, "zoo-broken", "0.3", "broken_plugin", RAISES_ON_IMPORT)
    warning = ("warning: skipping plugin 'broken_plugin' from zoo-broken failed to import: "
               "boom at import; disable it with ZOO_DISABLE_PLUGINS=zoo-broken or "
               "pip uninstall zoo-broken")
    listing = zoo_with("list", "--json", allow="zoo-broken")
    assert listing.returncode == 0, listing.stderr
    assert listing.stderr.strip() == warning
    assert "dcgan" in {row["name"] for row in json.loads(listing.stdout)}
    helped = zoo_with("--help", allow="zoo-broken")
    assert helped.returncode == 0 and "Usage" in helped.stdout and warning in helped.stderr
    plugins = zoo_with("plugins", "--json", allow="zoo-broken")
    assert plugins.returncode == 0
    rows = {row["distribution"]: row for row in json.loads(plugins.stdout)}
    assert rows["zoo-broken"]["status"] == "broken" and rows["zoo-broken"]["families"] == []
    assert "failed to import: boom at import" in rows["zoo-broken"]["reason"]
    strict = one_error_line(zoo_with("list", allow="zoo-broken", strict=True))
    assert strict == ("error: plugin 'broken_plugin' from zoo-broken failed to import: "
                      "boom at import")


def test_two_distributions_registering_one_family_name_fail_naming_both(tmp_path, zoo_with):
    """Fatal with ZOO_STRICT_PLUGINS=1; without it, see test_plugin_safety.py."""
    install(tmp_path, "zoo-twin-a", "1.0", "twin_a", TWIN.format(summary="first"))
    install(tmp_path, "zoo-twin-b", "2.0", "twin_b", TWIN.format(summary="second"))
    line = one_error_line(zoo_with("list", allow="zoo-twin-a,zoo-twin-b", strict=True))
    assert line.startswith("error: family 'twin' is registered twice: by plugin 'twin_")
    assert "plugin 'twin_a' (zoo-twin-a 1.0)" in line and "plugin 'twin_b' (zoo-twin-b 2.0)" in line
    # the allow-list picks one of them, and then all is well
    only_b = zoo_with("list", "twin", "--json", allow="zoo-twin-b")
    assert only_b.returncode == 0, only_b.stderr
    assert json.loads(only_b.stdout)[0]["description"] == "second"
    none = zoo_with("list", "twin", "--json", allow="")
    assert none.returncode == 0 and json.loads(none.stdout) == []


def test_a_misspelled_hook_fails_loudly(tmp_path, zoo_with):
    """Fatal with ZOO_STRICT_PLUGINS=1; without it, see test_plugin_safety.py."""
    install(tmp_path, "zoo-typo", "0.1", "typo_plugin", MISSPELLED_HOOK)
    line = one_error_line(zoo_with("list", allow="zoo-typo", strict=True))
    assert "plugin 'typo_plugin' implements an unknown hook" in line
    assert "register_familes" in line and "(known hooks: register_commands, " in line


LIAR = '''
from typing import Literal

from zoo import FamilyRecord, hookimpl
from zoo_dcgan import DCGANSpec


class LiarSpec(DCGANSpec):
    family: Literal["liar"] = "liar"


@hookimpl
def register_families(register):
    register(FamilyRecord(name="liar", summary="a family class that lies", paper="none",
                          spec=LiarSpec, impl="liar_impl:Liar"))
'''

LIAR_IMPL = '''
from zoo_dcgan.model import DCGAN


class Liar(DCGAN):
    independent_samples = "no"  # truthy: the kit would demand bitwise equality across batches
'''

TORCH_AFTER = ("import sys, runpy; sys.argv = ['zoo', *sys.argv[1:]]\n"
               "try:\n    runpy.run_module('zoo', run_name='__main__')\n"
               "except SystemExit:\n    pass\n"
               "print('torch' in sys.modules, file=sys.stderr)")


def test_a_lying_family_class_is_one_line_and_listing_stays_torch_free(tmp_path):
    """zoo list and zoo spec never import the class; zoo build refuses it in one line."""
    install(tmp_path, "zoo-liar", "0.1", "liar_plugin", LIAR)
    (tmp_path / "liar_impl.py").write_text(textwrap.dedent(LIAR_IMPL))
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "ZOO_LOAD_PLUGINS": "zoo-liar"}

    def zoo(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", TORCH_AFTER, *args], capture_output=True,
                              text=True, env=env, timeout=120)

    listed = zoo("list", "liar", "--json")
    assert json.loads(listed.stdout)[0]["name"] == "liar"
    assert listed.stderr.strip() == "False"  # torch not imported
    spec = zoo("spec", "liar")
    assert "family = \"liar\"" in spec.stdout and spec.stderr.strip() == "False"
    built = zoo("build", "liar", "--out", str(tmp_path / "run"), "--quiet")
    assert built.stderr.splitlines()[0] == (
        "error: family 'liar': liar_impl:Liar sets independent_samples = 'no', not True or "
        "False")
    assert not (tmp_path / "run").exists()
