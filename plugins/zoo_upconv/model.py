"""Up-convolutional generator (Dosovitskiy, Springenberg & Brox, 2015), on digits.

The paper's chair network maps a high-level description -- the chair style c
(one-hot), the view v and a transformation theta -- to the rendered image. Here
a digit is described by its class c (one-hot, C), its identity k (one-hot, K:
which of the class's ``identities_per_class`` training digits, like one chair
model) and theta = (rotation, scale, shift_x, shift_y) normalised to [-1, 1]:

    h_c = FC(FC(c)),  h_k = FC(FC(k)),  h_theta = FC(FC(theta))      (LeakyReLU 0.2)
    h   = FC(FC([h_c, h_k, h_theta]))  reshaped to (channels, S/4, S/4)
    y   = conv5(upconv5(upconv5(h)))                                  (S x S)
    x_hat = sigmoid(y_0),   mask logit m = y_1 (with ``mask_weight`` > 0)

An up-convolution is the paper's 2x2 unpooling (each value in the top-left
corner of a 2x2 block of zeros) followed by a 5x5 convolution, i.e. a stride-2
transposed convolution with a 5x5 kernel (``ConvTranspose2d(5, 2, padding=2,
output_padding=1)``). Training is supervised: the target of description
(c, k, theta) is T_theta(x_ck) (``transforms.py``), rendered on the fly from
the identity's training image, and the loss is

    L = mean (x_hat - T_theta(x_ck))^2 + lambda mean BCE(m, [T_theta(x_ck) > 0.5])

with lambda = ``mask_weight`` (the paper's optional segmentation loss; 0: none).
Training draws theta from a grid of ``grid`` values per parameter; the midpoints
are never seen and measure generalisation (``metrics.py``). The identities'
images are buffers of the model, so a model folder alone can render targets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from zoo import Family
from zoo.core.errors import CapabilityError, DataError
from zoo.data import num_channels
from zoo.training.trainer import Trainer
from zoo_upconv import UpconvOptions
from zoo_upconv.transforms import PARAMETERS, grid_values, normalise, pick, ranges, render


def stream(inputs: int, width: int) -> nn.Sequential:
    """Two fully connected layers with LeakyReLU: one input's stream."""
    return nn.Sequential(nn.Linear(inputs, width), nn.LeakyReLU(0.2),
                         nn.Linear(width, width), nn.LeakyReLU(0.2))


def upconv(inputs: int, outputs: int) -> nn.ConvTranspose2d:
    """2x2 zero unpooling then a 5x5 convolution: doubles the size."""
    return nn.ConvTranspose2d(inputs, outputs, 5, stride=2, padding=2, output_padding=1)


class UpconvGenerator(nn.Module):
    """Description (class one-hot, identity one-hot, theta code) -> image logits (and a mask
    logit); holds the identities' training images (buffers)."""

    def __init__(self, spec) -> None:
        super().__init__()
        m, size = spec.model, spec.data.image_size
        self.num_classes, self.identities = m.num_classes, m.identities_per_class
        self.channels, self.base = m.channels, size // 4
        self.class_stream = stream(m.num_classes, m.stream_width)
        self.identity_stream = stream(m.identities_per_class, m.stream_width)
        self.transform_stream = stream(len(PARAMETERS), m.stream_width)
        self.joint = nn.Sequential(
            nn.Linear(3 * m.stream_width, m.joint_width), nn.LeakyReLU(0.2),
            nn.Linear(m.joint_width, m.channels * self.base ** 2), nn.LeakyReLU(0.2))
        outputs = num_channels(spec.data) + (1 if m.mask_weight > 0 else 0)
        self.up = nn.Sequential(
            upconv(m.channels, m.channels // 2), nn.LeakyReLU(0.2),
            upconv(m.channels // 2, m.channels // 4 or 1), nn.LeakyReLU(0.2),
            nn.Conv2d(m.channels // 4 or 1, outputs, 5, padding=2))
        # the training digits the identities name (C, K, channels, S, S), set by the trainer
        self.register_buffer("identity_images", torch.zeros(
            m.num_classes, m.identities_per_class, num_channels(spec.data), size, size))

    @property
    def code_size(self) -> int:
        """Length of a description: C + K + 4."""
        return self.num_classes + self.identities + len(PARAMETERS)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (N, C + K + 4) -> output logits (N, channels [+ 1 mask], S, S)."""
        c, k, theta = codes.split([self.num_classes, self.identities, len(PARAMETERS)], 1)
        h = torch.cat([self.class_stream(c), self.identity_stream(k),
                       self.transform_stream(theta)], 1)
        h = self.joint(h).view(-1, self.channels, self.base, self.base)  # (N, ch, S/4, S/4)
        return self.up(h)


def describe(model: UpconvGenerator, labels: torch.Tensor, identities: torch.Tensor,
             theta_codes: torch.Tensor) -> torch.Tensor:
    """Codes (N, C + K + 4) from classes (N), identities (N) and normalised theta (N, 4)."""
    return torch.cat([F.one_hot(labels, model.num_classes).to(theta_codes),
                      F.one_hot(identities, model.identities).to(theta_codes), theta_codes], 1)


def upconv_loss(logits: torch.Tensor, target: torch.Tensor, mask_weight: float
                ) -> dict[str, torch.Tensor]:
    """The image MSE of sigmoid(logits[:, :C]) and, with ``mask_weight`` > 0, the mask
    cross-entropy of the last channel against target > 0.5; ``loss`` is their weighted sum."""
    channels = target.shape[1]
    mse = F.mse_loss(torch.sigmoid(logits[:, :channels]), target)
    if mask_weight <= 0:
        return {"loss": mse, "mse": mse}
    ink = (target.amax(1, keepdim=True) > 0.5).to(target)
    mask = F.binary_cross_entropy_with_logits(logits[:, channels:], ink)
    return {"loss": mse + mask_weight * mask, "mse": mse, "mask": mask}


def pick_identities(labels: torch.Tensor, classes: int, per_class: int, source: str
                    ) -> torch.Tensor:
    """(classes, per_class) training-split rows: the first ``per_class`` images of each class."""
    if int(labels.max()) >= classes or int(labels.min()) < 0:
        raise DataError(f"data.source '{source}' has label {int(labels.max())}, but "
                        f"model.num_classes = {classes}")
    rows = []
    for c in range(classes):
        mine = (labels == c).nonzero().flatten()
        if len(mine) < per_class:
            raise DataError(f"class {c} has {len(mine)} training images, but "
                            f"model.identities_per_class = {per_class}; lower it or use more "
                            "data")
        rows.append(mine[:per_class])
    return torch.stack(rows)


class UpconvTrainer(Trainer):
    """Each step renders a batch of (class, identity, grid theta) targets and regresses them."""

    def __init__(self, spec, model: UpconvGenerator, accelerator) -> None:
        super().__init__(spec, model, accelerator)
        t = spec.train
        self.opt = self.adam("model", model.parameters(), t.lr, (t.beta1, t.beta2))
        self.trained = grid_values(ranges(spec.model), spec.model.grid)[0].to(self.device)

    def start(self, images: torch.Tensor, labels: torch.Tensor | None) -> None:
        """Store the identities' training images in the model (the first of each class)."""
        m = self.spec.model
        if labels is None:
            raise DataError(f"family upconv describes images by class, but data.source "
                            f"'{self.spec.data.source}' has no labels")
        rows = pick_identities(labels, m.num_classes, m.identities_per_class,
                               self.spec.data.source)
        self.raw_modules()["model"].identity_images.copy_(images[rows])

    def step(self, images, labels, rng) -> dict[str, torch.Tensor]:
        """One Adam step on freshly rendered (description, target) pairs; the batch's images
        only set the batch size."""
        model, m, n = self.raw_modules()["model"], self.spec.model, len(images)
        self.cosine_lr(0.05)
        c = self.draws.randint(m.num_classes, (n,), generator=rng, device=self.device)
        k = self.draws.randint(m.identities_per_class, (n,), generator=rng, device=self.device)
        which = self.draws.randint(m.grid, (n, len(PARAMETERS)), generator=rng,
                                   device=self.device)
        theta = pick(self.trained, which)  # (n, 4) grid values
        with torch.no_grad():
            target = render(model.identity_images[c, k], theta)
        codes = describe(model, c, k, normalise(theta, ranges(m).to(self.device)))
        losses = upconv_loss(self.model(codes), target, m.mask_weight)
        self.update(self.opt, losses["loss"])
        return {key: value.detach() for key, value in losses.items()}


def replace(codes: torch.Tensor, model: UpconvGenerator, spec, options: UpconvOptions
            ) -> torch.Tensor:
    """``codes`` with the parts that ``options`` set replaced (a one-line error for a label,
    identity or transformation outside what the model was trained on)."""
    codes = codes.clone()
    C, K = model.num_classes, model.identities
    if options.label is not None:
        if options.label >= C:
            raise CapabilityError(f"label {options.label}: this model has classes 0 to {C - 1}")
        codes[:, :C] = F.one_hot(torch.tensor(options.label), C).to(codes)
    if options.identity is not None:
        if options.identity >= K:
            raise CapabilityError(f"identity {options.identity}: this model has identities 0 "
                                  f"to {K - 1} of each class")
        codes[:, C:C + K] = F.one_hot(torch.tensor(options.identity), K).to(codes)
    bounds = ranges(spec.model)
    for j, name in enumerate(PARAMETERS):
        value = getattr(options, name)
        if value is None:
            continue
        low, high = bounds[j].tolist()
        if not low - 1e-6 <= value <= high + 1e-6:
            raise CapabilityError(f"{name} {value:g} is outside this model's training range "
                                  f"[{low:g}, {high:g}]")
        codes[:, C + K + j] = (2 * value - low - high) / (high - low) if high > low else 0.0
    return codes


# --------------------------------------------------------------------------- the family


class Upconv(Family):
    """The ``upconv`` family: images from descriptions; every part of a description can be
    set (``label``, ``identity``, ``rotation``, ``scale``, ``shift_x``, ``shift_y``)."""

    trainer_class = UpconvTrainer
    sampling_note = ("Each sample describes a random class, identity and transformation "
                     "(uniform over the training ranges) unless the options set them.")
    tiny: ClassVar[dict[str, Any]] = {"model.identities_per_class": 1, "model.stream_width": 16,
                                      "model.joint_width": 32, "model.channels": 8}

    def build(self, spec) -> UpconvGenerator:
        """A fresh generator (its identity images are set when training starts)."""
        return UpconvGenerator(spec)

    def latent(self, model: UpconvGenerator, noise, spec) -> torch.Tensor:
        """One description per sample (N, C + K + 4): a random class and identity (one-hot)
        and theta uniform in [-1, 1] (the training ranges)."""
        labels = noise.randint(model.num_classes, stream=1)
        identities = noise.randint(model.identities, stream=2)
        uniform = torch.stack([torch.rand(len(PARAMETERS), generator=g)
                               for g in noise.generators(3)]).to(labels.device)
        return describe(model, labels, identities, uniform * 2 - 1)

    def generate(self, model: UpconvGenerator, codes: torch.Tensor, spec,
                 options: UpconvOptions) -> torch.Tensor:
        """Images in [0, 1] from descriptions (soft one-hots interpolate); ``options`` replace
        their parts."""
        if codes.dim() != 2 or codes.shape[1] != model.code_size:
            raise ValueError(f"upconv codes must be (N, {model.code_size}), got "
                             f"{tuple(codes.shape)}")
        logits = model(replace(codes, model, spec, options))
        return torch.sigmoid(logits[:, :num_channels(spec.data)])

    def card_images(self, model: UpconvGenerator, spec, folder: Path) -> dict[str, str]:
        """A sweep for the model card: a row per class (identity 0), rotation across its range;
        beside it the true renderings."""
        from zoo.sampling.sample import grid, save_png

        frames, classes = 8, model.num_classes
        bounds = ranges(spec.model)
        angles = torch.linspace(float(bounds[0, 0]), float(bounds[0, 1]), frames)
        theta = torch.stack([angles, torch.ones(frames), torch.zeros(frames),
                             torch.zeros(frames)], 1).repeat(classes, 1)
        labels = torch.arange(classes).repeat_interleave(frames)
        zeros = torch.zeros_like(labels)
        device = model.identity_images.device
        with torch.inference_mode():
            codes = describe(model, labels, zeros, normalise(theta, bounds)).to(device)
            made = self.generate(model, codes, spec, UpconvOptions()).cpu()
            true = render(model.identity_images[labels, zeros].cpu(), theta)
        tiles = torch.cat([made.view(classes, frames, *made.shape[1:]),
                           true.view(classes, frames, *true.shape[1:])], 1)
        save_png(grid(tiles.flatten(0, 1), nrow=2 * frames), folder / "rotations.png")
        return {"rotation sweep per class (identity 0): generated | true rendering":
                "rotations.png"}


def held_out_theta(spec, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(theta (n, 4), corner index (n, 4)): every parameter at a random held-out midpoint, and
    the lower of its two nearest trained grid values' index."""
    m = spec.model
    _, midpoints = grid_values(ranges(m), m.grid)
    which = torch.randint(m.grid - 1, (n, len(PARAMETERS)), generator=generator)
    return pick(midpoints, which), which

