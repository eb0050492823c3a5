"""Loading a model from disk, side by side: genzoo against diffusers and timm.

The headline compares like for like, the same UNet on both sides: our
``ddpm-mnist`` UNet (1,623,169 parameters, 244 tensors; ``zoo.build`` with one
training step, the weights' values do not matter here) loaded with
``zoo.from_pretrained(folder)`` (spec validation, safetensors header check:
format, family, spec hash, strict keys and shapes; build on the meta device,
``load_state_dict(assign=True)``), against ``diffusers.UNet2DModel``
configured to the same architecture by ``bench/ddpm_vs_diffusers.py:peer_unet``
(the same parameter count, 268 tensors), written with ``save_pretrained``
(safetensors) and loaded with ``UNet2DModel.from_pretrained(folder)`` (its
defaults: accelerate's empty weights, ``low_cpu_mem_usage=True``).

Secondary figures, three models of about 5.3 M parameters of different
architectures, each saved as safetensors and loaded the way each library's
documentation shows (the tensor counts differ, so the ratios are not like for
like):

* ours: a DCGAN generator, 64x64x1, ``model.base_channels=80`` (5,328,480
  parameters, 25 tensors), loaded with ``zoo.from_pretrained(folder)``;
* diffusers: ``UNet2DModel(sample_size=32, in_channels=1, out_channels=1,
  layers_per_block=2, block_out_channels=(64, 96, 128), down_block_types=
  (DownBlock2D, AttnDownBlock2D, DownBlock2D), up_block_types=(UpBlock2D,
  AttnUpBlock2D, UpBlock2D))`` (5,312,481 parameters, 270 tensors), loaded with
  ``UNet2DModel.from_pretrained(folder)``;
* timm: ``resnet10t`` with ``num_classes=800`` (5,332,888 parameters, 86
  tensors), its ``state_dict()`` written with ``safetensors.torch.save_file``
  and loaded with ``timm.create_model("resnet10t", pretrained=True,
  num_classes=800, pretrained_cfg_overlay=dict(file=..., num_classes=800))``
  (timm builds the model with random initialisation, then loads the file).

Besides the local-folder figures that are compared, one more line reports
``zoo.from_pretrained("bench/dcgan")``: the same model pushed to the
loopback Hub of ``zoo.testing.hubserver`` and already in the Hub cache, so it
measures what a Hub id adds on a warm cache (one ``model_info`` request, one
revision lookup by ``snapshot_download``, the cache checks).

Method: one process; every loader runs ``--warmup`` times, then ``--rounds``
rounds in which each loader runs once, the order rotating from round to round;
``gc.collect()`` before every call; wall time of the call alone
(``time.perf_counter``). Each loaded model is checked once against the saved
weights. Medians are reported, and ratios of medians ours / peer.
torch's thread count is left at its default.

Usage::

    python bench/load.py                 # 5 warm-up calls, 40 rounds
    python bench/load.py --quick         # 1 warm-up, 5 rounds (smoke test)

Results go to ``bench/results/load.json`` (``--quick``: ``load.quick.json``).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OURS = ["data.image_size=64", "model.base_channels=80", "model.disc_channels=16",
        "train.max_steps=1", "data.limit=64", "train.batch_size=16", "sample.n=4",
        "train.bn_batches=1", "train.precision=fp32"]
UNET = {"sample_size": 32, "in_channels": 1, "out_channels": 1, "layers_per_block": 2,
        "block_out_channels": (64, 96, 128),
        "down_block_types": ("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "AttnUpBlock2D", "UpBlock2D")}
TIMM = ("resnet10t", 800)
HEADLINE = "ours_ddpm/diffusers_same_unet"  # like for like: the same UNet on both sides
DDPM = ["train.max_steps=1", "data.limit=64", "train.batch_size=16", "sample.n=1",
        "sample.steps=1", "train.precision=fp32"]


def count(module: Any) -> tuple[int, int]:
    """(parameters, tensors in the state dict)."""
    return sum(p.numel() for p in module.parameters()), len(module.state_dict())


def same(module: Any, state: dict[str, Any]) -> bool:
    import torch

    mine = module.state_dict()
    return mine.keys() == state.keys() and all(torch.equal(mine[k], state[k]) for k in mine)


def prepare(tmp: Path) -> tuple[dict[str, Callable[[], Any]], dict[str, Any], Any]:
    """Write the three models; return loaders, facts about each, and the Hub server."""
    import timm
    import torch
    from ddpm_vs_diffusers import peer_unet
    from diffusers import UNet2DModel
    from safetensors.torch import load_file, save_file

    import zoo
    from zoo.testing.hubserver import HubServer

    folder = zoo.build("dcgan", None, OURS, tmp / "dcgan")
    ddpm_folder = zoo.build("ddpm-mnist", None, DDPM, tmp / "ddpm")
    same_unet_dir = tmp / "unet-ddpm"
    peer_unet(zoo.from_pretrained(ddpm_folder).spec).save_pretrained(same_unet_dir)
    unet_dir = tmp / "unet"
    UNet2DModel(**UNET).save_pretrained(unet_dir)
    name, classes = TIMM
    torch.manual_seed(0)
    timm_file = tmp / f"{name}.safetensors"
    save_file(timm.create_model(name, num_classes=classes).state_dict(), str(timm_file))

    server = HubServer(tmp / "hub", {"hf_bench": "bench"}).start()
    os.environ.update(HF_ENDPOINT=server.url, HF_TOKEN="hf_bench",
                      HF_HUB_CACHE=str(tmp / "hf-cache"))
    zoo.push(folder, "bench/dcgan")

    loaders = {  # the like-for-like pair first
        "ours_ddpm": lambda: zoo.from_pretrained(ddpm_folder).module,
        "diffusers_same_unet": lambda: UNet2DModel.from_pretrained(same_unet_dir),
        "ours": lambda: zoo.from_pretrained(folder).module,
        "diffusers": lambda: UNet2DModel.from_pretrained(unet_dir),
        "timm": lambda: timm.create_model(
            name, pretrained=True, num_classes=classes,
            pretrained_cfg_overlay={"file": str(timm_file), "num_classes": classes}),
        "ours_hub_id": lambda: zoo.from_pretrained("bench/dcgan").module,
    }
    saved = {"ours": load_file(str(folder / "model.safetensors")),
             "diffusers": load_file(str(unet_dir / "diffusion_pytorch_model.safetensors")),
             "timm": load_file(str(timm_file))}
    saved["ours_hub_id"] = saved["ours"]
    saved["ours_ddpm"] = load_file(str(ddpm_folder / "model.safetensors"))
    saved["diffusers_same_unet"] = load_file(
        str(same_unet_dir / "diffusion_pytorch_model.safetensors"))
    facts = {}
    for side, load in loaders.items():
        module = load()
        if not same(module, saved[side]):
            raise SystemExit(f"{side}: loaded weights differ from the saved ones")
        parameters, tensors = count(module)
        facts[side] = {"parameters": parameters, "tensors": tensors}
    return loaders, facts, server


def machine_info() -> dict[str, Any]:
    import torch

    cpu = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        cpu = next((line.split(":", 1)[1].strip() for line in fh
                    if line.startswith("model name")), cpu)
    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpu_model": cpu, "cpu_count": os.cpu_count(),
            "cores_available": len(os.sched_getaffinity(0)),
            "torch_threads": torch.get_num_threads(), "loadavg_at_start": os.getloadavg()}


def versions() -> dict[str, str]:
    return {dist: importlib.metadata.version(dist) for dist in
            ("torch", "diffusers", "timm", "safetensors", "huggingface_hub", "genzoo")}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=None, help="timed rounds (default 40)")
    p.add_argument("--warmup", type=int, default=None, help="untimed calls each (default 5)")
    p.add_argument("--quick", action="store_true", help="smoke test: 1 warm-up, 5 rounds")
    p.add_argument("--out", type=Path, default=None, help="JSON results path")
    args = p.parse_args(argv)
    args.rounds = args.rounds or (5 if args.quick else 40)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 5)
    args.out = args.out or HERE / "results" / ("load.quick.json" if args.quick else "load.json")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    machine = machine_info()
    with tempfile.TemporaryDirectory(prefix="bench_load_") as tmp:
        os.environ["ZOO_HOME"] = str(Path(tmp) / "zoo-home")
        loaders, facts, server = prepare(Path(tmp))
        try:
            names = list(loaders)
            for name in names:
                for _ in range(args.warmup):
                    loaders[name]()
            times: dict[str, list[float]] = {name: [] for name in names}
            for r in range(args.rounds):
                for name in names[r % len(names):] + names[:r % len(names)]:
                    gc.collect()
                    start = time.perf_counter()
                    loaders[name]()
                    times[name].append(time.perf_counter() - start)
        finally:
            server.stop()
    med = {name: statistics.median(t) for name, t in times.items()}
    ratios = {HEADLINE: med["ours_ddpm"] / med["diffusers_same_unet"],
              "ours/diffusers": med["ours"] / med["diffusers"],
              "ours/timm": med["ours"] / med["timm"],
              "ours_hub_id/diffusers": med["ours_hub_id"] / med["diffusers"]}
    for name in names:
        f = facts[name]
        print(f"load {name}: {med[name] * 1e3:.1f} ms median of {args.rounds} "
              f"({f['parameters']:,} parameters, {f['tensors']} tensors)")
    for key, value in ratios.items():
        what = "headline, the same UNet on both sides" if key == HEADLINE else (
            "secondary, different models")
        print(f"load ratio {key}: {value:.2f} ({what})")
    result = {
        "benchmark": "load a model from safetensors on disk, CPU: zoo.from_pretrained vs "
                     "diffusers UNet2DModel.from_pretrained on the same ddpm-mnist UNet "
                     "(headline), and ~5.3 M-parameter models of different architectures "
                     "vs diffusers and timm.create_model(pretrained=True, file=...)",
        "headline": HEADLINE,
        "machine": machine, "versions": versions(),
        "settings": {"rounds": args.rounds, "warmup": args.warmup, "ours": OURS,
                     "ours_ddpm": DDPM,
                     "diffusers_unet": UNET, "timm": {"model": TIMM[0], "num_classes": TIMM[1]}},
        "models": facts,
        "median_ms": {k: round(v * 1e3, 3) for k, v in med.items()},
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
        "times_ms": {k: [round(x * 1e3, 3) for x in v] for k, v in times.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
