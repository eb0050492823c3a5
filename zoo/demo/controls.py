"""The controls of a family's sampling options: one widget description per option field.

A family declares its options as a pydantic model (:class:`zoo.SamplingOptions`); this
module reads the fields and says which widget each needs, without importing Gradio or
torch, and turns the widgets' values back into the options ``model.sample`` takes:

========================================  ==========================================
field                                     control
========================================  ==========================================
``bool``                                  a checkbox
``Literal[...]`` or an ``Enum``           a choice (plus "unset" when it may be None)
``int``, ``float``                        a number, bounded by ``ge``/``le``
``input``, ``mask`` (:data:`IMAGES`)      an image upload
a stage option (``return_steps``, ...)    "show stages": a strip of the sampler's stages
anything else                             a text box, read as ``--opt KEY=VALUE`` is
========================================  ==========================================

An empty number, text or "unset" choice leaves the option out, so the family's
default (often "the spec's value") holds, as when ``zoo sample`` is given no ``--opt``.
"""

from __future__ import annotations

import enum
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

#: Option names that take an image (a file path or a tensor): shown as uploads.
IMAGES = ("input", "mask")
#: Options that make a sampler return its stages (:data:`zoo.visualize.steps.STAGE_OPTIONS`,
#: named here so that this module imports no torch).
STAGES = ("return_steps", "return_pyramid")
#: What an unset choice is called in the page.
UNSET = "(unset)"

Kind = Literal["bool", "int", "float", "choice", "text", "image", "stages"]


@dataclass(frozen=True)
class Control:
    """One sampling option as a widget: its ``kind``, default and bounds or choices."""

    name: str
    kind: Kind
    description: str = ""
    default: Any = None
    optional: bool = False
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] = ()

    @property
    def label(self) -> str:
        """The widget's label: the option's name as ``--opt`` spells it."""
        return self.name

    def value(self, raw: Any) -> Any:
        """A widget's value as the option's value; :data:`UNSET` for "leave it out"."""
        if raw is None or (isinstance(raw, str) and raw.strip() in ("", UNSET)):
            return UNSET
        if self.kind == "int" and isinstance(raw, float) and raw.is_integer():
            return int(raw)
        if self.kind == "choice":
            for choice in self.choices:  # the page shows choices (an enum's values) as text
                value = choice.value if isinstance(choice, enum.Enum) else choice
                if str(value) == str(raw):
                    return value
        if self.kind == "text" and isinstance(raw, str):  # read as --opt KEY=VALUE reads it
            from zoo.core.spec import parse_options

            return parse_options([f"{self.name}={raw.strip()}"])[self.name]
        return raw


def controls(options: type[BaseModel]) -> list[Control]:
    """The controls of a family's sampling options, in the order the fields are declared."""
    return [control(name, info) for name, info in options.model_fields.items()]


def control(name: str, info: Any) -> Control:
    """The control of one option field (a pydantic ``FieldInfo``)."""
    annotation, optional = _unwrap_optional(info.annotation)
    default = None if info.default is PydanticUndefined else info.default
    about = " ".join((info.description or "").split())
    common = {"name": name, "description": about, "optional": optional}
    if name in IMAGES:
        return Control(kind="image", default=None, **common)
    if name in STAGES:
        return Control(kind="stages", default=bool(default), **common)
    if annotation is bool:
        return Control(kind="bool", default=bool(default), **common)
    choices = _choices(annotation)
    if choices:
        return Control(kind="choice", default=default, choices=choices, **common)
    if annotation in (int, float):
        low, high = _bounds(info.metadata)
        return Control(kind="int" if annotation is int else "float", default=default,
                       minimum=low, maximum=high, **common)
    return Control(kind="text", default=None if default is None else str(default), **common)


def options_from(controls: list[Control], values: list[Any]) -> dict[str, Any]:
    """The sampling options the widgets' ``values`` give (stage options are left out:
    the page shows stages beside the grid, the grid is always the plain samples)."""
    options = {}
    for ctl, raw in zip(controls, values, strict=True):
        value = ctl.value(raw)
        if ctl.kind != "stages" and not (isinstance(value, str) and value == UNSET):
            options[ctl.name] = value
    return options


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    """``X | None`` -> (X, True); anything else -> (itself, False)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], len(args) < len(typing.get_args(annotation))
    return annotation, False


def _choices(annotation: Any) -> tuple[Any, ...]:
    """The values of a ``Literal`` or the members of an ``Enum`` (else none)."""
    if typing.get_origin(annotation) is Literal:
        return tuple(typing.get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return tuple(annotation)
    return ()


def _bounds(metadata: list[Any]) -> tuple[float | None, float | None]:
    """(low, high) of a number field's ``ge``/``gt``/``le``/``lt`` constraints."""
    low = high = None
    for item in metadata:
        for attr in ("ge", "gt"):
            if getattr(item, attr, None) is not None:
                low = getattr(item, attr)
        for attr in ("le", "lt"):
            if getattr(item, attr, None) is not None:
                high = getattr(item, attr)
    return low, high
