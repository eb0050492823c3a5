"""Zeiler–Fergus projections: which inputs drive a unit, and what in them does.

For one unit (a channel of a convolutional layer, or a linear unit):

1. run the module over a data set and keep the ``top_k`` images whose
   strongest response of the unit is largest (Zeiler & Fergus, 2014, fig. 2);
2. keep only that strongest activation (one position of the channel), zero
   every other activation of the layer, and project it back to pixel space
   through the layers below: transposed filters (the gradient of a
   convolution), max-pooling switches recorded on the forward pass, and at
   each rectifier either the *deconvnet* rule (rectify the backward signal)
   or *guided backpropagation* (Springenberg et al., 2015: rectify it and
   also keep only where the forward input was positive);
3. find the input patch that can reach that position (its receptive field:
   the support of the same back-projection with every rectifier passing the
   signal unchanged) and show it enlarged beside the projection.

Rectifiers are ``nn.ReLU`` and ``nn.LeakyReLU`` modules; a rectifier called as
a function inside ``forward`` keeps its ordinary gradient.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.core.errors import ZooError

if TYPE_CHECKING:
    from zoo.model import ZooModel
    from zoo.visualize import Picture
    from zoo.visualize.targets import Target

RULES = ("guided", "deconvnet")


class _Rectify(torch.autograd.Function):
    """(Leaky) ReLU forward; the backward rule of a projection."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, slope: float, rule: str) -> torch.Tensor:
        """(Leaky) ReLU of ``x``; remembers ``x`` for the guided rule."""
        ctx.save_for_backward(x)
        ctx.slope, ctx.rule = slope, rule
        return F.leaky_relu(x, slope) if slope else F.relu(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        """The backward signal by the rule: unchanged, rectified, or rectified and masked."""
        (x,) = ctx.saved_tensors
        if ctx.rule == "pass":
            return grad, None, None
        grad = grad.clamp(min=0)
        if ctx.rule == "guided":
            grad = grad * torch.where(x > 0, 1.0, ctx.slope)
        return grad, None, None


class Rectifier(nn.Module):
    """A ReLU (``slope`` 0) or LeakyReLU whose backward follows ``rule``: ``guided``,
    ``deconvnet`` or ``pass`` (the signal unchanged)."""

    def __init__(self, slope: float, rule: str) -> None:
        super().__init__()
        self.slope, self.rule = slope, rule

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rectify ``x``."""
        return _Rectify.apply(x, self.slope, self.rule)


def with_rule(module: nn.Module, rule: str) -> nn.Module:
    """A copy of ``module`` whose ReLU and LeakyReLU modules back-project by ``rule``."""
    copied = copy.deepcopy(module)
    for parent in list(copied.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.ReLU | nn.LeakyReLU):
                slope = child.negative_slope if isinstance(child, nn.LeakyReLU) else 0.0
                setattr(parent, name, Rectifier(slope, rule))
    return copied


@dataclass
class Hits:
    """The top inputs of a unit: indices into the data, strongest responses, and where in
    the layer's map each response is (row, column; 0, 0 for a linear layer)."""

    index: torch.Tensor
    value: torch.Tensor
    where: list[tuple[int, int]]


def top_inputs(target: Target, layer: str, unit: int, images: torch.Tensor, top_k: int,
               batch_size: int = 256) -> Hits:
    """The ``top_k`` images whose strongest response of ``unit`` is largest."""
    from zoo.visualize.targets import check_units, find_layer, layer_output

    _, module_layer = find_layer(target.module, layer)
    best, where = [], []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            act = layer_output(target.module, module_layer,
                               target.prepare(images[start : start + batch_size]))
            check_units([unit], act, layer)
            channel = act[:, unit]
            if channel.dim() == 1:  # a linear unit
                best.append(channel)
                where += [(0, 0)] * len(channel)
                continue
            value, flat = channel.flatten(1).max(1)
            best.append(value)
            where += [divmod(int(i), channel.shape[-1]) for i in flat]
    scores = torch.cat(best).cpu()
    value, index = scores.topk(min(top_k, len(scores)))
    return Hits(index, value, [where[int(i)] for i in index])


def project(target: Target, layer: str, unit: int, images: torch.Tensor,
            where: list[tuple[int, int]], rule: str) -> torch.Tensor:
    """Back-projections ``N×C×H×W`` to pixel space of each image's activation of ``unit`` at
    ``where[i]`` alone, through ``with_rule(module, rule)``."""
    from zoo.visualize.targets import find_layer, layer_output

    if rule not in (*RULES, "pass"):
        raise ZooError(f"--rule {rule!r}: expected one of {', '.join(RULES)}")
    module = with_rule(target.module, rule)
    _, module_layer = find_layer(module, layer)
    x = target.prepare(images.clone()).requires_grad_(True)
    act = layer_output(module, module_layer, x)
    seed = torch.zeros_like(act)
    for i, (row, col) in enumerate(where):
        pos = (i, unit) if act.dim() == 2 else (i, unit, row, col)
        seed[pos] = 1.0  # the scale does not matter: projections are shown normalised
    (grad,) = torch.autograd.grad(act, x, seed)  # no weight gradients
    return grad.detach().cpu()


def receptive_boxes(target: Target, layer: str, unit: int, images: torch.Tensor,
                    where: list[tuple[int, int]]) -> list[tuple[int, int, int, int]]:
    """(top, left, bottom, right), inclusive, of the input pixels each activation can see."""
    reach = project(target, layer, unit, images, where, "pass").abs().sum(1)
    boxes = []
    for support in reach:
        rows = torch.nonzero(support.amax(1) > 0).flatten()
        cols = torch.nonzero(support.amax(0) > 0).flatten()
        if len(rows) == 0:
            h, w = support.shape
            boxes.append((0, 0, h - 1, w - 1))
        else:
            boxes.append((int(rows[0]), int(cols[0]), int(rows[-1]), int(cols[-1])))
    return boxes


def default_layer(target: Target) -> str | None:
    """The last convolution (in forward order) whose output map is larger than 1×1, if any."""
    outputs: dict[str, torch.Tensor] = {}
    handles = [m.register_forward_hook(lambda mod, i, out, n=n: outputs.setdefault(n, out))
               for n, m in target.module.named_modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            target.module(target.prepare(torch.zeros(1, *target.shape)))
    finally:
        for handle in handles:
            handle.remove()
    spatial = [n for n, out in outputs.items() if out.dim() == 4 and out[0, 0].numel() > 1]
    return spatial[-1] if spatial else None


#: Data keys that belong to the model's own source, reset when ``--data`` names another.
SOURCE_KEYS = ("split", "held_out", "streaming", "shuffle_buffer", "config", "revision",
               "splits", "image_column", "label_column", "key_column")


def load_data(model: ZooModel, target: Target, data: str | None, limit: int) -> torch.Tensor:
    """Up to ``limit`` training images of the model's data source, or of ``data`` (a data
    source name or an image folder), at the size and channels the target takes (the
    caller has refused the ``data.path`` of a model from the Hub)."""
    from zoo.data import load_images

    c, size, _ = target.shape
    update: dict[str, Any] = {"image_size": size, "channels": c, "limit": limit}
    if data is not None:
        folder = Path(data)
        update.update({"source": "folder", "path": str(folder)} if folder.is_dir()
                      else {"source": data, "path": None})
        # another source: none of the model's source-specific keys (its split, hf columns)
        fields = type(model.spec.data).model_fields
        update.update({key: fields[key].get_default(call_default_factory=True)
                       for key in SOURCE_KEYS if key in fields})
    # an indexed source (a folder) decodes only these `limit` images (zoo.data.split.view)
    spec = type(model.spec.data).model_validate({**model.spec.data.model_dump(), **update})
    return load_images(spec, "train")[0]


def render(model: ZooModel, module: str | None = None, layer: str | None = None,
           unit: int | list[int] | None = None, top_k: int = 9, data: str | None = None,
           limit: int = 1000, rule: str = "guided") -> list[Picture]:
    """One PNG per unit (default 0) of ``layer`` (default: the last convolution with a
    map larger than 1×1): a row per top input — the input with its receptive field
    outlined, that patch enlarged, and the projection."""
    from zoo.hub import check_data_path
    from zoo.sampling.sample import grid
    from zoo.visualize import Picture
    from zoo.visualize.images import fit_into, outline, signed_range, to_rgb, upscale
    from zoo.visualize.targets import find_layer, resolve_target

    if rule not in RULES:
        raise ZooError(f"--rule {rule!r}: expected one of {', '.join(RULES)}")
    if data is None:  # one line before any work, for a model from the Hub
        check_data_path(model.spec, model.path, model.repo_id,
                        "give --data (a data source or an image folder)")
    target = resolve_target(model, module)
    name, _ = find_layer(target.module, layer or default_layer(target))
    images = load_data(model, target, data, limit)
    pictures = []
    for u in [unit] if isinstance(unit, int) else unit or [0]:
        hits = top_inputs(target, name, u, images, top_k)
        chosen = images[hits.index]
        projections = signed_range(project(target, name, u, chosen, hits.where, rule))
        boxes = receptive_boxes(target, name, u, chosen, hits.where)
        tiles = []
        for image, box, proj in zip(to_rgb(chosen), boxes, to_rgb(projections), strict=True):
            top, left, bottom, right = box
            patch = fit_into(image[:, top : bottom + 1, left : right + 1], tuple(image.shape[1:]))
            tiles += [outline(image, box), patch, proj]
        caption = (f"{rule} projections of {target.name} layer {name} unit {u}: top {len(chosen)}"
                   f" of {len(images)} inputs (input with receptive field, patch, projection)")
        options = {"module": target.name, "layer": name, "unit": u, "top_k": top_k,
                   "data": data or model.spec.data.source, "limit": limit, "rule": rule,
                   "responses": [round(float(v), 4) for v in hits.value]}
        pictures.append(Picture(f"deconv-{target.name}-{name}-{u}.png",
                                grid(upscale(torch.stack(tiles)), nrow=3), caption, options))
    return pictures
