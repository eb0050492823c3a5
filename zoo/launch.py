"""``zoo build --processes N``: the same build under ``torchrun`` with N local processes.

Nothing here is a launcher of our own: the command line is handed to
``python -m torch.distributed.run --standalone --nproc_per_node N -m zoo build ...``
(the same as running ``torchrun`` yourself, or ``accelerate launch``, which is
what to use across machines). Each process then finds the distributed
environment through accelerate (gloo on CPUs, NCCL on GPUs).
"""

from __future__ import annotations

import os
import subprocess
import sys

from zoo.errors import SpecError
from zoo.train import check_global_batch


def without_processes_option(argv: list[str]) -> list[str]:
    """``argv`` with ``--processes N`` / ``--processes=N`` removed."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--processes":
            skip = True
        elif not arg.startswith("--processes="):
            kept.append(arg)
    return kept


def launch_build(processes: int, batch_size: int, argv: list[str] | None = None) -> int:
    """Run this ``zoo build`` command line under torchrun; return its exit status."""
    if "WORLD_SIZE" in os.environ:
        raise SpecError("--processes inside an already distributed run; drop --processes "
                        "(the launcher sets the process count)")
    check_global_batch(batch_size, processes)
    args = without_processes_option(sys.argv[1:] if argv is None else argv)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={processes}", "-m", "zoo", *args]
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // processes)))
    return subprocess.run(command, env=env).returncode
