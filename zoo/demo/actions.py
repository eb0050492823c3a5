"""What the demo page asks of a model, as PNG files: a sample grid, a strip of stages, an
interpolation, and the model card's numbers and figures. No Gradio here.

The grid and the stages go through the public model API (:meth:`zoo.ZooModel.write_samples`,
:func:`zoo.visualize.visualize`), so a grid for seed *s* is, pixel for pixel, the grid
``zoo sample RUN -n N --seed s`` writes; the interpolation walks with the functions of
:mod:`zoo.visualize.interpolate` between two seeds' codes. Bad input is a one-line
``ZooError``.
"""

from __future__ import annotations

import itertools
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.core.errors import ZooError

if TYPE_CHECKING:
    from zoo.model import ZooModel

#: The most images one request may ask for (the page says so).
MAX_COUNT = 64
#: The most frames of one interpolation strip.
MAX_FRAMES = 16
#: The largest seed (64-bit, as torch.Generator takes).
MAX_SEED = 2**63 - 1
#: Seconds a request's files are kept (Gradio copies them into its cache at once).
KEEP_S = 600


def count_of(value: Any, what: str = "count", high: int = MAX_COUNT, low: int = 1) -> int:
    """``value`` as a whole number ``low`` .. ``high``; a one-line ``ZooError`` otherwise."""
    number = _whole(value, what)
    if not low <= number <= high:
        raise ZooError(f"{what} {number}: give {low} to {high} (the demo's limit per request)")
    return number


def seed_of(value: Any, what: str = "seed") -> int:
    """``value`` as a seed 0 .. 2**63 - 1; a one-line ``ZooError`` otherwise."""
    number = _whole(value, what)
    if not 0 <= number <= MAX_SEED:
        raise ZooError(f"{what} {number}: give 0 to {MAX_SEED}")
    return number


def _whole(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise ZooError(f"{what} {value!r}: expected a whole number")
    return int(value)


def new_path(folder: Path, name: str) -> Path:
    """A fresh file path in ``folder`` (one per request: concurrent requests never share);
    the files of requests older than :data:`KEEP_S` are deleted first."""
    prune(folder)
    folder = folder / uuid.uuid4().hex
    folder.mkdir(parents=True)
    return folder / name


def prune(folder: Path, age: float = 0) -> None:
    """Delete the request folders in ``folder`` older than ``age`` seconds (default
    :data:`KEEP_S`); Gradio has copied what it serves by then."""
    cutoff = time.time() - (age or KEEP_S)
    for sub in folder.iterdir() if folder.is_dir() else []:
        if len(sub.name) == 32 and sub.is_dir() and sub.stat().st_mtime < cutoff:
            shutil.rmtree(sub, ignore_errors=True)


def kept(path: Path, folder: Path) -> Path:
    """A copy of ``path`` that :func:`prune` leaves alone (``folder/kept/``)."""
    target = folder / "kept" / f"{uuid.uuid4().hex[:12]}-{path.name}"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)
    return target


def sample_grid(model: ZooModel, folder: Path, seed: int, count: int,
                options: dict[str, Any]) -> Path:
    """The grid of samples 0 .. count-1 of ``seed`` with the family's sampling ``options``,
    written as ``zoo sample -n COUNT --seed SEED -o grid.png`` writes it."""
    path = new_path(folder, "grid.png")
    model.write_samples(path, count_of(count), seed_of(seed), **options)
    return path


def stage_strip(model: ZooModel, folder: Path, seed: int, count: int,
                options: dict[str, Any]) -> Path:
    """A row per sample, a column per stage of the sampler (``zoo visualize steps``)."""
    from zoo.visualize import visualize

    out = new_path(folder, "steps").parent
    return visualize(model, "steps", out, count=count_of(count), seed=seed_of(seed),
                     sampling=options or None)[0]


def interpolation(model: ZooModel, folder: Path, seed_a: int, seed_b: int, frames: int,
                  method: str, options: dict[str, Any]) -> Path:
    """A strip from sample 0 of ``seed_a`` to sample 0 of ``seed_b`` through the family's
    latent codes (``slerp`` or ``lerp``), decoded with ``generate``."""

    from zoo.sampling.sample import grid, save_png
    from zoo.visualize.images import upscale
    from zoo.visualize.interpolate import decode, endpoint_codes, path

    model.family.require("latent")
    model.family.sampling_options(options)  # an unknown option fails before any work
    frames = count_of(frames, "frames", MAX_FRAMES, low=2)
    a, b = (endpoint_codes(model, 1, seed_of(s, what))[0]
            for s, what in ((seed_a, "seed A"), (seed_b, "seed B")))
    images = decode(model, path(a, b, frames, method), **options)
    return save_png(grid(upscale(images), nrow=frames).clamp(0, 1),
                    new_path(folder, "interpolate.png"))


def takes_inputs(model: ZooModel) -> bool:
    """Whether the family's sampling options take an image (``input``)."""
    return "input" in model.family.options.model_fields


def metric_rows(model: ZooModel) -> list[tuple[str, str]]:
    """``metrics.json`` as (section.key, value) rows, as the model card's table shows it."""
    from zoo.folder.card import metric_items

    return [(key, f"{value:.4g}" if isinstance(value, float) else str(value))
            for key, value in metric_items(model.metrics) if not isinstance(value, bool)]


#: A Markdown image in the model card: ``![alt](path)``.
CARD_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")


def card_figures(model: ZooModel) -> list[tuple[Path, str]]:
    """(file, caption) of each image the model card shows that lies in the model folder:
    the sample grid, the family's card figures, the memorisation strip, ``zoo visualize``
    images."""
    card = model.path / "README.md"
    text = card.read_text(encoding="utf-8", errors="replace") if card.is_file() else ""
    root = model.path.resolve()
    figures, seen = [], set()
    for alt, link in itertools.chain(CARD_IMAGE.findall(text), [("samples", "samples.png")]):
        file = (model.path / link).resolve()
        if file in seen or not file.is_relative_to(root) or not file.is_file():
            continue
        seen.add(file)
        figures.append((file, alt or file.stem))
    return figures


def summary(model: ZooModel, name: str) -> dict[str, Any]:
    """One row of the gallery of a folder of runs: name, family, parameters, scores."""
    from zoo.folder.card import model_scores

    return {"name": name, "family": model.family.name, "parameters": model.num_parameters,
            "data": f"{model.spec.data.source} {model.spec.data.image_size}px",
            "scores": model_scores(model.metrics)}
