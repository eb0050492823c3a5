"""Vanilla autoencoder (Hinton & Salakhutdinov, 2006): minimise reconstruction loss.

x -> h = s(W x + b) -> x_hat = sigmoid(W' h + b'), trained on the summed
Bernoulli (or squared) error of x_hat against x. Sampling decodes codes drawn
from a Gaussian fitted to the training codes, since the model itself has no
prior.
"""

from __future__ import annotations

from zoo_ae.nets import AutoencoderFamily


class VanillaAE(AutoencoderFamily):
    """The MLP autoencoder trained on reconstruction alone (everything the base class does)."""
