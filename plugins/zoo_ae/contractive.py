"""Contractive autoencoder (Rifai et al., 2011): penalise the encoder's Jacobian.

Objective: recon + lambda * ||J_h(x)||_F^2 with J_h = dh/dx, per image.
For one sigmoid code layer h = sigmoid(W x + b) the norm has a closed form,
||J||_F^2 = sum_j (h_j (1 - h_j))^2 sum_i W_ji^2; any other encoder uses
exact autograd (one batched vector-Jacobian product per code unit).
"""

from __future__ import annotations

import torch
from torch import nn

from zoo_ae.nets import AETrainer, AutoencoderFamily, recon_loss


def closed_form_applies(model: nn.Module) -> bool:
    """True for Flatten -> (Linear -> Sigmoid): one sigmoid code layer."""
    layers = list(model.encoder[1])
    return len(layers) == 2 and isinstance(layers[0], nn.Linear) and isinstance(
        layers[1], nn.Sigmoid)


def jacobian_penalty(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(||dh/dx||_F^2 per image (N,), codes h (N, k)), differentiable w.r.t. the weights."""
    if closed_form_applies(model):
        h = model.encoder(x)
        weight = model.encoder[1][0].weight  # (k, D)
        return ((h * (1 - h)) ** 2).float() @ (weight.float() ** 2).sum(1), h
    x = x.detach().requires_grad_(True)
    h = model.encoder(x)
    k = h.shape[1]
    basis = torch.eye(k, device=h.device, dtype=h.dtype).unsqueeze(1).expand(k, *h.shape)
    (rows,) = torch.autograd.grad(h, x, basis, create_graph=True, is_grads_batched=True)
    return rows.float().pow(2).flatten(2).sum(2).sum(0), h  # rows: (k, N, ...)


class ContractiveTrainer(AETrainer):
    """Reconstruction + contractive penalty."""

    def objective(self, x, rng):
        """recon + lambda * ||J_h(x)||_F^2."""
        raw = self.raw_modules()["model"]
        penalty_per_image, _ = jacobian_penalty(raw, x)
        _, logits = self.model(x)
        recon = recon_loss(logits, x, self.spec.model.loss).mean()
        penalty = self.spec.model.penalty_weight * penalty_per_image.mean()
        return recon + penalty, {"recon": recon, "contractive": penalty}


class ContractiveAE(AutoencoderFamily):
    """The MLP autoencoder (one sigmoid code layer gives the closed form) with the
    contractive penalty."""

    trainer_class = ContractiveTrainer
