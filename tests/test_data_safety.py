"""Image files a user really has (16-bit PNGs) and sample counts a user really asks for:
wide grey is scaled, not clipped to white, by every reader; ``zoo sample`` streams a folder
of PNGs or a tensor file and refuses a grid too large to hold."""

from __future__ import annotations

import functools
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zoo.core.spec import DataSpec
from zoo.data import load_images

# --------------------------------------------------------------------------- 16-bit images

GRADIENT = np.array([*range(0, 57345, 4096), 65535], np.uint16)  # 0, 4096 .. 32768 .. 65535
EXPECTED = GRADIENT / 65535.0


def grey16(path: Path) -> Path:
    """A 16x16 16-bit grey PNG whose columns run from 0 to 65535."""
    image = Image.fromarray(np.tile(GRADIENT, (16, 1)))
    assert image.mode == "I;16"
    image.save(path)
    return path


def rgb16_png(path: Path) -> Path:
    """A 16x16 16-bit-per-channel RGB PNG (PIL cannot write one): red runs 0..65535."""
    rgb = np.zeros((16, 16, 3), np.uint16)
    rgb[..., 0] = GRADIENT
    rgb[..., 2] = 65535
    raw = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in rgb)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 16, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path


def test_16bit_grey_png_in_a_data_folder_keeps_its_gradient(tmp_path):
    for i in range(10):
        grey16(tmp_path / f"{i}.png")
    images, _ = load_images(DataSpec(source="folder", path=str(tmp_path), image_size=16,
                                     channels=1), "train")
    row = images[0, 0, 8].numpy()
    assert row[0] == 0.0 and row[-1] == 1.0
    assert abs(row[8] - 0.5) < 0.003  # 32768: mid grey, not white
    assert np.allclose(row, EXPECTED, atol=0.5 / 255 + 1e-6)


def test_16bit_grey_png_as_rgb_data_keeps_its_gradient(tmp_path):
    for i in range(10):
        grey16(tmp_path / f"{i}.png")
    images, _ = load_images(DataSpec(source="folder", path=str(tmp_path), image_size=16,
                                     channels=3), "train")
    assert images.shape[1] == 3
    assert np.allclose(images[0, :, 8].numpy(), np.tile(EXPECTED, (3, 1)), atol=0.5 / 255 + 1e-6)


def test_dedup_and_sample_input_read_16bit_pngs_like_the_data_folder(tmp_path):
    from zoo_dedup.images import read_file

    from zoo.sampling.sample import read_image

    path = grey16(tmp_path / "wide.png")
    hashed = read_file(path, 16, 1)
    assert hashed.shape == (1, 16, 16) and abs(int(hashed[0, 8, 8]) - 128) <= 1
    assert np.allclose(hashed[0, 8] / 255.0, EXPECTED, atol=0.5 / 255 + 1e-6)
    given = read_image(path)  # zoo sample --opt input=PATH
    assert given.shape == (1, 16, 16)
    assert np.allclose(given[0, 8].numpy(), EXPECTED, atol=0.5 / 255 + 1e-6)


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I;16L", "I", "F"])
def test_every_wide_grey_mode_is_scaled_not_clipped(mode):
    from zoo.data import to_8bit

    if mode == "F":
        image = Image.fromarray((GRADIENT / 65535.0).astype(np.float32)[None])
    elif mode == "I":
        image = Image.fromarray(GRADIENT.astype(np.int32)[None])
    else:
        dtype = {"I;16": "<u2", "I;16L": "<u2", "I;16B": ">u2"}[mode]
        image = Image.frombytes(mode, (16, 1), GRADIENT.astype(dtype).tobytes())
    assert image.mode == mode
    grey = np.asarray(to_8bit(image, "L"))[0]
    assert np.array_equal(grey, np.round(EXPECTED * 255).astype(np.uint8)), grey
    assert np.asarray(to_8bit(image, "RGB")).shape == (1, 16, 3)


def test_16bit_rgb_png_keeps_its_colours(tmp_path):
    for i in range(10):
        rgb16_png(tmp_path / f"{i}.png")
    images, _ = load_images(DataSpec(source="folder", path=str(tmp_path), image_size=16,
                                     channels=3), "train")
    # PIL keeps the high byte of each 16-bit channel (truncation: within 1/255)
    assert np.allclose(images[0, 0, 8].numpy(), EXPECTED, atol=1 / 255 + 1e-6)
    assert float(images[0, 1].max()) == 0.0 and float(images[0, 2].min()) == 1.0


def rotated_jpeg(path: Path) -> Path:
    """A photo stored 32 wide and 16 high, top half white, with EXIF orientation 6 (the
    camera was turned: viewers show it 16 wide and 32 high, the white half on the right)."""
    stored = np.zeros((16, 32), np.uint8)
    stored[:8] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).convert("RGB").save(path, exif=exif, quality=95)
    return path


def test_exif_rotated_photos_are_read_upright(tmp_path):
    """The data folder, zoo dedup and zoo sample --opt input= see a photo as viewers show it."""
    from zoo_dedup.images import read_file

    from zoo.data import decode_image
    from zoo.sampling.sample import read_image

    path = rotated_jpeg(tmp_path / "photo.jpg")
    upright = decode_image(path, "L")
    assert upright.shape == (32, 16)
    assert upright[:, 12].min() > 200 and upright[:, 3].max() < 50  # white on the right
    hashed = read_file(path, 16, 1)[0]
    assert hashed[:, 12].min() > 200 and hashed[:, 3].max() < 50
    assert read_image(path).shape[-2:] == (32, 16)
    for i in range(4):
        rotated_jpeg(tmp_path / f"{i}.jpg")
    images, _ = load_images(DataSpec(source="folder", path=str(tmp_path), image_size=16,
                                     channels=1), "train")
    assert float(images[0, 0, :, 12].min()) > 0.8 and float(images[0, 0, :, 3].max()) < 0.2


# --------------------------------------------------------------------------- zoo sample


def pixels(model_dir: Path, n: int, seed: int = 0) -> np.ndarray:
    """What every output of ``zoo sample`` must hold: uint8 N×C×H×W."""
    import zoo

    images = zoo.from_pretrained(model_dir).sample(n, seed=seed)
    return images.clamp(0, 1).mul(255).round().byte().numpy()


def test_sample_to_a_folder_and_to_tensor_files(micro_dcgan, cli, tmp_path):
    from safetensors import safe_open
    from safetensors.numpy import load_file

    want = pixels(micro_dcgan, 7, seed=2)
    for target in ("pngs", "x.npy", "x.npz", "x.safetensors"):
        r = cli("sample", micro_dcgan, "-n", "7", "--seed", "2", "--batch-size", "3",
                "-o", tmp_path / target)
        assert r.code == 0, r.err
        assert "7 images, seed 2" in r.out
    names = sorted(p.name for p in (tmp_path / "pngs").iterdir())
    assert names == [f"{i:04d}.png" for i in range(7)]
    folder = np.stack([np.asarray(Image.open(tmp_path / "pngs" / name)) for name in names])
    assert np.array_equal(folder, want[:, 0])  # grey model: grey PNGs
    assert np.array_equal(np.load(tmp_path / "x.npy", mmap_mode="r"), want)
    assert np.array_equal(np.load(tmp_path / "x.npz")["images"], want)
    assert np.array_equal(load_file(str(tmp_path / "x.safetensors"))["images"], want)
    with safe_open(str(tmp_path / "x.safetensors"), "np") as fh:
        assert fh.metadata()["seed"] == "2" and fh.metadata()["family"] == "dcgan"
    # an existing folder is never written into
    (tmp_path / "empty").mkdir()
    for existing in ("pngs", "empty"):
        r = cli("sample", micro_dcgan, "-n", "2", "-o", tmp_path / existing)
        assert r.code == 2 and "already exists" in r.err
    assert len(list((tmp_path / "pngs").iterdir())) == 7
    assert not any((tmp_path / "empty").iterdir())


@pytest.fixture
def watched_sampler(monkeypatch):
    """Patch the dcgan sampler to run a callback (given the call number) before each batch."""
    from zoo.core.registry import get_family

    impl = get_family("dcgan").load()
    original = impl.sample
    calls: list = []

    def install(callback):
        @functools.wraps(original)
        def sample(*args, **kwargs):
            calls.append(callback(len(calls)))
            return original(*args, **kwargs)

        monkeypatch.setattr(impl, "sample", sample)
        return calls

    return install


@pytest.mark.parametrize("target", ["pngs", "x.npy", "x.safetensors"])
def test_images_are_written_as_they_are_made(micro_dcgan, cli, tmp_path, watched_sampler,
                                            target):
    """Before batch k is sampled, the first k - 1 batches are already on disk (in the
    temporary sibling that is renamed at the end): memory holds one batch, not all n."""

    def on_disk(_: int) -> int:
        (tmp,) = list(tmp_path.glob(f".{target}.tmp-*")) or [None]
        if tmp is None:
            return 0
        return len(list(tmp.iterdir())) if tmp.is_dir() else tmp.stat().st_size

    calls = watched_sampler(on_disk)
    r = cli("sample", micro_dcgan, "-n", "8", "--batch-size", "2", "-o", tmp_path / target)
    assert r.code == 0, r.err
    assert len(calls) == 4
    per_batch = 2 if target == "pngs" else 2 * 16 * 16  # files, or bytes of 2 grey 16x16
    if target == "pngs":
        assert calls == [0, 2, 4, 6]
    else:
        header = calls[1] - per_batch
        assert header > 0 and calls == [0] + [header + k * per_batch for k in (1, 2, 3)]
    assert not list(tmp_path.glob(".*tmp*"))


def test_an_error_while_sampling_leaves_nothing(micro_dcgan, cli, tmp_path, watched_sampler):
    from zoo.core.errors import ZooError

    def fail_third(call: int) -> None:
        if call == 2:
            raise ZooError("the sampler broke")

    watched_sampler(fail_third)
    for target in ("pngs", "x.npz"):
        r = cli("sample", micro_dcgan, "-n", "8", "--batch-size", "2", "-o", tmp_path / target)
        assert r.code == 2 and "the sampler broke" in r.err
    assert list(tmp_path.iterdir()) == []


def test_a_grid_too_large_to_hold_is_refused_with_a_hint(micro_dcgan, cli, tmp_path):
    r = cli("sample", micro_dcgan, "-n", "5000", "-o", tmp_path / "grid.png")
    assert r.code == 2, r.err
    (line,) = r.err.strip().splitlines()
    assert line.startswith("error: ") and "5,000 images" in line
    assert "-o DIR" in line and ".npz" in line and ".safetensors" in line
    # one row of 600 16x16 images: 10,802 pixels wide, refused after the first batch
    r = cli("sample", micro_dcgan, "-n", "600", "--nrow", "600", "-o", tmp_path / "grid.png")
    assert r.code == 2 and "pixels a side" in r.err and "-o DIR" in r.err
    assert list(tmp_path.iterdir()) == []
    r = cli("sample", micro_dcgan, "-n", "600", "--nrow", "20", "-o", tmp_path / "grid.png")
    assert r.code == 0, r.err


def test_sample_refuses_an_output_it_cannot_write(micro_dcgan, cli, tmp_path):
    r = cli("sample", micro_dcgan, "-n", "2", "-o", tmp_path / "grid.jpg")
    assert r.code == 2 and "FILE.png" in r.err and "FILE.npz" in r.err
    r = cli("sample", micro_dcgan, "-n", "2", "-o", tmp_path / "nowhere" / "x.npz")
    assert r.code == 2 and "does not exist" in r.err


@pytest.mark.parametrize("name", ["grid.png", "x.NPY", "x.safetensors"])
def test_sample_to_an_existing_folder_named_like_a_file_is_one_line(name, micro_dcgan, cli,
                                                                   tmp_path, monkeypatch):
    """``-o grid.png`` that is a folder: refused before sampling (it was an IsADirectoryError
    traceback after it)."""
    monkeypatch.setattr("zoo.sampling.sample.iter_samples", lambda *a, **k: pytest.fail("sampled"))
    (tmp_path / name).mkdir()
    r = cli("sample", micro_dcgan, "-n", "2", "-o", tmp_path / name)
    assert (r.code, r.err) == (2, f"error: -o {tmp_path / name} is a folder\n")


def test_iter_samples_yields_the_images_of_sample_images_batch_by_batch(micro_dcgan):
    import zoo
    from zoo.sampling.sample import iter_samples

    model = zoo.from_pretrained(micro_dcgan)
    chunks = iter_samples(model.family, model.module, model.spec, 5, seed=1, batch_size=2)
    sizes = [len(chunk) for chunk in chunks]
    assert sizes == [2, 2, 1]
    again = iter_samples(model.family, model.module, model.spec, 5, seed=1, batch_size=2)
    assert torch.equal(torch.cat(list(again)), model.sample(5, seed=1, batch_size=2))
    assert not torch.is_inference_mode_enabled()


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".safetensors"])
def test_a_tensor_file_is_never_short_or_ragged(tmp_path, suffix):
    from zoo.core.errors import ZooError
    from zoo.sampling.sinks import write_samples

    path = tmp_path / f"x{suffix}"
    ragged = [torch.rand(2, 1, 4, 4), torch.rand(2, 1, 5, 4)]
    with pytest.raises(ZooError, match="shape"):
        write_samples(iter(ragged), path, 4)
    with pytest.raises(ZooError, match="made 2 images, not 3"):
        write_samples(iter(ragged[:1]), path, 3)
    assert list(tmp_path.iterdir()) == []
    write_samples(iter([torch.ones(1, 3, 2, 2)]), path, 1)
    if suffix == ".safetensors":
        from safetensors.numpy import load_file

        loaded = load_file(str(path))["images"]
    else:
        loaded = np.load(path)
        loaded = loaded["images"] if suffix == ".npz" else loaded
    assert loaded.dtype == np.uint8 and loaded.shape == (1, 3, 2, 2) and (loaded == 255).all()
