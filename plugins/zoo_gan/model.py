"""GAN (Goodfellow et al., 2014): the paper's MNIST model and Algorithm 1.

Generator, an MLP on the noise z ~ N(0, I) (100-d)::

    G(z) = sigmoid(W3 relu(W2 relu(W1 z + b1) + b2) + b3)    # 1200, 1200, C*S*S units

Discriminator, maxout layers (Goodfellow et al., 2013) on the flattened pixels x, with
dropout on every layer's input while training (keep 0.8 on the pixels, 0.5 above)::

    h_j = max_{p < P} (W x + b)_{j,p}        # 240 units x 5 pieces, twice
    D(x) = sigmoid(w . h + c)                 # D returns the logit w . h + c

The value function is V(D, G) = E_x log D(x) + E_z log(1 - D(G(z))). Algorithm 1:
k steps of D on -V (each on its own batch of images and noise), then one step of G on the
non-saturating loss -log D(G(z)) (the paper's section 3: log(1 - D(G(z))) saturates early
in training, when D rejects every sample). Both losses come from ``zoo.training.gan`` on
D's logits (the same objective as the sigmoid and cross-entropy, numerically stable).

As in the authors' ``mnist.yaml``: weights drawn from U(-0.05, 0.05) in G and
U(-0.005, 0.005) in D, biases 0, and G's output bias set to the logit of the mean training
image (``init_sigmoid_bias_from_marginals``), so G starts at the average digit; z ~ N(0, I)
(the released ``Generator``'s default noise). Differences from the paper's recipe:

* The default optimiser is Adam (lr 1e-3, beta1 0.5), so the MNIST model trains in minutes
  on a CPU; the paper used SGD with momentum 0.5 rising to 0.7, lr 0.1, batch 100, over
  hundreds of epochs of 50,000 digits. ``train.optimizer = "sgd"`` gives momentum SGD
  (constant lr and momentum; not tuned here).
* Updates alternate as in Algorithm 1; the released code steps G and D together on one
  batch. D's loss sums its two terms (the released code halves it).
* No max-norm constraint on D's weights.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from zoo import Family, SamplingOptions
from zoo.data import num_channels
from zoo.training.gan import discriminator_loss, frozen, generator_loss
from zoo.training.trainer import Trainer

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from accelerate import Accelerator

    from zoo.sampling.sample import PerSampleNoise
    from zoo_gan import GANSpec

#: The released code's initial weight ranges (pylearn2 ``irange``).
G_RANGE, D_RANGE = 0.05, 0.005


def init_uniform(module: nn.Module, irange: float) -> None:
    """Every linear weight U(-irange, irange), every bias 0 (pylearn2's ``irange``)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.uniform_(m.weight, -irange, irange)
            nn.init.zeros_(m.bias)


class Maxout(nn.Module):
    """A maxout layer: ``units`` outputs, each the max of ``pieces`` affine maps of x.

    One linear map to ``units * pieces`` values; unit j takes the max of values
    ``j*pieces .. j*pieces + pieces - 1`` (pylearn2's layout).
    """

    def __init__(self, inputs: int, units: int, pieces: int) -> None:
        super().__init__()
        self.linear = nn.Linear(inputs, units * pieces)
        self.units, self.pieces = units, pieces

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, inputs) -> (N, units)."""
        return self.linear(x).unflatten(-1, (self.units, self.pieces)).amax(-1)


class Generator(nn.Module):
    """z (N, latent) -> image (N, C, S, S) in [0, 1]: ReLU MLP, one sigmoid unit per pixel."""

    def __init__(self, latent_dim: int, hidden: list[int], channels: int, size: int) -> None:
        super().__init__()
        widths = [latent_dim, *hidden]
        layers: list[nn.Module] = []
        for w_in, w_out in itertools.pairwise(widths):
            layers += [nn.Linear(w_in, w_out), nn.ReLU(inplace=True)]
        self.net = nn.Sequential(*layers, nn.Linear(widths[-1], channels * size * size),
                                 nn.Sigmoid(), nn.Unflatten(1, (channels, size, size)))
        self.latent_dim = latent_dim

    @property
    def out(self) -> nn.Linear:
        """The output layer (its bias is set from the data: :meth:`GANTrainer.start`)."""
        return self.net[-3]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(N, latent) -> (N, C, S, S)."""
        return self.net(z)


class Discriminator(nn.Module):
    """image (N, C, S, S) in [0, 1] -> one logit per image (N,): dropout, maxout, ..., linear."""

    def __init__(self, pixels: int, units: list[int], pieces: int, input_dropout: float,
                 dropout: float) -> None:
        super().__init__()
        widths = [pixels, *units]
        layers: list[nn.Module] = [nn.Flatten()]
        for i, (w_in, w_out) in enumerate(itertools.pairwise(widths)):
            layers += [nn.Dropout(input_dropout if i == 0 else dropout),
                       Maxout(w_in, w_out, pieces)]
        layers += [nn.Dropout(dropout), nn.Linear(widths[-1], 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, S, S) -> (N,) logits."""
        return self.net(x).flatten()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Every maxout layer's output, concatenated: (N, sum of ``d_units``); dropout acts
        as in the module's mode (none in eval mode)."""
        hidden = []
        for layer in self.net[:-1]:
            x = layer(x)
            if isinstance(layer, Maxout):
                hidden.append(x)
        return torch.cat(hidden, 1)


def build_discriminator(spec: GANSpec) -> Discriminator:
    """D for ``spec``, initialised as in the released code."""
    m, data = spec.model, spec.data
    d = Discriminator(num_channels(data) * data.image_size ** 2, m.d_units, m.d_pieces,
                      m.d_input_dropout, m.d_dropout)
    init_uniform(d, D_RANGE)
    return d


class GANTrainer(Trainer):
    """Algorithm 1: a D step on every batch, a G step after every k-th (``train.d_steps``)."""

    def __init__(self, spec: GANSpec, model: Generator, accelerator: Accelerator) -> None:
        super().__init__(spec, model, accelerator)
        self.disc = self.add_module("discriminator", build_discriminator(spec))
        self.opt_g = self.optimizer("generator", self.model.parameters())
        self.opt_d = self.optimizer("discriminator", self.disc.parameters())
        self.latent_dim = spec.model.latent_dim

    def optimizer(self, name: str, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
        """``train.optimizer``: Adam (``Trainer.adam``), or SGD with momentum as in the paper."""
        train = self.spec.train
        if train.optimizer == "adam":
            return self.adam(name, params, train.lr, (train.beta1, train.beta2))
        return self.add_optimizer(name, torch.optim.SGD(list(params), lr=train.lr,
                                                        momentum=train.momentum))

    def start(self, images: torch.Tensor) -> None:
        """G's output bias := logit of the mean training image, so G starts at the average
        image (pylearn2's ``init_sigmoid_bias_from_marginals``, as in the paper's code)."""
        mean = images.float().mean(0).flatten().clamp(1e-7, 1 - 1e-7)
        with torch.no_grad():
            self.accelerator.unwrap_model(self.model).out.bias.copy_(torch.logit(mean))

    def step(self, images: torch.Tensor, labels: torch.Tensor | None,
             rng: torch.Generator) -> dict[str, torch.Tensor]:
        """D: min -[log D(x) + log(1 - D(G(z)))]; then, every k-th step, G: min -log D(G(z))."""
        z = self.draws.randn(len(images), self.latent_dim, generator=rng, device=images.device)
        fake = self.model(z)

        # (1) discriminator, dropout on; real and fake in one forward (no batch norm in D,
        # so each image's logit is its own)
        logit_real, logit_fake = self.disc(torch.cat([images, fake.detach()])).split(
            [len(images), len(fake)])
        loss_d = discriminator_loss(logit_real, logit_fake)
        self.update(self.opt_d, loss_d)

        # (2) generator after every k-th D step, through the updated D (dropout on, as in
        # the paper's code); D's weight gradients are not needed, so they are not computed
        if (self.steps_done + 1) % self.spec.train.d_steps == 0:
            with frozen(self.disc):
                loss_g = generator_loss(self.disc(fake))
                self.update(self.opt_g, loss_g)
        else:  # no G step: report G's loss on what D saw
            loss_g = generator_loss(logit_fake.detach())

        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(),
                "d_real": torch.sigmoid(logit_real.detach()).mean(),
                "d_fake": torch.sigmoid(logit_fake.detach()).mean()}


# --------------------------------------------------------------------------- the family


class GAN(Family):
    """The ``gan`` family: the model folder stores G; D lives only in training."""

    trainer_class = GANTrainer
    sampling_note: ClassVar[str] = "Each image is G(z) for its own z ~ N(0, I); no dropout in G."

    def build(self, spec: GANSpec) -> Generator:
        """The sampling model: G, initialised as in the released code (output bias 0 until
        the trainer's ``start`` sets it from the data)."""
        g = Generator(spec.model.latent_dim, spec.model.g_hidden, num_channels(spec.data),
                      spec.data.image_size)
        init_uniform(g, G_RANGE)
        return g

    def latent(self, model: Generator, noise: PerSampleNoise, spec: GANSpec) -> torch.Tensor:
        """Per-sample codes z ~ N(0, I), shaped (N, latent)."""
        return noise.randn(spec.model.latent_dim)

    def generate(self, model: Generator, codes: torch.Tensor, spec: GANSpec,
                 options: SamplingOptions) -> torch.Tensor:
        """Images in [0, 1] from codes z (N, latent)."""
        return model(codes)

    def features(self, model: Generator, images: torch.Tensor, spec: GANSpec,
                 trained: Mapping[str, nn.Module]) -> torch.Tensor:
        """D's maxout hidden layers, concatenated (:meth:`Discriminator.features`), of
        images in [0, 1] (D's own range)."""
        return trained["discriminator"].features(images).float()
