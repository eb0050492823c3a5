"""Write a complete model folder atomically (config, weights, samples, card, metrics)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.artifact import (
    CARD,
    CONFIG,
    FORMAT,
    METRICS,
    SAMPLES,
    TRAINING_STATE,
    WEIGHTS,
    atomic_folder,
    atomic_write,
    record_checksums,
    save_weights,
    write_json,
)

if TYPE_CHECKING:
    from torch import nn

    from zoo.records import FamilyRecord
    from zoo.spec import Spec


def config_for(family: FamilyRecord, spec: Spec, parameters: int) -> dict[str, Any]:
    """``config.json``: the resolved spec plus provenance."""
    import torch

    from zoo.plugins import dist_version
    from zoo.spec import spec_hash

    return {
        "format": FORMAT,
        "family": family.name,
        "spec": spec.model_dump(mode="json"),
        "spec_hash": spec_hash(spec),
        "parameters": parameters,
        "genzoo_version": dist_version(),
        "plugin": {"distribution": family.plugin, "version": dist_version(family.plugin)},
        "torch_version": torch.__version__,
        "python_version": sys.version.split()[0],
    }


def write_model_folder(
    out: Path,
    family: FamilyRecord,
    spec: Spec,
    module: nn.Module,
    metrics: dict[str, Any],
    state_writer: Callable[[Path], None] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``out`` with every model-folder file; nothing appears until all are written."""
    from zoo.card import render_card
    from zoo.sample import grid, sample_images, save_png
    from zoo.spec import spec_hash, to_toml

    parameters = sum(p.numel() for p in module.parameters())

    def fill(folder: Path) -> None:
        config = config_for(family, spec, parameters)
        write_json(folder / CONFIG, config)
        save_weights(module, folder / WEIGHTS, family.name, spec_hash(spec))
        images = sample_images(family, module, spec, spec.sample.n, spec.sample.seed)
        save_png(grid(images), folder / SAMPLES)
        card_images = getattr(family.load(), "card_images", None)
        extra = card_images(module, spec, folder) if card_images else {}
        write_json(folder / METRICS, metrics)
        (folder / CARD).write_text(
            render_card(family, spec, metrics, parameters, to_toml(spec), extra,
                        getattr(family.load(), "SAMPLING_NOTE", "")), encoding="utf-8")
        if state_writer is not None:
            state_writer(folder / TRAINING_STATE)
        record_checksums(folder)  # last: the sha256 of every safetensors file written

    return atomic_folder(out, fill, overwrite=overwrite)


def card_text(folder: Path, repo_id: str | None = None, revision: str | None = None) -> str:
    """The model card of a folder, from its config and metrics; ``repo_id``: where it is pushed."""
    from zoo.artifact import load_spec, read_metrics
    from zoo.card import render_card
    from zoo.spec import to_toml
    from zoo.visualize import listing

    family, spec, config = load_spec(folder)
    card_images = {p.stem: p.name for p in sorted(folder.glob("*.png")) if p.name != SAMPLES}
    return render_card(family, spec, read_metrics(folder), int(config.get("parameters") or 0),
                       to_toml(spec), card_images, getattr(family.load(), "SAMPLING_NOTE", ""),
                       repo_id=repo_id, revision=revision, visuals=listing(folder))


def update_card(folder: Path) -> None:
    """Re-render ``README.md`` from the folder's config and metrics (after ``zoo eval`` and
    ``zoo visualize``)."""
    atomic_write(folder / CARD, card_text(folder))
