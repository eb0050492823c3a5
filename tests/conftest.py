"""Shared fixtures: an isolated ZOO_HOME and HF_HOME, no third-party plugins, a CLI runner,
tiny models, and a loopback Hugging Face Hub."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Only built-in plugins: tests must not depend on what else is installed.
os.environ["ZOO_LOAD_PLUGINS"] = ""
# The Hub: huggingface_hub reads these once, when first imported. Nothing may reach
# huggingface.co: the default endpoint is a closed port; the `hub` fixture serves one.
os.environ.update({"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_DISABLE_TELEMETRY": "1",
                   "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_HUB_DISABLE_UPDATE_CHECK": "1"})
for _name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_HUB_CACHE"):
    os.environ.pop(_name, None)
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="zoo-test-hf-home-")
atexit.register(shutil.rmtree, os.environ["HF_HOME"], ignore_errors=True)
#: The token the loopback Hub knows as user "me" (and one for user "other").
HUB_TOKEN, OTHER_TOKEN = "hf_test_me", "hf_test_other"

#: The tiny spec the acceptance criteria name: the main spec, 20 steps, 256 images.
TINY = ["train.max_steps=20", "data.limit=256"]
#: An even smaller, faster spec for tests that train several models.
MICRO = [*TINY, "model.base_channels=8", "model.disc_channels=8", "data.image_size=16",
         "model.latent_dim=16", "train.batch_size=32", "train.bn_batches=4", "sample.n=16"]


#: The example plugin distribution in examples/ (the README's test command installs it).
NONPARAMETRIC = "zoo-nonparametric"


def nonparametric_installed() -> bool:
    """Whether the example plugin distribution is installed."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        distribution(NONPARAMETRIC)
    except PackageNotFoundError:
        return False
    return True


@pytest.fixture(scope="module")
def nonparametric():
    """Load the example plugin zoo-nonparametric for the tests of one module.

    Tests load built-in plugins only (``ZOO_LOAD_PLUGINS=""``); this allows the
    example distribution too, and forgets it again after the module. Without
    the distribution installed the tests are skipped, except in CI (``CI`` set),
    where its absence means the install step is broken.
    """
    from zoo.core.plugins import reset_plugins

    if not nonparametric_installed():
        message = f"{NONPARAMETRIC} is not installed: pip install -e examples/zoo-nonparametric"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ZOO_LOAD_PLUGINS", NONPARAMETRIC)
        reset_plugins()
        yield NONPARAMETRIC
        reset_plugins()


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


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A loopback Hub (``zoo.testing.hubserver``) with users "me" and "other".

    ``HF_ENDPOINT`` points at it, ``HF_TOKEN`` is "me"'s token and ``HF_HUB_CACHE``
    is a fresh folder, all read by genzoo at call time.
    """
    from zoo.testing.hubserver import HubServer

    with HubServer(tmp_path / "hub-server", {HUB_TOKEN: "me", OTHER_TOKEN: "other"}) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
        yield server
