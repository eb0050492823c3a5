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
from zoo_ae.nets import AETrainer, image_shape, mlp, recon_loss

__all__ = ["build", "decode", "elbo_terms", "encode", "gaussian_kl", "generate", "latent",
           "log_likelihood", "reconstruct", "sample", "trainer"]

LOG_2PI = math.log(2 * math.pi)


class VAE(nn.Module):
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


def elbo_terms(model: VAE, x: torch.Tensor, eps: torch.Tensor, loss: str
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


@torch.no_grad()
def log_likelihood(model: VAE, x: torch.Tensor, k: int = 1000, spec=None,
                   generator: torch.Generator | None = None, chunk: int = 250) -> torch.Tensor:
    """IWAE estimate of log p(x) in nats per image (N,), with k importance samples.

    The k noise draws are made up front and decoded ``chunk`` at a time, so
    k = 5,000 fits in memory and the estimate does not depend on ``chunk``.
    """
    if spec is not None and spec.model.loss != "bernoulli":
        raise CapabilityError("log-likelihoods need a Bernoulli decoder (model.loss = 'bernoulli')")
    if not ((x == 0) | (x == 1)).all():
        raise CapabilityError("the Bernoulli likelihood is defined for binary images only: "
                              "set data.binarize (static, dynamic or threshold)")
    out = []
    for xi in x:
        mu, logvar = model.posterior(xi.unsqueeze(0))
        std = torch.exp(0.5 * logvar)
        all_eps = torch.randn(k, mu.shape[1], generator=generator, device=x.device)
        log_w = []
        for start in range(0, k, chunk):  # the decoder output (chunk x pixels) is what is big
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


def build(spec) -> VAE:
    """The VAE."""
    return VAE(spec)


def trainer(spec, model, accelerator) -> VAETrainer:
    """ELBO training."""
    return VAETrainer(spec, model, accelerator)


def encode(model: VAE, x: torch.Tensor) -> torch.Tensor:
    """Posterior means (N, k)."""
    return model.posterior(x)[0]


def decode(model: VAE, z: torch.Tensor) -> torch.Tensor:
    """Bernoulli means sigmoid(logits) in [0, 1]."""
    return torch.sigmoid(model.decoder(z))


def reconstruct(model: VAE, x: torch.Tensor) -> torch.Tensor:
    """Decode the posterior mean."""
    return decode(model, encode(model, x))


def latent(model: VAE, noise, spec) -> torch.Tensor:
    """Per-sample codes z ~ p(z) = N(0, I), (N, k)."""
    return noise.randn(model.code_dim)


def generate(model: VAE, z: torch.Tensor, spec) -> torch.Tensor:
    """Images E[x|z] in [0, 1] from codes (N, k)."""
    return decode(model, z)


def sample(model: VAE, noise, spec) -> torch.Tensor:
    """z ~ p(z) = N(0, I), images = E[x|z]."""
    return generate(model, latent(model, noise, spec), spec)
