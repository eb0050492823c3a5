"""The project's own feature network: a small digit classifier trained on mnist5k.

Standard FID needs Inception weights, which cannot be downloaded here. This
CNN is trained deterministically on the mnist5k *training* split (4,500
digits, small random shifts) and checked on the 500 held-out digits. Its
weights are cached as safetensors under ``$ZOO_HOME`` and rebuilt, bit for
bit, when absent. Its 128-d pooled features give a Fréchet distance; its
softmax gives class coverage and confidence.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from zoo.core.features import FeatureExtractor
from zoo.core.home import zoo_home

VERSION = 1
INPUT_SIZE = 28
EPOCHS = 6
BATCH = 64
SEED = 1234
#: Seconds per training step on idle CPU cores (measured: 0.094 s of one core), for the
#: estimate said before training.
SECONDS_PER_STEP = 0.1


class DigitClassifier(nn.Module):
    """28x28 greyscale digit -> 128-d features -> 10 logits."""

    def __init__(self) -> None:
        super().__init__()

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                    nn.ReLU(inplace=True)]

        self.features = nn.Sequential(
            *block(1, 32), *block(32, 32), nn.MaxPool2d(2),   # 14x14
            *block(32, 64), *block(64, 64), nn.MaxPool2d(2),  # 7x7
            *block(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten(),  # 128
        )
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(128, 10))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (features N×128, logits N×10) for images in [0, 1]."""
        f = self.features((x - 0.1307) / 0.3081)
        return f, self.head(f)


def to_classifier_input(images: torch.Tensor) -> torch.Tensor:
    """Any ``N×C×H×W`` images in [0, 1] -> ``N×1×28×28`` greyscale."""
    from zoo.data import conform

    return conform(images, 1, INPUT_SIZE).clamp(0, 1)


def cache_path() -> Path:
    """Where the classifier's weights are cached."""
    return zoo_home() / "cache" / f"digit-classifier-v{VERSION}.safetensors"


def _mnist(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    from zoo.core.spec import DataSpec
    from zoo.data import load_images

    return load_images(DataSpec(source="mnist5k", image_size=INPUT_SIZE, channels=1), split)


def _shift(x: torch.Tensor, gen: torch.Generator, pixels: int = 2) -> torch.Tensor:
    padded = F.pad(x, (pixels,) * 4)
    dy, dx = torch.randint(0, 2 * pixels + 1, (2,), generator=gen).tolist()
    return padded[..., dy : dy + INPUT_SIZE, dx : dx + INPUT_SIZE]


def train_classifier(verbose: bool = True) -> tuple[DigitClassifier, float]:
    """Train the classifier deterministically; return it and its held-out accuracy.

    ``verbose``: say on stderr what is happening and show a progress bar (plain
    lines when stderr is not a terminal).
    """
    from zoo.training.progress import Progress

    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    x, y = _mnist("train")
    net = DigitClassifier()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    per_epoch = len(x) // BATCH
    steps = EPOCHS * per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    if verbose:
        print(f"training the digit classifier once ({steps} steps, about "
              f"{round(steps * SECONDS_PER_STEP)} s on 2 CPU cores), cached in {cache_path()}",
              file=sys.stderr, flush=True)
    display = Progress(steps, 0, BATCH, enabled=verbose)
    net.train()
    for epoch in range(EPOCHS):
        order = torch.randperm(len(x), generator=gen)
        for i in range(per_epoch):
            idx = order[i * BATCH : (i + 1) * BATCH]
            _, logits = net(_shift(x[idx], gen))
            loss = F.cross_entropy(logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step = epoch * per_epoch + i + 1
            display.update(step, {"loss": loss.detach()}, force=step % 10 == 0 or step == steps)
    display.close()
    accuracy = test_accuracy(net)
    if verbose:
        print(f"trained digit classifier: held-out accuracy {accuracy:.4f}", file=sys.stderr)
    return net.eval(), accuracy


@torch.inference_mode()
def test_accuracy(net: DigitClassifier) -> float:
    """Accuracy on the 500 held-out mnist5k digits."""
    x, y = _mnist("test")
    _, logits = net.eval()(x)
    return float((logits.argmax(1) == y).float().mean())


def load_classifier() -> tuple[DigitClassifier, float]:
    """The cached classifier (trained and cached first if absent) and its test accuracy."""
    from safetensors.torch import load_file, save

    from zoo.artifact import atomic_write

    path = cache_path()
    net = DigitClassifier()
    if path.is_file():
        try:
            net.load_state_dict(load_file(str(path)), strict=True)
            return net.eval(), test_accuracy(net)
        except Exception:  # a corrupt cache entry is rebuilt, not trusted
            path.unlink(missing_ok=True)
    net, accuracy = train_classifier()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, save({k: v.contiguous() for k, v in net.state_dict().items()},
                            metadata={"accuracy": f"{accuracy:.4f}"}))
    return net, accuracy


@torch.inference_mode()
def embed(net: DigitClassifier, images: torch.Tensor, batch: int = 500
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (N×128, float64) and class probabilities (N×10) of images in [0, 1]."""
    feats, probs = [], []
    for i in range(0, len(images), batch):
        f, logits = net(to_classifier_input(images[i : i + batch].float()))
        feats.append(f.double())
        probs.append(logits.softmax(1))
    return torch.cat(feats), torch.cat(probs)


class DigitFeatures(FeatureExtractor):
    """The classifier's 128-d pooled features as a feature network (``--features digits``)."""

    dims = 128
    batch_size = 500
    convention = ("genzoo digit classifier v1 (trained on mnist5k's training split), 128-d "
                  "pooled features; uint8 input to luma grey, antialiased bilinear resize to "
                  "28x28, MNIST mean/std")

    def __init__(self, net: DigitClassifier, identity: str) -> None:
        self.net, self.identity = net.eval(), identity

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 N×3×H×W -> float32 N×128."""
        features, _ = self.net(to_classifier_input(images.float().div_(255)))
        return features.float()


def load_digit_features() -> DigitFeatures:
    """The digit classifier (trained and cached on first use) as a ``zoo.FeatureExtractor``;
    its identity is the digest of its cached weights."""
    import hashlib

    net, _ = load_classifier()
    digest = hashlib.sha256(cache_path().read_bytes()).hexdigest()[:16]
    return DigitFeatures(net, f"digit-classifier-v{VERSION}-{digest}")
