"""Item 1 of issue 20: a folder's file list is walked once and cached until the folder changes."""

from __future__ import annotations

import os
import time
import unicodedata
from pathlib import Path

import pytest

from zoo.core.spec import DataSpec
from zoo.data import listing as listing_module
from zoo.data import load_folder
from zoo.data.listing import cache_file, list_folder


def settle(root: Path) -> None:
    """Date every directory of ``root`` 10 s back, as a folder that is not being written."""
    past = time.time() - 10
    for folder, _, _ in os.walk(root):
        os.utime(folder, (past, past))


@pytest.fixture
def folder(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    root = tmp_path / "data"
    for name in ("a.png", "b/c.jpg", "b/d/e.png", "notes.txt"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")
    settle(root)
    return root


def keys(root: Path) -> list[str]:
    return list(list_folder(root).keys)


@pytest.fixture
def no_walk(monkeypatch):
    """Make a walk fail: what is listed then comes from the cache."""
    def walked(*args, **kwargs):
        raise AssertionError("walked the folder")

    return lambda: monkeypatch.setattr(listing_module, "walk", walked)


def test_the_listing_is_cached_and_reused(folder, no_walk):
    assert keys(folder) == ["a.png", "b/c.jpg", "b/d/e.png"]
    assert cache_file(folder).is_file()
    no_walk()
    assert keys(folder) == ["a.png", "b/c.jpg", "b/d/e.png"]
    source = load_folder(DataSpec(source="folder", path=str(folder)), "train")
    assert source.read(2) == folder / "b/d/e.png"


@pytest.mark.parametrize("change", ["add", "remove", "rename", "subfolder"])
def test_any_change_to_the_tree_lists_it_again(folder, change):
    keys(folder)
    if change == "add":
        (folder / "b/d/new.png").write_bytes(b"x")
    elif change == "remove":
        (folder / "b/d/e.png").unlink()
    elif change == "rename":
        (folder / "b/c.jpg").rename(folder / "b/z.jpg")
    else:
        (folder / "b/d/f").mkdir()
        (folder / "b/d/f/g.png").write_bytes(b"x")
    expected = sorted(str(p.relative_to(folder).as_posix()) for p in folder.rglob("*")
                      if p.suffix in (".png", ".jpg"))
    assert keys(folder) == expected


def test_editing_an_image_keeps_the_cache(folder, no_walk):
    keys(folder)
    (folder / "b/c.jpg").write_bytes(b"other bytes")
    no_walk()
    assert keys(folder) == ["a.png", "b/c.jpg", "b/d/e.png"]


def test_a_folder_being_written_is_not_cached(folder):
    (folder / "fresh.png").write_bytes(b"x")  # its folder was modified just now
    keys(folder)
    assert not cache_file(folder).exists()


def test_an_unwritable_or_broken_cache_is_skipped(folder, monkeypatch, tmp_path):
    keys(folder)
    cache_file(folder).write_bytes(b"not a cache")
    assert keys(folder) == ["a.png", "b/c.jpg", "b/d/e.png"]  # listed again, rewritten
    home = tmp_path / "home-file"
    home.write_text("a file, not a folder")
    monkeypatch.setenv("ZOO_HOME", str(home))
    assert keys(folder) == ["a.png", "b/c.jpg", "b/d/e.png"]


def test_the_cache_keeps_decomposed_names(folder, no_walk):
    nfd = unicodedata.normalize("NFD", "é.png")
    (folder / nfd).write_bytes(b"x")
    settle(folder)
    first = load_folder(DataSpec(source="folder", path=str(folder)), "train")
    no_walk()
    again = load_folder(DataSpec(source="folder", path=str(folder)), "train")
    row = list(again.keys).index("é.png")  # the key is NFC; the file keeps its name
    assert again.read(row) == first.read(row) == folder / nfd


def test_a_big_folder_says_it_is_listing(folder, monkeypatch, capsys):
    monkeypatch.setattr(listing_module, "PROGRESS_FILES", 2)
    keys(folder)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == f"listing the images under {folder} ..."
    assert lines[1].startswith(f"listed 3 images under {folder} in ")
    assert lines[1].endswith("cached until the folder changes")
    keys(folder)
    assert capsys.readouterr().err == ""  # from the cache: nothing to say
