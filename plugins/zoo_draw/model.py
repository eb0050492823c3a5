"""DRAW (Gregor et al., 2015): a recurrent VAE that builds an image on a canvas over T steps.

For t = 1 .. T, with sigma the logistic sigmoid (the paper's eqs. 3-8):

    x_hat_t = x - sigma(c_{t-1})
    r_t     = read(x, x_hat_t, h_dec_{t-1})
    h_enc_t = LSTM_enc(h_enc_{t-1}, [r_t, h_dec_{t-1}])
    z_t     ~ q(z_t | h_enc_t) = N(mu_t, diag(sigma_t^2)),  (mu_t, log sigma_t) = W(h_enc_t)
    h_dec_t = LSTM_dec(h_dec_{t-1}, z_t)
    c_t     = c_{t-1} + write(h_dec_t)

c_0, h_enc_0 and h_dec_0 are learned biases (c_0 starts at the training images' mean
log-odds; the attention layers start on a centred grid, ``attention.centred_bias``).
p(x | c_T) = Bernoulli(sigma(c_T)). The loss (eqs. 9-12) is

    L = L^x + L^z,   L^x = -log p(x | c_T),
    L^z = sum_t KL(q(z_t | h_enc_t) || N(0, I)) = sum_t 1/2 sum_j (mu^2 + sigma^2 - 1) - log sigma,

trained by reparameterisation, z_t = mu_t + sigma_t eps_t. With attention
(``attention.py``) read gives two N_r x N_r glimpses per channel (of x and x_hat) and
write adds a linear layer's N_w x N_w patch through its own filterbanks; without it,
read is [x, x_hat] and write a linear layer's whole image.

Sampling runs the decoder alone on z_t ~ N(0, I); images are the Bernoulli means
sigma(c_T). log p(x) is estimated by importance sampling over the latent sequence
(IWAE, Burda et al., 2016) with z_t ~ q:

    log p(x) ~ logsumexp_i [log p(x | c_T^i) + sum_t log N(z_t^i; 0, I) - log q(z_t^i | ...)]
               - log k.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from zoo import Family
from zoo.core.errors import CapabilityError
from zoo.data import num_channels
from zoo.training.trainer import Trainer
from zoo_draw import DRAWOptions
from zoo_draw.attention import centred_bias, filterbanks, read_glimpse, write_patch

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

LOG_2PI = math.log(2 * math.pi)

State = tuple[torch.Tensor, torch.Tensor]  # an LSTM's (h, cell)


class DRAWNet(nn.Module):
    """The encoder and decoder LSTMs, q's linear layer, read/write and the learned
    initial canvas and states."""

    def __init__(self, spec) -> None:
        super().__init__()
        m = spec.model
        c, s = num_channels(spec.data), spec.data.image_size
        self.shape, self.steps, self.z_size = (c, s, s), m.steps, m.z_size
        self.attention, self.read_size, self.write_size = m.attention, m.read_size, m.write_size
        read_dim = 2 * c * (m.read_size ** 2 if m.attention else s * s)
        write_dim = c * (m.write_size ** 2 if m.attention else s * s)
        self.encoder = nn.LSTMCell(read_dim + m.dec_hidden, m.enc_hidden)
        self.decoder = nn.LSTMCell(m.z_size, m.dec_hidden)
        self.posterior = nn.Linear(m.enc_hidden, 2 * m.z_size)  # (mu, log sigma)
        self.write_layer = nn.Linear(m.dec_hidden, write_dim)
        if m.attention:  # (g~X, g~Y, log sigma^2, log delta~, log gamma)
            self.read_attention = nn.Linear(m.dec_hidden, 5)
            self.write_attention = nn.Linear(m.dec_hidden, 5)
            with torch.no_grad():
                read, write = centred_bias(s, m.read_size), centred_bias(s, m.write_size, True)
                self.read_attention.bias.copy_(torch.tensor(read))
                self.write_attention.bias.copy_(torch.tensor(write))
        self.canvas0 = nn.Parameter(torch.zeros(c, s, s))
        self.h_enc0 = nn.Parameter(torch.zeros(m.enc_hidden))
        self.h_dec0 = nn.Parameter(torch.zeros(m.dec_hidden))

    def read(self, x: torch.Tensor, x_hat: torch.Tensor, h_dec: torch.Tensor) -> torch.Tensor:
        """r_t (B, read_dim): two glimpses with one filterbank, or all of [x, x_hat]."""
        if not self.attention:
            return torch.cat([x.flatten(1), x_hat.flatten(1)], 1)
        fx, fy, gamma = filterbanks(self.read_attention(h_dec), self.shape[-1], self.read_size)
        return torch.cat([read_glimpse(x, fx, fy, gamma).flatten(1),
                          read_glimpse(x_hat, fx, fy, gamma).flatten(1)], 1)

    def write(self, h_dec: torch.Tensor) -> torch.Tensor:
        """What step t adds to the canvas (B, C, A, A)."""
        w = self.write_layer(h_dec)
        if not self.attention:
            return w.view(-1, *self.shape)
        fx, fy, gamma = filterbanks(self.write_attention(h_dec), self.shape[-1], self.write_size)
        return write_patch(w.view(-1, self.shape[0], self.write_size, self.write_size).float(),
                           fx, fy, gamma)

    def initial(self, n: int) -> tuple[torch.Tensor, State, State]:
        """(c_0, encoder state, decoder state) for ``n`` images: the learned biases, zero
        LSTM cells."""
        enc = (self.h_enc0.expand(n, -1), self.h_enc0.new_zeros(n, len(self.h_enc0)))
        dec = (self.h_dec0.expand(n, -1), self.h_dec0.new_zeros(n, len(self.h_dec0)))
        return self.canvas0.expand(n, *self.shape), enc, dec

    def forward(self, x: torch.Tensor, eps: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode and decode ``x`` with noise ``eps`` (B, T, z): (c_T logits (B, C, A, A),
        mu, log sigma and z, each (B, T, z))."""
        canvas, enc, dec = self.initial(len(x))
        mus, log_sigmas, zs = [], [], []
        for t in range(self.steps):
            x_hat = x - torch.sigmoid(canvas)
            r = self.read(x, x_hat, dec[0])
            enc = self.encoder(torch.cat([r, dec[0]], 1), enc)
            mu, log_sigma = self.posterior(enc[0]).float().chunk(2, 1)
            z = mu + torch.exp(log_sigma) * eps[:, t]
            dec = self.decoder(z, dec)
            canvas = canvas + self.write(dec[0])
            mus.append(mu), log_sigmas.append(log_sigma), zs.append(z)
        stack = lambda v: torch.stack(v, 1)  # noqa: E731
        return canvas.float(), stack(mus), stack(log_sigmas), stack(zs)

    def generate(self, z: torch.Tensor) -> list[torch.Tensor]:
        """The decoder alone on latents ``z`` (B, T, z): the canvases c_1 .. c_T (logits)."""
        canvas, _, dec = self.initial(len(z))
        canvases = []
        for t in range(self.steps):
            dec = self.decoder(z[:, t], dec)
            canvas = canvas + self.write(dec[0])
            canvases.append(canvas.float())
        return canvases


def gaussian_kl(mu: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, I)) per step, summed over z: (B, T, z) -> (B, T)."""
    return (0.5 * (mu ** 2 + torch.exp(2 * log_sigma) - 1) - log_sigma).sum(-1)


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log Bernoulli(x; sigmoid(logits)) per image, summed over pixels (N,)."""
    return F.binary_cross_entropy_with_logits(logits.float(), x, reduction="none").flatten(1).sum(1)


def draw_loss(model: nn.Module, x: torch.Tensor, eps: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """(L^x, L^z) per image (N,), with reparameterisation noise ``eps`` (N, T, z)."""
    logits, mu, log_sigma, _ = model(x, eps)
    return bernoulli_nll(logits, x), gaussian_kl(mu, log_sigma).sum(1)


class DRAWTrainer(Trainer):
    """Adam on the mean of L^x + L^z, the gradient norm clipped."""

    def __init__(self, spec, model: DRAWNet, accelerator) -> None:
        super().__init__(spec, model, accelerator)
        t = spec.train
        self.opt = self.adam("model", self.model.parameters(), t.lr, (t.beta1, 0.999))

    def start(self, images: torch.Tensor) -> None:
        """Start the canvas c_0 at the training images' mean log-odds."""
        with torch.no_grad():
            mean = images.float().mean(0).clamp(1e-3, 1 - 1e-3)
            self.raw_modules()["model"].canvas0.copy_(torch.logit(mean))

    def step(self, images, labels, rng) -> dict[str, torch.Tensor]:
        """One Adam step on a batch; returns the loss and its two parts (nats per image)."""
        m = self.spec.model
        eps = self.draws.randn(len(images), m.steps, m.z_size, generator=rng,
                               device=images.device)
        lx, lz = draw_loss(self.model, images, eps)
        loss = (lx + lz).mean()
        self.update(self.opt, loss, self.spec.train.grad_clip)
        return {"loss": loss.detach(), "lx": lx.mean().detach(), "lz": lz.mean().detach()}


# --------------------------------------------------------------------------- the family


def to_sequence(model: DRAWNet, codes: torch.Tensor) -> torch.Tensor:
    """Flat codes (N, T * z) as the latent sequence (N, T, z)."""
    if codes.dim() != 2 or codes.shape[1] != model.steps * model.z_size:
        raise ValueError(f"DRAW codes must be (N, {model.steps * model.z_size}) = (N, T * z), "
                         f"got {tuple(codes.shape)}")
    return codes.view(len(codes), model.steps, model.z_size)


class DRAW(Family):
    """The ``draw`` family: samples from the prior through the decoder alone; every step's
    canvas on request (``return_steps``); IWAE log-likelihoods over the latent sequence."""

    trainer_class = DRAWTrainer
    tiny: ClassVar[dict[str, Any]] = {"model.steps": 3, "model.enc_hidden": 16,
                                      "model.dec_hidden": 16, "model.z_size": 4}

    def build(self, spec) -> DRAWNet:
        """The DRAW network."""
        return DRAWNet(spec)

    def latent(self, model: DRAWNet, noise, spec) -> torch.Tensor:
        """All T steps' z_t ~ N(0, I) of each sample as one flat code (N, T * z)."""
        return noise.randn(model.steps * model.z_size)

    def generate(self, model: DRAWNet, codes: torch.Tensor, spec,
                 options: DRAWOptions) -> torch.Tensor:
        """The Bernoulli means sigmoid(c_T) (N, C, A, A) of codes laid out as :meth:`latent`."""
        return torch.sigmoid(model.generate(to_sequence(model, codes))[-1])

    def sample(self, model: DRAWNet, noise, spec, options: DRAWOptions
               ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """sigmoid(c_T); with ``options.return_steps`` also [sigmoid(c_1), ..., sigmoid(c_T)]."""
        canvases = model.generate(to_sequence(model, self.latent(model, noise, spec)))
        if not options.return_steps:
            return torch.sigmoid(canvases[-1])
        steps = [torch.sigmoid(c) for c in canvases]
        return steps[-1], steps

    def features(self, model: DRAWNet, images: torch.Tensor, spec,
                 trained: Mapping[str, nn.Module]) -> torch.Tensor:
        """The encoder's posterior means over all steps, concatenated: (N, T * z_size).
        The decoder is fed the means (eps = 0), so the features are a function of the
        image alone."""
        eps = images.new_zeros(len(images), model.steps, model.z_size)
        return model(images, eps)[1].flatten(1).float()

    @torch.no_grad()
    def log_likelihood(self, model: DRAWNet, images: torch.Tensor, k: int = 1000, spec=None,
                       generator: torch.Generator | None = None, chunk: int = 1000
                       ) -> torch.Tensor:
        """IWAE estimate of log p(x) in nats per image (N,), with k latent sequences z ~ q.

        Each image's k x T x z noise is drawn up front and run ``chunk`` sequences at a
        time, so the estimate does not depend on ``chunk``.
        """
        if not ((images == 0) | (images == 1)).all():
            raise CapabilityError("the Bernoulli likelihood is defined for binary images only: "
                                  "set data.binarize (static, dynamic or threshold)")
        out = []
        for xi in images:
            all_eps = torch.randn(k, model.steps, model.z_size, generator=generator,
                                  device=images.device)
            log_w = []
            for start in range(0, k, chunk):
                eps = all_eps[start : start + chunk]
                x = xi.expand(len(eps), *xi.shape)
                logits, _, log_sigma, z = model(x, eps)
                log_pz = -0.5 * (z ** 2 + LOG_2PI).sum((1, 2))
                log_qz = (-0.5 * (eps ** 2 + LOG_2PI) - log_sigma).sum((1, 2))
                log_w.append(-bernoulli_nll(logits, x) + log_pz - log_qz)
            out.append(torch.logsumexp(torch.cat(log_w), 0) - math.log(k))
        return torch.stack(out)

    def card_images(self, model: DRAWNet, spec, folder: Path) -> dict[str, str]:
        """A canvas strip for the model card: rows are samples, columns steps 1 .. T."""
        from zoo.sampling.sample import PerSampleNoise, grid, save_png, stage_tiles

        with torch.inference_mode():
            noise = PerSampleNoise(spec.sample.seed, range(8), next(model.parameters()).device)
            _, steps = self.sample(model, noise, spec, DRAWOptions(return_steps=True))
        save_png(grid(stage_tiles(steps), nrow=len(steps)), folder / "steps.png")
        return {"canvas strip, steps 1 to T": "steps.png"}
