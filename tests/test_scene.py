"""The ``scene`` family of zoo-nonparametric: Hays & Efros scene completion.

A database of synthetic photos (crops of scikit-image's bundled photographs)
holds the photo a query was cut from, among distractors: the best scene must
be that photo and the completion must give back its pixels. The graph cut is
checked against brute force, the Poisson blend against a dense solve built by
explicit loops, the descriptor's mask weighting against its definition.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from test_nonparametric import assert_one_line

import zoo

pytestmark = pytest.mark.usefixtures("nonparametric")

#: Photos in the test database folder (about 90 % of them train) and the scenes kept.
PHOTOS, DATABASE = 24, 16


@pytest.fixture(scope="module")
def photos(nonparametric):
    """24 synthetic 64×64 photos (uint8 N×H×W×3)."""
    from zoo_nonparametric.photos import collection

    return collection(PHOTOS, 64, seed=1)


@pytest.fixture(scope="module")
def scene_model(photos, tmp_path_factory):
    """A scene model whose database is 16 of the photos, stored at 32×32."""
    from zoo_nonparametric.photos import write_folder

    folder = write_folder(photos, tmp_path_factory.mktemp("scene") / "photos")
    return zoo.build("scene", overrides=[
        "data.source=folder", f"data.path={folder}", "data.image_size=32",
        f"model.database={DATABASE}", "sample.n=1"], out=folder.parent / "run")


def box(shape: tuple[int, int], top: int, left: int, bottom: int, right: int) -> torch.Tensor:
    """An H×W bool mask, True on rows top:bottom and columns left:right."""
    hole = torch.zeros(shape, dtype=torch.bool)
    hole[top:bottom, left:right] = True
    return hole


# --------------------------------------------------------------------------- acceptance


def test_the_best_scene_is_the_photo_the_query_was_cut_from(scene_model, photos):
    """At the database's resolution the stored photo comes back exactly (up to the float32
    Poisson solve, < 1e-5): the aligned scene agrees with the query on the band, so the
    blend has nothing to correct. From a 2× larger query, the stored 32×32 photo is
    resampled (bilinear) to 64×64: the hole then differs from the original by what
    resampling loses, so the test allows 1.5× the error of the stored photo resampled on
    its own, plus 2/255 for the seam and the blend."""
    from PIL import Image
    from zoo_nonparametric.scene import rank_scenes
    from zoo_nonparametric.scene_align import resized

    from zoo.data import resize_crop

    model = zoo.from_pretrained(scene_model)
    stored = model.module.images
    small = np.stack([resize_crop(Image.fromarray(p), 32) for p in photos]).transpose(0, 3, 1, 2)
    for j in (0, 5, 11):
        photo = stored[j].float() / 255
        hole = box((32, 32), 10, 8, 20, 22)
        filled = model.sample(2, input=photo, mask=hole.float())
        assert torch.equal(filled[0][:, ~hole], photo[:, ~hole])
        assert (filled[0] - photo).abs().max() < 1e-5
        assert (filled[1] - photo)[:, hole].abs().mean() > 0.01  # a distractor differs

        original = [i for i in range(PHOTOS) if np.array_equal(small[i], stored[j].numpy())]
        big = torch.from_numpy(photos[original[0]]).permute(2, 0, 1).float() / 255
        hole = box((64, 64), 20, 16, 40, 44)
        query = np.where(hole.numpy(), 0.0, big.double().numpy())
        best, _ = rank_scenes(query, hole.numpy(), model.module, model.spec.model, 1)[0]
        assert best == j
        filled = model.sample(1, input=big, mask=hole.float())[0]
        error = float((filled - big)[:, hole].abs().mean())
        floor = float(np.abs(resized(photo.double().numpy(), (64, 64))
                             - big.double().numpy())[:, hole.numpy()].mean())
        print(f"\nscene {j}: 2x query, hole error {error:.4f}, resampling alone {floor:.4f}")
        assert error <= 1.5 * floor + 2 / 255
        assert torch.equal(filled[:, ~hole & ~dilated(hole, 6)], big[:, ~hole & ~dilated(hole, 6)])


def dilated(hole: torch.Tensor, width: int) -> torch.Tensor:
    """Pixels within ``width`` (Euclidean) of the hole, the hole excluded."""
    from scipy import ndimage

    return torch.from_numpy(ndimage.distance_transform_edt(~hole.numpy()) <= width) & ~hole


def test_completions_are_ranked_and_independent_of_n(scene_model):
    model = zoo.from_pretrained(scene_model)
    photo = model.module.images[3].float() / 255
    hole = box((32, 32), 4, 20, 16, 30).float()
    five = model.sample(5, input=photo, mask=hole, seed=0)
    assert torch.equal(five[:3], model.sample(3, input=photo, mask=hole, seed=7))
    assert torch.equal(five[2:4], model.sample(4, input=photo, mask=hole)[2:4])
    almost = torch.ones(32, 32)
    almost[0] = 0  # the band reaches every known pixel: the farthest keep the photo
    for blend in (True, False):
        out = model.sample(1, input=photo, mask=almost, blend=blend)[0]
        assert torch.equal(out[:, 0], photo[:, 0])
    demo = model.sample(4, seed=1)  # no input: holes cut into database photos
    assert demo.shape == (4, 3, 32, 32) and not torch.equal(demo, model.sample(4, seed=2))


# --------------------------------------------------------------------------- the pieces


def test_graph_cut_is_the_minimum_of_the_seam_energy():
    """On a 6×6 grid with a 2×2 hole, the 12 band pixels within 1.5 px of it have 4,096
    labellings: the cut's labelling has the least energy of them all."""
    from zoo_nonparametric.scene_seam import band_around, cut, energy

    rng = np.random.default_rng(0)
    hole = np.zeros((6, 6), dtype=bool)
    hole[2:4, 2:4] = True
    band, _ = band_around(hole, 1.5)
    free = np.argwhere(band)
    assert len(free) == 12
    for trial, bias in itertools.product(range(2), (0.0, 0.3)):
        photo, scene = rng.random((2, 3, 6, 6))
        labels = cut(photo, scene, hole, 1.5, bias)
        best, best_energy = None, np.inf
        for bits in itertools.product((False, True), repeat=len(free)):
            trial_labels = hole.copy()
            trial_labels[tuple(free.T)] = bits
            e = energy(trial_labels, photo, scene, hole, 1.5, bias)
            if e < best_energy:
                best, best_energy = trial_labels, e
        assert energy(labels, photo, scene, hole, 1.5, bias) == pytest.approx(best_energy)
        assert np.array_equal(labels, best), (trial, bias)


def test_graph_cut_follows_a_zero_cost_seam():
    """Scene and photo differ (e = 1) everywhere but on a two-pixel-thick square ring at
    Chebyshev distance 3-4 from the hole (e = 0). The only seam of cost 0 runs between the
    ring's two layers: the scene takes the hole and everything up to the inner layer (whose
    four corner pixels touch only ring pixels, so either label costs 0 there)."""
    from zoo_nonparametric.scene_seam import cut, energy

    hole = np.zeros((20, 20), dtype=bool)
    hole[8:12, 8:12] = True
    yy, xx = np.mgrid[:20, :20]
    chebyshev = np.maximum(np.maximum(8 - yy, yy - 11), np.maximum(8 - xx, xx - 11))
    photo = np.zeros((1, 20, 20))
    scene = np.where((chebyshev == 3) | (chebyshev == 4), 0.0, 1.0)[None]
    labels = cut(photo, scene, hole, 6.0)
    corners = (chebyshev == 3) & (np.abs(yy - 9.5) == 4.5) & (np.abs(xx - 9.5) == 4.5)
    assert np.array_equal(labels & ~corners, (chebyshev <= 3) & ~corners)
    assert energy(labels, photo, scene, hole, 6.0) == 0.0


def dense_poisson(photo: np.ndarray, scene: np.ndarray, region: np.ndarray) -> np.ndarray:
    """The discrete Poisson blend with explicit loops and a dense solve (the reference)."""
    c, h, w = photo.shape
    pixels = [(y, x) for y in range(h) for x in range(w) if region[y, x]]
    number = {p: i for i, p in enumerate(pixels)}
    a = np.zeros((len(pixels), len(pixels)))
    b = np.zeros((len(pixels), c))
    for (y, x), i in number.items():
        for qy, qx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
            if not (0 <= qy < h and 0 <= qx < w):
                continue
            a[i, i] += 1
            b[i] += scene[:, y, x] - scene[:, qy, qx]
            if region[qy, qx]:
                a[i, number[(qy, qx)]] -= 1
            else:
                b[i] += photo[:, qy, qx]
    out = photo.copy()
    solution = np.linalg.solve(a, b)
    for (y, x), i in number.items():
        out[:, y, x] = solution[i]
    return out


def test_poisson_blend_against_a_dense_solve():
    from zoo_nonparametric.scene_blend import poisson_blend

    rng = np.random.default_rng(1)
    photo, scene = rng.random((2, 3, 6, 7))
    region = rng.random((6, 7)) < 0.5
    region[0, 0] = False  # never the whole image
    out = poisson_blend(photo, scene, region)
    assert np.allclose(out, dense_poisson(photo, scene, region), atol=1e-12)
    assert np.array_equal(out[:, ~region], photo[:, ~region])
    region = np.zeros((6, 7), dtype=bool)
    region[1:5, 2:6] = True
    shifted = poisson_blend(photo, photo + 0.3, region)  # a constant offset is removed
    assert np.allclose(shifted, photo, atol=1e-12)


def test_descriptor_cells_in_the_hole_have_no_influence():
    from zoo_nonparametric.scene_descriptor import describe, distances

    rng = np.random.default_rng(2)
    images = rng.random((5, 3, 32, 32))
    args = (4, (1.0, 2.0), 4, 1.0)
    database, weights = describe(images, None, *args)
    assert database.shape == (5, 16, 2 * 4 + 3) and np.all(weights == 1)
    known = np.ones((1, 32, 32), dtype=bool)
    known[0, :8, :8] = False  # cell 0 of the 4×4 grid, wholly hidden
    known[0, 8:12, 8:16] = False  # half of cell 5
    query, w = describe(images[:1], known, *args)
    assert w[0, 0] == 0 and w[0, 5] == pytest.approx(0.5) and np.all(np.delete(w[0], [0, 5]) == 1)
    scribbled = images[:1].copy()
    scribbled[0, :, :8, :8] = rng.random((3, 8, 8))  # the hidden pixels are never read
    assert np.array_equal(describe(scribbled, known, *args)[0], query)
    d = distances(query[0], w[0], database)
    loops = [sum(w[0, c] * ((query[0, c] - database[j, c].astype(np.float64)) ** 2).sum()
                 for c in range(16)) / w[0].sum() for j in range(5)]
    assert np.allclose(d, loops, rtol=1e-6)
    assert np.allclose(distances(query[0], w[0], database, rows=2), d, rtol=1e-12)
    changed = database.copy()
    changed[:, 0] = rng.random(changed[:, 0].shape)  # a fully hidden cell: no influence
    assert np.allclose(distances(query[0], w[0], changed), d, rtol=1e-6)
    changed[:, 5] += 1.0  # a half-known cell: influence
    assert not np.allclose(distances(query[0], w[0], changed), d, rtol=1e-6)


# --------------------------------------------------------------------------- errors



def test_bad_inputs_are_one_line_errors(cli, scene_model, tmp_path):
    from zoo.sampling.sample import save_png

    model = zoo.from_pretrained(scene_model)
    save_png(model.module.images[0].float() / 255, tmp_path / "in.png")
    save_png(box((32, 32), 8, 8, 16, 16)[None].float(), tmp_path / "hole.png")
    save_png(torch.zeros(1, 16, 16), tmp_path / "small.png")
    save_png(torch.zeros(1, 32, 32), tmp_path / "empty.png")
    save_png(torch.ones(1, 32, 32), tmp_path / "full.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "out.png"
    photo, hole = f"{tmp_path / 'in.png'}", f"{tmp_path / 'hole.png'}"

    r = cli("sample", scene_model, "--input", photo, "--mask", hole, "-n", "2", "-o", out)
    assert r.code == 0, r.err
    out.unlink()
    assert_one_line(cli("sample", scene_model, "--input", photo, "--mask",
                        tmp_path / "small.png", "-o", out), "mask is 16x16 but the image is 32x32")
    assert_one_line(cli("sample", scene_model, "--input", photo, "--mask",
                        tmp_path / "empty.png", "-o", out), "mask has no pixel to fill")
    assert_one_line(cli("sample", scene_model, "--input", photo, "--mask",
                        tmp_path / "full.png", "-o", out), "mask covers the whole image")
    assert_one_line(cli("sample", scene_model, "--input", tmp_path / "bad.png", "--mask", hole,
                        "-o", out), "cannot read image")
    assert_one_line(cli("sample", scene_model, "--input", photo, "-o", out),
                    "needs both an image and a mask")
    assert_one_line(cli("sample", scene_model, "--input", photo, "--mask", hole, "-n", "17",
                        "-o", out), "database holds 16 scenes, so -n can be at most 16")
    assert_one_line(cli("sample", scene_model, "--input", photo, "--opt", "input=other.png",
                        "--mask", hole, "-o", out), "--input", "disagree")
    assert not out.exists()
    # a photo too large to complete in reasonable memory is refused before any work
    with pytest.raises(zoo.ZooError, match="input is 2049x2048: scene completes images of at "
                       "most 4,194,304 pixels"):
        model.sample(1, input=torch.zeros(3, 2049, 2048), mask=torch.zeros(1, 2049, 2048))

    empty = tmp_path / "no-images"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    for overrides, needle in (
            (["data.source=folder", f"data.path={empty}"], "no"),
            (["data.limit=3"], "fewer than model.database = 32")):
        sets = [arg for o in overrides for arg in ("--set", o)]
        target = tmp_path / f"run-{len(needle)}"
        assert_one_line(cli("build", "scene", *sets, "--out", target, "--quiet"), needle)
        assert not target.exists()


def test_input_and_mask_flags_need_the_option(cli, tmp_path):
    from zoo.sampling.sample import save_png

    texture = zoo.build("texture", overrides=["sample.n=1"], out=tmp_path / "texture")
    save_png(torch.rand(1, 32, 32), tmp_path / "in.png")
    assert_one_line(cli("sample", texture, "--input", tmp_path / "in.png", "-o",
                        tmp_path / "out.png"),
                    "family 'texture' has no sampling option 'input'")
