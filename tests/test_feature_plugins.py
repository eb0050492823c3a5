"""Feature networks from third-party plugins: ``zoo eval --features NAME`` scores on them,
``zoo plugins`` lists them, and one that lies is one line and leaves the model folder
exactly as it was."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import MICRO, REPO

#: The plugin: ``register_features`` imports no torch (the loaders' module does).
PIXELS_PLUGIN = '''
from zoo import FeatureRecord, hookimpl

KINDS = ("pixels", "raises", "not-extractor", "wrong-shape", "nan", "str-dims", "late-nan")


@hookimpl
def register_features(register):
    for kind in KINDS:
        register(FeatureRecord(kind, f"test features: {kind}",
                               f"pixels_impl:load_{kind.replace('-', '_')}"))
'''

#: The same plugin, also claiming the built-in 'digits'.
CLAIMING_PLUGIN = PIXELS_PLUGIN + '''

@hookimpl
def register_features(register):
    register(FeatureRecord("digits", "a plugin claiming the built-in name",
                           "pixels_impl:load_pixels"))
'''

PIXELS_IMPL = '''
import torch
import torch.nn.functional as F

from zoo import FeatureExtractor

#: How many images each network was shown (all calls).
SEEN = {}
#: late-nan turns to NaN once this is set.
BROKEN = []


class Pixels(FeatureExtractor):
    dims = 64
    identity = "pixels-8x8-v1"
    convention = "8x8 area-downsampled grey pixels in [0, 1] (a test plugin)"
    batch_size = 100

    def __init__(self, kind="pixels"):
        self.kind = kind

    def __call__(self, images):
        assert images.dtype == torch.uint8 and images.shape[1] == 3
        SEEN[self.kind] = SEEN.get(self.kind, 0) + len(images)
        grey = images.float().mean(1, keepdim=True) / 255
        return F.adaptive_avg_pool2d(grey, 8).flatten(1)


def load_pixels():
    return Pixels()


def load_raises():
    raise RuntimeError("weights\\nare somewhere else")


def load_not_extractor():
    return object()


class WrongShape(Pixels):
    def __call__(self, images):
        return super().__call__(images)[:, :63]


def load_wrong_shape():
    return WrongShape("wrong-shape")


class NaN(Pixels):
    def __call__(self, images):
        return super().__call__(images) * float("nan")


def load_nan():
    return NaN("nan")


def load_str_dims():
    extractor = Pixels("str-dims")
    extractor.dims = "64"
    return extractor


class LateNaN(Pixels):
    identity = "late-nan-v1"

    def __call__(self, images):
        features = super().__call__(images)
        return features * float("nan") if BROKEN else features


def load_late_nan():
    return LateNaN("late-nan")
'''


def register(tmp_path: Path, monkeypatch, source: str):
    """Register ``source`` in-process as plugin 'pixels-plugin'; return its loaders' module."""
    import importlib

    from zoo.core import plugins
    from zoo.core.registry import get_registry

    (tmp_path / "pixels_plugin.py").write_text(source)
    (tmp_path / "pixels_impl.py").write_text(PIXELS_IMPL)
    monkeypatch.syspath_prepend(str(tmp_path))
    for module in ("pixels_plugin", "pixels_impl"):
        sys.modules.pop(module, None)
    plugins.reset_plugins()
    plugins.load_plugins().register(importlib.import_module("pixels_plugin"),
                                    name="pixels-plugin")
    # as an installed distribution would be listed (in-process registration is not)
    plugins._infos["pixels-plugin"] = plugins.PluginInfo("pixels-plugin", "pixels-dist", "1.0",
                                                         False)
    get_registry.cache_clear()
    return importlib.import_module("pixels_impl")


@pytest.fixture
def pixels_plugin(tmp_path, monkeypatch):
    """The plugin above registered in-process; yields its loaders' module."""
    from zoo.core.plugins import reset_plugins

    yield register(tmp_path, monkeypatch, PIXELS_PLUGIN)
    reset_plugins()


@pytest.fixture
def claiming_plugin(tmp_path, monkeypatch):
    """The plugin that also claims 'digits', registered in-process."""
    from zoo.core.plugins import reset_plugins

    yield register(tmp_path, monkeypatch, CLAIMING_PLUGIN)
    reset_plugins()


@pytest.fixture(scope="module")
def digits_gan(tmp_path_factory) -> Path:
    """A micro DCGAN on the bundled 8x8 digits (upsampled to 16): no digit classifier needed
    to evaluate it on other features."""
    import zoo

    out = tmp_path_factory.mktemp("runs") / "dcgan-digits"
    return zoo.build("dcgan", None, [*MICRO, "data.source=digits", "train.precision=fp32",
                                     "train.max_steps=4"], out)


@pytest.fixture
def run(digits_gan, tmp_path) -> Path:
    """A fresh copy of the model folder, so each test sees its own files."""
    return Path(shutil.copytree(digits_gan, tmp_path / "run"))


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file of a folder, by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_eval_on_a_plugins_features_records_them_with_its_convention(pixels_plugin, run, cli):
    from zoo.evaluation.distances import fid

    r = cli("eval", run, "-n", "40", "--features", "pixels")
    assert r.code == 0, r.err
    result = json.loads((run / "metrics.json").read_text())["eval"]
    assert result["convention@pixels"] == pixels_plugin.Pixels.convention
    assert result["against@pixels"] == "test"
    for key in ("fid@pixels", "kid@pixels", "precision@pixels", "recall@pixels",
                "reference_fid@pixels", "memorised@pixels"):
        assert isinstance(result[key], float), key
    assert not any(key.endswith("@digits") for key in result)
    # the FID is that of the plugin's features, computed here independently
    import torch.nn.functional as F

    import zoo
    from zoo.evaluation.real import held_out_images

    def pixels(images):
        grey = images.float().mul(255).round().clamp(0, 255).div(255).mean(1, keepdim=True)
        return F.adaptive_avg_pool2d(grey, 8).flatten(1)

    model = zoo.from_pretrained(run)
    test = held_out_images(model.spec.data)
    expected = fid(pixels(model.sample(40, seed=0)), pixels(test))
    assert result["fid@pixels"] == pytest.approx(expected, rel=1e-3)
    assert result["reference_images@pixels"] == len(test)
    card = (run / "README.md").read_text()
    assert "fid@pixels" in card
    assert (run / "memorisation.png").is_file()


def test_a_plugin_claiming_a_builtin_feature_name_is_skipped_whole(claiming_plugin, cli):
    r = cli("plugins", "--json")
    assert r.code == 0, r.err
    rows = {row["name"]: row for row in json.loads(r.out)}
    builtin = [row for row in rows.values() if "digits" in row["features"]]
    assert len(builtin) == 1 and builtin[0]["builtin"]
    assert "inception" in builtin[0]["features"]
    # the plugin also claims 'digits': the built-in keeps it and the plugin is skipped whole
    plugin = rows["pixels-plugin"]
    assert plugin["status"] != "ok" and "'digits' is registered twice" in plugin["reason"]
    table = cli("plugins")
    assert table.code == 0 and "registers" in table.out.splitlines()[0]
    assert "inception" in table.out


    from zoo.core.registry import get_features, get_registry

    assert get_features("digits").load == "zoo.evaluation.features:load_digit_features"
    assert "pixels" not in get_registry().features  # skipped as a whole, not half-registered
    assert "is registered twice" in r.err + table.err


def test_zoo_plugins_shows_an_ok_plugins_features(pixels_plugin, cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    rows = {row["name"]: row for row in json.loads(cli("plugins", "--json").out)}
    assert rows["pixels-plugin"]["status"] == "loaded"
    assert rows["pixels-plugin"]["features"] == sorted(
        ["pixels", "raises", "not-extractor", "wrong-shape", "nan", "str-dims", "late-nan"])
    assert "late-nan" in cli("plugins").out


@pytest.mark.parametrize(("name", "message"), [
    ("raises", "feature network 'raises' (pixels-dist): pixels_impl:load_raises() failed: "
               "RuntimeError: weights are somewhere else"),
    ("not-extractor", "returned object, not a zoo.FeatureExtractor"),
    ("str-dims", "its dims must be a int"),
    ("wrong-shape", "×64"),
    ("nan", "feature network 'nan' returned non-finite features"),
    ("pixles", "did you mean 'pixels'"),
])
def test_a_lying_feature_network_is_one_line_and_writes_nothing(pixels_plugin, run, cli, name,
                                                                 message):
    before = snapshot(run)
    r = cli("eval", run, "-n", "40", "--features", name)
    assert r.code == 2, r.err
    errors = [line for line in r.err.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: "), r.err
    assert message in errors[0], errors[0]
    if name == "pixles":
        assert "installed:" in errors[0] and "digits" in errors[0] and "late-nan" in errors[0]
    assert snapshot(run) == before


def test_a_network_failing_on_the_samples_writes_nothing(pixels_plugin, run, cli):
    # the real images' features are fine (and cached); only the samples' fail, after sampling
    assert cli("eval", run, "-n", "40", "--features", "late-nan").code == 0
    before = snapshot(run)
    pixels_plugin.BROKEN.append(True)
    r = cli("eval", run, "-n", "40", "--features", "late-nan")
    assert r.code == 2 and "returned non-finite features" in r.err, r.err
    assert "features of the real images" in r.err and "cached" in r.err
    assert snapshot(run) == before


def test_registering_features_imports_no_torch(tmp_path):
    (tmp_path / "pixels_plugin.py").write_text(PIXELS_PLUGIN)
    probe = (
        "import sys\n"
        "from zoo.core.plugins import load_plugins\n"
        "from zoo.core.registry import get_registry\n"
        "import pixels_plugin\n"
        "load_plugins().register(pixels_plugin, name='pixels-plugin')\n"
        "from zoo.api import list_entries, plugins\n"
        "plugins(), list_entries()\n"
        "assert 'pixels' in get_registry().provided['pixels-plugin']['feature network']\n"
        "print('torch' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=REPO, timeout=60,
                          env={**__import__("os").environ, "PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
