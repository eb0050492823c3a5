"""zoo dedup on hostile folders: a decompression bomb, a report aimed inside the source, a
filename that is not UTF-8, a subfolder it cannot list, a link to a file outside the source.
Each is one warning or error line, counted in the summary; originals are never touched."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import zoo
from zoo.core.spec import DataSpec
from zoo.data import load_images
from zoo.data.split import key_hash


def bomb(path: Path, side: int = 20000) -> Path:
    """A 1-bit PNG of side x side zero pixels: 48 KB on disk, 400 MB once decoded."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + side // 8)
    data = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def images_folder(root: Path, n: int = 9) -> Path:
    """``n`` distinct random 12x12 grey PNGs named 1.png .. n.png."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(1, n + 1):
        Image.fromarray((rng.random((12, 12)) * 255).astype(np.uint8)).save(root / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def hash_model(tmp_path_factory) -> Path:
    """A dedup-ae after one training step: untrained, but identical images share a hash."""
    # 12 images: 10 fall in the hash split's training part, enough for a batch of 8
    folder = images_folder(tmp_path_factory.mktemp("train") / "images", n=12)
    return zoo.build("dedup-ae", None, ["data.source=folder", f"data.path={folder}",
                                        "data.channels=1", "train.max_steps=1",
                                        "train.batch_size=8", "train.precision=fp32"],
                     tmp_path_factory.mktemp("model") / "dd")


@pytest.fixture
def source(tmp_path, monkeypatch) -> Path:
    """``src/`` with 9 distinct images and a byte copy of 5.png, as ``copy.png``; cwd is
    tmp_path."""
    monkeypatch.chdir(tmp_path)
    src = images_folder(tmp_path / "src")
    shutil.copy(src / "5.png", src / "copy.png")
    return src


def warnings_of(err: str) -> list[str]:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert all(line.startswith("warning: ") for line in lines), err
    return lines


def report_paths(report: Path) -> set[str]:
    return {p for group in json.loads(report.read_text())["groups"] for p in group}


# --------------------------------------------------------------------------- 12: bombs


def test_a_decompression_bomb_is_skipped_with_one_line(source, hash_model, cli, tmp_path):
    bomb(source / "bomb.png")
    assert (source / "bomb.png").stat().st_size < 60_000
    r = cli("dedup", "src", "--model", hash_model, "--report", "r.json", "--write-clean",
            "clean", "--quiet")
    assert r.code == 0, r.err
    (line,) = warnings_of(r.err)
    assert "src/bomb.png" in line and "MAX_IMAGE_PIXELS" in line
    assert "10 images: 1 groups" in r.out and "1 image over the pixel limit" in r.out
    assert report_paths(tmp_path / "r.json") == {"src/5.png", "src/copy.png"}
    assert sorted(p.name for p in (tmp_path / "clean").iterdir()) == sorted(
        f"{i}.png" for i in range(1, 10))


def test_training_on_a_folder_with_a_bomb_skips_it_once(source, cli, tmp_path):
    bomb(source / "bomb.png")
    r = cli("dedup", "src", "--set", "train.max_steps=1", "--save-model", "m", "--quiet")
    assert r.code == 0, r.err
    (line,) = warnings_of(r.err)  # said once: by the header scan, not again by training
    assert "bomb.png" in line
    assert "1 image over the pixel limit" in r.out and (tmp_path / "m").is_dir()


def test_a_data_folder_skips_a_bomb_with_a_warning(tmp_path, capsys):
    images_folder(tmp_path / "data", n=10)
    bomb(tmp_path / "data" / "big.png")
    images, _ = load_images(DataSpec(source="folder", path=str(tmp_path / "data"),
                                     image_size=8), "train")
    # the hash split puts big.png in training; the readable rest of training is returned
    train = [k for k in [f"{i}.png" for i in range(1, 11)] + ["big.png"]
             if key_hash(k) >= 0.1 * 2**64]
    assert "big.png" in train and len(images) == len(train) - 1
    (line,) = warnings_of(capsys.readouterr().err)
    assert "big.png" in line and "pixel" in line


def test_sample_input_refuses_a_bomb_in_one_line(tmp_path):
    from zoo.data import ImageTooLarge
    from zoo.sampling.sample import read_image

    with pytest.raises(ImageTooLarge, match="MAX_IMAGE_PIXELS"):
        read_image(bomb(tmp_path / "in.png"))


# --------------------------------------------------------------------------- 13: reports


@pytest.mark.parametrize("target", ["src/labels.csv", "src/dups.json", "src/../src/x.json",
                                    "inside/dups.json"])
def test_a_report_inside_the_source_is_refused(target, source, hash_model, cli, tmp_path):
    (source / "labels.csv").write_text("precious\n")
    os.symlink(source, tmp_path / "inside")  # a path that only resolves into the source
    before = sorted(p.name for p in source.iterdir())
    r = cli("dedup", "src", "--model", hash_model, "--report", target, "--quiet")
    assert r.code == 2, (r.out, r.err)
    (line,) = r.err.strip().splitlines()
    assert line.startswith("error: --report") and "inside the source" in line
    assert (source / "labels.csv").read_text() == "precious\n"
    assert sorted(p.name for p in source.iterdir()) == before
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("save_model", [None, "sub/model"])
def test_a_model_trained_inside_the_source_is_refused(save_model, source, cli, monkeypatch):
    """``cd src; zoo dedup .`` put runs/dedup-... (and its samples.png) inside the source,
    where the next run read the sample grid as one of the images."""
    monkeypatch.chdir(source)
    monkeypatch.setattr("zoo.training.loop.fit", lambda *a, **k: pytest.fail("training started"))
    before = sorted(p.name for p in source.iterdir())
    args = ["--save-model", save_model] if save_model else []
    r = cli("dedup", ".", *args, "--set", "train.max_steps=1", "--quiet")
    assert r.code == 2 and r.err.count("\n") == 1, r.err
    assert "inside the source .; pass --save-model DIR outside it" in r.err
    assert sorted(p.name for p in source.iterdir()) == before


def test_reports_of_a_filename_that_is_not_utf8_round_trip(source, hash_model, cli, tmp_path):
    odd = os.fsdecode(b"caf\xe9.png")  # Latin-1 bytes: not UTF-8, a surrogate escape here
    shutil.copy(source / "5.png", source / odd)
    r = cli("dedup", "src", "--model", hash_model, "--report", "g.csv", "--report", "g.json",
            "--report", f"{odd}.csv", "--quiet")
    assert r.code == 0, r.err
    raw = (tmp_path / "g.csv").read_bytes()
    assert b"src/caf\xe9.png" in raw  # the name's own bytes
    text = raw.decode("utf-8", "surrogateescape")
    paths = [row["path"] for row in csv.DictReader(io.StringIO(text))]
    assert len(paths) == 3 and all(Path(p).is_file() for p in paths)
    (group,) = json.loads((tmp_path / "g.json").read_text())["groups"]
    assert os.path.join("src", odd) in group and all(Path(p).is_file() for p in group)
    assert (tmp_path / f"{odd}.csv").read_bytes() == raw
    assert "wrote caf\\xe9.png.csv" in r.out


# --------------------------------------------------------------------------- 13: listing


def deny(monkeypatch, name: str) -> None:
    """Make listing any folder called ``name`` fail as ``chmod 000`` does for a non-root user
    (tests run as root, who may read anything)."""
    scandir = os.scandir

    def guarded(path="."):
        if os.path.basename(os.fspath(path)) == name:
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", guarded)


def test_an_unreadable_subfolder_is_named_and_counted(source, hash_model, cli, tmp_path,
                                                     monkeypatch):
    (source / "locked").mkdir()
    shutil.copy(source / "1.png", source / "locked" / "a.png")
    deny(monkeypatch, "locked")
    r = cli("dedup", "src", "--model", hash_model, "--write-clean", "clean", "--quiet")
    assert r.code == 0, r.err
    (line,) = warnings_of(r.err)
    assert "src/locked" in line and "Permission denied" in line
    assert "10 images" in r.out and "1 folder that could not be listed" in r.out


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod 000 folder")
def test_an_unreadable_subfolder_for_real(source, hash_model, cli):
    (source / "locked").mkdir()
    shutil.copy(source / "1.png", source / "locked" / "a.png")
    (source / "locked").chmod(0)
    try:
        r = cli("dedup", "src", "--model", hash_model, "--quiet")
    finally:
        (source / "locked").chmod(0o755)
    assert r.code == 0 and "src/locked" in r.err and "could not be listed" in r.out


def test_a_data_folder_warns_about_an_unreadable_subfolder(tmp_path, monkeypatch, capsys):
    images_folder(tmp_path / "data", n=10)
    (tmp_path / "data" / "hidden").mkdir()
    deny(monkeypatch, "hidden")
    load_images(DataSpec(source="folder", path=str(tmp_path / "data"), image_size=8), "train")
    (line,) = warnings_of(capsys.readouterr().err)
    assert "hidden" in line and "left out" in line


def test_links_outside_the_source_are_left_out_unless_asked(source, hash_model, cli, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    shutil.copy(source / "5.png", tmp_path / "elsewhere" / "x.png")
    os.symlink(tmp_path / "elsewhere" / "x.png", source / "0-link.png")  # sorts first
    os.symlink(source / "2.png", source / "2-inside.png")  # inside: an ordinary duplicate
    r = cli("dedup", "src", "--model", hash_model, "--report", "a.json", "--write-clean", "a",
            "--quiet")
    assert r.code == 0, r.err
    (line,) = warnings_of(r.err)
    assert "0-link.png" in line and "--follow-links" in line
    assert "11 images: 2 groups" in r.out and "1 link to files outside" in r.out
    assert report_paths(tmp_path / "a.json") == {"src/5.png", "src/copy.png", "src/2.png",
                                                 "src/2-inside.png"}
    kept = {p.name for p in (tmp_path / "a").iterdir()}
    assert "5.png" in kept and "0-link.png" not in kept

    r = cli("dedup", "src", "--model", hash_model, "--follow-links", "--write-clean", "b",
            "--quiet")
    assert r.code == 0 and r.err == "", r.err
    assert "12 images: 2 groups" in r.out and "outside" not in r.out
    kept = {p.name for p in (tmp_path / "b").iterdir()}
    assert "0-link.png" in kept and "5.png" not in kept  # asked for: the link may win
