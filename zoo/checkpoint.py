"""``training_state/``: everything ``--resume`` needs, as safetensors + JSON, never unpickled.

``state.safetensors`` holds every trained module (``module/<name>/<key>``),
every optimiser tensor (``optim/<name>/<param>/<key>``) and the RNG states;
``state.json`` holds the step, optimiser hyper-parameters and scalar state.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.artifact import FORMAT, write_json
from zoo.errors import ArtifactError

if TYPE_CHECKING:
    import torch

    from zoo.train import Trainer

TENSORS = "state.safetensors"
META = "state.json"


def save_training_state(
    folder: Path, trainer: Trainer, step: int, rng: torch.Generator, spec_hash: str
) -> None:
    """Write the trainer's modules, optimisers, RNG states and step into ``folder``."""
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {"format": FORMAT, "step": step, "spec_hash": spec_hash,
                            "optimizers": {}}
    for name, module in trainer.raw_modules().items():
        for key, value in module.state_dict().items():
            tensors[f"module/{name}/{key}"] = value.detach().contiguous().cpu()
    for name, optimizer in trainer.optimizers.items():
        state = optimizer.state_dict()
        scalars = {}
        for pid, entries in state["state"].items():
            for key, value in entries.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"optim/{name}/{pid}/{key}"] = value.detach().contiguous().cpu()
                else:
                    scalars[f"{pid}/{key}"] = value
        meta["optimizers"][name] = {"param_groups": state["param_groups"], "scalars": scalars}
    tensors["rng/torch"] = torch.get_rng_state()
    tensors["rng/train"] = rng.get_state().cpu()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda/{i}"] = s
    save_file(tensors, str(folder / TENSORS), metadata={"format": FORMAT})
    write_json(folder / META, meta)


def load_training_state(folder: Path, trainer: Trainer, rng: torch.Generator) -> int:
    """Restore what :func:`save_training_state` wrote; return the step to continue from."""
    import torch
    from safetensors.torch import load_file

    from zoo.artifact import weights_header

    weights_header(folder / TENSORS)  # one-line error for a corrupt file
    meta = json.loads((folder / META).read_text(encoding="utf-8"))
    tensors = load_file(str(folder / TENSORS))
    for name, module in trainer.raw_modules().items():
        prefix = f"module/{name}/"
        state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ArtifactError(f"{folder}: {name} does not match the spec: "
                                f"{str(exc).splitlines()[0]}") from None
    for name, optimizer in trainer.optimizers.items():
        saved = meta["optimizers"].get(name)
        if saved is None:
            raise ArtifactError(f"{folder}: no state for optimizer {name!r}")
        state: dict[int, dict[str, Any]] = {}
        prefix = f"optim/{name}/"
        for key, value in tensors.items():
            if key.startswith(prefix):
                pid, stat = key[len(prefix):].split("/", 1)
                state.setdefault(int(pid), {})[stat] = value
        for key, value in saved["scalars"].items():
            pid, stat = key.split("/", 1)
            state.setdefault(int(pid), {})[stat] = value
        optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
    torch.set_rng_state(tensors["rng/torch"])
    rng.set_state(tensors["rng/train"].to(rng.get_state().device))
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng/cuda/")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    return int(meta["step"])


def read_step(folder: Path) -> int:
    """The step a training state was saved at."""
    return int(json.loads((folder / META).read_text(encoding="utf-8"))["step"])
