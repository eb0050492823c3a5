"""DDPM training step and DDIM-50 sampling, side by side: genzoo against diffusers.

The network is the ``ddpm-mnist`` UNet (28x28x1; widths 32/64/64, 2 residual
blocks per level, self-attention at the lowest level and in the middle).
The peer is ``diffusers.UNet2DModel`` configured to the same architecture
(``DownBlock2D``/``AttnDownBlock2D``, one attention head, the same GroupNorm
groups); the script checks that both have the same parameter count (±10 %
allowed by the issue; it is identical).

Training step (one batch of 64 real digits, data loading not timed):

* ours: the genzoo DDPM trainer built as ``zoo build`` builds it, one
  ``trainer.step`` plus the weight-average update the loop runs after it
  (fused Adam, gradient clipping, timm EMA);
* peer: the step of diffusers' ``train_unconditional.py`` example:
  ``DDPMScheduler.add_noise``, ``UNet2DModel(...).sample``, MSE on eps,
  ``clip_grad_norm_(1.0)``, ``AdamW(lr=1e-4, betas=(0.95, 0.999),
  weight_decay=1e-6)`` and ``EMAModel(..., use_ema_warmup=True, power=3/4)``,
  with the library defaults the example uses (AdamW's foreach kernel, EMA
  without foreach). A second peer configuration, "peer tuned", gives the peer
  fused AdamW and foreach EMA, so a speed-up of ours cannot come from
  optimiser plumbing alone.

Both precisions: fp32, and bf16 autocast (accelerate's ``mixed_precision="bf16"``
for ours, ``torch.autocast("cpu", bfloat16)`` around the peer's forward).

Sampling: 64 images, DDIM with 50 steps and eta = 0, in fp32 and bf16: ours through
``zoo.sampling.sample.sample_images`` (per-sample noise, one chunk of 64;
``precision="bf16"``: bf16 autocast), the peer through ``DDIMPipeline(unet,
DDIMScheduler(...))(batch_size=64, num_inference_steps=50, output_type="np")`` with
its progress bar off; in bf16 under bf16 autocast. (diffusers' other bf16 route, a
UNet cast to bf16, fails in ``DDIMPipeline`` on the CPU: its output goes through
``.numpy()``, which has no bf16, with diffusers 0.42.1.) Each side uses its own random
initialisation (run time does not depend on the weight values).

``--device cuda`` runs both sides on the GPU (``torch.autocast("cuda", bfloat16)``
for the peer; every timed call synchronises; the peak GPU memory of each
configuration is recorded). ``--compile`` adds bf16 training with
``torch.compile`` on both sides: ours with ``run.compile=true``, the peer
with ``unet.compile()``.

Method: ``benchlib`` (warm-up, interleaved rounds, order reversed every other
round, medians). Fraction of peak: after the training rounds, one more untimed
step of each configuration runs under ``FlopCounterMode`` (``benchlib.step_flops``),
and its FLOP/s at the median step time is divided by the matmul peak of its
precision (``benchlib.peak_flops``). Usage::

    python bench/ddpm_vs_diffusers.py            # rounds 7, K 5 (sampling: K 1)
    python bench/ddpm_vs_diffusers.py --quick    # rounds 3, K 2 (smoke test)
    python bench/ddpm_vs_diffusers.py --device cuda --compile

Results: ``bench/results/ddpm_vs_diffusers.json`` (``--quick``: ``.quick.json``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import statistics
import sys
from typing import Any

import torch
import torch.nn.functional as F
from benchlib import (
    Timings,
    add_round_options,
    images_per_s,
    machine_info,
    peak_flops,
    peak_line,
    peak_runs,
    run_rounds,
    settle_round_options,
    step_flops,
    vs_peak,
    warm_up,
)

MODEL = "ddpm-mnist"
BATCH = 64
SAMPLE_STEPS = 50


# --------------------------------------------------------------------------- ours


def our_spec(precision: str, device: str = "cpu", compiled: bool = False) -> tuple[Any, Any]:
    """The family record and spec of ``ddpm-mnist`` at ``precision`` on ``device``."""
    from zoo.api import resolve_spec

    return resolve_spec(MODEL, overrides=[
        f"train.precision={precision}", f"run.device={device}",
        f"train.batch_size={BATCH}", f"run.compile={str(compiled).lower()}"])


def our_trainer(precision: str, device: str = "cpu", compiled: bool = False) -> Any:
    """Our trainer, built as ``zoo.training.loop.fit`` builds it."""
    from zoo.training.runtime import make_accelerator, seed_everything

    family, spec = our_spec(precision, device, compiled)
    accelerator, got = make_accelerator(spec)
    if got != precision:
        raise SystemExit(f"ours: asked for {precision}, the accelerator gives {got}")
    impl = family.load()
    seed_everything(0)
    return impl.trainer(spec, impl.build(spec), accelerator)


def our_train_step(trainer: Any, images01: torch.Tensor) -> Any:
    """One step of the loop: ``trainer.step`` (on the batch laid out as the loop lays it
    out) then the EMA update."""
    rng = torch.Generator(device=images01.device).manual_seed(0)
    batch = trainer.in_layout(images01)
    count = [0]

    def step() -> None:
        trainer.step(batch, None, rng)
        count[0] += 1
        trainer.update_ema(count[0])

    return step


def our_sampler(device: str = "cpu", precision: str = "fp32") -> tuple[Any, int]:
    """DDIM-50 sampling of 64 images through the zoo's sampling path (``zoo sample
    --precision``); and the param count."""
    from zoo.sampling.sample import sample_images

    family, spec = our_spec("fp32", device)
    model = family.load().build(spec).eval().to(device)
    return (lambda: sample_images(family, model, spec, BATCH, seed=0, batch_size=BATCH,
                                  precision=precision, sampler="ddim", steps=SAMPLE_STEPS,
                                  eta=0.0),
            sum(p.numel() for p in model.parameters()))


# --------------------------------------------------------------------------- peer


def peer_unet(spec: Any) -> Any:
    """``diffusers.UNet2DModel`` with our UNet's architecture."""
    from diffusers import UNet2DModel

    m = spec.model
    widths = tuple(m.channels * k for k in m.channel_mult)
    attention = set(m.attention_levels)
    down = tuple("AttnDownBlock2D" if i in attention else "DownBlock2D"
                 for i in range(len(widths)))
    return UNet2DModel(
        sample_size=spec.data.image_size, in_channels=1, out_channels=1,
        layers_per_block=m.num_res_blocks, block_out_channels=widths,
        down_block_types=down, up_block_types=tuple(
            b.replace("Down", "Up") for b in reversed(down)),
        norm_num_groups=m.groups, attention_head_dim=widths[-1], dropout=m.dropout)


def peer_train_step(unet: Any, images01: torch.Tensor, bf16: bool, tuned: bool) -> Any:
    """diffusers' ``train_unconditional.py`` step on a fixed batch (on the batch's device)."""
    from diffusers import DDPMScheduler
    from diffusers.training_utils import EMAModel

    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-4, betas=(0.95, 0.999),
                                  weight_decay=1e-6, eps=1e-8, fused=True if tuned else None)
    ema = EMAModel(unet.parameters(), decay=0.9999, use_ema_warmup=True, inv_gamma=1.0,
                   power=3 / 4, foreach=tuned)
    clean = images01 * 2 - 1
    device = clean.device
    gen = torch.Generator(device=device).manual_seed(0)
    autocast = ((lambda: torch.autocast(device.type, torch.bfloat16)) if bf16
                else contextlib.nullcontext)
    unet.train()

    def step() -> None:
        noise = torch.randn(clean.shape, generator=gen, device=device)
        timesteps = torch.randint(0, 1000, (len(clean),), generator=gen, device=device)
        noisy = scheduler.add_noise(clean, noise, timesteps)
        with autocast():
            output = unet(noisy, timesteps).sample
        loss = F.mse_loss(output.float(), noise.float())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        ema.step(unet.parameters())

    return step


def peer_sampler(spec: Any, device: str = "cpu", bf16: bool = False) -> tuple[Any, int]:
    """DDIM-50 sampling of 64 images through ``DDIMPipeline`` (``bf16``: under bf16
    autocast, as ours runs); and the param count."""
    from diffusers import DDIMPipeline, DDIMScheduler

    unet = peer_unet(spec).eval()
    pipe = DDIMPipeline(unet=unet, scheduler=DDIMScheduler(num_train_timesteps=1000,
                                                           beta_schedule="linear")).to(device)
    pipe.set_progress_bar_config(disable=True)
    autocast = ((lambda: torch.autocast(torch.device(device).type, torch.bfloat16))
                if bf16 else contextlib.nullcontext)

    def sample() -> Any:
        gen = torch.Generator(device=device).manual_seed(0)
        with autocast():
            return pipe(batch_size=BATCH, generator=gen, eta=0.0,
                        num_inference_steps=SAMPLE_STEPS, output_type="np").images

    return sample, sum(p.numel() for p in unet.parameters())


# --------------------------------------------------------------------------- main


def conv_output_dtypes(module: torch.nn.Module, step: Any) -> list[str]:
    """The dtypes of every convolution output of ``module`` during one ``step()``."""
    seen: set[str] = set()
    hooks = [m.register_forward_hook(lambda _m, _i, out: seen.add(str(out.dtype)))
             for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
    try:
        step()
    finally:
        for hook in hooks:
            hook.remove()
    return sorted(seen)


def load_batch(device: str = "cpu") -> torch.Tensor:
    """64 real MNIST digits, 28x28x1, in [0, 1], on ``device``."""
    from zoo.data import load_images

    _, spec = our_spec("fp32")
    images, _ = load_images(spec.data, "train")
    return images[:BATCH].contiguous().to(device)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_round_options(p)
    args = settle_round_options(p.parse_args(argv), "ddpm_vs_diffusers")
    return args


def figures(timings: Timings, images: int, pairs: dict[str, tuple[str, str]]
            ) -> dict[str, dict[str, Any]]:
    """images/s per configuration; ours/peer for each named pair (ratio of the medians over
    all calls), and its spread: the lowest and highest ratio of one round's medians."""
    rates = {name: images_per_s(t, images) for name, t in timings.items()}

    def per_round(a: str, b: str) -> list[float]:
        return [statistics.median(tb) / statistics.median(ta)
                for ta, tb in zip(timings[a], timings[b], strict=True)]

    return {"images_per_s": {k: round(v, 2) for k, v in rates.items()},
            "ratio": {label: round(rates[a] / rates[b], 3) for label, (a, b) in pairs.items()},
            "ratio_round_range": {label: [round(min(r), 3), round(max(r), 3)]
                                  for label, (a, b) in pairs.items()
                                  for r in [per_round(a, b)]}}


def training_vs_peak(calls: dict[str, Any], rates: dict[str, float], device: str
                     ) -> dict[str, dict[str, Any]]:
    """FLOPs of one more, untimed call of each configuration (a training step, or a
    DDIM-50 sampling of the batch) against its precision's peak.

    A compiled configuration counts the FLOPs of the eager one of the same side.
    """
    flops = {name: step_flops(call) for name, call in calls.items() if "compiled" not in name}
    rows = {}
    for name, rate in rates.items():
        precision = "bf16" if "bf16" in name else "fp32"
        eager = name.replace(" compiled", "")
        rows[name] = vs_peak(flops[eager], BATCH / rate, peak_flops(precision, device)) | {
            "precision": precision}
    return rows


def print_figures(what: str, figs: dict[str, Any], peak_mib: dict[str, float]) -> None:
    """One line per rate, per ratio (with its spread over rounds) and per fraction of peak."""
    for name, rate in figs["images_per_s"].items():
        mem = f", peak {peak_mib[name]:.0f} MiB" if name in peak_mib else ""
        print(f"{what} {name}: {rate:.1f} img/s{mem}")
    for label, ratio in figs["ratio"].items():
        low, high = figs["ratio_round_range"][label]
        print(f"{what} {label}: ours/peer {ratio:.2f}x (rounds {low:.2f}-{high:.2f})")
    for name, row in figs["vs_peak"].items():
        print(peak_line(f"{what} {name}", row, row["precision"]))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device, sync = args.device, args.sync
    print(f"device {device}  threads {torch.get_num_threads()}  rounds {args.rounds}  "
          f"K {args.k}", flush=True)
    images01 = load_batch(device)
    _, spec = our_spec("fp32")

    # each of our trainers gets its own accelerator; a prepared module keeps the
    # autocast wrapper it was given, which the dtype probe below confirms
    ours = {p: our_trainer(p, device) for p in ("fp32", "bf16")}
    for precision, trainer in ours.items():
        seen = conv_output_dtypes(trainer.model, our_train_step(trainer, images01))
        if seen != [f"torch.{'float32' if precision == 'fp32' else 'bfloat16'}"]:
            raise SystemExit(f"ours {precision}: convolutions ran in {seen}")
    counts = {"ours": sum(p.numel() for p in ours["fp32"].model.parameters())}
    train_calls = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        train_calls[f"ours {precision}"] = our_train_step(ours[precision], images01)
        for tuned in (False, True):
            unet = peer_unet(spec).to(device)
            counts["peer"] = sum(p.numel() for p in unet.parameters())
            name = f"peer{' tuned' if tuned else ''} {precision}"
            train_calls[name] = peer_train_step(unet, images01, precision == "bf16", tuned)
    pairs = {f"{p}{suffix}": (f"ours {p}", f"peer{suffix} {p}")
             for p in ("fp32", "bf16") for suffix in ("", " tuned")}
    if args.compile:
        torch.manual_seed(0)
        train_calls["ours bf16 compiled"] = our_train_step(
            our_trainer("bf16", device, compiled=True), images01)
        unet = peer_unet(spec).to(device)
        unet.compile()
        train_calls["peer tuned bf16 compiled"] = peer_train_step(unet, images01, True, True)
        pairs["bf16 compiled"] = ("ours bf16 compiled", "peer tuned bf16 compiled")
    if abs(counts["ours"] / counts["peer"] - 1) > 0.10:
        raise SystemExit(f"parameter counts differ by more than 10 %: {counts}")
    print(f"parameters: ours {counts['ours']:,}  peer {counts['peer']:,}", flush=True)

    peak_mib = warm_up(train_calls, args.warmup, sync)
    train_t = run_rounds(train_calls, args.rounds, args.k, BATCH, "train ", sync)
    train = figures(train_t, BATCH, pairs)
    train["vs_peak"] = training_vs_peak(train_calls, train["images_per_s"], device)

    ours_sample, n_ours = our_sampler(device)
    peer_sample, n_peer = peer_sampler(spec, device)
    sample_calls = {"ours ddim50 fp32": ours_sample, "peer ddim50 fp32": peer_sample,
                    "ours ddim50 bf16": our_sampler(device, "bf16")[0],
                    "peer ddim50 bf16": peer_sampler(spec, device, bf16=True)[0]}
    peak_mib |= warm_up(sample_calls, 1, sync)
    sample_t = run_rounds(sample_calls, args.rounds, 1, BATCH, "sample ", sync)
    sample = figures(sample_t, BATCH, {
        "ddim50 fp32": ("ours ddim50 fp32", "peer ddim50 fp32"),
        "ddim50 bf16": ("ours ddim50 bf16", "peer ddim50 bf16")})
    sample["vs_peak"] = training_vs_peak(sample_calls, sample["images_per_s"], device)

    print_figures(f"ddpm {device} train step", train, peak_mib)
    print_figures(f"ddpm {device} sampling", sample, peak_mib)

    result = {
        "benchmark": f"{MODEL} UNet: training step (batch {BATCH}) and DDIM-{SAMPLE_STEPS} "
                     f"sampling ({BATCH} images), 28x28x1, {device}",
        "machine": machine_info(),
        "versions": {d: importlib.metadata.version(d) for d in ("genzoo", "diffusers", "timm")},
        "settings": {"rounds": args.rounds, "k": args.k, "warmup": args.warmup,
                     "quick": args.quick, "device": device, "compile": args.compile,
                     "spec": spec.model_dump(mode="json")["model"]},
        "parameters": counts | {"ours_sampling": n_ours, "peer_sampling": n_peer},
        "train": train, "sample": sample, "peak_gpu_mib": peak_mib,
        "timings_s": {"train": train_t, "sample": sample_t},
        "peak_matmul_gflops_runs": peak_runs(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
