"""The genzoo[data] extra: without datasets or webdataset, an hf: or wds: source and zoo data
pack are one line naming the package and the pip command; nothing light imports them."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO

from zoo.core.errors import DataError
from zoo.core.spec import DataSpec
from zoo.data import open_source


@pytest.mark.parametrize(("package", "source"), [
    ("datasets", "hf:x"), ("datasets", "hf:imagefolder"), ("webdataset", "wds:/d/s-{0..3}.tar"),
])
def test_hf_and_wds_without_the_extra_are_one_line(monkeypatch, package, source):
    monkeypatch.setitem(sys.modules, package, None)
    with pytest.raises(DataError) as info:
        open_source(DataSpec(source=source), "train")
    assert str(info.value) == (f"data source {source!r} needs the {package} package: "
                               "pip install 'genzoo[data]'")


def test_the_cli_says_which_extra_to_install(monkeypatch, cli, tmp_path):
    monkeypatch.setitem(sys.modules, "datasets", None)
    result = cli("data", "pack", "hf:x", tmp_path / "out")
    assert result.code == 2
    assert result.err == ("error: data source 'hf:x' needs the datasets package: "
                          "pip install 'genzoo[data]'\n")
    monkeypatch.setitem(sys.modules, "webdataset", None)
    (tmp_path / "images").mkdir()
    result = cli("data", "pack", tmp_path / "images", tmp_path / "out")
    assert result.code == 2
    assert result.err == ("error: zoo data pack needs the webdataset package: "
                          "pip install 'genzoo[data]'\n")
    assert not (tmp_path / "out").exists()


def test_the_sources_name_their_extra(cli):
    from zoo.core.registry import get_dataset

    assert get_dataset("hf:user/set").extra == get_dataset("wds:a.tar").extra == "genzoo[data]"


PROBE = """
import sys
{body}
heavy = sorted(m for m in ("datasets", "webdataset", "pyarrow", "torch") if m in sys.modules)
print("HEAVY:", ",".join(heavy))
"""


@pytest.mark.parametrize("body", [
    "import zoo, zoo.api, zoo.data",
    "import zoo.data.hf, zoo.data.wds, zoo.data.pack, zoo.data.stream",
])
def test_importing_zoo_imports_no_data_package(body):
    proc = subprocess.run([sys.executable, "-c", PROBE.format(body=body)], capture_output=True,
                          text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "HEAVY:", proc.stdout


def test_reading_shards_imports_no_webdataset_nor_torch(tmp_path):
    """The indexed wds: reader is stdlib tarfile only (webdataset imports torch)."""
    import tarfile

    from PIL import Image

    image = tmp_path / "a.png"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(image)
    with tarfile.open(tmp_path / "s.tar", "w") as tar:
        tar.add(image, arcname="x/a%2Eb.png")
    body = ("from zoo.core.spec import DataSpec\nfrom zoo.data import open_source, decode_rows\n"
            f"s = open_source(DataSpec(source='wds:{tmp_path}/s.tar'), 'train')\n"
            "assert list(s.keys) == ['x/a.b.png'], list(s.keys)\n"
            "import numpy\nassert decode_rows(s, numpy.arange(1), 'RGB', 8).images.shape == "
            "(1, 3, 8, 8)")
    proc = subprocess.run([sys.executable, "-c", PROBE.format(body=body)], capture_output=True,
                          text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "HEAVY:", proc.stdout
