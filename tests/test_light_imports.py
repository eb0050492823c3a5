"""Listing, printing and validating specs never import torch; nothing unpickles weights."""

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
heavy = sorted(m for m in ("torch", "torchvision", "timm", "accelerate") if m in sys.modules)
print("HEAVY:", ",".join(heavy), file=sys.stderr)
"""


@pytest.mark.parametrize("args", [
    ["list"], ["list", "dc*"], ["spec", "dcgan"], ["spec", "dcgan-mnist", "--schema"],
    ["build", "dcgan-mnist", "--dry-run"], ["plugins"], ["--help"],
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


def test_no_unpickling_anywhere_in_the_package():
    offenders = []
    for folder in ("zoo", "plugins", "examples"):
        for path in (REPO / folder).rglob("*.py"):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if FORBIDDEN.search(line):
                    offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, offenders
