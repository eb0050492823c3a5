"""Sampling latency: what n images cost against the bare network, and DDPM against diffusers.

Four measurements, each timed with ``benchlib`` (warm-up, interleaved rounds,
order reversed every other round, medians):

1. **Every built-in family** (each named model of ``registry.toml``, built by
   ``family.load().build(spec)`` with random weights, no training; weights that
   start at zero, such as the DDPM head, are redrawn N(0, 0.02) so the outputs
   are not trivial): ``sample_images(family, module, spec, n, seed=0)`` at
   n = 1, 2, 16, 64, and the **floor**: one bare forward of the family's
   generator network at batch 1 on ready-made codes (the decoder of an
   autoencoder, the DCGAN generator, LAPGAN's pyramid of generators, the DDPM
   UNet times its sampling steps: DDIM with ``--ddim-steps`` steps, one forward
   timed and multiplied). The acceptance figure is sample(1) / floor (at most
   1.5x). "n=1 scan per call" times sample(1) with the non-finite-weight check
   redone on every call, as it was before it was cached per module.
2. **DDPM against diffusers** on an equal UNet (``ddpm-mnist``'s, 28x28x1;
   ``diffusers.UNet2DModel`` built by ``ddpm_vs_diffusers.peer_unet``, same
   parameter count), fp32, per sampling step at n = 1, 2 and 64: ours through
   ``sample_images`` (DDIM, eta 0, ``--ddim-steps`` steps; ancestral DDPM over
   a schedule of T = ``--ddpm-steps`` timesteps, which costs what T = 1000
   costs per step) against diffusers' plain pipeline loop (``DDIMScheduler`` /
   ``DDPMScheduler``, ``unet(x, t).sample`` then ``scheduler.step`` per
   timestep, under ``torch.no_grad`` as its pipelines run).
3. **``zoo sample RUN -n 2 --opt sampler=ddpm``** on the default DDPM
   (``zoo spec ddpm``: 32x32x1, T = 1000) end to end, in a fresh process, on a
   model folder trained for one step (``zoo build ddpm --set train.max_steps=1``
   into a temporary folder, or ``--run DIR``), against the floor of 1000
   batch-2 UNet forwards (100 timed back to back, times 10). Process start-up
   is reported apart: ``python -m zoo --help``, and the same command with one
   DDIM step (start-up, model load and one step).
4. **Determinism**: for every family, max |image_i(n) - image_i(n=64)| over the
   images of n = 1, 2 and 16 and of n = 64 sampled with ``batch_size=16``, on
   [0, 1] images, and whether they are bitwise equal.

Usage::

    python bench/sample_latency.py            # rounds 7, K 5; DDIM-50, DDPM T = 50
    python bench/sample_latency.py --quick    # rounds 3, K 2; DDIM-10, DDPM T = 10

Results: ``bench/results/sample_latency.json`` (``--quick``: ``.quick.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from benchlib import add_round_options, machine_info, run_rounds, settle_round_options
from benchlib import warm_up as bench_warm_up

SIZES = (1, 2, 16, 64)
PEER_SIZES = (1, 2, 64)
DETERMINISM = (1, 2, 16)


def median_ms(rounds: list[list[float]]) -> float:
    """Median of all per-call times, in ms."""
    return 1000 * statistics.median(t for r in rounds for t in r)


def warm_up(calls: dict[str, Callable[[], Any]], n: int) -> None:
    """``benchlib.warm_up`` with at least one call (first calls allocate)."""
    bench_warm_up(calls, max(n, 1))


# --------------------------------------------------------------------------- models


def built(name: str, overrides: tuple[str, ...] = ()) -> tuple[Any, Any, Any, torch.nn.Module]:
    """(family record, family, spec, module in eval mode) of a named model, random weights;
    all-zero weights (e.g. DDPM's output head) redrawn so the outputs are not trivial."""
    from zoo.api import resolve_spec

    family, spec = resolve_spec(name, overrides=list(overrides))
    impl = family.load()
    torch.manual_seed(0)
    module = impl.build(spec).eval()
    with torch.no_grad():
        for p in module.parameters():
            if p.is_floating_point() and not p.any():
                p.normal_(0, 0.02)
    return family, impl, spec, module


def floor_call(family: Any, impl: Any, spec: Any, module: torch.nn.Module
               ) -> tuple[Callable[[], Any], str]:
    """One bare batch-1 forward of the family's generator network on ready codes, and what
    it is (DDPM: one UNet forward; the caller multiplies by the steps)."""
    from zoo.sampling.sample import PerSampleNoise

    noise = PerSampleNoise(0, [0])
    with torch.inference_mode():
        if family.name == "ddpm":
            x, t = impl.latent(module, noise, spec), torch.zeros(1, dtype=torch.long)
            return (lambda: module(x, t)), "UNet forward"
        if family.name == "lapgan":
            from zoo_lapgan.model import pyramid_of

            codes = impl.latent(module, noise, spec)
            return (lambda: pyramid_of(module, codes)), "pyramid of generators"
        if hasattr(module, "decoder"):  # autoencoders: the decoder of a code
            codes = (impl.latent(module, noise, spec) if impl.overrides("latent")
                     else noise.randn(module.code_dim))
            return (lambda: module.decoder(codes)), "decoder"
        codes = impl.latent(module, noise, spec)
        return (lambda: module(codes)), "generator"


def inference(call: Callable[[], Any]) -> Callable[[], Any]:
    """``call`` under ``torch.inference_mode`` (as ``sample_images`` runs the network)."""
    def run() -> Any:
        with torch.inference_mode():
            return call()
    return run


def family_latency(args: argparse.Namespace) -> dict[str, Any]:
    """Part 1: sample(n) at every size and the floor, per named model."""
    import zoo.sampling.sample as sampling
    from zoo.core.registry import get_registry
    from zoo.sampling.sample import sample_images

    rows: dict[str, Any] = {}
    for name in sorted(get_registry().models):
        family, impl, spec, module = built(name)
        ddpm = family.name == "ddpm"
        options = {"steps": args.ddim_steps} if ddpm else {}
        steps = args.ddim_steps if ddpm else 1
        forward, what = floor_call(family, impl, spec, module)

        def sample(n: int, family: Any = family, module: Any = module, spec: Any = spec,
                   options: dict = options) -> Callable[[], Any]:
            return lambda: sample_images(family, module, spec, n, seed=0, **options)

        def scanning(call: Callable[[], Any]) -> Callable[[], Any]:
            def run() -> Any:  # the check as it was: every weight read on every call
                saved = sampling._weights_version
                sampling._weights_version = lambda _m: None
                try:
                    return call()
                finally:
                    sampling._weights_version = saved
            return run

        calls = {f"n={n}": sample(n) for n in SIZES}
        calls["n=1 scan per call"] = scanning(sample(1))
        calls["floor"] = inference(forward)
        k = 1 if ddpm else args.k
        warm_up(calls, 1 if ddpm else args.warmup)
        timings = run_rounds(calls, args.rounds, k, 1, f"{name} ")
        ms = {c: median_ms(t) for c, t in timings.items()}
        floor = ms["floor"] * steps
        rows[name] = {
            "family": family.name, "floor_is": what + (f" x {steps} steps (DDIM)" if ddpm else ""),
            "steps": steps, "median_ms": {c: round(v, 4) for c, v in ms.items()},
            "floor_ms": round(floor, 4), "overhead_n1_ms": round(ms["n=1"] - floor, 4),
            "ratio_n1_over_floor": round(ms["n=1"] / floor, 3),
            "ratio_n1_scan_per_call_over_floor": round(ms["n=1 scan per call"] / floor, 3),
            "timings_s": timings,
        }
        print(f"sample latency {name}: n=1/2/16/64 " + " / ".join(
            f"{ms[f'n={n}']:.3g}" for n in SIZES) + f" ms, floor {floor:.3g} ms ({what}"
            f"{f' x {steps}' if ddpm else ''}), sample(1)/floor {ms['n=1'] / floor:.2f}x "
            f"(scan per call: {ms['n=1 scan per call'] / floor:.2f}x)", flush=True)
    return rows


# --------------------------------------------------------------------------- DDPM vs diffusers


def peer_loop(unet: Any, scheduler: Any, n: int, size: int, steps: int) -> Callable[[], Any]:
    """diffusers' pipeline loop: x_T, then ``unet(x, t).sample`` and ``scheduler.step`` per
    timestep, images to [0, 1] as the pipeline makes them."""
    def run() -> Any:
        with torch.no_grad():
            gen = torch.Generator().manual_seed(0)
            x = torch.randn((n, 1, size, size), generator=gen)
            scheduler.set_timesteps(steps)
            for t in scheduler.timesteps:
                eps = unet(x, t).sample
                x = scheduler.step(eps, t, x, generator=gen).prev_sample
            return (x / 2 + 0.5).clamp(0, 1)
    return run


def versus_diffusers(args: argparse.Namespace) -> dict[str, Any]:
    """Part 2: per-step sampling time, ours against diffusers' loop, at n = 1, 2, 64."""
    from ddpm_vs_diffusers import MODEL, peer_unet
    from diffusers import DDIMScheduler, DDPMScheduler

    from zoo.sampling.sample import sample_images

    ddim_steps, ddpm_steps = args.ddim_steps, args.ddpm_steps
    fam, _, spec, ours = built(MODEL)
    fam_a, _, spec_a, ours_a = built(MODEL, (f"model.timesteps={ddpm_steps}",))
    ours_a.load_state_dict(ours.state_dict())  # the same network; a T-step schedule
    torch.manual_seed(0)
    peer = peer_unet(spec).eval()
    counts = {"ours": sum(p.numel() for p in ours.parameters()),
              "peer": sum(p.numel() for p in peer.parameters())}
    if abs(counts["ours"] / counts["peer"] - 1) > 0.10:
        raise SystemExit(f"parameter counts differ by more than 10 %: {counts}")
    size = spec.data.image_size
    ddim = DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear")
    ancestral = DDPMScheduler(num_train_timesteps=ddpm_steps, beta_schedule="linear")
    out: dict[str, Any] = {"parameters": counts, "ddim_steps": ddim_steps,
                           "ddpm_timesteps": ddpm_steps, "image_size": size, "n": {}}
    for n in PEER_SIZES:
        calls = {
            "ours ddim": lambda n=n: sample_images(fam, ours, spec, n, seed=0, sampler="ddim",
                                                   steps=ddim_steps, eta=0.0),
            "peer ddim": peer_loop(peer, ddim, n, size, ddim_steps),
            "ours ddpm": lambda n=n: sample_images(fam_a, ours_a, spec_a, n, seed=0,
                                                   sampler="ddpm"),
            "peer ddpm": peer_loop(peer, ancestral, n, size, ddpm_steps),
        }
        k = 1 if n > 2 else args.k
        warm_up(calls, 1 if n > 2 else args.warmup)
        timings = run_rounds(calls, args.rounds, k, n, f"vs diffusers n={n} ")
        per_step = {c: median_ms(t) / (ddim_steps if "ddim" in c else ddpm_steps)
                    for c, t in timings.items()}
        speedup = {s: per_step[f"peer {s}"] / per_step[f"ours {s}"] for s in ("ddim", "ddpm")}
        out["n"][str(n)] = {"per_step_ms": {c: round(v, 3) for c, v in per_step.items()},
                            "peer_over_ours": {s: round(v, 3) for s, v in speedup.items()},
                            "timings_s": timings}
        for s in ("ddim", "ddpm"):
            print(f"ddpm vs diffusers n={n} {s}: ours {per_step[f'ours {s}']:.2f} ms/step, "
                  f"diffusers {per_step[f'peer {s}']:.2f} ms/step, ours {speedup[s]:.2f}x "
                  "faster", flush=True)
    return out


# --------------------------------------------------------------------------- zoo sample end to end


def tiny_run(folder: Path) -> Path:
    """A default-spec DDPM model folder trained for one step (its card grid 2 images)."""
    cmd = [sys.executable, "-m", "zoo", "build", "ddpm", "--set", "train.max_steps=1",
           "--set", "sample.n=2", "--out", str(folder)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed: {done.stderr[-500:]}")
    return folder


def command(argv: list[str]) -> Callable[[], None]:
    """A call that runs ``argv`` in a fresh process and fails loudly if it fails."""
    def run() -> None:
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{' '.join(argv)} failed: {done.stderr[-500:]}")
    return run


def end_to_end(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    """Part 3: ``zoo sample RUN -n 2 --opt sampler=ddpm`` against 1000 batch-2 forwards."""
    run = args.run or tiny_run(scratch / "ddpm-tiny")
    *_, spec, module = built("ddpm")
    timesteps = spec.model.timesteps
    x = torch.randn(2, 1, spec.data.image_size, spec.data.image_size)
    t = torch.full((2,), timesteps // 2)

    def hundred() -> None:
        with torch.inference_mode():
            for _ in range(100):
                module(x, t)

    zoo = [sys.executable, "-m", "zoo"]
    calls = {
        "100 batch-2 forwards": hundred,
        "zoo sample -n 2 --opt sampler=ddpm": command(
            [*zoo, "sample", str(run), "-n", "2", "--opt", "sampler=ddpm", "-o",
             str(scratch / "ddpm.png")]),
        "zoo sample -n 2 one DDIM step": command(
            [*zoo, "sample", str(run), "-n", "2", "--opt", "sampler=ddim", "--opt", "steps=1",
             "-o", str(scratch / "one.png")]),
        "python -m zoo --help": command([*zoo, "--help"]),
    }
    warm_up({"100 batch-2 forwards": hundred}, 1)
    rounds = args.e2e_rounds
    timings = run_rounds(calls, rounds, 1, 2, "zoo sample ")
    ms = {c: median_ms(tt) for c, tt in timings.items()}
    floor = ms["100 batch-2 forwards"] * timesteps / 100
    e2e = ms["zoo sample -n 2 --opt sampler=ddpm"]
    result = {
        "run": "a temporary folder (zoo build ddpm --set train.max_steps=1)" if not args.run
        else str(args.run), "image_size": spec.data.image_size, "timesteps": timesteps,
        "floor_ms": round(floor, 1), "end_to_end_ms": round(e2e, 1),
        "startup_ms": round(ms["python -m zoo --help"], 1),
        "one_step_command_ms": round(ms["zoo sample -n 2 one DDIM step"], 1),
        "ratio_end_to_end_over_floor": round(e2e / floor, 3),
        "ratio_end_to_end_minus_startup_over_floor": round(
            (e2e - ms["python -m zoo --help"]) / floor, 3),
        "median_ms": {c: round(v, 1) for c, v in ms.items()}, "rounds": rounds,
        "timings_s": timings,
    }
    print(f"zoo sample -n 2 --opt sampler=ddpm ({spec.data.image_size}x"
          f"{spec.data.image_size}, T={timesteps}): end to end {e2e / 1000:.1f} s, floor "
          f"({timesteps} batch-2 forwards, 100 timed x {timesteps // 100}) {floor / 1000:.1f} s, "
          f"ratio {e2e / floor:.2f}x; start-up (zoo --help) {ms['python -m zoo --help']:.0f} ms, "
          f"one-step command {ms['zoo sample -n 2 one DDIM step']:.0f} ms", flush=True)
    return result


# --------------------------------------------------------------------------- determinism


def determinism(args: argparse.Namespace) -> dict[str, Any]:
    """Part 4: image i of n = 1, 2, 16 (and of n = 64 in batches of 16) against n = 64."""
    from zoo.core.registry import get_registry
    from zoo.sampling.sample import sample_images

    rows: dict[str, Any] = {}
    for name in sorted(get_registry().models):
        family, _, spec, module = built(name)
        options = {"steps": args.ddim_steps} if family.name == "ddpm" else {}
        ref = sample_images(family, module, spec, 64, seed=0, **options)
        row = {}
        cases = {f"n={n}": (n, 64) for n in DETERMINISM} | {"n=64 batch 16": (64, 16)}
        for label, (n, batch) in cases.items():
            got = sample_images(family, module, spec, n, seed=0, batch_size=batch, **options)
            row[label] = {"max_abs_diff": float((got - ref[:n]).abs().max()),
                          "bitwise": bool(torch.equal(got, ref[:n]))}
        worst = max(v["max_abs_diff"] for v in row.values())
        rows[name] = {"cases": row, "max_abs_diff": worst,
                      "bitwise": all(v["bitwise"] for v in row.values())}
        print(f"determinism {name}: max |image_i(n) - image_i(64)| = {worst:.3g} over n = 1, 2, "
              f"16 and batch 16; bitwise {'yes' if rows[name]['bitwise'] else 'no'} ("
              + ", ".join(f"{k} " + ("=" if v["bitwise"] else f"{v['max_abs_diff']:.2g}")
                          for k, v in row.items()) + ")", flush=True)
    worst = max(r["max_abs_diff"] for r in rows.values())
    print(f"determinism bound over all families: {worst:.3g} on [0, 1] images", flush=True)
    return {"families": rows, "max_abs_diff": worst}


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_round_options(p)
    p.add_argument("--ddim-steps", type=int, default=None, help="DDIM steps (default 50; "
                   "--quick 10)")
    p.add_argument("--ddpm-steps", type=int, default=None, help="timesteps T of the ancestral "
                   "sampler against diffusers (default 50; --quick 10)")
    p.add_argument("--e2e-rounds", type=int, default=None, help="rounds of the zoo sample "
                   "command (default 3; --quick 1)")
    p.add_argument("--run", type=Path, default=None, help="a default-spec DDPM model folder "
                   "for part 3 (default: build one, trained one step, in a temporary folder)")
    p.add_argument("--parts", nargs="+", default=["families", "diffusers", "e2e", "determinism"],
                   choices=["families", "diffusers", "e2e", "determinism"])
    args = settle_round_options(p.parse_args(argv), "sample_latency")
    args.ddim_steps = args.ddim_steps or (10 if args.quick else 50)
    args.ddpm_steps = args.ddpm_steps or (10 if args.quick else 50)
    args.e2e_rounds = args.e2e_rounds or (1 if args.quick else 3)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"threads {torch.get_num_threads()}  rounds {args.rounds}  K {args.k}  DDIM steps "
          f"{args.ddim_steps}  DDPM T {args.ddpm_steps}", flush=True)
    start = time.perf_counter()
    result: dict[str, Any] = {
        "benchmark": "sampling latency: sample_images at n = 1, 2, 16, 64 against the bare "
                     "network (every named model), DDPM per step against diffusers, zoo sample "
                     "-n 2 --opt sampler=ddpm end to end, determinism across n",
        "machine": machine_info(),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                     if k not in ("sync", "out")},
    }
    if args.out.exists():  # parts not rerun keep their last figures
        old = json.loads(args.out.read_text())
        result |= {k: old[k] for k in ("families", "diffusers", "e2e", "determinism")
                   if k in old and k not in args.parts}
    with tempfile.TemporaryDirectory(prefix="sample_latency-") as scratch:
        parts: dict[str, Callable[[], Any]] = {
            "families": lambda: family_latency(args),
            "diffusers": lambda: versus_diffusers(args),
            "e2e": lambda: end_to_end(args, Path(scratch)),
            "determinism": lambda: determinism(args),
        }
        for part in args.parts:
            result[part] = parts[part]()
    result["seconds"] = round(time.perf_counter() - start, 1)
    result["loadavg_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
