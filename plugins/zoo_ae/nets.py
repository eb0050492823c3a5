"""What the autoencoders share: MLP and conv stacks, the reconstruction loss, the
autoencoder module, the training step and :class:`AutoencoderFamily`, the
family base class (an autoencoder with no prior that samples from a Gaussian
fitted to its training codes).

Conventions: images are in [0, 1]; decoders return *logits* and images are
``sigmoid(logits)``; losses are summed over pixels and averaged over images,
so Bernoulli losses are negative log-likelihoods in nats.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from zoo import Family
from zoo.data import num_channels
from zoo.training.trainer import Trainer

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU, "linear": nn.Identity}


def image_shape(spec) -> tuple[int, int, int]:
    """(C, H, W) of the model's images."""
    return num_channels(spec.data), spec.data.image_size, spec.data.image_size


def mlp(sizes: Sequence[int], last: nn.Module | None = None) -> nn.Sequential:
    """Linear layers with ReLU between them and ``last`` (or nothing) after the final one."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    if last is not None:
        layers.append(last)
    return nn.Sequential(*layers)


def recon_loss(logits: torch.Tensor, x: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-image reconstruction loss, summed over pixels: shape (N,)."""
    logits = logits.float()
    if kind == "bernoulli":
        per_pixel = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    else:
        per_pixel = (torch.sigmoid(logits) - x) ** 2
    return per_pixel.flatten(1).sum(1)


class AutoEncoder(nn.Module):
    """encoder: image -> code (N, k); decoder: code -> logits (N, C, H, W).

    ``code_mean`` and ``code_tril`` describe a Gaussian fitted to the training
    codes after training; the deterministic autoencoders sample from it.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, code_dim: int) -> None:
        super().__init__()
        self.encoder, self.decoder, self.code_dim = encoder, decoder, code_dim
        self.register_buffer("code_mean", torch.zeros(code_dim))
        self.register_buffer("code_tril", torch.eye(code_dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(code, reconstruction logits)."""
        code = self.encoder(x)
        return code, self.decoder(code)


def mlp_autoencoder(spec, *after_code: nn.Module) -> AutoEncoder:
    """784-...-k-...-784 with the code activation of the spec, then the ``after_code``
    modules (parameter-free ones keep the state dict's keys, e.g. a top-k)."""
    c, h, w = image_shape(spec)
    sizes = [c * h * w, *spec.model.hidden, spec.model.code_dim]
    code = mlp(sizes, ACTIVATIONS[spec.model.code_activation]())
    encoder = nn.Sequential(nn.Flatten(), code, *after_code)
    decoder = nn.Sequential(mlp(sizes[::-1]), nn.Unflatten(1, (c, h, w)))
    return AutoEncoder(encoder, decoder, spec.model.code_dim)


# --------------------------------------------------------------------------- training


class AETrainer(Trainer):
    """One Adam step on ``objective``; afterwards fit a Gaussian to the training codes."""

    def __init__(self, spec, model: nn.Module, accelerator) -> None:
        super().__init__(spec, model, accelerator)
        self.opt = self.adam("model", self.model.parameters(), spec.train.lr, (0.9, 0.999),
                             spec.train.weight_decay)

    def start(self, images: torch.Tensor) -> None:
        """Start the decoder's output bias at the data's mean log-odds.

        Without this, sigmoid codes saturate early: the decoder first uses them as
        a constant to learn the mean image, and they never recover.
        """
        init_output_bias(self.raw_modules()["model"].decoder, images)

    def objective(self, x: torch.Tensor, rng: torch.Generator
                  ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean reconstruction loss; families add their terms."""
        _, logits = self.model(x)
        recon = recon_loss(logits, x, self.spec.model.loss).mean()
        return recon, {"recon": recon}

    def step(self, images, labels, rng) -> dict[str, torch.Tensor]:
        """Minimise the family's objective on one batch."""
        loss, logs = self.objective(images, rng)
        self.update(self.opt, loss)
        return {"loss": loss.detach(), **{k: v.detach() for k, v in logs.items()}}

    def finish(self, images, labels, rng) -> None:
        """Fit N(mean, L L^T) to the codes of the training images (for sampling)."""
        model = self.sampling_module()
        fit_code_gaussian(model, images)


@torch.no_grad()
def init_output_bias(decoder: nn.Module, images: torch.Tensor) -> None:
    """Set the last biased layer's bias to logit(mean pixel) (per pixel or per channel)."""
    last = [m for m in decoder.modules() if getattr(m, "bias", None) is not None][-1]
    mean = images.float().mean(0).clamp(1e-3, 1 - 1e-3)  # (C, H, W)
    if last.bias.numel() == mean.numel():
        last.bias.copy_(torch.logit(mean).flatten())
    elif last.bias.numel() == mean.shape[0]:
        last.bias.copy_(torch.logit(mean.mean((1, 2))))


@torch.no_grad()
def fit_code_gaussian(model: nn.Module, images: torch.Tensor, batch: int = 500) -> None:
    """Store the mean and Cholesky factor of the codes' covariance in the model's buffers."""
    codes = torch.cat([model.encoder(images[i : i + batch]).flatten(1).double()
                       for i in range(0, len(images), batch)])
    mean = codes.mean(0)
    cov = torch.cov(codes.T).reshape(len(mean), len(mean))
    jitter = 1e-6 * cov.diagonal().mean().clamp_min(1e-12)
    tril = torch.linalg.cholesky(cov + jitter * torch.eye(len(mean), dtype=cov.dtype))
    model.code_mean.copy_(mean.float())
    model.code_tril.copy_(tril.float())


def conv_out(size: int, layers: int) -> int:
    """Spatial size after ``layers`` stride-2 convolutions."""
    return size // 2 ** layers


# --------------------------------------------------------------------------- the family


class AutoencoderFamily(Family):
    """An autoencoder (:class:`AutoEncoder` module) with no prior over its codes.

    Builds the MLP autoencoder and trains it on reconstruction alone (a family
    changes ``build`` or sets its own ``trainer_class``). Codes are the encoder's
    output and images decode as ``sigmoid(logits)``; reconstructions decode the
    encoder's output even where a family's :meth:`encode` gives other features;
    samples decode codes drawn from the Gaussian that :class:`AETrainer` fits to
    the training codes.
    """

    trainer_class = AETrainer
    sampling_note = ("This autoencoder has no prior: samples decode codes drawn from a "
                     "Gaussian fitted to the codes of its training images.")

    def build(self, spec) -> nn.Module:
        """The MLP autoencoder of ``spec.model`` (:func:`mlp_autoencoder`)."""
        return mlp_autoencoder(spec)

    def encode(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """Codes (N, k) of images in [0, 1]."""
        return model.encoder(images).flatten(1)

    def decode(self, model: nn.Module, codes: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] from codes (N, k)."""
        return torch.sigmoid(model.decoder(codes))

    def features(self, model: nn.Module, images: torch.Tensor, spec,
                 trained: Mapping[str, nn.Module]) -> torch.Tensor:
        """The probe's features: the codes of :meth:`encode` (N, k): a VAE's posterior
        means, a k-sparse autoencoder's alpha * k largest units."""
        return self.encode(model, images).flatten(1).float()

    def reconstruct(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """Reconstructions in [0, 1] of images in [0, 1]: the decoded code of the model's
        encoder (the path it was trained on)."""
        return self.decode(model, model.encoder(images))

    def sample(self, model: nn.Module, noise, spec, options) -> torch.Tensor:
        """Decode codes drawn from the Gaussian fitted to the training codes."""
        eps = noise.randn(model.code_dim)
        return self.decode(model, model.code_mean + eps @ model.code_tril.T)


class PriorAutoencoder(AutoencoderFamily):
    """An autoencoder with a prior p(z) over its codes: a subclass's :meth:`latent`
    draws codes from it, and samples decode them."""

    sampling_note = ""  # the card's default: samples come from the model's prior

    def generate(self, model: nn.Module, codes: torch.Tensor, spec, options) -> torch.Tensor:
        """Images in [0, 1] from codes (N, k)."""
        return self.decode(model, codes)

    sample = Family.sample  # z ~ p(z), images = decode(z): generate(latent(noise))
