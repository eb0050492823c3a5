"""The layers of zoo/ hold: import-linter's contracts in pyproject.toml are kept.

``layers``: a lower layer never imports a higher one (lazy imports included);
``torch-free``: nothing in ``zoo.core`` imports torch or its kin; ``acyclic``: no
import cycle between the modules of any package of zoo/.
"""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO

RUN = "from importlinter.cli import lint_imports_command; lint_imports_command()"


def lint_imports(*contracts: str) -> subprocess.CompletedProcess[str]:
    """Run ``lint-imports`` (no cache) on the repository's configuration."""
    args = [sys.executable, "-c", RUN, "--no-cache", "--show-timings"]
    for contract in contracts:
        args += ["--contract", contract]
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=120)


def broken_part(output: str) -> str:
    """The report's part naming the broken contracts and the imports that break them."""
    return output[output.find("Broken contracts"):] if "Broken contracts" in output else output


def test_contracts_are_kept():
    result = lint_imports()
    assert result.returncode == 0, "import-linter contract broken:\n" + broken_part(
        result.stdout + result.stderr)
    assert "3 kept, 0 broken" in result.stdout
