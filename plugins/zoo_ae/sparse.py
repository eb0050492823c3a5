"""Sparse autoencoder (Ng, 2011): reconstruction plus a sparsity penalty on the code.

KL penalty: with rho_hat_j the mean activation of sigmoid unit j over the
batch, add  beta * sum_j KL(rho || rho_hat_j), where
KL(rho || q) = rho log(rho / q) + (1 - rho) log((1 - rho) / (1 - q)).
L1 penalty: add  l1_weight * mean_i sum_j |h_ij|.
"""

from __future__ import annotations

import torch

from zoo_ae.nets import AETrainer, AutoencoderFamily, recon_loss


def kl_sparsity(codes: torch.Tensor, rho: float, eps: float = 1e-6) -> torch.Tensor:
    """sum_j KL(rho || rho_hat_j) for sigmoid codes (N, k)."""
    rho_hat = codes.float().mean(0).clamp(eps, 1 - eps)
    return (rho * torch.log(rho / rho_hat)
            + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()


class SparseTrainer(AETrainer):
    """Reconstruction + sparsity penalty."""

    def objective(self, x, rng):
        """recon + beta * KL(rho || rho_hat)  or  recon + l1_weight * |h|."""
        m = self.spec.model
        codes, logits = self.model(x)
        recon = recon_loss(logits, x, m.loss).mean()
        if m.penalty == "kl":
            penalty = m.beta * kl_sparsity(codes, m.rho)
        else:
            penalty = m.l1_weight * codes.float().abs().sum(1).mean()
        return recon + penalty, {"recon": recon, "sparsity": penalty}


class SparseAE(AutoencoderFamily):
    """The MLP autoencoder (sigmoid code for the KL penalty) with a sparsity penalty."""

    trainer_class = SparseTrainer
