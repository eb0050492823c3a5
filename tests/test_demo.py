"""``zoo demo``: the Gradio page driven over loopback with ``gradio_client`` and a headless
Chromium, its error messages, the CLI's one-line errors, and the exported Space.

Each page is served in-process on a free loopback port (a module-scoped server per
model or folder). Grids are compared with ``zoo sample`` and ``model.sample`` pixel for
pixel.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

import zoo

gradio_client = pytest.importorskip("gradio_client", reason="pip install 'genzoo[demo]'")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

#: A tiny class-conditional LAPGAN (10 digit classes, 2 steps).
LAPGAN = ["train.max_steps=2", "data.limit=64", "train.batch_size=16", "model.hidden=32",
          "model.channels=8", "model.latent_dim=8", "sample.n=4", "train.precision=fp32",
          "model.num_classes=10"]


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def pixels(path: str | Path) -> np.ndarray:
    """A PNG's pixels as uint8 (H×W grey or H×W×C)."""
    from PIL import Image

    return np.asarray(Image.open(path))


def expected_grid(images) -> np.ndarray:
    """``zoo sample``'s grid of float images, computed here from the tensor."""
    from zoo.sampling.sample import grid, hwc, to_uint8

    return hwc(to_uint8(grid(images)))


class Site:
    """A served page: its URL, a client, the page (closed at the end)."""

    def __init__(self, source: Path) -> None:
        from zoo.demo import app, launch

        self.blocks = app(source)
        self.url = launch(self.blocks, "127.0.0.1", free_port(), block=False, quiet=True)
        self.client = Client(self.url, verbose=False)

    def close(self) -> None:
        self.client.close()
        self.blocks.close()


@pytest.fixture(scope="module")
def single(micro_dcgan):
    """The page of one small DCGAN."""
    site = Site(micro_dcgan)
    yield site
    site.close()


@pytest.fixture(scope="module")
def runs(micro_dcgan, tmp_path_factory) -> Path:
    """A folder of runs: the DCGAN and a tiny conditional LAPGAN."""
    folder = tmp_path_factory.mktemp("demo") / "runs"
    shutil.copytree(micro_dcgan, folder / "dcgan")
    zoo.build("lapgan", None, LAPGAN, folder / "lapgan")
    return folder


@pytest.fixture(scope="module")
def gallery(runs):
    """The page of the folder of runs."""
    site = Site(runs)
    yield site
    site.close()


# ------------------------------------------------------------------ samples over loopback


def test_grid_is_zoo_sample_pixel_for_pixel(single, micro_dcgan, cli, tmp_path):
    for seed, count in ((5, 9), (0, 16)):
        grid, stages = single.client.predict(seed=seed, count=count, api_name="/sample")
        r = cli("sample", micro_dcgan, "-n", count, "--seed", seed, "-o", tmp_path / "cli.png")
        assert r.code == 0, r.err
        assert stages is None
        assert np.array_equal(pixels(grid), pixels(tmp_path / "cli.png"))


def test_conditional_model_follows_its_label(gallery, runs):
    model = zoo.from_pretrained(runs / "lapgan")
    shown = {}
    for label in (3, 7):
        grid, _ = gallery.client.predict(seed=1, count=4, label=label, return_pyramid=False,
                                         api_name="/sample_lapgan")
        shown[label] = pixels(grid)
        assert np.array_equal(shown[label], expected_grid(model.sample(4, seed=1, label=label)))
    assert not np.array_equal(shown[3], shown[7])


def test_stages_are_a_row_per_sample_and_a_column_per_level(gallery, runs):
    grid, stages = gallery.client.predict(seed=0, count=2, label=None, return_pyramid=True,
                                          api_name="/sample_lapgan")
    model = zoo.from_pretrained(runs / "lapgan")
    assert np.array_equal(pixels(grid), expected_grid(model.sample(2, seed=0)))
    # three levels scaled to 32 px, enlarged 2x (tiles under 56 px), 2 px padding
    assert pixels(stages).shape[:2] == (2 * 66 + 2, 3 * 66 + 2)


def test_interpolation_walks_from_seed_a_to_seed_b(single, micro_dcgan):
    import torch

    from zoo.visualize.images import upscale

    strip = pixels(single.client.predict(seed_a=0, seed_b=1, frames=4, method="slerp",
                                         api_name="/interpolate"))
    assert strip.shape[:2] == (66 + 2, 4 * 66 + 2)  # 16 px tiles enlarged 4x, 2 px padding
    with pytest.raises(AppError, match="frames 17: give 2 to 16"):
        single.client.predict(seed_a=0, seed_b=1, frames=17, method="slerp",
                              api_name="/interpolate")
    model = zoo.from_pretrained(micro_dcgan)
    for frame, seed in ((0, 0), (3, 1)):
        tile = strip[2:66, 2 + 66 * frame:66 + 66 * frame, 0].astype(int)  # grey as RGB
        want = upscale(model.sample(1, seed=seed))[0, 0].mul(255).round().to(torch.int64)
        assert np.abs(tile - want.numpy()).max() <= 1  # decoded alone vs sampled: rounding


def test_gallery_and_card_are_on_the_page(gallery):
    import httpx

    config = httpx.get(gallery.url + "config", timeout=30).json()
    texts = [str(c["props"].get("value")) for c in config["components"]
             if c.get("type") == "markdown"]
    table = next(t for t in texts if t.startswith("| model | family"))
    assert "| dcgan | dcgan |" in table and "| lapgan | lapgan |" in table
    assert sum("| metric | value |" in t and "train.images_seen" in t for t in texts) == 2
    galleries = [c["props"]["value"] for c in config["components"] if c.get("type") == "gallery"]
    captions = [item["caption"] for value in galleries for item in value]
    assert "dcgan (dcgan)" in captions and "lapgan (lapgan)" in captions
    assert "pyramid" in " ".join(captions)  # LAPGAN's card figure


# ------------------------------------------------------------------ bad input


def test_bad_input_is_a_message_and_the_server_keeps_serving(single):
    for kwargs, message in (({"count": 65}, "count 65: give 1 to 64"),
                            ({"count": 0}, "count 0: give 1 to 64"),
                            ({"count": 2.5}, "count 2.5: expected a whole number"),
                            ({"seed": -1}, "seed -1: give 0 to")):
        with pytest.raises(AppError) as caught:
            single.client.predict(**{"seed": 0, "count": 4, **kwargs}, api_name="/sample")
        assert message in str(caught.value) and "Traceback" not in str(caught.value)
        grid, _ = single.client.predict(seed=0, count=4, api_name="/sample")
        assert pixels(grid).shape[:2] == (2 * 18 + 2, 2 * 18 + 2)


@pytest.fixture(scope="module")
def inpainting(nonparametric, tmp_path_factory):
    """The page of the example plugin's in-painting model, and images to upload."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("demo-inpaint")
    model = zoo.build("inpaint", overrides=["sample.n=1"], out=folder / "inpaint")
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((20, 24)) * 255).astype("uint8")).save(folder / "in.png")
    mask = np.zeros((20, 24), "uint8")
    mask[6:12, 8:16] = 255
    Image.fromarray(mask).save(folder / "mask.png")
    Image.fromarray(mask[:16, :16]).save(folder / "small.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    site = Site(model)
    yield site, folder
    site.close()


def test_input_family_returns_an_image_of_the_inputs_size(inpainting):
    site, folder = inpainting
    grid, _ = site.client.predict(seed=0, count=1, input=handle_file(folder / "in.png"),
                                  mask=handle_file(folder / "mask.png"), api_name="/sample")
    out, given = pixels(grid), pixels(folder / "in.png")
    assert out.shape[:2] == (20, 24)
    out = out[..., 0]  # a grey image comes back as RGB, as zoo sample writes grids
    outside = pixels(folder / "mask.png") == 0
    assert np.array_equal(out[outside], given[outside])  # only the hole is filled


def test_bad_uploads_are_messages_and_the_server_keeps_serving(inpainting):
    site, folder = inpainting
    image = handle_file(folder / "in.png")
    for mask, message in (("small.png", "mask is 16x16 but the image is 20x24"),
                          ("broken.png", "mask: broken.png is not a readable image")):
        with pytest.raises(AppError, match=message):
            site.client.predict(seed=0, count=1, input=image, mask=handle_file(folder / mask),
                                api_name="/sample")
    with pytest.raises(AppError, match="needs both an image and a mask"):
        site.client.predict(seed=0, count=1, input=image, mask=None, api_name="/sample")
    grid, _ = site.client.predict(seed=0, count=1, input=image,
                                  mask=handle_file(folder / "mask.png"), api_name="/sample")
    assert pixels(grid).shape[:2] == (20, 24)


# ------------------------------------------------------------------ in a browser


def test_the_page_renders_a_sample_image_in_chromium(single, tmp_path):
    from browser import Browser, chromium
    from PIL import Image

    if chromium() is None:
        message = "no chromium on PATH: apt-get install chromium"
        if os.environ.get("CI"):
            pytest.fail(message)  # .ci/run installs it
        pytest.skip(message)
    with Browser(1100, 800) as browser:
        browser.open(single.url)
        box = browser.wait_for_image("#zoo-grid")
        shot = Image.open(io.BytesIO(browser.screenshot())).convert("L")
    assert "/gradio_api/file=" in box["src"] and box["src"].endswith("grid.png")
    x, y, w, h = (round(box[k]) for k in ("x", "y", "width", "height"))
    region = np.asarray(shot, dtype=float)[y:y + h, x:x + w]
    assert w >= 200 and h >= 200
    assert region.std() > 10  # the samples, not a blank or one-colour box
    assert np.asarray(shot, dtype=float)[:10, :10].std() == 0  # the page's plain margin


# ------------------------------------------------------------------ the command


def test_cli_errors_are_one_line(cli, micro_dcgan, monkeypatch, tmp_path):
    def one_line(r, text):
        assert r.code == 2 and text in r.err and len(r.err.strip().splitlines()) == 1, r.err

    one_line(cli("demo", tmp_path / "missing"), "no model folder")
    one_line(cli("demo", tmp_path), "neither a model folder")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        one_line(cli("demo", micro_dcgan, "--port", port), f"--port {port}: cannot serve")
    one_line(cli("demo", micro_dcgan, "--requirement", "x"), "apply only with --export")
    one_line(cli("demo", micro_dcgan, "--share", "maybe"), "--share")
    monkeypatch.setitem(sys.modules, "gradio", None)
    one_line(cli("demo", micro_dcgan), "zoo demo needs Gradio: pip install 'genzoo[demo]'")


def test_export_writes_a_space(cli, micro_dcgan, tmp_path):
    from importlib.metadata import version

    space = tmp_path / "space"
    r = cli("demo", "--export", space, "me/dcgan@v1")
    assert r.code == 0, r.err
    app = (space / "app.py").read_text()
    compile(app, "app.py", "exec")
    assert 'serve("me/dcgan@v1")' in app and "from zoo.demo import serve" in app
    assert (space / "requirements.txt").read_text() == f"genzoo[demo]=={version('genzoo')}\n"
    assert "sdk: gradio" in (space / "README.md").read_text()
    r = cli("demo", "--export", space, "me/dcgan")
    assert r.code == 2 and "exists already; --force replaces" in r.err
    r = cli("demo", "--export", space, "me/dcgan", "--force", "--requirement-genzoo", REPO,
            "--requirement", "zoo-nonparametric>=0.1")
    assert r.code == 0, r.err
    assert (space / "requirements.txt").read_text().splitlines() == [
        f"genzoo[demo] @ {REPO.resolve().as_uri()}", "zoo-nonparametric>=0.1"]
    r = cli("demo", "--export", tmp_path / "other", micro_dcgan)
    assert r.code == 2 and "is not a Hub model id" in r.err


@pytest.mark.slow
def test_exported_space_runs_in_a_fresh_venv(cli, micro_dcgan, hub, tmp_path):
    """SLOW (about 45 s): a fresh venv installs genzoo from a copy of the local checkout
    through the Space's requirements.txt, then ``python app.py`` serves the model from the
    loopback Hub, and its grid is the model's.

    The venv sees the test interpreter's packages (torch, gradio: a .pth file), so pip
    finds genzoo's dependencies installed and downloads nothing but the build backend
    (setuptools, for the isolated build); genzoo itself goes into the venv."""
    import site

    import httpx

    zoo.push(micro_dcgan, "me/micro")
    space, venv = tmp_path / "space", tmp_path / "venv"
    assert cli("demo", "--export", space, "me/micro", "--requirement-genzoo", REPO).code == 0
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    own = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()"
                               "['purelib'])"], capture_output=True, text=True,
                              check=True).stdout.strip())
    (own / "outer.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    build = tmp_path / "build"  # a copy of the checkout: building leaves nothing in it
    shutil.copytree(REPO, build, ignore=shutil.ignore_patterns(
        ".git", "runs", "build", "*.egg-info", "__pycache__", ".*cache", "bench", "docs"))
    requirements = (space / "requirements.txt").read_text().replace(REPO.resolve().as_uri(),
                                                                    build.as_uri())
    (space / "requirements.txt").write_text(requirements)
    subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "-q",
                    "-r", space / "requirements.txt"], check=True, timeout=300)
    where = subprocess.run([python, "-c", "import zoo; print(zoo.__file__)"], cwd=space,
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(own)), where  # the venv's genzoo, not the checkout's
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "ZOO_LOAD_PLUGINS": ""}
    process = subprocess.Popen([python, "app.py"], cwd=space, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stdout.read().decode()[-2000:]
            try:
                if httpx.get(url, timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        client = Client(url, verbose=False)
        grid, _ = client.predict(seed=3, count=4, api_name="/sample")
        client.close()
    finally:
        process.terminate()
        process.wait(timeout=30)
    model = zoo.from_pretrained(micro_dcgan)
    assert np.array_equal(pixels(grid), expected_grid(model.sample(4, seed=3)))


def test_request_files_are_deleted_after_a_while(tmp_path):
    from zoo.demo import actions

    old, new = actions.new_path(tmp_path, "a.png"), actions.new_path(tmp_path, "b.png")
    for path in (old, new):
        path.write_bytes(b"png")
    kept = actions.kept(old, tmp_path)
    os.utime(old.parent, (time.time() - actions.KEEP_S - 5,) * 2)
    actions.prune(tmp_path)
    assert not old.parent.exists() and new.is_file() and kept.is_file()
