"""What every bench script shares: interleaved timing rounds and the machine description.

Method: each configuration is warmed up, then rounds are interleaved; in each
round K calls of every configuration are timed one call at a time, and the
order of the configurations is reversed every other round, so slow drifts of
the machine (other jobs, clocks) hit all of them alike. Figures are medians of
the per-call times over all rounds.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

PEAK_MATMUL_N = 3072  # square matmul side for peak_flops (2048 and 4096 measured no higher)

Call = Callable[[], Any]
Sync = Callable[[], None] | None  # waits for queued device work (CUDA); None on the CPU
Timings = dict[str, list[list[float]]]  # configuration -> rounds -> per-call seconds


def add_round_options(parser: argparse.ArgumentParser) -> None:
    """``--rounds``, ``-k``, ``--warmup``, ``--threads``, ``--quick`` and ``--out``."""
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds (default 7)")
    parser.add_argument("-k", type=int, default=None,
                        help="calls per configuration per round (default 5)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls per configuration")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="torch.set_num_threads (default: the cores available)")
    parser.add_argument("--quick", action="store_true", help="smoke test: rounds 3, K 2")
    parser.add_argument("--out", type=Path, default=None, help="JSON results path")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where both sides run (cuda: timings synchronise the GPU)")
    parser.add_argument("--compile", action="store_true",
                        help="also time torch.compile'd configurations of both sides")


def settle_round_options(args: argparse.Namespace, name: str) -> argparse.Namespace:
    """Fill the defaults ``--quick`` changes; results go to ``results/NAME[.quick].json``."""
    args.rounds = args.rounds or (3 if args.quick else 7)
    args.k = args.k or (2 if args.quick else 5)
    suffix = ("" if args.device == "cpu" else f".{args.device}") + (".quick" if args.quick else "")
    args.out = args.out or RESULTS / f"{name}{suffix}.json"
    args.sync = synchronizer(args.device)
    return args


def synchronizer(device: str) -> Sync:
    """What a timer must call before reading the clock on ``device`` (None on the CPU)."""
    if device == "cpu":
        return None
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible")
    return torch.cuda.synchronize


def time_calls(call: Call, k: int, sync: Sync = None) -> list[float]:
    """Seconds of each of ``k`` consecutive calls (each waited for on a GPU)."""
    times = []
    for _ in range(k):
        start = time.perf_counter()
        call()
        if sync is not None:
            sync()
        times.append(time.perf_counter() - start)
    return times


def warm_up(calls: dict[str, Call], n: int, sync: Sync = None) -> dict[str, float]:
    """``n`` untimed calls of each configuration; returns peak GPU MiB per configuration.

    The peak is measured over each configuration's own warm-up (empty on the CPU).
    """
    peaks: dict[str, float] = {}
    for name, call in calls.items():
        if sync is not None:
            import torch

            sync()
            torch.cuda.reset_peak_memory_stats()
        for _ in range(n):
            call()
        if sync is not None:
            sync()
            peaks[name] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return peaks


def run_rounds(calls: dict[str, Call], rounds: int, k: int, images_per_call: int,
               label: str = "", sync: Sync = None) -> Timings:
    """Interleaved rounds of K calls per configuration, order reversed every other round.

    Prints each round's images/s to stderr.
    """
    names = list(calls)
    timings: Timings = {n: [] for n in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            timings[name].append(time_calls(calls[name], k, sync))
        print(f"  {label}round {r + 1}/{rounds}: " + ", ".join(
            f"{n} {images_per_call / statistics.median(timings[n][-1]):.1f}" for n in names)
            + " img/s", file=sys.stderr, flush=True)
    return timings


def images_per_s(per_round: list[list[float]], images_per_call: int) -> float:
    """Images/s from the median per-call time over all rounds."""
    return images_per_call / statistics.median(t for rnd in per_round for t in rnd)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("unknown" where there is none)."""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        return next((line.split(":", 1)[1].strip() for line in fh
                     if line.startswith("model name")), "unknown")
    return "unknown"


def machine_info() -> dict[str, Any]:
    """CPU, core count, torch threads, versions and load: what a reader needs to compare runs."""
    import torch

    cpu = cpu_model()
    info = {"torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "cpu_model": cpu, "cpu_count": os.cpu_count(),
            "cores_available": len(os.sched_getaffinity(0)),
            "torch_threads": torch.get_num_threads(),
            "mkldnn_bf16": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
            "loadavg_at_start": os.getloadavg()}
    if torch.cuda.is_available():
        info |= {"gpu": torch.cuda.get_device_name(), "cuda": torch.version.cuda,
                 "cudnn": torch.backends.cudnn.version(),
                 "tf32_conv": torch.backends.cudnn.allow_tf32,
                 "tf32_matmul": torch.backends.cuda.matmul.allow_tf32}
    return info


# --------------------------------------------------------------------------- fraction of peak

_PEAKS: dict[tuple[str, str, int], list[float]] = {}  # (dtype, device, n) -> FLOP/s per run
PRECISIONS = {"fp32": "float32", "bf16": "bfloat16"}  # spec precision -> torch dtype name


def step_flops(call: Call) -> int:
    """FLOPs of one ``call()`` (e.g. a training step: forward, backward and optimiser).

    Counted by ``torch.utils.flop_counter.FlopCounterMode``: matmuls, convolutions
    (and their transposes) and scaled-dot-product attention, forward and backward,
    at 2 FLOPs per multiply-add, whatever the dtype. Everything else counts as zero:
    batch/group normalisation, activations, elementwise arithmetic, losses, the
    optimiser's update, copies and layout conversions. The call really runs (it
    advances a trainer by one step); do not time it.
    """
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        call()
    return int(counter.get_total_flops())


def peak_flops(dtype: Any, device: str = "cpu", n: int = PEAK_MATMUL_N,
               warmup: int = 2, runs: int = 7) -> float:
    """This machine's measured peak in FLOP/s for ``dtype``: an ``n`` x ``n`` matmul.

    ``dtype`` is a torch dtype or a spec precision (``"fp32"``, ``"bf16"``). Two
    warm-up products, then the fastest of ``runs`` timed ones (2 n^3 FLOPs each): a
    peak is the best the machine showed, and another job can only slow a run down. At
    torch's current thread count; cached per (dtype, device, n) in the process, the
    per-run figures in :func:`peak_runs`.
    """
    import torch

    if isinstance(dtype, str):
        dtype = getattr(torch, PRECISIONS.get(dtype, dtype))
    key = (str(dtype), device, n)
    if key not in _PEAKS:
        sync = synchronizer(device)
        gen = torch.Generator(device=device).manual_seed(0)
        a = torch.randn(n, n, generator=gen, device=device).to(dtype)
        b = torch.randn(n, n, generator=gen, device=device).to(dtype)
        for _ in range(warmup):
            torch.mm(a, b)
        if sync is not None:
            sync()
        _PEAKS[key] = [2 * n**3 / t for t in time_calls(lambda: torch.mm(a, b), runs, sync)]
    return max(_PEAKS[key])


def peak_runs() -> dict[str, list[float]]:
    """GFLOP/s of every timed peak matmul so far, per ``"dtype device n"`` (for the JSON)."""
    return {" ".join(map(str, k)): [round(f / 1e9, 1) for f in v] for k, v in _PEAKS.items()}


def vs_peak(flops: int, seconds: float, peak: float) -> dict[str, float]:
    """``gflop_per_step``, ``achieved_gflops``, ``peak_gflops`` and ``fraction_of_peak``.

    ``flops`` per step (:func:`step_flops`), ``seconds`` per step (a median), ``peak``
    in FLOP/s (:func:`peak_flops` of the step's precision).
    """
    achieved = flops / seconds
    return {"gflop_per_step": round(flops / 1e9, 4), "achieved_gflops": round(achieved / 1e9, 2),
            "peak_gflops": round(peak / 1e9, 2), "fraction_of_peak": round(achieved / peak, 4)}


def peak_line(label: str, row: dict[str, float], precision: str) -> str:
    """One summary line for a :func:`vs_peak` row."""
    return (f"{label}: {row['fraction_of_peak']:.0%} of the {precision} matmul peak "
            f"({row['achieved_gflops']:.0f} of {row['peak_gflops']:.0f} GFLOP/s, "
            f"{row['gflop_per_step']:.1f} GFLOP/step)")
