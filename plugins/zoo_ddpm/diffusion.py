"""Gaussian diffusion: noise schedules, the forward process, the loss and the samplers.

Notation of Ho et al. (2020): beta_t for t = 1..T, alpha_t = 1 - beta_t,
abar_t = prod_{s<=t} alpha_s (abar_0 = 1). Index t - 1 of the tensors below
holds timestep t, and the network sees the 0-based index.

* Forward process, closed form: q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I).
* Posterior: q(x_{t-1} | x_t, x_0) = N(mu_t, beta~_t I) with
  mu_t = sqrt(abar_{t-1}) beta_t / (1 - abar_t) x_0
         + sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) x_t
  and beta~_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t.
* Objective: || target - net(x_t, t) ||^2 with t uniform, target eps
  ("simple" loss) or v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0 (Salimans & Ho, 2022).
* Samplers: ancestral DDPM (T steps, variance beta~_t) and DDIM (Song, Meng &
  Ermon, 2021) on any sub-sequence of timesteps, with
  sigma = eta * sqrt((1 - abar_prev) / (1 - abar_t) * (1 - abar_t / abar_prev)).
  With every timestep and eta = 1, DDIM is exactly the ancestral sampler.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from zoo.training.distributed import LOCAL, Draws


def betas_for(schedule: str, steps: int, beta_start: float = 1e-4,
              beta_end: float = 0.02) -> torch.Tensor:
    """beta_1..beta_T in float64: linear (Ho et al.) or cosine (Nichol & Dhariwal, 2021)."""
    if schedule == "linear":  # the paper's values are for T = 1000; rescale for other T
        scale = 1000 / steps  # (capped like the cosine schedule: a short T would pass 1)
        return torch.linspace(beta_start * scale, beta_end * scale, steps,
                              dtype=torch.float64).clamp(max=0.999)
    if schedule == "cosine":
        s = 0.008
        x = torch.linspace(0, steps, steps + 1, dtype=torch.float64)
        f = torch.cos((x / steps + s) / (1 + s) * math.pi / 2) ** 2
        abar = f / f[0]
        return (1 - abar[1:] / abar[:-1]).clamp(max=0.999)
    raise ValueError(f"unknown schedule {schedule!r}")


class Diffusion:
    """The fixed quantities of one schedule, as float32 tensors indexed by t - 1."""

    def __init__(self, betas: torch.Tensor, prediction: str = "eps") -> None:
        betas = betas.double()
        alphas = 1 - betas
        abar = torch.cumprod(alphas, 0)
        abar_prev = torch.cat([abar.new_ones(1), abar[:-1]])
        self.steps = len(betas)
        self.prediction = prediction
        self.betas, self.alphas = betas.float(), alphas.float()
        self.abar, self.abar_prev = abar.float(), abar_prev.float()
        self.posterior_var = (betas * (1 - abar_prev) / (1 - abar)).float()
        self.posterior_c0 = (abar_prev.sqrt() * betas / (1 - abar)).float()
        self.posterior_ct = (alphas.sqrt() * (1 - abar_prev) / (1 - abar)).float()

    def to(self, device: torch.device | str) -> Diffusion:
        """Move the tables to ``device``."""
        for name, value in vars(self).items():
            if isinstance(value, torch.Tensor):
                setattr(self, name, value.to(device))
        return self

    @staticmethod
    def at(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """table[index] shaped (N, 1, 1, 1) to broadcast over images."""
        return table[index].view(-1, 1, 1, 1)

    # ----------------------------------------------------------------- forward process

    def q_sample(self, x0: torch.Tensor, index: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, for 0-based step indices."""
        abar = self.at(self.abar, index)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise

    def q_posterior(self, x0: torch.Tensor, xt: torch.Tensor, index: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of q(x_{t-1} | x_t, x_0)."""
        mean = self.at(self.posterior_c0, index) * x0 + self.at(self.posterior_ct, index) * xt
        return mean, self.at(self.posterior_var, index)

    # ----------------------------------------------------------------- the network's output

    def target(self, x0: torch.Tensor, noise: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """What the network learns to predict: eps, or v."""
        if self.prediction == "eps":
            return noise
        abar = self.at(self.abar, index)
        return abar.sqrt() * noise - (1 - abar).sqrt() * x0

    def split(self, output: torch.Tensor, xt: torch.Tensor, index: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_0 estimate, eps estimate) from the network's output at x_t."""
        abar = self.at(self.abar, index)
        a, s = abar.sqrt(), (1 - abar).sqrt()
        # eps: x_t = a x_0 + s eps; v = a eps - s x_0, so x_0 = a x_t - s v
        x0 = (xt - s * output) / a if self.prediction == "eps" else a * xt - s * output
        x0 = x0.clamp(-1, 1)  # images live in [-1, 1]
        return x0, (xt - a * x0) / s  # eps consistent with the clipped x_0

    def loss(self, net: Callable, x0: torch.Tensor, generator: torch.Generator,
             draws: Draws = LOCAL) -> torch.Tensor:
        """The simple objective: mean squared error of the target at uniform t.

        ``draws`` gives this process's rows of the global batch's t and noise.
        """
        index = draws.randint(self.steps, (len(x0),), generator=generator, device=x0.device)
        noise = draws.randn(x0.shape, generator=generator, device=x0.device)
        output = net(self.q_sample(x0, index, noise), index)
        return (output.float() - self.target(x0, noise, index)).square().mean()

    # ----------------------------------------------------------------- samplers

    def timesteps(self, steps: int) -> list[int]:
        """``steps`` 0-based indices from T - 1 down to 0, evenly spaced ("trailing" spacing)."""
        if steps >= self.steps:
            return list(range(self.steps - 1, -1, -1))
        return sorted({round(self.steps - 1 - i * self.steps / steps) for i in range(steps)},
                      reverse=True)

    def ddim_step(self, output: torch.Tensor, xt: torch.Tensor, index: int, prev: int, eta: float,
                  noise: Callable[[], torch.Tensor] | None) -> torch.Tensor:
        """One DDIM update from step ``index`` to ``prev`` (-1: the data, abar = 1)."""
        batch = torch.full((len(xt),), index, device=xt.device)
        x0, eps = self.split(output.float(), xt, batch)
        abar_t = float(self.abar[index])
        abar_prev = float(self.abar[prev]) if prev >= 0 else 1.0
        sigma = eta * math.sqrt((1 - abar_prev) / (1 - abar_t) * (1 - abar_t / abar_prev))
        x = math.sqrt(abar_prev) * x0 + math.sqrt(max(1 - abar_prev - sigma**2, 0.0)) * eps
        if sigma > 0 and noise is not None:
            x = x + sigma * noise()
        return x

    def sample(
        self,
        net: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        x: torch.Tensor,
        steps: int | None = None,
        eta: float = 0.0,
        noise: Callable[[], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Denoise x_T = ``x`` to x_0 in [-1, 1].

        ``steps=None`` (or T) with ``eta=1`` is ancestral DDPM; fewer steps and
        ``eta=0`` is deterministic DDIM. ``noise()`` draws the fresh noise each
        stochastic step needs.
        """
        order = self.timesteps(steps or self.steps)
        for index, prev in zip(order, [*order[1:], -1], strict=True):
            t = torch.full((len(x),), index, device=x.device)
            x = self.ddim_step(net(x, t), x, index, prev, eta, noise)
        return x


def schedule_of(spec_model: object) -> Diffusion:
    """The ``Diffusion`` a DDPM model spec describes."""
    return Diffusion(
        betas_for(spec_model.schedule, spec_model.timesteps, spec_model.beta_start,
                  spec_model.beta_end),
        spec_model.prediction,
    )


def psnr(a: torch.Tensor, b: torch.Tensor, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB of images in [0, peak]."""
    mse = float((a.float() - b.float()).square().mean())
    return 10 * math.log10(peak**2 / max(mse, 1e-12))
