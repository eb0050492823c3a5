"""``zoo build --processes N``: the same build under ``torchrun`` with N local processes.

Nothing here is a launcher of our own: the command line is handed to
``python -m torch.distributed.run --standalone --nproc_per_node N -m zoo build ...``
(the same as running ``torchrun`` yourself, or ``accelerate launch``, which is
what to use across machines). Each process then finds the distributed
environment through accelerate (gloo on CPUs, NCCL on GPUs).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from zoo.core.errors import SpecError
from zoo.training.distributed import check_global_batch


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


def launch_build(processes: int, batch_size: int, out: Path, *, resume: bool = False,
                 force: bool = False, argv: list[str] | None = None) -> int:
    """Run this ``zoo build`` command line under torchrun; return its exit status.

    This process holds the build lock of ``out`` (and cleans up after killed
    builds of it) for as long as torchrun runs, and checks ``out`` once, so a
    bad destination gives one line rather than one per process. SIGTERM is
    passed on to torchrun, which passes it to the processes: they checkpoint
    and stop (exit status 143). Ctrl-C reaches torchrun directly.
    """
    from zoo.training.destination import check_destination
    from zoo.training.lock import HELD_ENV, claim

    if "WORLD_SIZE" in os.environ:
        raise SpecError("--processes inside an already distributed run; drop --processes "
                        "(the launcher sets the process count)")
    check_global_batch(batch_size, processes)
    args = without_processes_option(sys.argv[1:] if argv is None else argv)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={processes}", "-m", "zoo", *args]
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // processes)))
    with claim(out) as lock:
        check_destination(out, resume, force)
        if lock is not None:
            env[HELD_ENV] = str(lock.path)
        return _run_forwarding_sigterm(command, env)


def _run_forwarding_sigterm(command: list[str], env: dict[str, str]) -> int:
    terminated = []
    child = subprocess.Popen(command, env=env)

    def forward(signum: int, frame: object) -> None:
        terminated.append(signum)
        child.send_signal(signum)

    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, forward),
                signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN)}
    try:
        code = child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 + signal.SIGTERM if terminated and code else code
