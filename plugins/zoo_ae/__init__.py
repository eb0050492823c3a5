"""The autoencoder families: specs and registration. No torch here.

Each family is one short class in its own module (``zoo_ae.<module>:<Class>``),
a subclass of ``zoo_ae.nets.AutoencoderFamily`` (the shared build, codes,
reconstructions and sampler); a new autoencoder is that class, its spec here
and one row of :data:`FAMILIES`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from zoo import FamilyRecord, hookimpl
from zoo.core.spec import DataSpec, ModelSpec, Spec, TrainSpec


def _digits28() -> DataSpec:
    return DataSpec(source="mnist5k", image_size=28)


# --------------------------------------------------------------------------- shared sections


class AEModel(ModelSpec):
    """An MLP autoencoder: image -> hidden layers -> code -> mirrored layers -> image."""

    hidden: list[int] = Field(
        default_factory=list,
        description="Hidden widths between image and code (the decoder mirrors them); "
        "empty: one bottleneck layer.",
    )
    code_dim: int = Field(64, ge=1, le=4096, description="Size of the code h.")
    code_activation: Literal["sigmoid", "relu", "linear"] = Field(
        "sigmoid", description="Non-linearity of the code layer."
    )
    loss: Literal["bernoulli", "mse"] = Field(
        "bernoulli",
        description="Reconstruction loss per image, summed over pixels: bernoulli "
        "(cross-entropy with logits) or mse (squared error of the sigmoid output).",
    )

    @model_validator(mode="after")
    def _positive_widths(self) -> AEModel:
        if any(w < 1 for w in self.hidden):
            raise ValueError(f"model.hidden = {self.hidden}: widths must be >= 1")
        return self


class AETrain(TrainSpec):
    """Adam on the autoencoder's objective."""

    lr: float = Field(1e-3, gt=0, le=1, description="Adam learning rate.")
    weight_decay: float = Field(0.0, ge=0, description="Adam (L2) weight decay.")
    batch_size: int = Field(64, ge=1, le=65536, description="Images per optimisation step.")
    epochs: int = Field(10, ge=1, description="Passes over the training data.")


class AESpec(Spec):
    """Base of the autoencoder specs: 28x28 digits by default."""

    model: AEModel = Field(default_factory=AEModel)
    data: DataSpec = Field(default_factory=_digits28)
    train: AETrain = Field(default_factory=AETrain)


# --------------------------------------------------------------------------- families


def _shallow_train() -> AETrain:
    """One-layer autoencoders learn much faster with a larger step (3e-3 vs 1e-3)."""
    return AETrain(lr=3e-3)


class VanillaSpec(AESpec):
    """Vanilla autoencoder spec."""

    family: Literal["ae"] = "ae"
    train: AETrain = Field(default_factory=_shallow_train)


class SparseModel(AEModel):
    """A sparsity penalty on the code."""

    penalty: Literal["kl", "l1"] = Field(
        "kl", description="kl: KL(rho || mean activation) per unit (sigmoid code); l1: |h|."
    )
    rho: float = Field(0.05, gt=0, lt=1, description="Target mean activation (kl).")
    beta: float = Field(3.0, ge=0, description="Weight of the KL penalty.")
    l1_weight: float = Field(1e-3, ge=0, description="Weight of the L1 penalty.")

    @model_validator(mode="after")
    def _kl_needs_sigmoid(self) -> SparseModel:
        if self.penalty == "kl" and self.code_activation != "sigmoid":
            raise ValueError("model.penalty = 'kl' needs model.code_activation = 'sigmoid'")
        return self


class SparseSpec(AESpec):
    """Sparse autoencoder spec."""

    family: Literal["sparse-ae"] = "sparse-ae"
    model: SparseModel = Field(default_factory=lambda: SparseModel(code_dim=196))
    train: AETrain = Field(default_factory=_shallow_train)


class DenoisingModel(AEModel):
    """How inputs are corrupted during training."""

    corruption: Literal["gaussian", "masking", "salt_pepper"] = Field(
        "masking", description="Corruption applied to training inputs only."
    )
    noise_std: float = Field(0.5, ge=0, description="Std of additive Gaussian noise.")
    mask_fraction: float = Field(0.3, ge=0, le=1, description="Fraction of pixels set to 0.")
    salt_pepper_fraction: float = Field(
        0.3, ge=0, le=1, description="Fraction of pixels set to 0 or 1 at random."
    )


class DenoisingSpec(AESpec):
    """Denoising autoencoder spec."""

    family: Literal["denoising-ae"] = "denoising-ae"
    model: DenoisingModel = Field(default_factory=DenoisingModel)
    train: AETrain = Field(default_factory=_shallow_train)


class ContractiveModel(AEModel):
    """The contractive penalty's weight."""

    penalty_weight: float = Field(
        0.1, ge=0, description="lambda in lambda * ||dh/dx||_F^2 (per image)."
    )


class ContractiveSpec(AESpec):
    """Contractive autoencoder spec."""

    family: Literal["contractive-ae"] = "contractive-ae"
    model: ContractiveModel = Field(default_factory=ContractiveModel)
    train: AETrain = Field(default_factory=_shallow_train)


class ConvModel(ModelSpec):
    """Strided-conv encoder, transposed-conv decoder, optional dense bottleneck."""

    channels: list[int] = Field(
        default_factory=lambda: [32, 64],
        description="Encoder widths; each conv (4x4, stride 2) halves the image size.",
    )
    code_dim: int | None = Field(
        32, ge=1, le=65536, description="Dense bottleneck size; unset: the last conv map."
    )
    loss: Literal["bernoulli", "mse"] = Field("bernoulli", description="Reconstruction loss.")


class ConvSpec(AESpec):
    """Convolutional autoencoder spec."""

    family: Literal["conv-ae"] = "conv-ae"
    model: ConvModel = Field(default_factory=ConvModel)  # type: ignore[assignment]

    @model_validator(mode="after")
    def _divisible(self) -> ConvSpec:
        factor = 2 ** len(self.model.channels)
        if not self.model.channels or self.data.image_size % factor:
            raise ValueError(
                f"data.image_size = {self.data.image_size} must be divisible by {factor} "
                f"(2 ^ len(model.channels)); 28, 32 and 64 work with two layers"
            )
        return self


class VAEModel(ModelSpec):
    """Gaussian encoder q(z|x), standard normal prior, MLP decoder p(x|z)."""

    hidden: list[int] = Field(default_factory=lambda: [512, 256],
                              description="Encoder widths (the decoder mirrors them).")
    code_dim: int = Field(16, ge=1, le=4096, description="Latent size.")
    loss: Literal["bernoulli", "mse"] = Field(
        "bernoulli", description="bernoulli: p(x|z) Bernoulli, log-likelihoods in nats."
    )
    beta: float = Field(1.0, ge=0, description="Weight of KL(q(z|x) || p(z)) (beta-VAE).")


class VAESpec(AESpec):
    """Variational autoencoder spec."""

    family: Literal["vae"] = "vae"
    model: VAEModel = Field(default_factory=VAEModel)  # type: ignore[assignment]


class AAEModel(AEModel):
    """A deterministic encoder whose aggregated posterior is matched to a prior."""

    hidden: list[int] = Field(default_factory=lambda: [512, 256],
                              description="Encoder widths (the decoder mirrors them).")
    code_dim: int = Field(8, ge=1, le=4096, description="Latent size.")
    code_activation: Literal["sigmoid", "relu", "linear"] = Field(
        "linear", description="Non-linearity of the code layer (linear to match the prior)."
    )
    prior: Literal["gaussian", "mixture10"] = Field(
        "gaussian", description="gaussian N(0, I), or a 10-component Gaussian mixture."
    )
    disc_hidden: list[int] = Field(default_factory=lambda: [256, 256],
                                   description="Hidden widths of the code discriminator.")


class AAETrain(AETrain):
    """Learning rates of the three phases."""

    adv_lr: float = Field(5e-4, gt=0, le=1, description="Adam lr of the D and G phases.")


class AAESpec(AESpec):
    """Adversarial autoencoder spec."""

    family: Literal["aae"] = "aae"
    model: AAEModel = Field(default_factory=AAEModel)
    train: AAETrain = Field(default_factory=AAETrain)


class KSparseModel(AEModel):
    """Each image keeps its k largest code units; its features (encode) alpha * k."""

    k: int = Field(25, ge=1, description="Code units kept per image (<= code_dim).")
    alpha: float = Field(3.0, ge=1, description="encode() keeps alpha * k units (paper: 3).")


class KSparseSpec(AESpec):
    """k-sparse autoencoder spec: linear code of 1000 units, k = 25 (the paper's MNIST)."""

    family: Literal["k-sparse-ae"] = "k-sparse-ae"
    model: KSparseModel = Field(
        default_factory=lambda: KSparseModel(code_dim=1000, code_activation="linear"))


#: (name, summary, spec, implementation class, paper) of each family.
FAMILIES = [
    ("ae", "vanilla autoencoder with one bottleneck layer", VanillaSpec,
     "zoo_ae.vanilla:VanillaAE", "Hinton & Salakhutdinov, Reducing the Dimensionality of Data "
     "with Neural Networks, Science 2006"),
    ("sparse-ae", "sparse autoencoder: KL(rho || rho_hat) or L1 on the code", SparseSpec,
     "zoo_ae.sparse:SparseAE", "Ng, Sparse Autoencoder, CS294A lecture notes, 2011"),
    ("denoising-ae", "denoising autoencoder: reconstruct clean inputs from corrupted ones",
     DenoisingSpec, "zoo_ae.denoising:DenoisingAE",
     "Vincent et al., Extracting and Composing Robust Features with Denoising Autoencoders, "
     "ICML 2008"),
    ("contractive-ae", "contractive autoencoder: + lambda ||dh/dx||_F^2", ContractiveSpec,
     "zoo_ae.contractive:ContractiveAE", "Rifai et al., Contractive Auto-Encoders, ICML 2011"),
    ("conv-ae", "convolutional autoencoder: strided convs, transposed-conv decoder", ConvSpec,
     "zoo_ae.conv:ConvAE", "Masci et al., Stacked Convolutional Auto-Encoders, ICANN 2011"),
    ("vae", "variational autoencoder: ELBO with reparameterisation, IWAE likelihoods", VAESpec,
     "zoo_ae.vae:VAE", "Kingma & Welling, Auto-Encoding Variational Bayes, ICLR 2014; "
     "Burda et al., Importance Weighted Autoencoders, ICLR 2016"),
    ("aae", "adversarial autoencoder: a code discriminator matches the posterior to a prior",
     AAESpec, "zoo_ae.aae:AAE", "Makhzani et al., Adversarial Autoencoders, ICLR 2016 workshop"),
    ("k-sparse-ae", "k-sparse autoencoder: only the k largest code units per image", KSparseSpec,
     "zoo_ae.ksparse:KSparseAE", "Makhzani & Frey, k-Sparse Autoencoders, ICLR 2014"),
]


@hookimpl
def register_families(register) -> None:
    """Register the autoencoder families."""
    for name, summary, spec, impl, paper in FAMILIES:
        register(FamilyRecord(name=name, summary=summary, paper=paper, spec=spec, impl=impl))
