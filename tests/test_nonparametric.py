"""The example plugin zoo-nonparametric: texture synthesis, in-painting, super-resolution.

Each family is checked for the property that defines it, on scikit-image's
bundled brick texture: a synthesised texture is made of exemplar patches, an
in-painting changes nothing outside its hole and fills the hole with patches
of its sources, and super-resolution beats bicubic interpolation on held-out
tiles. Numbers are printed (``pytest -s``) as well as checked.
"""

from __future__ import annotations

import math
import time

import pytest
import torch
import torch.nn.functional as F

import zoo

pytestmark = pytest.mark.usefixtures("nonparametric")

#: A 5×5 patch "has a close match" when some exemplar patch is within this per-pixel
#: RMS (13 grey levels of 255; the brick exemplar's pixels have a std of 0.081).
CLOSE = 0.05
#: ... and no patch may be further than this from every exemplar patch (1.5 std).
FAR = 0.12
#: The share of patches that must have a close match.
SHARE = 0.95


def nearest_rms(image: torch.Tensor, sources: torch.Tensor, size: int = 5) -> torch.Tensor:
    """Per-pixel RMS distance from each ``size²`` patch of ``image`` (C×H×W) to the
    nearest patch of ``sources`` (rows of C·size² values, or N×C×H×W images)."""
    keys = sources if sources.dim() == 2 else patches(sources, size)
    queries = patches(image[None], size)
    d = ((queries**2).sum(1, keepdim=True) - 2 * queries @ keys.T + (keys**2).sum(1))
    return (d.clamp_min(0).min(1).values / queries.shape[1]).sqrt()


def patches(images: torch.Tensor, size: int) -> torch.Tensor:
    """Every ``size × size`` patch of N×C×H×W images as rows (float64)."""
    cols = F.unfold(images.double(), size)
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


def made_of(rms: torch.Tensor) -> bool:
    """The criterion: SHARE of the patches within CLOSE, and every patch within FAR."""
    return bool((rms <= CLOSE).double().mean() >= SHARE and rms.max() <= FAR)


def describe(rms: torch.Tensor) -> str:
    """Median, share within CLOSE and maximum of patch distances."""
    return (f"median {rms.median():.4f}, {100 * (rms <= CLOSE).double().mean():.1f}% "
            f"within {CLOSE}, max {rms.max():.4f}")


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1]."""
    return 10 * math.log10(1 / float(((a - b) ** 2).mean()))


@pytest.fixture(scope="module")
def texture_model(nonparametric, tmp_path_factory):
    """The default texture model: one 32×32 exemplar from skimage.data.brick()."""
    return zoo.build("texture", overrides=["sample.n=1"],
                     out=tmp_path_factory.mktemp("np") / "texture")


@pytest.fixture(scope="module")
def inpaint_model(nonparametric, tmp_path_factory):
    """The default in-painting model: four 32×32 brick exemplars."""
    return zoo.build("inpaint", overrides=["sample.n=1"],
                     out=tmp_path_factory.mktemp("np") / "inpaint")


@pytest.fixture(scope="module")
def superres_model(nonparametric, tmp_path_factory):
    """The default super-resolution model: 20,000 patch pairs from brick tiles, 2x."""
    return zoo.build("superres", overrides=["sample.n=1"],
                     out=tmp_path_factory.mktemp("np") / "superres")


# --------------------------------------------------------------------------- texture


def test_every_patch_of_a_texture_comes_from_the_exemplar(texture_model):
    model = zoo.from_pretrained(texture_model)
    exemplar = model.module.images
    assert tuple(exemplar.shape) == (1, 1, 32, 32)
    started = time.perf_counter()
    images = model.sample(2, seed=0, size=64)
    seconds = (time.perf_counter() - started) / 2
    print(f"\ntexture: 64x64 from a 32x32 exemplar in {seconds:.2f} s per image")
    assert images.shape == (2, 1, 64, 64)
    for image in images:
        rms = nearest_rms(image, exemplar)
        print(f"  synthesised: {describe(rms)}")
        assert made_of(rms), describe(rms)
    generator = torch.Generator().manual_seed(0)
    low, high = float(exemplar.min()), float(exemplar.max())
    noise = torch.rand(1, 64, 64, generator=generator, dtype=torch.float64) * (high - low) + low
    shuffled = exemplar.flatten()[torch.randint(exemplar.numel(), (64 * 64,),
                                                generator=generator)].view(1, 64, 64)
    for name, fake in (("uniform noise", noise), ("shuffled exemplar pixels", shuffled)):
        rms = nearest_rms(fake, exemplar)
        print(f"  {name}: {describe(rms)}")
        assert not made_of(rms) and (rms <= CLOSE).double().mean() < 0.1
    assert seconds < 10


def test_texture_seeds_sizes_and_patch_mode(texture_model, cli, tmp_path):
    import numpy as np

    model = zoo.from_pretrained(texture_model)
    first = model.sample(3, seed=5, size=24)
    assert torch.equal(first, model.sample(3, seed=5, size=24))
    assert torch.equal(first[1:2], model.sample(2, seed=5, size=24)[1:2])
    assert not torch.equal(first, model.sample(3, seed=6, size=24))
    assert model.sample(1, size=(20, 40)).shape == (1, 1, 20, 40)
    wide = model.sample(1, seed=2, size="20x40")
    assert torch.equal(wide, model.sample(1, seed=2, size=[20, 40]))
    r = cli("sample", texture_model, "-n", "1", "--seed", "2", "--opt", "size=20x40",
            "-o", tmp_path / "wide.npy")
    assert r.code == 0, r.err
    stored = np.load(tmp_path / "wide.npy", allow_pickle=False)  # uint8 N×C×H×W
    assert stored.shape == (1, 1, 20, 40)
    assert np.array_equal(stored, (wide * 255).round().byte().numpy())
    blocks = zoo.build("texture", overrides=["sample.n=1", "model.patch_size=3"],
                       out=tmp_path / "blocks")
    image = zoo.from_pretrained(blocks).sample(1, seed=0, size=48)[0]
    rms = nearest_rms(image, model.module.images)
    print(f"\ntexture, 3x3 blocks: {describe(rms)}")
    assert made_of(rms)


# --------------------------------------------------------------------------- in-painting


def held_out_tile(folder) -> torch.Tensor:
    """The first held-out tile (C×S×S) of a model's data source: never an exemplar."""
    from zoo.data import load_images

    images, _ = load_images(zoo.from_pretrained(folder).spec.data, "test")
    return images[0]


def test_inpainting_changes_nothing_outside_the_hole(inpaint_model, cli, tmp_path):
    import numpy as np
    from PIL import Image

    from zoo.sampling.sample import save_png

    image = held_out_tile(inpaint_model)
    hole = torch.zeros(32, 32, dtype=torch.bool)
    hole[10:22, 12:24] = True
    save_png(image, tmp_path / "in.png")
    save_png(hole[None].float(), tmp_path / "mask.png")
    r = cli("sample", inpaint_model, "-n", "1", "--opt", f"input={tmp_path / 'in.png'}",
            "--opt", f"mask={tmp_path / 'mask.png'}", "-o", tmp_path / "out.png")
    assert r.code == 0, r.err
    before = torch.from_numpy(np.array(Image.open(tmp_path / "in.png")))
    after = torch.from_numpy(np.array(Image.open(tmp_path / "out.png").convert("L")))
    assert after.shape == before.shape == (32, 32)
    assert torch.equal(after[~hole], before[~hole])  # bit for bit, through PNG files
    assert not torch.equal(after[hole], before[hole])

    model = zoo.from_pretrained(inpaint_model)
    fillings = model.sample(3, seed=0, input=image, mask=hole.float())
    assert all(torch.equal(f[:, ~hole], image[:, ~hole]) for f in fillings)
    assert not torch.equal(fillings[0], fillings[1])  # each image is its own filling
    sources = torch.cat([patches(model.module.images, 5),
                         patches(image.masked_fill(hole, float("nan"))[None], 5)])
    sources = sources[~sources.isnan().any(1)]  # the exemplars and the known part
    touches = F.max_pool2d(hole[None, None].float(), 5, 1)[0, 0].flatten() > 0
    for filling in fillings:
        rms = nearest_rms(filling, sources)[touches]  # patches that overlap the hole
        print(f"\ninpaint: {int(touches.sum())} patches over the hole: {describe(rms)}")
        assert made_of(rms), describe(rms)
    noise = torch.where(hole, torch.rand(image.shape, generator=torch.Generator().manual_seed(0)),
                        image)
    rms = nearest_rms(noise, sources)[touches]
    print(f"inpaint, hole filled with uniform noise: {describe(rms)}")
    assert not made_of(rms)


# --------------------------------------------------------------------------- super-resolution


def test_superres_beats_bicubic_on_held_out_tiles(superres_model):
    from zoo_nonparametric.superres import bicubic, degrade

    from zoo.data import load_images

    model = zoo.from_pretrained(superres_model)
    scale = model.spec.model.scale
    held_out, _ = load_images(model.spec.data, "test")
    ours, theirs = [], []
    for high in held_out:
        low = degrade(high[None], scale)
        ours.append(psnr(model.sample(1, input=low[0])[0], high))
        theirs.append(psnr(bicubic(low, scale).clamp(0, 1)[0], high))
    pairs = list(zip(ours, theirs, strict=True))
    mean_ours, mean_theirs = sum(ours) / len(ours), sum(theirs) / len(theirs)
    print(f"\nsuperres {scale}x on {len(held_out)} held-out {model.spec.data.source} tiles: "
          f"PSNR {mean_ours:.2f} dB, bicubic {mean_theirs:.2f} dB "
          f"(per tile: {', '.join(f'{a:.1f}/{b:.1f}' for a, b in pairs)})")
    assert mean_ours > mean_theirs + 1.0
    assert sum(a > b for a, b in pairs) > len(pairs) / 2


def test_superres_shapes_and_colour_input(superres_model):
    model = zoo.from_pretrained(superres_model)
    grey = torch.rand(1, 10, 14, generator=torch.Generator().manual_seed(0))
    assert model.sample(2, input=grey).shape == (2, 1, 20, 28)
    colour = grey.expand(3, -1, -1).clone()
    out = model.sample(1, input=colour)
    assert out.shape == (1, 3, 20, 28)  # a grey dictionary treats each channel on its own
    assert torch.equal(out[0, 0], out[0, 2])
    demo = model.sample(4, seed=0)  # held-out examples, picked and flipped per sample
    assert demo.shape == (4, 1, 32, 32) and torch.equal(demo, model.sample(4, seed=0))


# --------------------------------------------------------------------------- data, errors


def test_skimage_source_tiles_and_splits():
    from zoo.core.errors import DataError
    from zoo.core.spec import DataSpec
    from zoo.data import load_images

    spec = DataSpec(source="skimage:brick/4", image_size=32)
    train, _ = load_images(spec, "train")
    test, _ = load_images(spec, "test")
    assert train.shape == (14, 1, 32, 32) and test.shape == (2, 1, 32, 32)  # 128x128 in 16
    train_rows, test_rows = {t.numpy().tobytes() for t in train}, {t.numpy().tobytes()
                                                                    for t in test}
    assert len(train_rows | test_rows) == 16 and not train_rows & test_rows
    for source, message in [("skimage:nosuch", "no sample image 'nosuch'"),
                            ("skimage:brick/x", "expected skimage:NAME or skimage:NAME/K"),
                            ("skimage:brick/32", "16x16, smaller than data.image_size = 32"),
                            ("skimage:lfw_subset", "not a uint8 image")]:
        with pytest.raises(DataError, match=message):
            load_images(DataSpec(source=source, image_size=32), "train")


def assert_one_line(r, *needles):
    """Exit status 2 and one ``error:`` line on stderr containing every needle."""
    assert r.code == 2, (r.out, r.err)
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_bad_specs_and_inputs_are_one_line_errors(cli, texture_model, inpaint_model,
                                                  superres_model, tmp_path):
    from zoo.sampling.sample import save_png

    assert_one_line(cli("build", "texture", "--set", "model.window=8"), "model.window = 8",
                    "must be odd")
    assert_one_line(cli("build", "texture", "--set", "model.window=41"),
                    "larger than data.image_size = 32")
    assert_one_line(cli("build", "inpaint", "--set", "model.patch_size=11"),
                    "model.patch_size = 11: at most model.window (9)")
    assert_one_line(cli("build", "superres", "--set", "data.image_size=33"),
                    "not a multiple of model.scale (2)")
    assert_one_line(cli("build", "superres", "--set", "model.context=6"), "model.context = 6")
    assert_one_line(cli("build", "superres", "--set", "model.dictionary_size=50000",
                        "--out", tmp_path / "big", "--quiet"),
                    "fewer than model.dictionary_size = 50000")
    assert not (tmp_path / "big").exists()
    out = tmp_path / "out.png"
    save_png(torch.rand(1, 32, 32), tmp_path / "in.png")
    save_png(torch.zeros(1, 16, 16), tmp_path / "small-mask.png")
    (tmp_path / "text.png").write_text("not an image")
    assert_one_line(cli("sample", texture_model, "--opt", "size=4y", "-o", out), "size 4y",
                    "expected N or HxW")
    assert_one_line(cli("sample", texture_model, "--opt", "size=2", "-o", out), "size 2")
    assert_one_line(cli("sample", texture_model, "--opt", "size=[48, 96, 3]", "-o", out),
                    "expected N or HxW")
    assert_one_line(cli("sample", texture_model, "--opt", f"input={tmp_path / 'in.png'}",
                        "-o", out),
                    "family 'texture' has no sampling option 'input' (its options: size)")
    assert_one_line(cli("sample", inpaint_model, "--opt", f"input={tmp_path / 'in.png'}",
                        "-o", out), "needs both an image and a mask")
    assert_one_line(cli("sample", inpaint_model, "--opt", f"input={tmp_path / 'in.png'}",
                        "--opt", f"mask={tmp_path / 'small-mask.png'}", "-o", out),
                    "mask is 16x16 but the image is 32x32")
    assert_one_line(cli("sample", superres_model, "--opt", f"input={tmp_path / 'nope.png'}",
                        "-o", out), "image file not found")
    assert_one_line(cli("sample", superres_model, "--opt", f"input={tmp_path / 'text.png'}",
                        "-o", out), "cannot read image")
    assert_one_line(cli("sample", inpaint_model, "--opt", f"input={tmp_path / 'in.png'}",
                        "--opt", f"mask={tmp_path / 'nope.png'}", "-o", out),
                    "image file not found")
    assert_one_line(cli("sample", superres_model, "--opt", f"mask={tmp_path / 'in.png'}",
                        "-o", out), "no sampling option 'mask'", "(its options: input)")
    assert not out.exists()
    assert_one_line(cli("sample", superres_model, "--opt", "input=", "-o", out),
                    "sampling option input = : expected an image file path")
    assert_one_line(cli("sample", superres_model, "--opt", "input=3", "-o", out),
                    "input: expected an image file path or an image tensor", "got int")
    assert not out.exists()
    with pytest.raises(zoo.ZooError, match="input: expected an image file path or an image "
                       "tensor"):
        zoo.from_pretrained(superres_model).sample(1, input=[[0.5]])


def test_zoo_spec_lists_the_sampling_options(cli, nonparametric):
    listing = {family: cli("spec", family).out for family in ("texture", "inpaint", "superres")}
    assert "#   size = unset  # Output size: N (N x N) or HxW" in listing["texture"]
    assert "#   input = unset  # Image to in-paint" in listing["inpaint"]
    assert "#   mask = unset" in listing["inpaint"]
    assert "#   input = unset  # Image to super-resolve" in listing["superres"]
    assert "mask" not in listing["superres"].split("# Sampling options")[1]


def test_install_hints_name_this_distribution():
    from zoo.core.registry import get_registry

    reg = get_registry()
    hinted = {name for name, dist in reg.external.items() if dist == "zoo-nonparametric"}
    provided = {name for name, rec in reg.families.items() if rec.plugin == "zoo-nonparametric"}
    assert hinted == provided == {"texture", "inpaint", "superres", "scene"}
