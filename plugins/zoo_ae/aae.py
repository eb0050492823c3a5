"""Adversarial autoencoder (Makhzani et al., 2016).

A deterministic encoder q(z|x) is the generator of codes; a discriminator D
on codes learns to tell prior samples z ~ p(z) from codes of data. Each batch
runs three phases, as in the paper:

1. reconstruction: update encoder and decoder on the reconstruction loss;
2. regularisation, D: maximise log D(z_prior) + log(1 - D(q(x)));
3. regularisation, G: update the encoder to maximise log D(q(x)).

All learning rates follow a cosine decay to zero over training, so the
adversarial game settles instead of oscillating around the prior at the end.

Priors: N(0, I), or a mixture of 10 Gaussians whose means lie on a circle of
radius 4 in the first two code dimensions (std 0.5 there, 1 elsewhere).
"""

from __future__ import annotations

import math

import torch

from zoo.training.gan import discriminator_loss, frozen, generator_loss
from zoo_ae.nets import AETrainer, PriorAutoencoder, mlp, recon_loss

RADIUS, COMPONENTS, MIXTURE_STD = 4.0, 10, 0.5


def mixture_means(code_dim: int) -> torch.Tensor:
    """Means (10, k) of the mixture prior."""
    angles = torch.arange(COMPONENTS) * (2 * math.pi / COMPONENTS)
    means = torch.zeros(COMPONENTS, code_dim)
    means[:, 0] = RADIUS * torch.cos(angles)
    if code_dim > 1:
        means[:, 1] = RADIUS * torch.sin(angles)
    return means


def prior_sample(kind: str, eps: torch.Tensor, component: torch.Tensor | None = None
                 ) -> torch.Tensor:
    """Map standard normal ``eps`` (N, k) (and components (N,)) to prior samples."""
    if kind == "gaussian":
        return eps
    k = eps.shape[1]
    scale = torch.ones(k, device=eps.device)
    scale[: min(2, k)] = MIXTURE_STD
    return mixture_means(k).to(eps.device)[component] + eps * scale


class AAETrainer(AETrainer):
    """Three phases per batch: reconstruction, discriminator, generator (encoder)."""

    def __init__(self, spec, model, accelerator) -> None:
        super().__init__(spec, model, accelerator)
        k = spec.model.code_dim
        self.disc = self.add_module("discriminator", mlp([k, *spec.model.disc_hidden, 1]))
        betas = (0.5, 0.999)
        self.opt_d = self.adam("discriminator", self.disc.parameters(), spec.train.adv_lr, betas)
        encoder = self.raw_modules()["model"].encoder
        self.opt_g = self.adam("encoder", encoder.parameters(), spec.train.adv_lr, betas)

    def prior(self, n: int, rng: torch.Generator, device) -> torch.Tensor:
        """n samples of the prior."""
        eps = self.draws.randn(n, self.spec.model.code_dim, generator=rng, device=device)
        comp = self.draws.randint(COMPONENTS, (n,), generator=rng, device=device)
        return prior_sample(self.spec.model.prior, eps, comp)

    def step(self, images, labels, rng) -> dict[str, torch.Tensor]:
        """Reconstruction, then D, then G updates on one batch."""
        self.cosine_lr()  # lets the adversarial game settle by the end of training
        x = images
        _, logits = self.model(x)  # 1. reconstruction
        recon = recon_loss(logits, x, self.spec.model.loss).mean()
        self.update(self.opt, recon)

        z_prior = self.prior(len(x), rng, x.device)
        codes, _ = self.model(x)  # 2. discriminator: prior samples are "real"
        loss_d = discriminator_loss(self.disc(z_prior), self.disc(codes.detach()))
        self.update(self.opt_d, loss_d)

        with frozen(self.disc):  # 3. generator: the encoder fools D
            loss_g = generator_loss(self.disc(codes))
            self.update(self.opt_g, loss_g)
        return {"recon": recon.detach(), "loss_d": loss_d.detach(), "loss_g": loss_g.detach()}

    def finish(self, images, labels, rng) -> None:
        """Nothing to fit: an AAE samples from its prior."""


class AAE(PriorAutoencoder):
    """The MLP autoencoder (linear code by default) trained in three phases; samples
    decode codes drawn from the prior."""

    trainer_class = AAETrainer

    def latent(self, model, noise, spec) -> torch.Tensor:
        """Per-sample codes z ~ p(z), (N, k)."""
        eps = noise.randn(spec.model.code_dim)
        component = noise.randint(COMPONENTS, stream=1)
        return prior_sample(spec.model.prior, eps, component)
