"""Listing, printing and validating specs never import torch (nor Gradio); nothing unpickles
weights."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from conftest import REPO

PROBE = """
import sys
from zoo.cli import main
sys.argv = ["zoo", *sys.argv[1:]]
try:
    main()
except SystemExit as exc:
    assert not exc.code, exc.code
heavy = sorted(m for m in ("torch", "torchvision", "timm", "accelerate", "datasets",
                          "webdataset", "pyarrow", "gradio", "gradio_client")
               if m in sys.modules)
print("HEAVY:", ",".join(heavy), file=sys.stderr)
"""


@pytest.mark.parametrize("args", [
    ["list"], ["list", "dc*"], ["spec", "dcgan"], ["spec", "dcgan-mnist", "--schema"],
    ["build", "dcgan-mnist", "--dry-run"], ["plugins"], ["--help"],
    ["build", "dcgan", "--dry-run", "--set", "data.source=hf:user/set", "--set",
     "data.key_column=path"],
    ["build", "dcgan", "--dry-run", "--set", "data.source=wds:/d/shard-{0..9}.tar"],
    ["data", "--help"], ["data", "pack", "--help"], ["demo", "--help"],
])
def test_cli_does_not_import_torch(args):
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY: \n" in proc.stderr, proc.stderr


def test_listing_with_the_example_plugin_does_not_import_torch(nonparametric):
    env = {**os.environ, "ZOO_LOAD_PLUGINS": nonparametric}
    for args in (["list"], ["spec", "texture"], ["plugins"], ["build", "superres", "--dry-run"]):
        proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True,
                              text=True, cwd=REPO, timeout=60, env=env)
        assert proc.returncode == 0, proc.stderr
        assert "HEAVY: \n" in proc.stderr, (args, proc.stderr)


FORBIDDEN = re.compile(r"torch\.load\b|\bpickle\b|weights_only\s*=\s*False|\bcloudpickle\b")
#: The one exception: torch's weights-only loader (tensors, no code), for .pth files genzoo
#: converts to safetensors (zoo.evaluation.inception).
ALLOWED = re.compile(r"torch\.load\(.*weights_only=True\)")


def test_no_unpickling_anywhere_in_the_package():
    offenders = []
    for folder in ("zoo", "plugins", "examples"):
        for path in (REPO / folder).rglob("*.py"):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if FORBIDDEN.search(line) and not ALLOWED.search(line):
                    offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, offenders


def test_pyyaml_is_needed_only_by_the_testing_extra():
    """The loopback Hub (zoo.testing.hubserver) is the one user of PyYAML: it comes with the
    ``testing`` extra, which ``test`` (the README's test install) includes."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert not any(d.lower().startswith("pyyaml") for d in project["dependencies"])
    extras = project["optional-dependencies"]
    assert any(d.lower().startswith("pyyaml") for d in extras["testing"])
    assert any(re.fullmatch(r"genzoo\[(\w+,)*testing(,\w+)*\]", d) for d in extras["test"])
    importers = [str(p.relative_to(REPO)) for folder in ("zoo", "plugins")
                 for p in (REPO / folder).rglob("*.py")
                 if re.search(r"^\s*(import yaml|from yaml)", p.read_text(), re.M)]
    assert importers == ["zoo/testing/hubserver.py"], importers


def test_hubserver_without_pyyaml_says_which_extra_to_install():
    probe = ("import sys; sys.modules['yaml'] = None\n"
             "from zoo.testing.hubserver import HubServer\n"
             "try:\n    HubServer('/nonexistent-hub-root')\n"
             "except ImportError as exc:\n    print(exc)\n")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ("zoo.testing.hubserver needs PyYAML: "
                                   "pip install 'genzoo[testing]'")


def test_exporting_a_space_imports_neither_torch_nor_gradio(tmp_path):
    proc = subprocess.run([sys.executable, "-c", PROBE, "demo", "--export", str(tmp_path / "s"),
                           "me/model"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY: \n" in proc.stderr, proc.stderr
    assert (tmp_path / "s" / "app.py").is_file()
