"""Denoising autoencoder (Vincent et al., 2008): reconstruct x from a corrupted x~.

The loss compares the reconstruction of x~ with the *clean* x. Corruption is
applied only while training: additive Gaussian noise (clipped to [0, 1]),
masking noise (a fraction of pixels set to 0), or salt-and-pepper noise (a
fraction of pixels set to 0 or 1 with equal probability).
"""

from __future__ import annotations

import torch

from zoo.training.distributed import LOCAL, Draws
from zoo_ae.nets import AETrainer, AutoencoderFamily, recon_loss


def corrupt(x: torch.Tensor, model_spec, rng: torch.Generator, draws: Draws = LOCAL
            ) -> torch.Tensor:
    """x~ ~ q(x~ | x) as the spec says; x is left untouched.

    ``draws`` gives this process's rows of the global batch's noise
    (``zoo.training.distributed.Draws``).
    """
    kind = model_spec.corruption
    if kind == "gaussian":
        noise = draws.randn(x.shape, generator=rng, device=x.device)
        return (x + model_spec.noise_std * noise).clamp(0, 1)
    u = draws.rand(x.shape, generator=rng, device=x.device)
    if kind == "masking":
        return x * (u >= model_spec.mask_fraction)
    hit = u < model_spec.salt_pepper_fraction
    salt = draws.rand(x.shape, generator=rng, device=x.device) < 0.5
    return torch.where(hit, salt.to(x.dtype), x)


class DenoisingTrainer(AETrainer):
    """Reconstruct clean inputs from corrupted ones."""

    def objective(self, x, rng):
        """recon(decoder(encoder(x~)), x)."""
        noisy = corrupt(x, self.spec.model, rng, self.draws)
        _, logits = self.model(noisy)
        recon = recon_loss(logits, x, self.spec.model.loss).mean()
        return recon, {"recon": recon}


class DenoisingAE(AutoencoderFamily):
    """The MLP autoencoder trained to reconstruct clean inputs from corrupted ones (the
    codes, reconstructions and samples of the trained model see no noise)."""

    trainer_class = DenoisingTrainer
