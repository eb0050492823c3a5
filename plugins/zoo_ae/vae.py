"""Variational autoencoder (Kingma & Welling, 2014) and its IWAE likelihood (Burda et al., 2016).

q(z|x) = N(mu(x), diag(exp(logvar(x)))), p(z) = N(0, I), p(x|z) Bernoulli
(logits from the decoder) or, with loss = mse, a unit-free squared error.
Training maximises the ELBO by reparameterisation, z = mu + exp(logvar / 2) * eps:

    ELBO(x) = E_q[log p(x|z)] - beta * KL(q(z|x) || p(z)),
    KL = 1/2 sum_j (mu_j^2 + exp(logvar_j) - 1 - logvar_j).

log p(x) is estimated with k importance samples z_i ~ q(z|x):

    log p(x) ~ logsumexp_i [log p(x|z_i) + log p(z_i) - log q(z_i|x)] - log k,

a lower bound that tightens as k grows and equals the ELBO (beta = 1) at k = 1.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from zoo.core.errors import CapabilityError
from zoo_ae.nets import AETrainer, PriorAutoencoder, image_shape, mlp, recon_loss

LOG_2PI = math.log(2 * math.pi)


class VAENet(nn.Module):
    """Gaussian encoder (mu, logvar) and MLP decoder (logits)."""

    def __init__(self, spec) -> None:
        super().__init__()
        c, h, w = image_shape(spec)
        sizes = [c * h * w, *spec.model.hidden]
        self.code_dim = spec.model.code_dim
        self.encoder = nn.Sequential(nn.Flatten(), mlp([*sizes, 2 * self.code_dim]))
        self.decoder = nn.Sequential(mlp([self.code_dim, *sizes[::-1]]),
                                     nn.Unflatten(1, (c, h, w)))

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) of q(z|x), each (N, k)."""
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    def forward(self, x: torch.Tensor, eps: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mu, logvar, logits of p(x|z)) with z = mu + sigma * eps."""
        mu, logvar = self.posterior(x)
        z = mu + torch.exp(0.5 * logvar) * eps
        return mu, logvar, self.decoder(z)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per row (N,)."""
    mu, logvar = mu.float(), logvar.float()
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)


def elbo_terms(model: VAENet, x: torch.Tensor, eps: torch.Tensor, loss: str
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """(reconstruction loss, KL) per image, with the given reparameterisation noise."""
    mu, logvar, logits = model(x, eps)
    return recon_loss(logits, x, loss), gaussian_kl(mu, logvar)


class VAETrainer(AETrainer):
    """Maximise the (beta-)ELBO."""

    def objective(self, x, rng):
        """mean over images of recon + beta * KL."""
        eps = self.draws.randn(len(x), self.spec.model.code_dim, generator=rng, device=x.device)
        recon, kl = elbo_terms(self.model, x, eps, self.spec.model.loss)
        loss = (recon + self.spec.model.beta * kl).mean()
        return loss, {"recon": recon.mean(), "kl": kl.mean()}

    def finish(self, images, labels, rng) -> None:
        """Nothing to fit: a VAE samples from its prior."""


class VAE(PriorAutoencoder):
    """The VAE: ELBO training, codes and reconstructions from the posterior mean,
    samples and likelihoods from the prior N(0, I)."""

    trainer_class = VAETrainer

    def build(self, spec) -> VAENet:
        """The VAE module."""
        return VAENet(spec)

    def encode(self, model: VAENet, images: torch.Tensor) -> torch.Tensor:
        """Posterior means (N, k)."""
        return model.posterior(images)[0]

    def reconstruct(self, model: VAENet, images: torch.Tensor) -> torch.Tensor:
        """Decode the posterior mean."""
        return self.decode(model, self.encode(model, images))

    def latent(self, model: VAENet, noise, spec) -> torch.Tensor:
        """Per-sample codes z ~ p(z) = N(0, I), (N, k)."""
        return noise.randn(model.code_dim)

    @torch.no_grad()
    def log_likelihood(self, model: VAENet, images: torch.Tensor, k: int = 1000, spec=None,
                       generator: torch.Generator | None = None, chunk: int = 250
                       ) -> torch.Tensor:
        """IWAE estimate of log p(x) in nats per image (N,), with k importance samples.

        The k noise draws are made up front and decoded ``chunk`` at a time, so
        k = 5,000 fits in memory and the estimate does not depend on ``chunk``.
        """
        if spec is not None and spec.model.loss != "bernoulli":
            raise CapabilityError("log-likelihoods need a Bernoulli decoder "
                                  "(model.loss = 'bernoulli')")
        if not ((images == 0) | (images == 1)).all():
            raise CapabilityError("the Bernoulli likelihood is defined for binary images only: "
                                  "set data.binarize (static, dynamic or threshold)")
        out = []
        for xi in images:
            mu, logvar = model.posterior(xi.unsqueeze(0))
            std = torch.exp(0.5 * logvar)
            all_eps = torch.randn(k, mu.shape[1], generator=generator, device=images.device)
            log_w = []
            for start in range(0, k, chunk):  # the decoder output (chunk x pixels) is big
                eps = all_eps[start : start + chunk]
                m = len(eps)
                z = mu + std * eps
                logits = model.decoder(z)
                log_px_z = -recon_loss(logits, xi.expand(m, *xi.shape), "bernoulli")
                log_pz = -0.5 * (z.pow(2) + LOG_2PI).sum(1)
                log_qz = -0.5 * (eps.pow(2) + LOG_2PI + logvar).sum(1)
                log_w.append(log_px_z + log_pz - log_qz)
            out.append(torch.logsumexp(torch.cat(log_w), 0) - math.log(k))
        return torch.stack(out)
