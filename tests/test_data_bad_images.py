"""Item 7 of issue 20: a bad image never stops an epoch.

Every image PIL can convert is converted (1x1, CMYK, 16-bit grey and RGB, palette with and
without transparency, alpha); what cannot be read (truncated, corrupt, empty, a decompression
bomb) is skipped with one warning and counted, unless ``data.strict`` makes it an error.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import MICRO
from PIL import Image

from zoo.core.errors import DataError
from zoo.core.spec import DataSpec
from zoo.data import ImageTooLarge, decode_rows, decode_view, find_images
from zoo.data.files import FolderSource
from zoo.data.split import view


def _png(img: Image.Image, **params) -> bytes:
    out = io.BytesIO()
    img.save(out, "PNG", **params)
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def _png16(colortype: int, channels: int, value: int = 50_000, side: int = 20) -> bytes:
    """A 16-bit PNG (PIL cannot write 16-bit RGB): colortype 2 RGB, 4 LA, 6 RGBA."""
    row = b"\0" + np.full((side, channels), value, ">u2").tobytes()
    return (b"\x89PNG\r\n\x1a\n"
            + _chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 16, colortype, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(row * side)) + _chunk(b"IEND", b""))


def _tiff_rgb16(value: int = 50_000, side: int = 20) -> bytes:
    """An uncompressed 16-bit RGB TIFF (PIL cannot write one either)."""
    data = np.full((side, side, 3), value, "<u2").tobytes()
    bits, pixels = 8, 14
    tags = [(256, 3, side), (257, 3, side), (258, 3, bits), (259, 3, 1), (262, 3, 2),
            (273, 4, pixels), (277, 3, 3), (278, 3, side), (279, 4, len(data)), (284, 3, 1)]
    ifd = struct.pack("<H", len(tags)) + b"".join(
        struct.pack("<HHI", tag, kind, 3 if tag == 258 else 1)
        + (struct.pack("<I", value) if kind == 4 or tag == 258 else struct.pack("<HH", value, 0))
        for tag, kind, value in tags) + struct.pack("<I", 0)
    return (b"II*\0" + struct.pack("<I", pixels + len(data)) + struct.pack("<3H", 16, 16, 16)
            + data + ifd)


def _bomb(side: int = 20_000) -> bytes:
    """A PNG of a few KB whose header declares ``side``×``side`` 1-bit pixels."""
    idat = zlib.compress(b"\0" * (side // 8 + 1), 9)
    return (b"\x89PNG\r\n\x1a\n"
            + _chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
            + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))


def _palette(transparency: int | bytes | None) -> bytes:
    img = Image.new("P", (20, 20), 0)
    img.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
    return _png(img) if transparency is None else _png(img, transparency=transparency)


def _cmyk() -> bytes:
    out = io.BytesIO()
    Image.new("CMYK", (20, 20), (10, 200, 30, 0)).save(out, "JPEG", quality=95)
    return out.getvalue()


_FULL = _png(Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)))

#: name -> (file name, bytes, expected 16x16 RGB pixel (one value per channel) or None: skipped)
CASES: dict[str, tuple[str, bytes, tuple[int, int, int] | None]] = {
    "1x1": ("one.png", _png(Image.new("RGB", (1, 1), (200, 10, 10))), (200, 10, 10)),
    "cmyk": ("cmyk.jpg", _cmyk(), None),  # expected: PIL's own CMYK -> RGB (checked below)
    "grey16": ("grey16.png", _png(Image.fromarray(np.full((20, 20), 50_000, np.uint16))),
               (195, 195, 195)),  # 50,000 / 257
    "rgb16_png": ("rgb16.png", _png16(2, 3), (195, 195, 195)),
    "rgb16_tiff": ("rgb16.tiff", _tiff_rgb16(), (195, 195, 195)),
    "rgba16_png": ("rgba16.png", _png16(6, 4), (195, 195, 195)),
    "palette": ("palette.png", _palette(None), (255, 0, 0)),
    "palette_transparent": ("palette_t.png", _palette(0), (255, 0, 0)),
    "palette_alpha_bytes": ("palette_tb.png", _palette(bytes([0, 128, 255])), (255, 0, 0)),
    "rgba": ("rgba.png", _png(Image.new("RGBA", (20, 20), (10, 20, 30, 100))), (10, 20, 30)),
    "la": ("la.png", _png(Image.new("LA", (20, 20), (100, 50))), (100, 100, 100)),
    "truncated": ("truncated.png", _FULL[: len(_FULL) // 2], None),
    "corrupt": ("corrupt.png", b"\x89PNG\r\n\x1a\n" + bytes(100), None),
    "empty": ("empty.jpg", b"", None),
    "bomb": ("bomb.png", _bomb(), None),
    # a PPM header PIL rejects with ValueError (not OSError), whatever the file is called
    "bad_header": ("zz_bad.jpg", b"P6\n2\xfd 2\n255\n", None),
}
SKIPPED = {"truncated", "corrupt", "empty", "bomb", "bad_header"}
CONVERTED = sorted(set(CASES) - SKIPPED)


def _good(root: Path, n: int) -> None:
    rng = np.random.default_rng(1)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (24, 20, 3), np.uint8)).save(root / f"good{i:03}.png")


def _source(tmp_path: Path, *names: str, good: int = 2) -> FolderSource:
    """A folder source of ``good`` good images and the named cases (every file, tiff too)."""
    root = tmp_path / "data"
    root.mkdir(exist_ok=True)
    _good(root, good)
    for name in names:
        file, raw, _ = CASES[name]
        (root / file).write_bytes(raw)
    return FolderSource(root, sorted(p for p in root.iterdir()))


def _row(source: FolderSource, file: str) -> int:
    return list(source.keys).index(file)


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_image_is_converted_or_skipped(case, tmp_path):
    file, raw, expected = CASES[case]
    source = _source(tmp_path, case)
    row = _row(source, file)
    rows = np.asarray([row, *(i for i in range(len(source)) if i != row)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no PIL warning escapes (palette transparency, bombs)
        decoded = decode_rows(source, rows, "RGB", 16)
    assert decoded.images.shape == (len(rows), 3, 16, 16)
    assert decoded.images.dtype == np.uint8
    if case in SKIPPED:
        (key, reason), = decoded.skipped
        assert key == file and file in reason and "\n" not in reason
        assert str(tmp_path) not in reason  # named by its key, not its full path twice
        if case == "empty":
            assert reason.endswith("the file is empty")
        # replaced by the next good row of the batch: the batch keeps its size
        assert np.array_equal(decoded.images[0], decoded.images[1])
        with pytest.raises(ImageTooLarge if case == "bomb" else DataError, match=file):
            decode_rows(source, rows, "RGB", 16, strict=True)
        return
    assert decoded.skipped == []
    if case == "cmyk":
        with Image.open(io.BytesIO(raw)) as img:
            expected = img.convert("RGB").getpixel((10, 10))
    assert decoded.images[0].reshape(3, -1).mean(1).round().tolist() == pytest.approx(
        list(expected), abs=1)
    grey = decode_rows(source, rows[:1], "L", 16)  # and as one grey channel
    assert grey.images.shape == (1, 1, 16, 16) and grey.skipped == []


def test_a_source_whose_read_breaks_loses_that_row_only(tmp_path):
    """A plugin source's read() that raises anything, or returns something that is no image,
    makes a bad row (counted); under strict, one PluginError line."""
    from zoo.core.errors import PluginError

    source = _source(tmp_path)

    class Lying(FolderSource):
        def read(self, i):
            if i == 0:
                raise KeyError("no such row\nsecond line")
            return 42 if i == 1 else super().read(i)

    lying = Lying.__new__(Lying)
    lying.__dict__.update(source.__dict__)
    _good(tmp_path / "data", 4)
    lying.__dict__.update(FolderSource(tmp_path / "data",
                                       sorted((tmp_path / "data").iterdir())).__dict__)
    decoded = decode_rows(lying, np.arange(4), "RGB", 16)
    assert [key for key, _ in decoded.skipped] == [lying.keys[0], lying.keys[1]]
    assert all("\n" not in reason for _, reason in decoded.skipped)
    assert "KeyError" in decoded.skipped[0][1]
    with pytest.raises(PluginError, match="KeyError"):
        decode_rows(lying, np.arange(4), "RGB", 16, strict=True)


def test_rgb_and_grey_pixels_are_unchanged(tmp_path):
    """The conversions leave ordinary 8-bit images exactly as before."""
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (16, 16, 3), np.uint8)
    grey = rng.integers(0, 256, (16, 16), np.uint8)
    root = tmp_path / "plain"
    root.mkdir()
    Image.fromarray(rgb).save(root / "a.png")
    Image.fromarray(grey).save(root / "b.png")
    source = FolderSource(root, [root / "a.png", root / "b.png"])
    assert np.array_equal(decode_rows(source, np.asarray([0]), "RGB", 16).images[0],
                          rgb.transpose(2, 0, 1))
    assert np.array_equal(decode_rows(source, np.asarray([1]), "L", 16).images[0, 0], grey)


def test_a_batch_without_one_good_image_is_one_line(tmp_path):
    source = _source(tmp_path, *sorted(SKIPPED), good=0)
    with pytest.raises(DataError, match=f"none of a batch's {len(SKIPPED)} images") as info:
        decode_rows(source, np.arange(len(source)), "RGB", 16)
    assert "\n" not in str(info.value)


def _folder_with_every_case(root: Path, good: int = 40) -> Path:
    root.mkdir()
    _good(root, good)
    for file, raw, _ in CASES.values():
        (root / file).write_bytes(raw)
    return root


def test_decode_view_skips_each_bad_image_once_with_one_warning(tmp_path, capsys):
    root = _folder_with_every_case(tmp_path / "data")
    spec = DataSpec(source="folder", path=str(root), image_size=16, held_out=0.5)
    source = FolderSource(root, find_images(root).files)
    images, total = 0, 0
    for split in ("train", "test"):
        x, _ = decode_view(source, spec, split)
        images += len(x)
        total += len(view(source, split, spec))
    listed = {CASES[c][0] for c in CASES} - {"rgb16.tiff"}  # .tiff is not an image suffix
    assert total == 40 + len(listed)
    assert images == total - len(SKIPPED)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == len(SKIPPED)
    assert all(line.startswith("warning: skipping") for line in lines)
    assert {line for line in lines for c in SKIPPED if CASES[c][0] in line} == set(lines)


def _sets(*overrides: str) -> list[str]:
    return [arg for o in overrides for arg in ("--set", o)]


def _one_batch_build(root: Path) -> list[str]:
    """A micro DCGAN build of two steps, each a batch of (nearly) every training image of
    ``root``: as many as are good, so it runs whether bad images are dropped or replaced."""
    spec = DataSpec(source="folder", path=str(root))
    n = len(view(FolderSource(root, find_images(root).files), "train", spec))
    batch = n - len(_bad_training_files(root))
    return _sets(*MICRO, "train.max_steps=2", f"train.batch_size={batch}",
                 "train.precision=fp32", "data.source=folder", f"data.path={root}",
                 "data.channels=3")


def _bad_training_files(root: Path) -> set[str]:
    source = FolderSource(root, find_images(root).files)
    train = {source.keys[int(i)] for i in view(source, "train", DataSpec(
        source="folder", path=str(root)))}
    return {CASES[c][0] for c in SKIPPED} & train


def test_a_build_over_every_bad_image_completes(tmp_path, cli):
    root = _folder_with_every_case(tmp_path / "data")
    out = tmp_path / "model"
    bad = _bad_training_files(root)
    assert bad  # the hash split leaves some bad images in training
    r = cli("build", "dcgan", *_one_batch_build(root), "--out", out)
    assert r.code == 0, r.err
    assert (out / "config.json").is_file()
    warned = [line for line in r.err.splitlines() if line.startswith("warning: skipping")]
    # each bad training image is said once; none of the converted ones is
    named = [next(f for f in bad if f in line) for line in warned]  # each names a bad file
    assert warned and len(set(named)) == len(named)
    assert not any(CASES[c][0] in line for line in warned for c in CONVERTED)


def test_strict_makes_the_first_bad_image_one_line(tmp_path, cli):
    root = _folder_with_every_case(tmp_path / "data")
    out = tmp_path / "model"
    r = cli("build", "dcgan", *_one_batch_build(root), "--set", "data.strict=true",
            "--out", out)
    assert r.code == 2, r.err
    (line,) = r.err.strip().splitlines()
    assert line.startswith("error: ") and any(f in line for f in _bad_training_files(root))
    assert not out.exists()


def test_a_row_the_source_cannot_read_is_skipped_like_a_bad_image(tmp_path, capsys):
    """A source's read() may raise DataError (a vanished shard): counted, warned once."""
    source = _source(tmp_path, good=3)

    class Flaky(FolderSource):
        def read(self, i):
            if i == 1:
                raise DataError(f"cannot read row {self.keys[i]}: the shard is gone")
            return super().read(i)

    flaky = Flaky.of_listing(source.root, source.keys, source.paths)
    spec = DataSpec(source="folder", path=str(source.root), image_size=16, held_out=0.01)
    rows = view(flaky, "train", spec)
    images, _ = decode_view(flaky, spec, "train")
    assert len(images) == len(rows) - 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == f"warning: skipping cannot read row {source.keys[1]}: the shard is gone"
