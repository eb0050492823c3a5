"""The layers of zoo/ hold: import-linter's contracts in pyproject.toml are kept.

``layers``: a lower layer never imports a higher one (lazy imports included);
``torch-free``: nothing in ``zoo.core`` imports torch or its kin; ``acyclic``: no
import cycle between the modules of any package of zoo/; ``cli-public-api``: the CLI
imports the public API ``zoo.api`` and nothing below it but ``zoo.core.errors`` and
``zoo.core.plugins`` (its start-up).
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
    assert "4 kept, 0 broken" in result.stdout


def test_cli_contract_is_reported_and_kept():
    result = lint_imports("cli-public-api")
    report = " ".join((result.stdout + result.stderr).split())  # the name may be wrapped
    assert result.returncode == 0, broken_part(report)
    assert "The CLI calls only the public API zoo.api" in report
    assert "1 kept, 0 broken" in report
