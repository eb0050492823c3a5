"""The GAN objective shared by every adversarial family (Goodfellow et al., 2014).

D maximises log D(real) + log(1 - D(fake)); G uses the non-saturating loss
-log D(fake). Both take D's *logits* and use the numerically stable
``binary_cross_entropy_with_logits`` in fp32.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn


def discriminator_loss(logit_real: torch.Tensor, logit_fake: torch.Tensor) -> torch.Tensor:
    """-[log D(real) + log(1 - D(fake))], each term averaged over its batch."""
    real, fake = logit_real.float(), logit_fake.float()
    return (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
            + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))


def generator_loss(logit_fake: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss -log D(fake), averaged over the batch."""
    fake = logit_fake.float()
    return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))


@torch.no_grad()
def reestimate_batchnorm(module: nn.Module, inputs: Callable[[], tuple], batches: int) -> None:
    """Recompute every batch-norm layer's statistics as an exact average over ``batches`` calls.

    Running averages lag behind a generator that changed every step; after
    this, eval-mode sampling matches what the generator produced in training
    and each image depends only on its own noise. ``inputs()`` gives the
    positional arguments of one forward call.
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or not batches:
        return
    was_training = module.training
    momenta = [m.momentum for m in norms]
    module.train()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    for _ in range(batches):
        module(*inputs())
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    module.train(was_training)


@contextmanager
def frozen(module: nn.Module) -> Iterator[nn.Module]:
    """Within the block, ``module``'s weights get no gradients (input gradients still flow)."""
    module.requires_grad_(False)
    try:
        yield module
    finally:
        module.requires_grad_(True)
