"""Scene completion (Hays & Efros, SIGGRAPH 2007): fill a hole from *other* photographs.

Building stores a database of photos (the first ``model.database`` training
images, uint8) and one scene descriptor per photo (:mod:`.scene_descriptor`:
oriented filter energies and colour pooled on a ``grid × grid`` grid, one
vector per cell). Completing a photo with a hole:

1. describe the photo, each cell weighted by its known fraction, and take the
   ``candidates`` nearest scenes, d(q, j) = Σ_c w_c ‖q_c − D_{j,c}‖² / Σ_c w_c
   (linear in the database size);
2. align each by the translation and zoom with the least SSD on the band of
   context around the hole (:mod:`.scene_align`), and rank the scenes by
   that error;
3. for the scenes asked for, cut the seam in the band by a graph cut
   (:mod:`.scene_seam`) and Poisson-blend the scene into the region it takes
   (:mod:`.scene_blend`). Pixels outside that region are the photo's, bit for bit.

Sample *i* of ``model.sample(n, input=photo, mask=hole)`` is the completion
from the *i*-th ranked scene: deterministic, the seed plays no part, and for
n ≤ ``candidates`` sample *i* does not depend on n. Without an input, sample
*i* cuts a square hole (``sample.hole``) into a database photo drawn by
(seed, *i*) and completes it from the best of the *other* photos.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn

from zoo import Family, ZooError
from zoo.core.errors import DataError
from zoo.data import num_channels
from zoo.training.trainer import Trainer
from zoo_nonparametric.scene_align import align, resized
from zoo_nonparametric.scene_blend import poisson_blend
from zoo_nonparametric.scene_descriptor import describe, distances
from zoo_nonparametric.scene_seam import band_around, cut
from zoo_nonparametric.store import as_image, with_channels
from zoo_nonparametric.threads import one_thread

if TYPE_CHECKING:
    from zoo.sampling.sample import PerSampleNoise
    from zoo_nonparametric.specs import SceneModel, SceneOptions, SceneSpec

#: Database images described at a time while building.
BATCH = 256
#: The largest input completed (pixels): 1024×1024 takes about 16 s and 1.1 GB on one
#: core; time and memory grow with the area of the hole and its band.
MAX_PIXELS = 2048 * 2048


def descriptor_size(m: SceneModel, channels: int) -> int:
    """Values per cell: one energy per scale and orientation, then the colour channels."""
    return len(m.scales) * m.orientations + channels


class SceneDatabase(nn.Module):
    """``images``: the N database photos, uint8 N×C×S×S; ``descriptors``: float32 N×G²×D."""

    def __init__(self, m: SceneModel, channels: int, size: int) -> None:
        super().__init__()
        self.register_buffer("images", torch.zeros(m.database, channels, size, size,
                                                   dtype=torch.uint8))
        self.register_buffer("descriptors", torch.zeros(
            m.database, m.grid**2, descriptor_size(m, channels)))


def scene_descriptors(images: np.ndarray, known: np.ndarray | None, m: SceneModel
                      ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`describe` with the spec's settings (images N×C×H×W floats in [0, 1])."""
    return describe(images, known, m.grid, m.scales, m.orientations, m.colour_weight)


class SceneTrainer(Trainer):
    """Stores the database and its descriptors before the first step; steps do nothing."""

    def start(self, images: torch.Tensor) -> None:
        """Keep the first ``model.database`` images (uint8) and describe them in batches."""
        m, model = self.spec.model, self.accelerator.unwrap_model(self.model)
        if len(images) < m.database:
            raise DataError(f"the data give {len(images)} training images, fewer than "
                            f"model.database = {m.database}")
        for lo in range(0, m.database, BATCH):
            hi = min(lo + BATCH, m.database)
            pixels = (images[lo:hi].detach().float().cpu() * 255).round().clamp(0, 255)
            model.images[lo:hi] = pixels.to(torch.uint8)
            described, _ = scene_descriptors(pixels.double().numpy() / 255, None, m)
            model.descriptors[lo:hi] = torch.from_numpy(described)

    def step(self, images: torch.Tensor, labels: torch.Tensor | None,
             rng: torch.Generator) -> dict[str, torch.Tensor]:
        """Nothing to learn."""
        return {}


def rank_scenes(photo: np.ndarray, hole: np.ndarray, database: SceneDatabase, m: SceneModel,
                count: int, exclude: int | None = None) -> list[tuple[int, object]]:
    """The ``max(count, candidates)`` nearest scenes to ``photo`` (C×H×W, hole H×W bool),
    aligned and ranked best first: [(database index, Alignment)]."""
    query, weights = scene_descriptors(photo[None], ~hole[None], m)
    d = distances(query[0], weights[0], database.descriptors.detach().cpu().numpy())
    if exclude is not None:
        d[exclude] = np.inf
    available = len(d) - (exclude is not None)
    wanted = min(max(count, m.candidates), available)
    near = np.argpartition(d, wanted - 1)[:wanted] if wanted < len(d) else np.arange(len(d))
    near = near[np.lexsort((near, d[near]))]  # by distance, ties by index
    side = min(hole.shape)
    band, _ = band_around(hole, max(1.0, m.band * side))
    shift = round(m.shift * side)
    scenes = database.images.detach().cpu()
    aligned = []
    for j in near:
        scene = resized(scenes[j].double().numpy() / 255, hole.shape)
        aligned.append((int(j), align(photo, band, band | hole, scene, m.zooms, shift)))
    order = sorted(range(len(aligned)), key=lambda r: (aligned[r][1].error, r))
    return [aligned[r] for r in order]


def composite(photo: np.ndarray, hole: np.ndarray, warped: np.ndarray, m: SceneModel,
              blend: bool) -> np.ndarray:
    """The photo with the aligned scene cut in along the least-cost seam (and blended)."""
    width = max(1.0, m.band * min(hole.shape))
    region = cut(photo, warped, hole, width, m.seam_bias)
    out = poisson_blend(photo, warped, region) if blend else np.where(region, warped, photo)
    return np.clip(out, 0, 1)


def check_hole(hole: torch.Tensor) -> None:
    """A one-line error for a mask with nothing to fill or nothing known."""
    if not bool(hole.any()):
        raise ZooError("mask has no pixel to fill (no pixel above half grey)")
    if bool(hole.all()):
        raise ZooError("mask covers the whole image: no known context to match scenes to")


def read_mask(mask: object, shape: tuple[int, int]) -> torch.Tensor:
    """The hole (H×W bool) of a mask image: pixels > 0.5 in any channel."""
    hole = as_image(mask, "mask").amax(0) > 0.5
    if tuple(hole.shape) != shape:
        raise ZooError(f"mask is {hole.shape[0]}x{hole.shape[1]} but the image is "
                       f"{shape[0]}x{shape[1]}")
    check_hole(hole)
    return hole


class Scene(Family):
    """Hays & Efros scene completion from a stored photo database."""

    trainer_class = SceneTrainer
    independent_samples = True
    tiny: ClassVar[dict[str, Any]] = {"model.database": 8, "model.candidates": 4,
                                      "data.image_size": 32}
    sampling_note = ("Sample i fills the mask from the i-th best database scene (aligned, "
                     "cut by a graph cut, Poisson-blended); without an input, holes cut "
                     "into database photos are filled from the other photos.")

    def build(self, spec: SceneSpec) -> SceneDatabase:
        """An empty database shaped by the spec."""
        return SceneDatabase(spec.model, num_channels(spec.data), spec.data.image_size)

    @one_thread()
    def sample(self, model: SceneDatabase, noise: PerSampleNoise, spec: SceneSpec,
               options: SceneOptions) -> torch.Tensor:
        """Completions of ``options.input``'s hole, best scene first (or of demo holes)."""
        m, size = spec.model, spec.data.image_size
        channels = model.images.shape[1]
        if options.input is None:
            out = []
            for g in noise.generators(0):
                which = int(torch.randint(m.database, (1,), generator=g))
                side = max(1, round(spec.sample.hole * size))
                y, x = (int(v) for v in torch.randint(size - side + 1, (2,), generator=g))
                hole = np.zeros((size, size), dtype=bool)
                hole[y : y + side, x : x + side] = True
                photo = model.images[which].detach().cpu().double().numpy() / 255
                photo = np.where(hole, 0.0, photo)
                _, best = rank_scenes(photo, hole, model, m, 1, exclude=which)[0]
                out.append(composite(photo, hole, best.warped, m, options.blend))
            return torch.from_numpy(np.stack(out)).float().to(noise.device)
        image = with_channels(as_image(options.input, "input")[None], channels)[0]
        if image.shape[1] * image.shape[2] > MAX_PIXELS:
            raise ZooError(f"input is {image.shape[1]}x{image.shape[2]}: scene completes "
                           f"images of at most {MAX_PIXELS:,} pixels (2048x2048); resize it")
        hole_t = read_mask(options.mask, tuple(image.shape[1:]))
        last = max(noise.indices) + 1 if len(noise) else 0
        if last > m.database:
            raise ZooError(f"the database holds {m.database} scenes, so -n can be at most "
                           f"{m.database} (asked for completion {last})")
        hole = hole_t.numpy()
        photo = np.where(hole, 0.0, image.double().numpy())  # the hidden pixels are never read
        ranked = rank_scenes(photo, hole, model, m, last)
        out = [composite(photo, hole, ranked[i][1].warped, m, options.blend)
               for i in noise.indices]
        return torch.from_numpy(np.stack(out)).float().to(noise.device)
