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
from zoo.core.errors import ArtifactError

if TYPE_CHECKING:
    from torch import nn

    from zoo.core.records import FamilyRecord
    from zoo.core.spec import Spec


def config_for(family: FamilyRecord, spec: Spec, parameters: int) -> dict[str, Any]:
    """``config.json``: the resolved spec plus provenance."""
    import torch

    from zoo.core.plugins import dist_version
    from zoo.core.spec import spec_hash

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
    from zoo.core.spec import spec_hash, to_toml
    from zoo.folder.card import render_card
    from zoo.sampling.sample import grid, sample_images, save_png

    parameters = sum(p.numel() for p in module.parameters())

    def fill(folder: Path) -> None:
        config = config_for(family, spec, parameters)
        write_json(folder / CONFIG, config)
        save_weights(module, folder / WEIGHTS, family.name, spec_hash(spec))
        images = sample_images(family, module, spec, spec.sample.n, spec.sample.seed)
        save_png(grid(images), folder / SAMPLES)
        extra = family.load().card_images(module, spec, folder)
        write_json(folder / METRICS, metrics)
        (folder / CARD).write_text(
            render_card(family, spec, metrics, parameters, to_toml(spec), extra,
                        family.load().sampling_note), encoding="utf-8")
        if state_writer is not None:
            state_writer(folder / TRAINING_STATE)
        record_checksums(folder)  # the sha256 of every safetensors file written
        check_reloads(folder, module, out)  # last: loads it back as a user would

    return atomic_folder(out, fill, overwrite=overwrite)


def check_reloads(folder: Path, module: nn.Module, out: Path) -> None:
    """Load the folder just written strictly, as ``from_pretrained`` does, and compare.

    The reloaded module must hold the same tensors and sample the same image
    as ``module`` (one image, seed ``sample.seed``); otherwise an ArtifactError
    says why and nothing is put in place at ``out``. This catches a family
    whose module needs something its state dict does not hold (a
    non-persistent buffer, a tensor attribute). Costs one load and two
    one-image samples (three when they differ: a sampler that does not follow
    its seed is left to the conformance kit's seeding check).
    """
    import torch

    from zoo.artifact import load_module, load_spec
    from zoo.sampling.sample import module_device, sample_images

    failed = f"{out} was not written: the model folder does not load back"
    try:
        family, spec, config = load_spec(folder)
        loaded = load_module(family, spec, folder / WEIGHTS, device=module_device(module),
                             expected_hash=config["spec_hash"])
    except (ArtifactError, RuntimeError, ValueError, TypeError, NotImplementedError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ArtifactError(f"{failed} ({message})") from None
    saved = loaded.state_dict()
    for key, value in module.state_dict().items():
        if not torch.equal(saved[key].to(value.device), value.detach()):
            raise ArtifactError(f"{failed} ({key} differs from the trained module's)")
    def one_image(m: nn.Module) -> torch.Tensor:
        # eager, so a module trained with run.compile is compared without the compiler's
        # rounding
        with torch.compiler.set_stance("force_eager"):
            return sample_images(family, m, spec, 1, spec.sample.seed, batch_size=1)

    trained, reloaded = one_image(module), one_image(loaded)
    if not torch.allclose(trained, reloaded, rtol=1e-3, atol=1e-3) and torch.allclose(
            trained, one_image(module), rtol=1e-3, atol=1e-3):
        # (a sampler that ignores its seed is not the folder's fault: that is left to the
        # conformance kit)
        gap = float((trained - reloaded).abs().max())
        raise ArtifactError(f"{failed}: its samples differ from the trained module's (by up "
                            f"to {gap:.3g}), so the module needs a tensor its state dict does "
                            "not hold (a non-persistent buffer?)")


def card_text(folder: Path, repo_id: str | None = None, revision: str | None = None) -> str:
    """The model card of a folder, from its config and metrics; ``repo_id``: where it is pushed."""
    from zoo.artifact import load_spec, read_metrics
    from zoo.core.spec import to_toml
    from zoo.folder.card import render_card
    from zoo.folder.gallery import listing

    family, spec, config = load_spec(folder)
    card_images = {p.stem: p.name for p in sorted(folder.glob("*.png")) if p.name != SAMPLES}
    return render_card(family, spec, read_metrics(folder), int(config.get("parameters") or 0),
                       to_toml(spec), card_images, family.load().sampling_note,
                       repo_id=repo_id, revision=revision, visuals=listing(folder))


def update_card(folder: Path) -> None:
    """Re-render ``README.md`` from the folder's config and metrics (after ``zoo eval`` and
    ``zoo visualize``)."""
    atomic_write(folder / CARD, card_text(folder))
