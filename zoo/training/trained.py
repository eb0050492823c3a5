"""A trainer's modules besides the sampling one: loaded from a folder, or freshly built.

A model folder holds the sampling module (``model.safetensors``) and, in
``training_state/``, every other module its family's trainer trained
(``discriminator`` of a GAN, ``discriminator0``... of LAPGAN).
:func:`trained_module` builds one with its trained weights;
:class:`TrainedModules` gives them by name, each loaded on first use (what a
family's ``features`` receives); :func:`fresh_modules` builds the sampling
module and the trainer's others, seeded and untrained (a random-network
baseline of the same architecture).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from zoo.core.errors import ArtifactError, CapabilityError

if TYPE_CHECKING:
    from torch import nn

    from zoo.core.family import Family
    from zoo.core.spec import Spec
    from zoo.model import ZooModel


def cpu_fp32(spec: Spec) -> Spec:
    """The spec with ``train.precision = "fp32"`` and ``run.device = "cpu"``: a trainer built
    from it only to obtain its modules' architecture."""
    return spec.model_copy(update={
        "train": spec.train.model_copy(update={"precision": "fp32"}),
        "run": spec.run.model_copy(update={"device": "cpu"})})


def stored_module_names(model: ZooModel) -> list[str]:
    """The names of the trainer modules ``training_state/`` holds besides the sampling
    module and its average (``model``, ``ema``), read from the header; none without it."""
    from zoo.artifact import TRAINING_STATE, weights_header
    from zoo.training.checkpoint import TENSORS

    path = model.path / TRAINING_STATE / TENSORS
    if not path.is_file():
        return []
    _, tensors = weights_header(path)
    return sorted({key.split("/")[1] for key in tensors if key.startswith("module/")}
                  - {"model", "ema"})


def trained_module(model: ZooModel, name: str) -> nn.Module:
    """The module ``name`` of the family's trainer, with the weights of ``training_state/``
    (in eval mode, without gradients).

    The trainer is built in fp32 on the CPU only to obtain its modules' architecture;
    nothing is trained.
    """
    from safetensors import SafetensorError, safe_open

    from zoo.artifact import TRAINING_STATE
    from zoo.training.checkpoint import TENSORS
    from zoo.training.runtime import make_accelerator

    spec = cpu_fp32(model.spec)
    accelerator, _ = make_accelerator(spec)
    impl = model.family.load()
    trainer = impl.trainer(spec, impl.build(spec), accelerator)
    module = trainer.raw_modules()[name]
    prefix = f"module/{name}/"
    path = model.path / TRAINING_STATE / TENSORS
    try:
        with safe_open(str(path), framework="pt") as stored:  # this module's tensors only
            keys = [k for k in stored.keys() if k.startswith(prefix)]  # noqa: SIM118
            state = {k[len(prefix):]: stored.get_tensor(k) for k in keys}
        module.load_state_dict(state, strict=True)
    except (RuntimeError, SafetensorError) as exc:
        raise ArtifactError(f"{path}: module {name!r} does not fit its spec "
                            f"({str(exc).splitlines()[0]})") from None
    return module.eval().requires_grad_(False)


class TrainedModules(Mapping):
    """A model's trainer modules by name, each loaded from ``training_state/`` on first use.

    A folder without ``training_state/`` (a Hub model loaded by id, or downloaded
    without it) raises a one-line ``CapabilityError`` that says how to get it.
    """

    def __init__(self, model: ZooModel, purpose: str = "this") -> None:
        self.model, self.purpose, self._loaded = model, purpose, {}

    def __getitem__(self, name: str) -> nn.Module:
        """The trained module ``name`` (loaded once)."""
        if name not in self._loaded:
            from zoo.artifact import TRAINING_STATE
            from zoo.training.checkpoint import TENSORS

            if not (self.model.path / TRAINING_STATE / TENSORS).is_file():
                where = self.model.repo_id or str(self.model.path)
                raise CapabilityError(
                    f"{where} has no {TRAINING_STATE}/, where {self.purpose} reads the "
                    f"{self.model.family.name} trainer's {name!r}: get it with `zoo pull "
                    f"{where}` (a Hub model) or keep it when building")
            if name not in (names := stored_module_names(self.model)):
                raise CapabilityError(
                    f"{self.model.path / TRAINING_STATE} holds no module {name!r} (it has: "
                    f"{', '.join(names) or 'none'}), which {self.purpose} reads")
            self._loaded[name] = trained_module(self.model, name)
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(stored_module_names(self.model))

    def __len__(self) -> int:
        return len(stored_module_names(self.model))


def fresh_modules(impl: Family, spec: Spec, seed: int) -> tuple[nn.Module, dict[str, nn.Module]]:
    """The family's sampling module and its trainer's other modules, freshly initialised
    after seeding with ``seed`` (fp32, CPU, eval mode, no gradients): the same
    architecture as a trained model, untrained."""
    from zoo.training.runtime import make_accelerator, seed_everything

    spec = cpu_fp32(spec)
    seed_everything(seed)
    accelerator, _ = make_accelerator(spec)
    model = impl.build(spec)
    modules = impl.trainer(spec, model, accelerator).raw_modules()
    modules = {name: m.eval().requires_grad_(False) for name, m in modules.items()}
    return model.eval().requires_grad_(False), modules
