"""The family contract: the class a family's implementation subclasses. No torch here.

A family is one subclass of :class:`Family` in a module that may import torch,
named lazily by its registration (``FamilyRecord(impl="zoo_ae.vae:VAE")``)::

    class VAE(Family):
        trainer_class = VAETrainer

        def build(self, spec): ...
        def sample(self, model, noise, spec, options): ...
        def encode(self, model, x): ...  # optional: overriding it *is* the capability

What a family can do follows from what it overrides (:data:`CAPABILITY_METHODS`):
``build``, ``sample`` (or the ``latent``/``generate`` pair it defaults to) and
a trainer (``trainer`` or ``trainer_class``) are required; ``encode``,
``decode``, ``reconstruct``, ``log_likelihood`` and ``features`` (what ``zoo
probe`` trains linear classifiers on) are optional; ``latent`` and
``generate`` come as a pair. A family is
``conditional`` when its sampling options (the record's ``options``, a
:class:`SamplingOptions` subclass) have a ``label``.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict
from pydantic.json_schema import GenerateJsonSchema

from zoo.core.spec import show

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    import torch
    from accelerate import Accelerator
    from torch import nn

    from zoo.core.spec import Spec
    from zoo.sampling.sample import PerSampleNoise
    from zoo.training.trainer import Trainer

#: Each optional capability -> the methods a family overrides to provide it.
CAPABILITY_METHODS: dict[str, tuple[str, ...]] = {
    "encode": ("encode",),
    "decode": ("decode",),
    "reconstruct": ("reconstruct",),
    "log_likelihood": ("log_likelihood",),
    "features": ("features",),
    "latent": ("latent", "generate"),
}
#: Every capability a family can have (``sample`` always; ``conditional`` from its options).
KNOWN_CAPABILITIES = frozenset({"sample", "conditional", *CAPABILITY_METHODS})


class SamplingOptions(BaseModel):
    """A family's sampling options, validated like a spec (unknown keys are refused).

    Subclass it with one field per option, each with a default and a
    description; ``zoo spec FAMILY`` lists them and ``zoo sample RUN --opt
    KEY=VALUE`` / ``model.sample(n, KEY=VALUE)`` set them. A field named
    ``label`` makes the family ``conditional``. A default of ``None`` may mean
    "the spec's value" (say so in the description).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True,
                              validate_default=True, allow_inf_nan=False)

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The options' JSON Schema (``zoo spec FAMILY --schema``); an option of a type
        JSON Schema cannot express (``arbitrary_types_allowed``: e.g. an image object) or
        with a default JSON cannot hold is shown without its type or default, not refused."""
        kwargs.setdefault("schema_generator", _LenientJsonSchema)
        return super().model_json_schema(*args, **kwargs)


class _LenientJsonSchema(GenerateJsonSchema):
    """JSON Schema that leaves out what it cannot express, silently."""

    def handle_invalid_for_json_schema(self, schema: Any, error_info: str) -> dict[str, Any]:
        return {}

    def emit_warning(self, kind: Any, detail: str) -> None:
        return None


class Family:
    """Base class of a model family's implementation (the torch side).

    One instance serves every model of the family; methods take the model
    (the ``nn.Module`` that :meth:`build` made and the folder stores) and its
    spec. Images are float ``N×C×H×W`` in [0, 1].

    Class attributes a family may set:

    - ``trainer_class``: the ``zoo.training.trainer.Trainer`` subclass :meth:`trainer` makes
      (its ``start``/``finish`` see the whole training split of an in-memory source, and for
      a streamed source the first ``data.fit_images`` images of epoch 0);
    - ``sampling_note``: one sentence for the model card on how samples are made;
    - ``independent_samples``: ``True`` when each image is computed on its own, so
      image *i* is bitwise the same for any number of images and batch size (the
      conformance kit holds the family to it; a batched network agrees only to float
      rounding across batch sizes);
    - ``input_ranges``: ``{module name: (low, high)}`` of inputs that are not
      images in [0, 1] (``zoo visualize`` optimises inputs in that range);
    - ``tiny``: spec overrides (``{"model.timesteps": 10}``) that make a build
      tiny for the conformance kit, on top of the kit's own (few steps, small
      batches, a 64-image data limit).
    """

    trainer_class: ClassVar[type | None] = None
    sampling_note: ClassVar[str] = ""
    independent_samples: ClassVar[bool] = False
    input_ranges: ClassVar[dict[str, tuple[float, float]]] = {}
    tiny: ClassVar[dict[str, Any]] = {}

    # ----------------------------------------------------------------- required

    def build(self, spec: Spec) -> nn.Module:
        """A freshly initialised model for ``spec``: the module the model folder stores."""
        raise NotImplementedError

    def trainer(self, spec: Spec, model: nn.Module, accelerator: Accelerator) -> Trainer:
        """The trainer the shared loop drives; by default ``trainer_class(spec, model,
        accelerator)``."""
        if self.trainer_class is None:
            raise NotImplementedError(f"{type(self).__name__} sets no trainer_class")
        return self.trainer_class(spec, model, accelerator)

    def sample(self, model: nn.Module, noise: PerSampleNoise, spec: Spec,
               options: SamplingOptions) -> torch.Tensor | tuple[torch.Tensor, list]:
        """Images in [0, 1], row *j* from ``noise``'s sample *j* alone; ``options`` are the
        validated sampling options. May return ``(images, [extra tensors])``.

        By default ``generate(latent(noise))``: a family with the ``latent`` pair need not
        write its own."""
        if not self.overrides("latent"):
            raise NotImplementedError
        return self.generate(model, self.latent(model, noise, spec), spec, options)

    # ----------------------------------------------------------------- optional

    def encode(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """Codes ``N×k`` of images."""
        raise NotImplementedError

    def decode(self, model: nn.Module, codes: torch.Tensor) -> torch.Tensor:
        """Images from codes ``N×k``."""
        raise NotImplementedError

    def reconstruct(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """Reconstructions of images."""
        raise NotImplementedError

    def log_likelihood(self, model: nn.Module, images: torch.Tensor, k: int, spec: Spec,
                       generator: torch.Generator) -> torch.Tensor:
        """An estimate of log p(x) in nats per image (``N``), with ``k`` importance samples."""
        raise NotImplementedError

    def features(self, model: nn.Module, images: torch.Tensor, spec: Spec,
                 trained: Mapping[str, nn.Module]) -> torch.Tensor:
        """Frozen features ``N×F`` (float) of images in [0, 1], for linear probes (``zoo probe``).

        ``trained``: the trainer's other modules by name (``trained["discriminator"]``),
        loaded on first use from the folder's ``training_state/``; a folder without it
        raises a one-line ``CapabilityError``. ``model`` and ``trained`` may also be a
        freshly built, seeded model and trainer (the probe's random-network baseline), so
        the method must use only them and ``spec``. Row *i* depends on image *i* alone and
        the same images give the same features (no randomness); modules come in eval mode
        and the caller disables gradients."""
        raise NotImplementedError

    def latent(self, model: nn.Module, noise: PerSampleNoise, spec: Spec) -> torch.Tensor:
        """The codes the sampler starts from, row *j* from sample *j*'s noise (with
        :meth:`generate`: ``generate(latent(noise))`` is ``sample(noise)`` for a sampler that
        is deterministic given its noise; ``zoo visualize interpolate`` walks between them)."""
        raise NotImplementedError

    def generate(self, model: nn.Module, codes: torch.Tensor, spec: Spec,
                 options: SamplingOptions) -> torch.Tensor:
        """Images from any codes of :meth:`latent`'s layout, with no further randomness."""
        raise NotImplementedError

    def card_images(self, model: nn.Module, spec: Spec, folder: Path) -> dict[str, str]:
        """Extra figures for the model card, written into ``folder``: ``{caption: file}``."""
        return {}

    # ----------------------------------------------------------------- derived

    @classmethod
    def overrides(cls, method: str) -> bool:
        """Whether this class (or a base below :class:`Family`) defines ``method``."""
        return getattr(cls, method) is not getattr(Family, method)

    @classmethod
    def provided(cls) -> frozenset[str]:
        """The capabilities the class's overrides provide (``sample`` always; not
        ``conditional``, which follows from the options)."""
        return frozenset({"sample"} | {cap for cap, methods in CAPABILITY_METHODS.items()
                                       if all(cls.overrides(m) for m in methods)})

    @classmethod
    def contract_errors(cls) -> list[str]:
        """What the class lacks or gets half right, one phrase each (empty: it conforms)."""
        errors = [] if cls.overrides("build") else ["does not override build"]
        if not cls.overrides("sample") and not cls.overrides("latent"):
            errors.append("overrides neither sample nor latent and generate")
        if not cls.overrides("trainer") and cls.trainer_class is None:
            errors.append("neither overrides trainer nor sets trainer_class")
        for cap, methods in CAPABILITY_METHODS.items():
            have = [m for m in methods if cls.overrides(m)]
            if have and len(have) < len(methods):
                missing = sorted(set(methods) - set(have))
                errors.append(f"overrides {', '.join(have)} but not {', '.join(missing)} "
                              f"(the {cap} capability needs both)")
        for name in METHODS:
            method = getattr(cls, name)
            if not callable(method):
                errors.append(f"sets {name} = {_repr(method)}, which is not callable")
            elif cls.overrides(name) and not _takes_contract_arguments(cls, name):
                wanted = ", ".join(inspect.signature(getattr(Family, name)).parameters)
                errors.append(f"defines {name}{inspect.signature(method)}, which cannot take "
                              f"the contract's arguments ({wanted})")
        return errors + _attribute_errors(cls)


#: The base class of a family's ``trainer_class`` (named: this layer does not import it).
TRAINER = "zoo.training.trainer.Trainer"
#: The methods of the contract (the ones a family may override).
METHODS = ("build", "trainer", "sample", "encode", "decode", "reconstruct", "log_likelihood",
           "features", "latent", "generate", "card_images")
#: Names a family class may not define, with what to do instead: 0.1's module attributes
#: (silently ignored as class attributes) and declared capabilities (derived in 0.2).
RETIRED = {
    "capabilities": "capabilities follow from the methods the class overrides; remove it",
    "SAMPLING_NOTE": "rename it sampling_note",
    "INDEPENDENT_SAMPLES": "rename it independent_samples",
    "INPUT_RANGES": "rename it input_ranges",
}


def _takes_contract_arguments(cls: type[Family], name: str) -> bool:
    """Whether the class's ``name`` can be called on an instance as the contract calls it."""
    method = getattr(cls, name)
    if not (inspect.isfunction(method) or inspect.ismethod(method)):
        return True  # another callable (a partial, a builtin): give it the benefit
    arguments = list(inspect.signature(getattr(Family, name)).parameters)
    if isinstance(inspect.getattr_static(cls, name), staticmethod | classmethod):
        arguments = arguments[1:]  # no self: the instance is not passed
    signature = inspect.signature(method)
    try:
        signature.bind(*arguments)
    except TypeError:
        return False
    return True


def _attribute_errors(cls: type[Family]) -> list[str]:
    """What is wrong with the class attributes of ``cls``, one phrase each."""
    errors = [f"defines {name} ({advice})" for name, advice in RETIRED.items()
              if any(name in vars(k) for k in cls.__mro__)]
    trainer_class = cls.trainer_class
    if trainer_class is not None and not (isinstance(trainer_class, type) and any(
            f"{k.__module__}.{k.__qualname__}" == TRAINER for k in trainer_class.__mro__)):
        errors.append(f"sets trainer_class = {_repr(trainer_class)}, not a {TRAINER} "
                      "subclass")
    if not isinstance(cls.sampling_note, str):
        errors.append(f"sets sampling_note = {_repr(cls.sampling_note)}, not a string")
    if not isinstance(cls.independent_samples, bool):
        errors.append(f"sets independent_samples = {_repr(cls.independent_samples)}, not "
                      "True or False")
    ranges = cls.input_ranges
    if not isinstance(ranges, dict) or not all(
            isinstance(name, str) and _is_range(pair) for name, pair in ranges.items()):
        errors.append(f"sets input_ranges = {_repr(ranges)}, not a dict of module name -> "
                      "(low, high) with low < high")
    tiny = cls.tiny
    if not isinstance(tiny, dict) or not all(
            isinstance(key, str) and "." in key
            and (value is None or isinstance(value, str | int | float | list | tuple))
            for key, value in tiny.items()):
        errors.append(f"sets tiny = {_repr(tiny)}, not a dict of spec keys such as "
                      "'model.timesteps' -> values")
    return errors


def _repr(value: Any) -> str:
    """A class attribute's repr for an error line (:func:`zoo.core.spec.show`)."""
    return show(repr(value))


def _is_range(pair: Any) -> bool:
    """Whether ``pair`` is ``(low, high)``: two finite numbers, low < high."""
    import math

    return (isinstance(pair, tuple | list) and len(pair) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                    for v in pair) and pair[0] < pair[1])
