"""k-sparse autoencoder (Makhzani & Frey, 2014): only each image's k largest code units."""

from torch import Tensor, nn

from zoo_ae.nets import AutoEncoder, AutoencoderFamily, mlp_autoencoder


class TopK(nn.Module):
    """Keep each row's k largest units (or the ``k`` given); zero the rest and their gradients."""

    def __init__(self, k: int, alpha: float) -> None:
        super().__init__()
        self.k, self.k_encode = k, round(alpha * k)

    def forward(self, h: Tensor, k: int | None = None) -> Tensor:
        kept = h.topk(min(k or self.k, h.shape[1]), 1).indices
        return h * h.new_zeros(h.shape).scatter(1, kept, 1.0)


class KSparseAE(AutoencoderFamily):
    """The MLP autoencoder, its linear code k-sparse (:class:`TopK`) in training and use."""

    def build(self, spec) -> AutoEncoder:
        return mlp_autoencoder(spec, TopK(spec.model.k, spec.model.alpha))

    def encode(self, model: AutoEncoder, images: Tensor) -> Tensor:
        """The paper's features: the alpha * k largest units of the linear code."""
        return model.encoder[-1](model.encoder[:-1](images), model.encoder[-1].k_encode)
