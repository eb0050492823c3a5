"""``training_state/``: everything ``--resume`` needs, as safetensors + JSON, never unpickled.

``state.safetensors`` holds every trained module (``module/<name>/<key>``),
every optimiser tensor (``optim/<name>/<param>/<key>``) and the RNG states;
``state.json`` holds the step, optimiser hyper-parameters and scalar state.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.artifact import FORMAT, write_json
from zoo.errors import ArtifactError

if TYPE_CHECKING:
    import torch

    from zoo.spec import Spec
    from zoo.train import Trainer

TENSORS = "state.safetensors"
META = "state.json"
#: Keys a resumed build may change: how long to train and how often to log/save.
RESUMABLE_CHANGES = {"train": {"max_steps", "epochs", "log_every", "checkpoint_every"},
                     "sample": None, "hub": None}


def resume_view(spec: Spec) -> dict[str, Any]:
    """The part of a spec that must not change between a checkpoint and its resume."""
    view = spec.model_dump(mode="json")
    for section, keys in RESUMABLE_CHANGES.items():
        if keys is None:
            view.pop(section, None)
        else:
            for key in keys:
                view[section].pop(key, None)
    return view


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            out += _differences(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [f"{prefix.rstrip('.')} ({a!r} -> {b!r})"]


def save_training_state(
    folder: Path, trainer: Trainer, step: int, rng: torch.Generator, spec: Spec
) -> None:
    """Write the trainer's modules, optimisers, RNG states and step into ``folder``."""
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {"format": FORMAT, "step": step, "resume_spec": resume_view(spec),
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


def load_training_state(folder: Path, trainer: Trainer, rng: torch.Generator, spec: Spec) -> int:
    """Restore what :func:`save_training_state` wrote; return the step to continue from.

    Refuses a checkpoint made with a different spec (anything but the training
    length, logging and checkpoint cadence, sample and hub settings).
    """
    from zoo.artifact import read_json, weights_header

    weights_header(folder / TENSORS)  # one-line error for a corrupt file
    try:
        meta = read_json(folder / META)  # one line for bad, huge or deeply nested JSON
        changed = _differences(meta["resume_spec"], resume_view(spec))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{folder / META}: unreadable training state ({exc})") from None
    if changed:
        raise ArtifactError(f"cannot resume {folder}: the spec changed at "
                            f"{'; '.join(changed[:5])}")
    try:
        return _restore(folder, meta, trainer, rng)
    except (KeyError, ValueError, RuntimeError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ArtifactError(f"{folder}: training state does not fit this model ({message})"
                            ) from None


def _in_parameter_layout(optimizer: torch.optim.Optimizer) -> None:
    """Give each per-parameter state tensor its parameter's memory layout.

    Checkpoints hold contiguous tensors, while a parameter may be channels-last
    (``train.channels_last``); the fused Adam kernel walks the parameter and its
    moments in memory order, so differing layouts would pair the wrong elements.
    """
    import torch

    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            for key, value in state.items():
                if (isinstance(value, torch.Tensor) and value.shape == param.shape
                        and value.stride() != param.stride()):
                    state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def _restore(folder: Path, meta: dict[str, Any], trainer: Trainer, rng: torch.Generator) -> int:
    import torch
    from safetensors.torch import load_file

    tensors = load_file(str(folder / TENSORS))
    for name, module in trainer.raw_modules().items():
        prefix = f"module/{name}/"
        module.load_state_dict(
            {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}, strict=True)
    for name, optimizer in trainer.optimizers.items():
        saved = meta["optimizers"][name]
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
        _in_parameter_layout(optimizer)
    torch.set_rng_state(tensors["rng/torch"])
    rng.set_state(tensors["rng/train"].to(rng.get_state().device))
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng/cuda/")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    return int(meta["step"])
