"""Random Inception-v3 weights in the exact format torch-fidelity loads, for tests and
benchmarks that cannot download the real ones (imports torch)."""

from __future__ import annotations

from pathlib import Path

import torch


def random_inception_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A freshly initialised state dict for torch-fidelity's Inception-v3 whose pool3
    features vary with the input: Kaiming-normal convolutions (fan_in, ReLU), BatchNorm
    as the identity (mean 0, variance 1, weight 1, bias 0), a small random classifier."""
    from zoo.evaluation.inception import build, expected_tensors

    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for key, shape in expected_tensors().items():
        if key.endswith("conv.weight"):
            fan_in = shape[1] * shape[2] * shape[3]
            value = torch.randn(shape, generator=gen) * (2.0 / fan_in) ** 0.5
        elif key.endswith(("bn.weight", "bn.running_var")):
            value = torch.ones(shape)
        elif key.endswith(("bn.bias", "bn.running_mean")):
            value = torch.zeros(shape)
        elif key == "fc.weight":
            value = torch.randn(shape, generator=gen) * shape[1] ** -0.5
        elif key == "fc.bias":
            value = torch.zeros(shape)
        else:
            raise AssertionError(f"unexpected Inception tensor {key}")
        state[key] = value.float().contiguous()
    # Through torch-fidelity's own constructor: the state dict it holds after loading.
    net = build(state)
    return {k: v.detach().clone() for k, v in net.state_dict().items()
            if not k.endswith("num_batches_tracked")}


def write_random_inception(path: Path | str, seed: int = 0) -> Path:
    """Write random Inception-v3 weights to ``path`` as torch-fidelity's weights file is
    written: ``torch.save`` of the state dict (472 float32 tensors). Returns ``path``."""
    path = Path(path)
    torch.save(random_inception_state(seed), path)
    return path
