"""Shared fixtures: an isolated ZOO_HOME, no third-party plugins, a CLI runner, tiny models."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Only built-in plugins: tests must not depend on what else is installed.
os.environ["ZOO_LOAD_PLUGINS"] = ""

#: The tiny spec the acceptance criteria name: the main spec, 20 steps, 256 images.
TINY = ["train.max_steps=20", "data.limit=256"]
#: An even smaller, faster spec for tests that train several models.
MICRO = [*TINY, "model.base_channels=8", "model.disc_channels=8", "data.image_size=16",
         "model.latent_dim=16", "train.batch_size=32", "train.bn_batches=4", "sample.n=16"]


@pytest.fixture(scope="session", autouse=True)
def zoo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh user directory for the whole session (the digit classifier is cached here)."""
    home = tmp_path_factory.mktemp("zoo-home")
    os.environ["ZOO_HOME"] = str(home)
    return home


@dataclass
class CliResult:
    """Exit code and captured output of one in-process ``zoo`` invocation."""

    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """Run ``zoo ARGS...`` in-process through the real entry point."""
    from zoo.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["zoo", *map(str, args)])
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def tiny_dcgan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DCGAN model folder trained for 20 steps on 256 digits (the main spec otherwise)."""
    import zoo

    out = tmp_path_factory.mktemp("runs") / "dcgan-tiny"
    return zoo.build("dcgan", REPO / "specs" / "dcgan-mnist.toml", TINY, out)


@pytest.fixture(scope="session")
def micro_dcgan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A very small DCGAN model folder (16x16, 8 channels), for error and load tests."""
    import zoo

    out = tmp_path_factory.mktemp("runs") / "dcgan-micro"
    return zoo.build("dcgan", None, [*MICRO, "train.precision=fp32"], out)
