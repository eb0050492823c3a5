"""What plugins register: plain records, importable without torch.

Heavy code is referenced by dotted path (``"package.module"`` or
``"package.module:attr"``) and imported only when it is used.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

from zoo.errors import CapabilityError

if TYPE_CHECKING:
    from zoo.spec import Spec

#: Every capability a family may declare -> the functions its implementation module must
#: then provide (``conditional``: sampling takes ``label=``; ``latent``: codes from the prior
#: and a deterministic decoder of them, for latent interpolation).
CAPABILITY_FUNCTIONS: dict[str, tuple[str, ...]] = {
    "sample": ("sample",),
    "encode": ("encode",),
    "decode": ("decode",),
    "reconstruct": ("reconstruct",),
    "log_likelihood": ("log_likelihood",),
    "latent": ("latent", "generate"),
    "conditional": (),
}
#: Capabilities that are functions of the family's implementation module.
FUNCTION_CAPABILITIES = frozenset(c for c, names in CAPABILITY_FUNCTIONS.items() if names)
KNOWN_CAPABILITIES = frozenset(CAPABILITY_FUNCTIONS)


def import_ref(ref: str) -> Any:
    """Import ``"pkg.mod"`` (a module) or ``"pkg.mod:attr"`` (an attribute of it)."""
    module_name, _, attr = ref.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr) if attr else module


@dataclass(frozen=True)
class FamilyRecord:
    """A model family.

    ``impl`` names the module (imported lazily, may import torch) that provides
    ``build(spec) -> nn.Module`` (the sampling model), ``trainer(spec, model,
    accelerator) -> zoo.train.Trainer`` and one function per capability:
    ``sample(model, noise, spec)`` (``noise`` a :class:`zoo.sample.PerSampleNoise`),
    ``encode(model, x)``, ``decode(model, z)``, ``reconstruct(model, x)``,
    ``log_likelihood(model, x, k, spec, generator)``.

    ``latent`` is two functions: ``latent(model, noise, spec)`` draws the codes
    the sampler starts from (``N×...``, row *i* from sample *i*'s noise, drawn
    from the model's prior) and ``generate(model, codes, spec, **options)``
    turns any codes into images in [0, 1] with no further randomness, so that
    ``generate(model, latent(model, noise, spec), spec)`` is ``sample(model,
    noise, spec)`` whenever the family's sampler is deterministic given its
    noise. ``zoo visualize --what interpolate`` walks between such codes.
    """

    name: str
    summary: str
    paper: str
    spec: type[Spec]
    impl: str
    capabilities: frozenset[str] = frozenset({"sample"})
    plugin: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        unknown = set(self.capabilities) - KNOWN_CAPABILITIES
        if unknown:
            raise ValueError(f"family {self.name!r}: unknown capabilities {sorted(unknown)}")

    def load(self) -> ModuleType:
        """Import the family's implementation module and check it provides its functions."""
        from zoo.errors import PluginError

        module = import_ref(self.impl)
        needed = {"build", "trainer"}.union(
            *(CAPABILITY_FUNCTIONS[c] for c in self.capabilities))
        missing = sorted(n for n in needed if not callable(getattr(module, n, None)))
        if missing:
            raise PluginError(f"family {self.name!r}: {self.impl} lacks {', '.join(missing)}")
        return module

    def require(self, capability: str) -> None:
        """Raise a one-line ``CapabilityError`` if the family lacks ``capability``."""
        if capability not in self.capabilities:
            have = ", ".join(sorted(self.capabilities))
            raise CapabilityError(
                f"family {self.name!r} does not support {capability!r} (it provides: {have})"
            )


@dataclass(frozen=True)
class DatasetRecord:
    """A data source. ``load`` is ``"pkg.mod:function"`` taking a ``DataSpec``.

    With ``prefix=True`` the record answers every source named ``name:<anything>``
    (e.g. ``torchvision:MNIST``).
    """

    name: str
    summary: str
    load: str
    prefix: bool = False
    classes: int | None = None
    channels: int = 3  # what the source yields when data.channels is unset
    plugin: str = field(default="", compare=False)


@dataclass(frozen=True)
class MetricRecord:
    """An evaluation metric that ``zoo eval`` runs on every model it applies to.

    ``compute`` is ``"pkg.mod:function"``, imported only when the metric runs::

        def compute(model: zoo.ZooModel, samples: Tensor | None, reference: Tensor
                    ) -> float | dict[str, float]: ...

    ``model`` is the loaded model (``model.spec``, ``model.module``, and its
    capabilities: ``model.reconstruct(x)``, ...); ``samples`` the images
    ``zoo eval`` drew (``-n``, ``--seed``: float32 N×C×H×W in [0, 1], the same
    ones the built-in metrics score), ``None`` unless ``needs`` has
    ``"sample"``; ``reference`` the held-out (test) split of the model's data source
    as the model was trained on it (float32 N×C×H×W in [0, 1] at
    ``data.image_size`` and its channels, binarised as ``data.binarize``
    says). A number is stored as ``metrics.json["eval"][name]``, a dict as
    ``["eval"]["name.key"]`` for each key; both reach the model card.

    ``needs``: the capabilities the family must declare (default
    ``{"sample"}``); ``sources``: the data sources the metric applies to
    (empty: any). A metric that raises is reported as one warning line and
    the other metrics still run.
    """

    name: str
    summary: str
    compute: str
    needs: frozenset[str] = frozenset({"sample"})
    sources: tuple[str, ...] = ()
    plugin: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "needs", frozenset(self.needs))
        object.__setattr__(self, "sources", tuple(self.sources))
        unknown = set(self.needs) - KNOWN_CAPABILITIES
        if unknown:
            raise ValueError(f"metric {self.name!r}: unknown capabilities {sorted(unknown)}")

    def applies_to(self, family: FamilyRecord, source: str) -> bool:
        """Whether ``zoo eval`` runs this metric on a model of ``family`` trained on ``source``."""
        return self.needs <= family.capabilities and (not self.sources or source in self.sources)
