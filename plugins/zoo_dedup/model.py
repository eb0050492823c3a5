"""The hashing autoencoder: C·S·S -> code_dim (ReLU) -> C·S·S, trained to denoise.

Encoder: a fixed Gaussian low-pass (two 32×32 matmuls) and per-image
standardisation (both optional, see the spec), then one linear layer and a ReLU. Decoder: dropout on
the code (training only), one linear layer, logits of the clean image.
Training corrupts inputs with Gaussian noise and masking noise and scores the
reconstruction against the *clean* image. The hash of an image is
``code > 0``: the binarised ReLU activations.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from zoo_ae.nets import AETrainer, AutoEncoder, AutoencoderFamily, image_shape, recon_loss


def blur_matrix(sigma: float, size: int) -> torch.Tensor:
    """``M`` (size × size) with ``M @ X @ M.T`` = a Gaussian blur of std ``sigma`` (radius
    2σ) with replicated edges: the separable form of the 2-D convolution, two small matmuls."""
    radius = max(1, math.ceil(2 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-(t**2) / (2 * sigma**2))
    g = g / g.sum()
    m = torch.zeros(size, size, dtype=torch.float64)
    for i in range(size):
        for offset, weight in zip(range(-radius, radius + 1), g, strict=True):
            m[i, min(max(i + offset, 0), size - 1)] += weight
    return m.float()


class Features(nn.Module):
    """Images in [0, 1] -> flat encoder input: optional low-pass, optional standardisation."""

    def __init__(self, channels: int, size: int, blur: float, standardize: bool) -> None:
        super().__init__()
        self.standardize = standardize
        self.blur = blur > 0
        if self.blur:  # stored with the weights, so a model folder alone hashes the same
            self.register_buffer("blur_matrix", blur_matrix(blur, size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, S, S) -> (N, C·S·S)."""
        if self.blur:
            x = self.blur_matrix @ x @ self.blur_matrix.T
        x = x.flatten(1)
        if self.standardize:
            x = (x - x.mean(1, keepdim=True)) / (x.std(1, keepdim=True) + 1e-3)
        return x


def corrupt(x: torch.Tensor, model_spec, rng: torch.Generator) -> torch.Tensor:
    """The denoising corruption: Gaussian noise (clipped to [0, 1]), then masking noise."""
    noisy = x
    if model_spec.noise_std > 0:
        noise = torch.randn(x.shape, generator=rng, device=x.device, dtype=x.dtype)
        noisy = (x + model_spec.noise_std * noise).clamp(0, 1)
    if model_spec.mask_fraction > 0:
        keep = torch.rand(x.shape, generator=rng, device=x.device) >= model_spec.mask_fraction
        noisy = noisy * keep
    return noisy


class HashTrainer(AETrainer):
    """Reconstruct the clean image from a corrupted one, with dropout on the code."""

    def objective(self, x, rng):
        """Mean over images of recon(decoder(dropout(encoder(corrupt(x)))), x)."""
        _, logits = self.model(corrupt(x, self.spec.model, rng))
        recon = recon_loss(logits, x, self.spec.model.loss).mean()
        return recon, {"recon": recon}


def hash_bits(model: AutoEncoder, x: torch.Tensor) -> torch.Tensor:
    """The hash of images in [0, 1]: bool (N, code_dim), True where the ReLU unit is active."""
    return model.encoder(x).flatten(1) > 0


class DedupAE(AutoencoderFamily):
    """The ``dedup-ae`` family: the autoencoder's encode (the ReLU code; ``code > 0`` is the
    hash, :func:`hash_bits`), decode and reconstruct; samples clipped at 0."""

    trainer_class = HashTrainer
    sampling_note = ("This is a hashing model: its codes are image hashes, and its samples "
                     "only decode codes drawn from a Gaussian fitted to its training codes "
                     "(clipped at 0, like ReLU codes).")

    def build(self, spec) -> AutoEncoder:
        """The hashing autoencoder of the spec (``encoder(x)`` is the ReLU code)."""
        c, h, w = image_shape(spec)
        m = spec.model
        encoder = nn.Sequential(Features(c, h, m.blur, m.standardize),
                                nn.Linear(c * h * w, m.code_dim), nn.ReLU())
        decoder = nn.Sequential(nn.Dropout(m.dropout), nn.Linear(m.code_dim, c * h * w),
                                nn.Unflatten(1, (c, h, w)))
        return AutoEncoder(encoder, decoder, m.code_dim)

    def sample(self, model: AutoEncoder, noise, spec, options) -> torch.Tensor:
        """Decode codes drawn from the Gaussian fitted to the training codes, clipped at 0."""
        eps = noise.randn(model.code_dim)
        return self.decode(model, (model.code_mean + eps @ model.code_tril.T).clamp_min(0))
