"""What a visualisation looks into: a module that takes images, one of its layers, a unit.

A model folder holds the sampling module (``model.safetensors``, module name
``model``) and, in ``training_state/``, every other module its family's
trainer trained (``discriminator`` of a GAN, ``discriminator0``... of
LAPGAN). :func:`resolve_target` builds any of them, or the project's digit
classifier (``classifier``), with the size and value range of the images it
takes. A family whose module takes images in another range than [0, 1] says
so in its implementation module: ``INPUT_RANGES = {"discriminator": (-1, 1)}``.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from zoo.core.errors import CapabilityError, UnknownNameError
from zoo.training.trained import stored_module_names, trained_module

if TYPE_CHECKING:
    from zoo.model import ZooModel

CLASSIFIER = "classifier"
#: Layers whose weights or outputs the visualisations read.
WEIGHTED = (nn.Conv2d, nn.Linear)


@dataclass
class Target:
    """A module that takes ``C×H×W`` images with values in ``[low, high]``."""

    name: str
    module: nn.Module
    shape: tuple[int, int, int]
    low: float = 0.0
    high: float = 1.0

    @property
    def device(self) -> torch.device:
        """Where the module's parameters are (the CPU for a module without any)."""
        return next(self.module.parameters(), torch.empty(0)).device

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] -> the module's input range, on its device (differentiably)."""
        images = images.to(self.device)
        if (self.low, self.high) == (0.0, 1.0):
            return images
        return self.low + (self.high - self.low) * images


# --------------------------------------------------------------------------- modules


def module_names(model: ZooModel) -> list[str]:
    """What ``--module`` may name: ``model``, its ``encoder`` (autoencoders), the trained
    modules stored in ``training_state/`` and ``classifier``."""
    encoder = ["encoder"] if _encoder(model.module) is not None else []
    return ["model", *encoder, *stored_module_names(model), CLASSIFIER]


def _encoder(module: nn.Module) -> nn.Module | None:
    encoder = getattr(module, "encoder", None)
    return encoder if isinstance(encoder, nn.Module) else None


def resolve_target(model: ZooModel, name: str | None = None, probe: bool = True,
                   usable: Callable[[Target], object] | None = None,
                   need: str = "takes its images") -> Target:
    """The module ``name`` of a loaded model, with the shape and range of its images.

    By default the first of its discriminators, its encoder and the sampling
    module that passes ``usable`` (a check that raises ``CapabilityError``;
    default: it takes the model's images; ``need`` says what it checks).
    ``probe`` runs a named module once on a blank image and raises a one-line
    ``CapabilityError`` if it does not take them.
    """
    family = model.family.name
    if name is None:
        discriminators = [n for n in stored_module_names(model) if n.startswith("discriminator")]
        encoder = ["encoder"] if _encoder(model.module) is not None else []
        candidates = [*discriminators, *encoder, "model"]
        for candidate in candidates:
            target = _target(model, candidate)
            try:
                usable(target) if usable else check_takes_images(target, family)
            except CapabilityError:
                continue
            return target
        raise CapabilityError(f"no module of the {family} model {need} (tried "
                              f"{', '.join(candidates)}); give --module {CLASSIFIER} or another "
                              f"of: {', '.join(module_names(model))}")
    target = _target(model, name)
    if probe:
        check_takes_images(target, family)
    return target


def _target(model: ZooModel, name: str) -> Target:
    from zoo.data import num_channels

    if name == CLASSIFIER:
        from zoo.evaluation.features import INPUT_SIZE, load_classifier

        net, _ = load_classifier()
        return Target(CLASSIFIER, net.eval().requires_grad_(False), (1, INPUT_SIZE, INPUT_SIZE))
    known = module_names(model)
    if name not in known:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UnknownNameError(f"the {model.family.name} model has no module {name!r}{hint}; "
                               f"it has: {', '.join(known)}")
    if name == "model":  # gradients are taken with respect to inputs only
        module = model.module.eval()
    elif name == "encoder":
        module = _encoder(model.module.eval())
    else:
        module = trained_module(model, name)
    size = model.spec.data.image_size
    low, high = model.family.load().input_ranges.get(name, (0.0, 1.0))
    return Target(name, module, (num_channels(model.spec.data), size, size), low, high)


def check_takes_images(target: Target, family: str) -> None:
    """Raise a one-line ``CapabilityError`` unless the target's forward takes one image batch."""
    c, h, w = target.shape
    try:
        with torch.no_grad():
            target.module(target.prepare(torch.zeros(1, c, h, w)))
    except (RuntimeError, TypeError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CapabilityError(f"module {target.name!r} of the {family} model does not take "
                              f"{c}×{h}×{w} images ({reason})") from None


# --------------------------------------------------------------------------- layers


def layer_names(module: nn.Module) -> list[str]:
    """Dotted names of the module's convolutional and linear layers, in module order."""
    return [n for n, m in module.named_modules() if n and isinstance(m, WEIGHTED)]


def find_layer(module: nn.Module, name: str | None) -> tuple[str, nn.Module]:
    """The submodule of dotted ``name``; by default the last conv/linear layer (of the
    module's ``encoder`` if it has one, i.e. an autoencoder's code layer)."""
    if name is None:
        scope = "encoder" if isinstance(getattr(module, "encoder", None), nn.Module) else ""
        names = [n for n in layer_names(module) if n.startswith(scope)]
        if not names:
            raise CapabilityError("the module has no convolutional or linear layer")
        name = names[-1]
    try:
        return name, module.get_submodule(name)
    except AttributeError:
        known = [n for n, _ in module.named_modules() if n]
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"did you mean {', '.join(map(repr, close))}?" if close else (
            f"conv/linear layers: {', '.join(layer_names(module)[:12])}")
        raise UnknownNameError(f"no layer {name!r} in the module; {hint}") from None


class _Stop(Exception):
    """Raised by the capturing hook: nothing after the layer needs to run."""


@contextlib.contextmanager
def _captured(layer: nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    store: dict[str, torch.Tensor] = {}

    def hook(mod: nn.Module, inputs: object, output: object) -> None:
        """Keep the layer's output and stop the forward pass."""
        store["out"] = output[0] if isinstance(output, tuple | list) else output
        raise _Stop

    handle = layer.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


def layer_output(module: nn.Module, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The output of ``layer`` when ``module`` runs on ``x`` (the rest of the forward is
    skipped); keeps the autograd graph when gradients are enabled."""
    with _captured(layer) as store, contextlib.suppress(_Stop):
        module(x)
    if "out" not in store:
        raise CapabilityError("the chosen layer is not used in the module's forward pass")
    return store["out"]


def num_units(activation: torch.Tensor) -> int:
    """Channels (N×C×H×W) or units (N×F) of a layer output."""
    return activation.shape[1]


def check_units(units: list[int], activation: torch.Tensor, layer: str) -> None:
    """One-line error for a unit the layer does not have."""
    n = num_units(activation)
    bad = [u for u in units if not 0 <= u < n]
    if bad:
        raise CapabilityError(f"layer {layer!r} has {n} unit{'s' if n != 1 else ''} "
                              f"(0..{n - 1}); no unit {bad[0]}")
