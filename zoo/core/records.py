"""What plugins register: plain records, importable without torch.

Heavy code is referenced by dotted path (``"package.module"`` or
``"package.module:attr"``) and imported only when it is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zoo.core.errors import CapabilityError, ZooError
from zoo.core.family import KNOWN_CAPABILITIES, Family, SamplingOptions
from zoo.core.spec import SAMPLE_ARGUMENTS, show

if TYPE_CHECKING:
    from zoo.core.spec import Spec


def import_ref(ref: str) -> Any:
    """Import ``"pkg.mod"`` (a module) or ``"pkg.mod:attr"`` (an attribute of it)."""
    module_name, _, attr = ref.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr) if attr else module


def _reason(exc: BaseException) -> str:
    """An exception as one line: its type and message."""
    return " ".join(f"{type(exc).__name__}: {exc}".split())


@dataclass(frozen=True)
class FamilyRecord:
    """A model family: its name, a one-line summary, the paper, its spec class, its
    sampling options and its implementation.

    ``impl`` names a :class:`zoo.Family` subclass as ``"package.module:Class"``;
    the module is imported only when a model is built, loaded or sampled (so it
    may import torch). ``options`` is the family's :class:`zoo.SamplingOptions`
    subclass (torch-free, like the spec: ``zoo spec`` shows it). The family's
    capabilities follow from what the class overrides (:attr:`capabilities`).
    """

    name: str
    summary: str
    paper: str
    spec: type[Spec]
    impl: str
    options: type[SamplingOptions] = SamplingOptions
    plugin: str = field(default="", compare=False)
    _family: list[Family] = field(default_factory=list, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if ":" not in self.impl:
            raise ValueError(f"family {self.name!r}: impl {self.impl!r} must name a zoo.Family "
                             "subclass as 'package.module:Class'")
        if not (isinstance(self.options, type) and issubclass(self.options, SamplingOptions)):
            raise ValueError(f"family {self.name!r}: options must be a zoo.SamplingOptions "
                             "subclass")
        taken = [key for key in SAMPLE_ARGUMENTS if key in self.options.model_fields]
        if taken:
            raise ValueError(f"family {self.name!r}: sampling option {taken[0]!r} has the name "
                             f"of an argument of model.sample itself ({', '.join(SAMPLE_ARGUMENTS)}"
                             "); rename it")

    def load(self) -> Family:
        """The family's implementation (imported and checked once, then cached)."""
        from zoo.core.errors import PluginError

        if not self._family:
            try:
                cls = import_ref(self.impl)
            except Exception as exc:  # the plugin's module: one line, whatever it raised
                raise PluginError(f"family {self.name!r}: cannot import {self.impl}: "
                                  f"{_reason(exc)}") from None
            if not (isinstance(cls, type) and issubclass(cls, Family)):
                raise PluginError(f"family {self.name!r}: {self.impl} is not a zoo.Family "
                                  "subclass")
            errors = cls.contract_errors()
            if errors:
                raise PluginError(f"family {self.name!r}: {self.impl} {'; '.join(errors)}")
            try:
                family = cls()
            except Exception as exc:
                raise PluginError(f"family {self.name!r}: {self.impl}() failed (a family "
                                  f"class is made with no arguments): {_reason(exc)}"
                                  ) from None
            self._family.append(family)
        return self._family[0]

    @property
    def capabilities(self) -> frozenset[str]:
        """What the family can do: the capabilities its class's overrides provide, plus
        ``conditional`` when its sampling options have a ``label`` (imports the class)."""
        conditional = {"conditional"} if "label" in self.options.model_fields else set()
        return type(self.load()).provided() | conditional

    def require(self, capability: str) -> None:
        """Raise a one-line ``CapabilityError`` if the family lacks ``capability``."""
        have = self.capabilities
        if capability not in have:
            have = ", ".join(sorted(have))
            raise CapabilityError(
                f"family {self.name!r} does not support {capability!r} (it provides: {have})"
            )

    def sampling_options(self, given: Mapping[str, Any] | None = None) -> SamplingOptions:
        """``given`` validated as the family's sampling options; a one-line
        ``CapabilityError`` names an unknown option (listing the family's) or a bad value."""
        from pydantic import ValidationError

        given = dict(given or {})
        fields = self.options.model_fields
        unknown = [key for key in given if key not in fields]
        if unknown:
            offered = ", ".join(fields) or "none"
            raise CapabilityError(f"family {self.name!r} has no sampling option "
                                  f"{show(unknown[0])!r} (its options: {offered})")
        try:
            return self.options.model_validate(given)
        except ValidationError as exc:
            error = exc.errors()[0]
            message = error["msg"].removeprefix("Value error, ")
            if not error["loc"]:  # a check across options
                raise CapabilityError(f"family {self.name!r}: {message}") from None
            key = ".".join(str(part) for part in error["loc"])
            value = show(given.get(str(error["loc"][0])))
            raise CapabilityError(f"family {self.name!r}: sampling option {key} = {value}: "
                                  f"{message}") from None
        except ZooError:  # a validator's own one-line error (e.g. a DataError: no such file)
            raise
        except Exception as exc:  # a validator that fails otherwise: still one line
            raise CapabilityError(f"family {self.name!r}: its sampling options failed to "
                                  f"validate {show(given)}: {_reason(exc)}") from None


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
    #: The pip extra the source's loader needs (e.g. "genzoo[data]"), named when it is missing.
    extra: str | None = None
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

    ``needs``: the capabilities the family must have (default
    ``{"sample"}``); ``sources``: the data sources the metric applies to
    (empty: any); ``families``: the families it applies to (empty: any, e.g. a
    metric that only one family's models can answer). A metric that raises is
    reported as one warning line and the other metrics still run.
    """

    name: str
    summary: str
    compute: str
    needs: frozenset[str] = frozenset({"sample"})
    sources: tuple[str, ...] = ()
    families: tuple[str, ...] = ()
    plugin: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "needs", frozenset(self.needs))
        object.__setattr__(self, "sources", tuple(self.sources))
        object.__setattr__(self, "families", tuple(self.families))
        unknown = set(self.needs) - KNOWN_CAPABILITIES
        if unknown:
            raise ValueError(f"metric {self.name!r}: unknown capabilities {sorted(unknown)}")

    def applies_to(self, family: FamilyRecord, source: str) -> bool:
        """Whether ``zoo eval`` runs this metric on a model of ``family`` trained on ``source``."""
        return (self.needs <= family.capabilities
                and (not self.sources or source in self.sources)
                and (not self.families or family.name in self.families))


@dataclass(frozen=True)
class FeatureRecord:
    """A feature network for ``zoo eval --features NAME`` (FID, KID, precision/recall and
    the memorisation check are computed on its features).

    ``load`` is ``"pkg.mod:function"``, imported only when the features are used; called
    with no arguments it returns a :class:`zoo.FeatureExtractor` (raise
    ``zoo.core.errors.WeightsError`` with one line when its weights are missing).
    ``sources``: the data sources these features are the default for (the digit
    classifier's: the digit sets); ``extra``: the pip extra its code needs, named when
    it is missing.
    """

    name: str
    summary: str
    load: str
    sources: tuple[str, ...] = ()
    extra: str | None = None
    plugin: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sources", tuple(self.sources))
        if ":" not in self.load:
            raise ValueError(f"feature network {self.name!r}: load {self.load!r} must name a "
                             "function as 'package.module:function'")
