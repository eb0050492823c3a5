"""Convolutional autoencoder (Masci et al., 2011), with strided convolutions.

Encoder: 4x4 stride-2 convolutions with ReLU, each halving H and W, then an
optional dense bottleneck. Decoder: the mirror image with 4x4 stride-2
transposed convolutions; the last one outputs per-pixel logits.
"""

from __future__ import annotations

import itertools

from torch import nn

from zoo_ae.nets import AutoEncoder, AutoencoderFamily, conv_out, image_shape


class ConvAE(AutoencoderFamily):
    """A convolutional autoencoder trained on reconstruction alone."""

    def build(self, spec) -> AutoEncoder:
        """Conv encoder -> (dense code) -> transposed-conv decoder."""
        c, size, _ = image_shape(spec)
        widths = [c, *spec.model.channels]
        s = conv_out(size, len(spec.model.channels))
        flat = widths[-1] * s * s
        enc: list[nn.Module] = []
        for a, b in itertools.pairwise(widths):
            enc += [nn.Conv2d(a, b, 4, 2, 1), nn.ReLU()]
        enc.append(nn.Flatten())
        dec: list[nn.Module] = []
        code_dim = flat
        if spec.model.code_dim is not None:
            code_dim = spec.model.code_dim
            enc.append(nn.Linear(flat, code_dim))
            dec += [nn.Linear(code_dim, flat), nn.ReLU()]
        dec.append(nn.Unflatten(1, (widths[-1], s, s)))
        back = widths[::-1]
        for i, (a, b) in enumerate(itertools.pairwise(back)):
            dec.append(nn.ConvTranspose2d(a, b, 4, 2, 1))
            if i < len(back) - 2:
                dec.append(nn.ReLU())
        return AutoEncoder(nn.Sequential(*enc), nn.Sequential(*dec), code_dim)
