"""``training_state/``: everything ``--resume`` needs, as safetensors + JSON, never unpickled.

``state.safetensors`` holds every trained module (``module/<name>/<key>``),
every optimiser tensor (``optim/<name>/<param>/<key>``) and the RNG states;
``state.json`` holds the step, optimiser hyper-parameters and scalar state, and for an
indexed data source the count and a digest of the training images' keys (``data``). The
step alone fixes where the data order continues (``zoo.training.feed``), mid-epoch too.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.artifact import FORMAT, write_json
from zoo.core.errors import ArtifactError

if TYPE_CHECKING:
    import torch

    from zoo.core.spec import Spec
    from zoo.training.trainer import Trainer

TENSORS = "state.safetensors"
#: Optimiser param-group keys that say how a step runs (from the run settings), not what it is.
HOW_TO_STEP = ("fused", "foreach", "capturable", "differentiable")
META = "state.json"
#: Recipe keys a resumed build may change: how long to train, the sample grid and where
#: it is published. The ``run`` section (how it executes) may always change.
RESUMABLE_CHANGES = {"train": {"max_steps", "epochs"}, "sample": None, "hub": None}


def resume_view(doc: dict[str, Any]) -> dict[str, Any]:
    """The part of a spec document that must not change between a checkpoint and its
    resume: the recipe (:func:`zoo.core.spec.recipe`) less :data:`RESUMABLE_CHANGES`."""
    from zoo.core.spec import recipe

    view = recipe(doc)
    for section, keys in RESUMABLE_CHANGES.items():
        if keys is None:
            view.pop(section, None)
        elif isinstance(view.get(section), dict):
            view[section] = {k: v for k, v in view[section].items() if k not in keys}
    return view


def as_read_now(spec_cls: type[Spec], doc: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's spec as this version of its family reads it: a key added since the
    checkpoint was written takes its default, which is no change; a document this version
    no longer validates stays as written, so its differences are reported."""
    from zoo.core.errors import SpecError
    from zoo.core.spec import validate

    try:
        return validate(spec_cls, doc).model_dump(mode="json")
    except SpecError:
        return doc


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            out += _differences(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [f"{prefix.rstrip('.')} ({a!r} -> {b!r})"]


def save_training_state(
    folder: Path, trainer: Trainer, step: int, rng: torch.Generator, spec: Spec,
    data: dict[str, Any] | None = None,
) -> None:
    """Write the trainer's modules, optimisers, RNG states and step into ``folder``, and
    ``data`` (the feed's :meth:`zoo.training.feed.Feed.checkpoint`: what to check about
    the training images on resume) when given."""
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {"format": FORMAT, "step": step,
                            "resume_spec": resume_view(spec.model_dump(mode="json")),
                            "runs": trainer.runs(step), "optimizers": {}}
    if data is not None:
        meta["data"] = data
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


def load_training_state(folder: Path, trainer: Trainer, rng: torch.Generator, spec: Spec,
                        data: dict[str, Any] | None = None) -> int:
    """Restore what :func:`save_training_state` wrote; return the step to continue from.

    Refuses a checkpoint made with a different recipe (anything but the training
    length, sample and hub settings); the ``run`` settings may differ. A
    checkpoint written with an older ``spec_version`` is migrated first. With ``data``
    (the feed's record of the training images), refuses a checkpoint whose recorded
    images differ: the order it continues would be over other images.
    """
    from zoo.artifact import read_json, weights_header
    from zoo.core.spec import migrate

    weights_header(folder / TENSORS)  # one-line error for a corrupt file
    try:
        meta = read_json(folder / META)  # one line for bad, huge or deeply nested JSON
        saved = migrate(meta["resume_spec"], str(folder / META))
        saved = resume_view(as_read_now(type(spec), saved))
        changed = _differences(saved, resume_view(spec.model_dump(mode="json")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{folder / META}: unreadable training state ({exc})") from None
    if changed:
        raise ArtifactError(f"cannot resume {folder}: the spec changed at "
                            f"{'; '.join(changed[:5])}")
    _same_images(folder, meta.get("data"), data, spec)
    try:
        return _restore(folder, meta, trainer, rng, spec.train.seed)
    except (KeyError, ValueError, RuntimeError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ArtifactError(f"{folder}: training state does not fit this model ({message})"
                            ) from None


def _same_images(folder: Path, saved: Any, now: dict[str, Any] | None, spec: Spec) -> None:
    """A one-line ``ArtifactError`` when the checkpoint's training images are not ``now``'s
    (a checkpoint without a record, written before there was one, is not checked)."""
    if now is None or not isinstance(saved, dict):
        return
    before, after = saved.get("images"), now["images"]
    if saved.get("keys") == now.get("keys") and (
            not isinstance(before, int) or not isinstance(after, int) or before == after):
        return  # a stream's count is unknown under train.max_steps: its shards decide
    where = (f"data.path {spec.data.path}" if spec.data.path
             else f"data.source {spec.data.source}")
    if not isinstance(after, int):  # a stream of unknown size
        change = "other shards"
    else:
        change = (f"{after:,} images, not the same ones" if before == after else
                  f"{before:,} -> {after:,} images" if isinstance(before, int) else
                  f"{after:,} images now")
    raise ArtifactError(f"cannot resume {folder}: the training images changed ({change}; "
                        f"{where})")


def _in_parameter_layout(optimizer: torch.optim.Optimizer) -> None:
    """Give each per-parameter state tensor its parameter's memory layout.

    Checkpoints hold contiguous tensors, while a parameter may be channels-last
    (``run.channels_last``); the fused Adam kernel walks the parameter and its
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


def _restore(folder: Path, meta: dict[str, Any], trainer: Trainer, rng: torch.Generator,
             seed: int) -> int:
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
        # hyper-parameters from the checkpoint; how to step (run.fused_optimizer) from now
        groups = [{**group, **{k: now[k] for k in HOW_TO_STEP if k in now}}
                  for group, now in zip(saved["param_groups"], optimizer.param_groups,
                                        strict=False)]
        optimizer.load_state_dict({"state": state, "param_groups": groups})
        _in_parameter_layout(optimizer)
    torch.set_rng_state(tensors["rng/torch"])
    step = int(meta["step"])
    runs = meta.get("runs", [])  # absent in checkpoints written before it was recorded
    trainer.history = [r for r in runs if isinstance(r, dict)] if isinstance(runs, list) else []
    if tensors["rng/train"].numel() == rng.get_state().numel():
        rng.set_state(tensors["rng/train"].to(rng.get_state().device))
    else:  # run.device changed: a CPU generator's state does not fit a CUDA one
        from zoo.sampling.sample import sample_seed

        rng.manual_seed(sample_seed(seed, step, 3))
        print(f"note: {folder} was written on another kind of device; the training noise "
              "continues from a new stream (not bit for bit)", file=sys.stderr)
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng/cuda/")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    return step
