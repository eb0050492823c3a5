"""Inception-v3 features (``--features inception``): the same FID and KID as torch-fidelity
on the same images and weights; weights found, converted, downloaded and refused safely."""

from __future__ import annotations

import hashlib
import http.server
import os
import shutil
import socket
import threading
from pathlib import Path

import pytest
import torch

from zoo.core.errors import WeightsError
from zoo.evaluation import inception
from zoo.evaluation.extractor import embed, load_extractor, to_uint8
from zoo.testing.inception import write_random_inception


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random Inception weights in torch-fidelity's format (written once per module)."""
    return write_random_inception(tmp_path_factory.mktemp("inception") / "random.pth", seed=0)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh $ZOO_HOME and $TORCH_HOME (neither created), no weights settings, downloads
    aimed at a closed loopback port, and no extractor cached from another test."""
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "zoo-home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("ZOO_INCEPTION_URL", f"http://127.0.0.1:9/{inception.WEIGHTS_NAME}")
    for name in ("ZOO_INCEPTION_WEIGHTS", "HF_HUB_OFFLINE", "ZOO_OFFLINE",
                 "ZOO_DOWNLOAD_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    load_extractor.cache_clear()
    yield tmp_path
    load_extractor.cache_clear()


def nothing_written(tmp_path: Path) -> None:
    """Neither $ZOO_HOME nor $TORCH_HOME was created (no cache folder, no temporary)."""
    assert not (tmp_path / "zoo-home").exists()
    assert not (tmp_path / "torch-home").exists()


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


class Images(torch.utils.data.Dataset):
    """uint8 3×H×W tensors, as torch-fidelity reads a data set."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def test_fid_and_kid_equal_torch_fidelitys_on_the_same_images_and_weights(
        weights: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from torch_fidelity import calculate_metrics

    from zoo.core.spec import DataSpec
    from zoo.data import load_images
    from zoo.evaluation.distances import fid, kid

    n = 32
    spec = DataSpec(source="mnist5k", image_size=28, channels=1)
    train, _ = load_images(spec, "train")
    test, _ = load_images(spec, "test")
    a, b = train[:n], test[:n]

    monkeypatch.setenv("ZOO_INCEPTION_WEIGHTS", str(weights))
    # Both sides on the CPU (torch-fidelity's with cuda=False): a GPU's TF32 would differ.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    extractor = load_extractor("inception")
    assert extractor.identity == "inception-v3-compat-" + sha256(weights)[:16]
    assert "unofficial weights" in extractor.convention
    assert "not comparable with published FIDs" in extractor.convention
    warnings = [line for line in capsys.readouterr().err.splitlines()
                if line.startswith("warning:")]
    assert len(warnings) == 1 and sha256(weights)[:16] in warnings[0]

    fa, fb = embed(extractor, a), embed(extractor, b)
    assert fa.shape == (n, 2048) and fa.dtype == torch.float32
    assert fa.std(0).mean() > 0  # the random network's features vary with the image
    ours_fid = fid(fa, fb)
    ours_kid, ours_kid_std, size = kid(fa, fb)

    theirs = calculate_metrics(input1=Images(to_uint8(a)), input2=Images(to_uint8(b)),
                               fid=True, kid=True, kid_subset_size=size,
                               feature_extractor="inception-v3-compat",
                               feature_extractor_weights_path=str(weights), cuda=False,
                               save_cpu_ram=True, cache=False, verbose=False)
    assert ours_fid > 0
    assert ours_fid == pytest.approx(theirs["frechet_inception_distance"], rel=1e-4)
    assert ours_kid == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-4)
    assert ours_kid_std == pytest.approx(theirs["kernel_inception_distance_std"], rel=1e-4)


def test_a_pth_in_torch_fidelitys_cache_is_converted_once_and_keeps_its_identity(
        weights: Path, isolated: Path) -> None:
    checkpoints = isolated / "torch-home" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    placed = shutil.copy(weights, checkpoints / inception.WEIGHTS_NAME)
    first = inception.load_inception(warn=lambda line: None)
    cache = isolated / "zoo-home" / "cache" / "features" / inception.CACHE_NAME
    assert sorted(p.name for p in cache.parent.iterdir()) == [inception.CACHE_NAME]
    Path(placed).unlink()  # the converted copy alone serves now
    second = inception.load_inception(warn=lambda line: None)
    assert first.identity == second.identity == "inception-v3-compat-" + sha256(weights)[:16]
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    torch.testing.assert_close(first(x), second(x), rtol=0, atol=0)


def test_offline_without_weights_is_one_line_naming_the_file_and_writes_nothing(
        isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsError) as error:
        load_extractor("inception")
    message = one_line(error)
    assert inception.WEIGHTS_NAME in message and "offline" in message
    assert str(isolated / "zoo-home" / "cache" / "features") in message
    assert "ZOO_INCEPTION_WEIGHTS" in message
    nothing_written(isolated)


def test_a_missing_explicit_weights_file_is_named(isolated: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOO_INCEPTION_WEIGHTS", str(isolated / "nope.pth"))
    with pytest.raises(WeightsError, match=r"ZOO_INCEPTION_WEIGHTS=.*nope\.pth: no such file"):
        inception.load_inception()
    nothing_written(isolated)


class Server:
    """A loopback HTTP server on a thread serving ``folder``."""

    def __init__(self, folder: Path) -> None:
        class Quiet(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs) -> None:
                super().__init__(*args, directory=str(folder), **kwargs)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def test_download_converts_and_later_loads_need_no_server(
        weights: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    digest = sha256(weights)
    served = isolated / "served"
    served.mkdir()
    name = f"weights-inception-random-{digest[:8]}.pth"
    shutil.copy(weights, served / name)
    server = Server(served)
    try:
        monkeypatch.setenv("ZOO_INCEPTION_URL", f"{server.url}/{name}")
        first = inception.load_inception(warn=lambda line: None)
    finally:
        server.stop()
    cache_dir = isolated / "zoo-home" / "cache" / "features"
    assert sorted(p.name for p in cache_dir.iterdir()) == [inception.CACHE_NAME]
    assert not (isolated / "torch-home").exists()
    second = inception.load_inception(warn=lambda line: None)  # the server is gone
    assert first.identity == second.identity == f"inception-v3-compat-{digest[:16]}"


@pytest.mark.parametrize("fault", ["bad hash", "not found"])
def test_a_bad_download_is_one_line_and_leaves_nothing(
        fault: str, weights: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    served = isolated / "served"
    served.mkdir()
    name = "weights-inception-random-00000000.pth"
    if fault == "bad hash":
        shutil.copy(weights, served / name)
    server = Server(served)
    url = f"{server.url}/{name}"
    try:
        monkeypatch.setenv("ZOO_INCEPTION_URL", url)
        with pytest.raises(WeightsError) as error:
            inception.load_inception()
    finally:
        server.stop()
    message = one_line(error)
    assert name in message and url in message and "ZOO_INCEPTION_WEIGHTS" in message
    assert ("sha256" if fault == "bad hash" else "404") in message
    nothing_written(isolated)


@pytest.mark.parametrize("fault", ["stalls", "truncates"])
def test_a_server_that_stalls_or_truncates_is_one_line_and_leaves_nothing(
        fault: str, isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    done = threading.Event()
    conns: list[socket.socket] = []

    def answer() -> None:
        conn, _ = listener.accept()
        conns.append(conn)
        if fault == "truncates":
            conn.recv(65536)
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
            conn.close()
        done.wait(10)  # a stalled server: accepts, never answers

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}/{inception.WEIGHTS_NAME}"
    monkeypatch.setenv("ZOO_INCEPTION_URL", url)
    monkeypatch.setenv("ZOO_DOWNLOAD_TIMEOUT", "0.5")
    try:
        with pytest.raises(WeightsError) as error:
            inception.load_inception()
    finally:
        done.set()
        thread.join()
        for conn in conns:
            conn.close()
        listener.close()
    message = one_line(error)
    assert inception.WEIGHTS_NAME in message and url in message
    assert ("no answer within 0.5 s" if fault == "stalls" else "") in message
    nothing_written(isolated)


class Evil:
    """Pickles into a call of os.system."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("where", ["ZOO_INCEPTION_WEIGHTS", "cache folder"])
def test_a_pth_with_code_is_refused_and_never_run(
        where: str, isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = isolated / "ran"
    if where == "ZOO_INCEPTION_WEIGHTS":
        evil = isolated / "evil.pth"
        monkeypatch.setenv("ZOO_INCEPTION_WEIGHTS", str(evil))
    else:
        evil = isolated / "zoo-home" / "cache" / "features" / inception.WEIGHTS_NAME
        evil.parent.mkdir(parents=True)
    torch.save({"Conv2d_1a_3x3.conv.weight": Evil(marker)}, evil)
    with pytest.raises(WeightsError) as error:
        inception.load_inception()
    message = one_line(error)
    assert str(evil) in message and "weights-only loader refused it" in message
    assert not marker.exists()
    assert sorted(p.name for p in evil.parent.iterdir()) == [evil.name]  # nothing converted


def test_weights_of_another_dtype_or_network_are_refused(
        weights: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = torch.load(weights, weights_only=True)
    double = dict(state, **{"fc.bias": state["fc.bias"].double()})
    torch.save(double, isolated / "double.pth")
    torch.save({k: v for k, v in state.items() if k != "fc.bias"}, isolated / "short.pth")
    for name, expected in (("double.pth", "fc.bias is torch.float64"),
                           ("short.pth", "1 missing")):
        monkeypatch.setenv("ZOO_INCEPTION_WEIGHTS", str(isolated / name))
        with pytest.raises(WeightsError, match=expected) as error:
            inception.load_inception()
        one_line(error)
