"""Where and how a training run executes: device, precision (accelerate), seeding."""

from __future__ import annotations

import random
import sys
from typing import TYPE_CHECKING

from zoo.core.errors import SpecError
from zoo.training.distributed import check_global_batch

if TYPE_CHECKING:
    import torch
    from accelerate import Accelerator

    from zoo.core.spec import Spec


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 autocast runs natively on ``device``."""
    import torch

    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.backends.mkldnn.is_available()
                    and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def make_accelerator(spec: Spec) -> tuple[Accelerator, str]:
    """An accelerate ``Accelerator`` for the spec; returns it and the precision in use.

    The device comes from ``run.device`` (how it runs), the precision from
    ``train.precision`` (the recipe).
    """
    import torch
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState

    train, run = spec.train, spec.run
    want_cpu = run.device == "cpu" or (run.device == "auto" and not torch.cuda.is_available())
    if run.device == "cuda" and not torch.cuda.is_available():
        raise SpecError("run.device = 'cuda' but no CUDA device is visible; use 'auto' or 'cpu'")
    device = torch.device("cpu") if want_cpu else torch.device("cuda")
    precision = "bf16" if train.precision == "bf16" and bf16_supported(device) else "fp32"
    if train.precision == "bf16" and precision == "fp32":
        print(f"warning: bf16 is not supported on {device}; training in fp32", file=sys.stderr)
    # accelerate keeps one global state; several builds in one (non-distributed)
    # process may ask for different precisions, so start from a clean state.
    if PartialState._shared_state and PartialState().num_processes == 1:
        AcceleratorState._reset_state(reset_partial_state=True)
    accelerator = Accelerator(cpu=want_cpu, mixed_precision="bf16" if precision == "bf16" else "no")
    world = accelerator.num_processes
    check_global_batch(train.batch_size, world)
    if world > 1 and run.sync_batchnorm and want_cpu:
        raise SpecError("run.sync_batchnorm needs GPUs (torch's SyncBatchNorm is GPU-only)")
    return accelerator, precision


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
