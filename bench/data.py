"""Data at scale (issue 20): loader rate, peak memory, and a GPU feed check.

Three parts, each run with ``--only``:

* ``rate`` (acceptance 2): images/s of our loader alone (no model) from a JPEG
  folder and from WebDataset shards packed from it, at DataLoader workers 0, 1
  and 2, side by side with torchvision's ``ImageFolder(transform=Compose(
  [Resize(64), CenterCrop(64), ToTensor()]))`` + ``DataLoader(batch_size=64,
  shuffle=True, num_workers=W)``; and the DCGAN 64x64 RGB batch-64 train step's
  images/s (the step of ``bench/dcgan_train.py``: fp32 with the peer's settings,
  and our defaults, bf16 + fused Adam + channels-last). One timed call of a
  loader is one epoch over the rate folder, worker start-up included (what an
  epoch costs a user); one call of a step is ``--steps-per-call`` steps on a real
  batch of the folder. All configurations run in one process, interleaved round
  by round (order reversed every other round) after one warm-up call each;
  figures are medians over the rounds. Ratios: loader / step of the precision a
  default build uses (target >= 3x) and ours / torchvision per W (target >= 1x).
  Where ours loses at some W, the ``note`` field explains it with a per-image
  profile of the decode (file read, PIL decode, resize).
* ``rss`` (acceptance 1): ``zoo build dcgan`` 64x64 RGB (batch 64, 200 steps,
  ``run.data_workers=2``) on the small and the large folder, each in a
  subprocess; every 50 ms the RSS and the PSS (``/proc/PID/smaps_rollup``) are
  summed over the process and all its descendants (DataLoader workers). RSS
  counts pages shared by forked workers once per process; PSS divides them.
  Reported: both peaks and the large/small difference (target <= 10 %). For
  comparison, the in-memory path on the large folder: a child process (this
  script, ``--in-memory-child``) that decodes the whole train split into one
  float tensor with ``zoo.data.load_images(spec.data, "train", training=True)``,
  as the training loop did before issue 20, builds the same DCGAN trainer
  and trains the same number of steps on batches indexed from that tensor. It
  measures the decoded split (uint8 while decoding, then float32) + model +
  optimiser, without the model-folder writing ``zoo build`` does at the end.
* ``gpu`` (acceptance 6, ``--device cuda``; run by ``bench/gpu_data.sh``):
  DCGAN 64x64 at batch 256 with our defaults, the step time when every batch
  comes from the JPEG folder through our loader (workers = cores) vs the same
  step on batches already in GPU memory, interleaved in blocks of K steps.

The JPEG folders (photo-like: a colour gradient under low-frequency noise and a
few random shapes, 96-160 px, about 3 KB each, in 10 class subfolders that
``ImageFolder`` reads) are generated once, in parallel processes, under
``bench/.cache/`` (git-ignored), and so are the shards.

The two calls into code that issue 20 adds in parallel branches are isolated in
:func:`our_loader` (the ``feed`` helper, ``zoo.training.feed.open_feed``) and
:func:`pack_shards` (``zoo.api.pack_data``); where those are missing, each falls
back to a stand-in over what main has (``decode_rows`` of the indexed folder in
a DataLoader; ``webdataset.ShardWriter`` + a ``webdataset`` pipeline), and the
JSON records which one ran (``loader_impl``, ``pack_impl``).

Usage::

    python bench/data.py                 # 10,000 / 100,000 images; rate + rss
    python bench/data.py --quick         # 5,000 / 20,000 images, 20 steps: smoke test
    python bench/data.py --only rate     # one part
    python bench/data.py --only gpu --device cuda   # see bench/gpu_data.sh
    python bench/data.py --table bench/results/data.json   # the docs table

Results go to ``bench/results/data.json`` (``--quick``: ``data.quick.json``;
``gpu``: ``data.cuda.json``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
RESULTS = HERE / "results"
BATCH, SIZE, CLASSES = 64, 64, 10
GEN_VERSION = 1  # bump when the generated images change
WORKERS = (0, 1, 2)
STEP_TARGET, TV_TARGET, RSS_TARGET, GPU_TARGET = 3.0, 1.0, 0.10, 0.10
PARTS = ("rate", "rss", "gpu")
OURS_FP32_NAME = "ours fp32"  # bench/dcgan_train.py's OURS_FP32


# --------------------------------------------------------------------------- images


def make_image(i: int) -> bytes:
    """JPEG bytes of image ``i``: a gradient under low-frequency noise, with 2-5 shapes."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng([GEN_VERSION, i])
    w, h = (int(v) for v in rng.integers(96, 161, 2))
    c0, c1 = rng.integers(0, 256, (2, 3)).astype(np.float32)
    t = np.linspace(0, 1, w if rng.random() < 0.5 else h, dtype=np.float32)
    t = t[None, :, None] if len(t) == w else t[:, None, None]
    base = c0 * (1 - t) + c1 * t
    coarse = rng.normal(0, 28, (h // 12 + 2, w // 12 + 2, 3)).astype(np.float32)
    coarse = np.asarray(Image.fromarray(coarse[..., 0]).resize((w, h), Image.BILINEAR))
    pixels = np.clip(base + coarse[..., None] + rng.normal(0, 3, (h, w, 1)), 0, 255)
    img = Image.fromarray(np.broadcast_to(pixels, (h, w, 3)).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(2, 6))):
        x0, y0 = int(rng.integers(-20, w)), int(rng.integers(-20, h))
        x1, y1 = x0 + int(rng.integers(15, 70)), y0 + int(rng.integers(15, 70))
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        kind = rng.integers(3)
        if kind == 0:
            draw.ellipse((x0, y0, x1, y1), fill=fill)
        elif kind == 1:
            draw.rectangle((x0, y0, x1, y1), fill=fill)
        else:
            draw.polygon([(x0, y1), ((x0 + x1) // 2, y0), (x1, y1)], fill=fill)
    img = img.filter(ImageFilter.SMOOTH)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()


def _write_images(job: tuple[str, int, int]) -> int:
    """Write images ``start..stop`` under ``root``; returns their total bytes."""
    root, start, stop = job
    os.nice(10) if os.getpriority(os.PRIO_PROCESS, 0) < 10 else None
    total = 0
    for i in range(start, stop):
        data = make_image(i)
        (Path(root) / f"class_{i % CLASSES}" / f"img_{i:07d}.jpg").write_bytes(data)
        total += len(data)
    return total


def jpeg_folder(n: int, processes: int) -> Path:
    """The cached folder of ``n`` generated JPEGs (made once, in parallel, with progress)."""
    import multiprocessing

    root = CACHE / f"jpeg-{n}-v{GEN_VERSION}"
    if (root / ".complete").exists():
        return root
    tmp = root.with_name(root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    for c in range(CLASSES):
        (tmp / f"class_{c}").mkdir(parents=True)
    chunk = 500
    jobs = [(str(tmp), s, min(s + chunk, n)) for s in range(0, n, chunk)]
    started, done, size = time.perf_counter(), 0, 0
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        for nbytes, (_, s, e) in zip(pool.imap(_write_images, jobs), jobs, strict=True):
            done, size = done + e - s, size + nbytes
            print(f"\rmaking {n:,} JPEGs in {root}: {done:,}/{n:,} "
                  f"({size / max(done, 1) / 1e3:.1f} KB each)", end="", file=sys.stderr,
                  flush=True)
    print(f" done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    (tmp / ".complete").write_text(json.dumps({"images": n, "bytes": size}) + "\n")
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    return root


def folder_info(root: Path) -> dict[str, Any]:
    """Images, bytes and mean size of a generated folder."""
    info = json.loads((root / ".complete").read_text())
    return {"path": str(root), "images": info["images"], "mb": round(info["bytes"] / 1e6, 1),
            "kb_per_image": round(info["bytes"] / info["images"] / 1e3, 2)}


# --------------------------------------------------------------------------- adapters


def pack_shards(folder: Path, out: Path, shard_size: int = 1000) -> tuple[str, str]:
    """Pack ``folder`` into WebDataset shards under ``out`` (cached); returns the
    ``data.source`` value ``wds:OUT/shard-{000000..00000K}.tar`` and which packer ran.

    Adapter: ``zoo.api.pack_data`` (``zoo data pack``) where it exists, else a stand-in
    with ``webdataset.ShardWriter`` (key = relative path less its suffix, dots escaped).
    """
    try:
        from zoo.api import pack_data
    except ImportError:
        pack_data = None
    impl = "zoo.api.pack_data"
    done = out / ".complete"
    # shards the stand-in made are made again once zoo.api.pack_data exists
    if not done.exists() or (pack_data is not None and done.read_text().strip() != impl):
        tmp = out.with_name(out.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        if pack_data is not None:  # it makes OUT itself
            pack_data(str(folder), tmp, shard_size=shard_size)
        else:
            impl = "stand-in: webdataset.ShardWriter"
            tmp.mkdir()
            _pack_standin(folder, tmp, shard_size)
        (tmp / ".complete").write_text(impl + "\n")
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    impl = (out / ".complete").read_text().strip()
    shards = sorted(p.name for p in out.glob("*.tar"))
    numbered = [re.fullmatch(r"shard-(\d{6})\.tar", s) for s in shards]
    if shards and all(numbered) and [int(m[1]) for m in numbered] == list(range(len(shards))):
        return f"wds:{out}/shard-{{000000..{len(shards) - 1:06d}}}.tar", impl
    return f"wds:{out}/{{{','.join(shards)}}}", impl


def _pack_standin(folder: Path, out: Path, shard_size: int) -> None:
    import webdataset as wds

    files = sorted(p for p in folder.rglob("*.jpg"))
    with wds.ShardWriter(str(out / "shard-%06d.tar"), maxcount=shard_size, verbose=0) as sink:
        for f in files:
            rel = f.relative_to(folder).as_posix()
            sink.write({"__key__": rel.rsplit(".", 1)[0].replace(".", "_"),
                        "jpg": f.read_bytes(), "cls": int(f.parent.name.split("_")[1])})


@dataclass
class Loader:
    """A loader as the bench uses it: ``epoch(seed)`` yields (float images, labels) batches
    for one epoch; ``close()`` ends its workers; ``impl`` says what ran."""

    epoch: Callable[[int], Iterator[tuple[Any, Any]]]
    close: Callable[[], None]
    impl: str


def data_sets(source: str, image_size: int = SIZE, batch: int = BATCH) -> list[str]:
    """The ``--set`` overrides of a 64x64 RGB DCGAN on ``source`` (a folder or ``wds:``)."""
    where = ([f"data.source={source}"] if source.startswith("wds:")
             else ["data.source=folder", f"data.path={source}"])
    return [*where, "data.channels=3", f"data.image_size={image_size}",
            f"train.batch_size={batch}"]


def our_loader(sets: list[str], workers: int, device: str = "cpu") -> Loader:
    """Our loader for the DCGAN spec ``sets`` (see :func:`data_sets`) at ``workers``
    DataLoader workers, delivering float images in [0, 1] on ``device``.

    Adapter: the ``feed`` helper (``zoo.training.feed.open_feed``) where it exists, else
    a stand-in over main's indexed folder (``decode_rows`` in a DataLoader) or, for
    ``wds:``, a ``webdataset`` pipeline decoding with ``zoo.data.decode_raw``.
    """
    import torch

    try:
        from zoo.training.feed import open_feed
    except ImportError:
        open_feed = None
    if open_feed is not None:
        from zoo.api import resolve_spec

        _, spec = resolve_spec("dcgan", None, [*sets, f"run.data_workers={workers}"])
        feed = open_feed(spec, device=device, rank=0, world=1)
        per_epoch = feed.n // spec.train.batch_size  # assumed: .n = training images

        def epoch(seed: int) -> Iterator[tuple[Any, Any]]:
            # assumed: batches(start step, total steps, rng); an epoch = per_epoch steps
            start = seed * per_epoch
            return feed.batches(start, start + per_epoch, torch.Generator().manual_seed(0))

        return Loader(epoch, feed.close, "zoo.training.feed.open_feed")
    source = next(s.split("=", 1)[1] for s in sets if s.startswith("data.source="))
    if source.startswith("wds:"):
        return _wds_standin(source[4:], workers, device)
    return _folder_standin(sets, workers, device)


def _to_float(images: Any, device: str) -> Any:
    """uint8 -> float32 in [0, 1] on ``device``, in one pass (x / 255, as to_float)."""
    return images.to(device, non_blocking=True).div(255)


class _BatchRows:
    """Map-style data set whose item ``b`` is batch ``b`` of an order, decoded."""

    def __init__(self, source: Any, order: np.ndarray, batch: int) -> None:
        self.source, self.order, self.batch = source, order, batch

    def __len__(self) -> int:
        return len(self.order) // self.batch

    def __getitem__(self, b: int) -> Any:
        import torch

        from zoo.data import decode_rows

        rows = self.order[b * self.batch:(b + 1) * self.batch]
        return torch.from_numpy(decode_rows(self.source, rows, "RGB", SIZE).images)


def _folder_standin(sets: list[str], workers: int, device: str) -> Loader:
    import torch

    from zoo.api import resolve_spec
    from zoo.data import open_source
    from zoo.data.split import view

    _, spec = resolve_spec("dcgan", None, sets)
    source = open_source(spec.data, "train")
    rows = view(source, "train", spec.data)
    batch = spec.train.batch_size

    def epoch(seed: int) -> Iterator[tuple[Any, Any]]:
        order = rows[np.random.default_rng(seed).permutation(len(rows))]
        loader = torch.utils.data.DataLoader(
            _BatchRows(source, order, batch), batch_size=None, num_workers=workers,
            pin_memory=device != "cpu")
        for images in loader:
            yield _to_float(images, device), None

    return Loader(epoch, lambda: None, "stand-in: decode_rows of main's FolderSource "
                  "in a DataLoader (one item = one batch)")


def _wds_standin(pattern: str, workers: int, device: str) -> Loader:
    import torch
    import webdataset as wds

    from zoo.data.decode import decode_raw

    def decode(sample: dict) -> tuple[np.ndarray, int]:
        return decode_raw(sample["jpg"], "RGB", SIZE, name=sample["__key__"]), int(sample["cls"])

    def collate(samples: list) -> tuple[Any, Any]:
        images = np.stack([s[0] for s in samples]).transpose(0, 3, 1, 2)
        return (torch.from_numpy(np.ascontiguousarray(images)),
                torch.tensor([s[1] for s in samples]))

    def epoch(seed: int) -> Iterator[tuple[Any, Any]]:
        ds = (wds.WebDataset(pattern, shardshuffle=False, nodesplitter=None,
                             workersplitter=wds.split_by_worker, empty_check=False)
              .shuffle(1000, seed=seed).map(decode).batched(BATCH, collation_fn=collate,
                                                           partial=False))
        loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers,
                                             pin_memory=device != "cpu")
        for images, labels in loader:
            yield _to_float(images, device), labels

    return Loader(epoch, lambda: None, "stand-in: webdataset.WebDataset + decode_raw "
                  "in a DataLoader (sequential shards, shuffle buffer 1000)")


def torchvision_loader(folder: Path, workers: int, device: str = "cpu") -> Loader:
    """``ImageFolder`` + ``DataLoader(batch_size=64, shuffle=True, num_workers=W)`` with the
    usual transform ``Resize, CenterCrop, ToTensor`` (float in [0, 1], made in the
    workers), moved to ``device``: the same product as ours, what a train step takes."""
    import torch
    from torchvision import datasets, transforms

    ds = datasets.ImageFolder(str(folder), transform=transforms.Compose(
        [transforms.Resize(SIZE), transforms.CenterCrop(SIZE), transforms.ToTensor()]))

    def epoch(seed: int) -> Iterator[tuple[Any, Any]]:
        g = torch.Generator().manual_seed(seed)
        for images, labels in torch.utils.data.DataLoader(
                ds, batch_size=BATCH, shuffle=True, num_workers=workers, generator=g):
            yield images.to(device, non_blocking=True), labels

    return Loader(epoch, lambda: None, "torchvision.datasets.ImageFolder + DataLoader")


# --------------------------------------------------------------------------- rate


def build_step(sets: list[str], overrides: list[str], batch01: Any) -> tuple[Callable, str, Any]:
    """A train step of our DCGAN as ``bench/dcgan_train.py`` builds it; returns the step,
    the precision it runs and the trainer."""
    sys.path.insert(0, str(HERE))
    from dcgan_train import build_ours, our_step

    trainer, precision = build_ours([*sets, "run.device=" + batch01.device.type, *overrides])
    return our_step(trainer, batch01), precision, trainer


def default_precision(sets: list[str]) -> str:
    """The precision a default build of this spec runs on this machine."""
    from zoo.api import resolve_spec
    from zoo.training.runtime import make_accelerator

    _, spec = resolve_spec("dcgan", None, sets)
    return make_accelerator(spec)[1]


def consume(loader: Loader, seed: int) -> int:
    """Images delivered by one epoch of ``loader``."""
    n = 0
    for images, _ in loader.epoch(seed):
        n += len(images)
    return n


def timed_rounds(calls: dict[str, Callable[[], int]], rounds: int) -> dict[str, list[float]]:
    """Images/s of each call per round; one warm-up call each, then interleaved rounds
    (order reversed every other round). A call returns the images it handled."""
    for call in calls.values():
        call()
    rates: dict[str, list[float]] = {n: [] for n in calls}
    names = list(calls)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            images = calls[name]()
            rates[name].append(images / (time.perf_counter() - start))
        print(f"  round {r + 1}/{rounds}: " + ", ".join(
            f"{n} {rates[n][-1]:.0f}" for n in names) + " img/s", file=sys.stderr, flush=True)
    return rates


def profile_decode(folder: Path, n: int = 300) -> dict[str, float]:
    """Microseconds per image, in this process, of each stage of both decodes."""
    from PIL import Image
    from torchvision import transforms

    from zoo.data.decode import decode_raw

    files = sorted(folder.rglob("*.jpg"))[:n]
    tv = transforms.Compose([transforms.Resize(SIZE), transforms.CenterCrop(SIZE),
                             transforms.ToTensor()])

    def per_image(fn: Callable[[Path], Any]) -> float:
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            for f in files:
                fn(f)
            best = min(best, time.perf_counter() - start)
        return round(best / len(files) * 1e6, 1)

    def pil_load(f: Path) -> Any:
        with Image.open(f) as im:
            return im.convert("RGB")

    def pil_draft(f: Path) -> Any:
        with Image.open(f) as im:
            im.draft("RGB", (SIZE, SIZE))
            return im.convert("RGB")

    decoded = {f: pil_load(f) for f in files}

    def resize(f: Path, method: Any) -> Any:
        im = decoded[f]
        scale = SIZE / min(im.size)
        return im.resize((max(SIZE, round(im.width * scale)),
                          max(SIZE, round(im.height * scale))), method)

    import torch

    from zoo.data import to_float

    batch = torch.randint(0, 256, (BATCH, 3, SIZE, SIZE), dtype=torch.uint8)
    start = time.perf_counter()
    for _ in range(20):
        to_float(batch, 3, SIZE)
    to_float_us = (time.perf_counter() - start) / 20 / BATCH * 1e6
    idle = 0.0  # the same with the thread pool idle in between, as between decoded batches
    for _ in range(10):
        time.sleep(0.03)
        start = time.perf_counter()
        to_float(batch, 3, SIZE)
        idle += time.perf_counter() - start
    return {"read_bytes_us": per_image(lambda f: f.read_bytes()),
            "to_float_us": round(to_float_us, 1),
            "to_float_after_idle_us": round(idle / 10 / BATCH * 1e6, 1),
            "pil_open_decode_us": per_image(pil_load),
            "pil_open_draft_decode_us": per_image(pil_draft),
            "resize_bicubic_us": per_image(lambda f: resize(f, Image.Resampling.BICUBIC)),
            "resize_bilinear_us": per_image(lambda f: resize(f, Image.Resampling.BILINEAR)),
            "ours_decode_raw_us": per_image(lambda f: decode_raw(f, "RGB", SIZE, name=f.name)),
            "torchvision_transform_us": per_image(lambda f: tv(pil_load(f))),
            "images": len(files)}


def run_rate(args: argparse.Namespace, folder: Path, result: dict[str, Any]) -> None:
    import torch

    sys.path.insert(0, str(HERE))
    from dcgan_train import OUR_CONFIGS, OURS_DEFAULT, OURS_FP32, conv_output_dtypes

    torch.set_num_threads(args.threads)
    pattern, pack_impl = pack_shards(folder, CACHE / f"{folder.name}-shards",
                                     shard_size=args.shard_size)
    sets = data_sets(str(folder))
    loaders: dict[str, Loader] = {}
    for w in WORKERS:
        loaders[f"ours folder W={w}"] = our_loader(sets, w)
        loaders[f"ours wds W={w}"] = our_loader(data_sets(pattern), w)
        loaders[f"torchvision W={w}"] = torchvision_loader(folder, w)
    seeds = {name: iter(range(10**6)) for name in loaders}
    calls: dict[str, Callable[[], int]] = {
        name: (lambda name=name: consume(loaders[name], next(seeds[name]))) for name in loaders}

    first = next(iter(loaders[f"ours folder W={WORKERS[0]}"].epoch(0)))[0][:BATCH].contiguous()
    steps, precisions, probes = {}, {}, {}
    for name, overrides in OUR_CONFIGS.items():  # fp32 first, as bench/dcgan_train.py does
        step, precisions[name], trainer = build_step(sets, overrides, first)
        steps[name] = step
        probes[name] = conv_output_dtypes(trainer, step)
    k = args.steps_per_call

    def run_steps(step: Callable) -> int:
        for _ in range(k):
            step()
        return k * BATCH

    calls |= {f"step {name}": (lambda s=s: run_steps(s)) for name, s in steps.items()}
    print(f"rate: {folder_info(folder)['images']:,} images, rounds {args.rounds}, "
          f"{k} steps per step call, threads {torch.get_num_threads()}", file=sys.stderr)
    per_round = timed_rounds(calls, args.rounds)
    for loader in loaders.values():
        loader.close()
    rates = {n: statistics.median(r) for n, r in per_round.items()}

    default = default_precision(sets)
    step_name = f"step {OURS_DEFAULT if default == 'bf16' else OURS_FP32}"
    step_rate = rates[step_name]
    ratios: dict[str, float] = {}
    losses = []
    for w in WORKERS:
        tv = rates[f"torchvision W={w}"]
        for kind in ("folder", "wds"):
            ours = rates[f"ours {kind} W={w}"]
            ratios[f"ours {kind} W={w} / step"] = ours / step_rate
            ratios[f"ours {kind} W={w} / torchvision W={w}"] = ours / tv
            if ours < TV_TARGET * tv:
                losses.append(f"{kind} W={w} ({ours:.0f} vs {tv:.0f} img/s)")
    profile = profile_decode(folder)
    note = ""
    if losses:
        note = (f"ours loses to torchvision at {', '.join(losses)}. Per image, in one "
                f"process: reading the file {profile['read_bytes_us']} us, PIL decode "
                f"{profile['pil_open_decode_us']} us ({profile['pil_open_draft_decode_us']} us "
                f"with JPEG draft: images under 2x the target size are not reduced), the "
                f"short-side resize to {SIZE} px BICUBIC (ours, zoo.data.decode.resize_crop) "
                f"{profile['resize_bicubic_us']} us vs BILINEAR (torchvision's Resize) "
                f"{profile['resize_bilinear_us']} us; whole decode: our decode_raw "
                f"{profile['ours_decode_raw_us']} us, torchvision's transform "
                f"{profile['torchvision_transform_us']} us (ToTensor's float conversion "
                f"included, in the worker). Ours converts each batch to float in [0, 1] in "
                f"the main process (zoo.data.to_float): {profile['to_float_us']} us per image "
                f"back to back, {profile['to_float_after_idle_us']} us after 30 ms idle as "
                "between two decoded batches. "
                "On a machine whose cores other jobs share, W=1/2 figures vary by tens of "
                "percent from round to round (images_per_s_per_round).")
    result["rate"] = {
        "folder": folder_info(folder), "shards": pattern, "pack_impl": pack_impl,
        "loader_impl": {n: loaders[n].impl for n in loaders},
        "call": {"loader": "one epoch (worker start-up included)",
                 "step": f"{k} steps of batch {BATCH}"},
        "rounds": args.rounds, "images_per_s_per_round": per_round,
        "images_per_s": {n: round(r, 1) for n, r in rates.items()},
        "step_precision": precisions, "step_conv_output_dtypes": probes,
        "default_precision": default, "step_compared": step_name,
        "ratios": {n: round(r, 3) for n, r in ratios.items()},
        "targets": {"loader / step": STEP_TARGET, "ours / torchvision": TV_TARGET},
        "profile_us_per_image": profile, "note": note}
    for n, r in rates.items():
        print(f"data rate {n}: {r:.0f} img/s")
    for n, r in ratios.items():
        target = STEP_TARGET if n.endswith("/ step") else TV_TARGET
        print(f"data rate {n}: {r:.2f}x (target >= {target:g}x)"
              + ("" if r >= target else "  MISSED"))
    if note:
        print(f"data rate note: {note}")


# --------------------------------------------------------------------------- memory


def _children(pid: int) -> list[int]:
    """The child processes of ``pid`` (forked by any of its threads)."""
    kids: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.scandir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                kids.extend(int(k) for k in Path(task.path, "children").read_text().split())
    return kids


def tree_memory(pid: int) -> tuple[int, int, int]:
    """RSS and PSS in bytes summed over ``pid`` and its descendants, and their count."""
    todo, rss, pss, count = [pid], 0, 0, 0
    while todo:
        p = todo.pop()
        todo.extend(_children(p))
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1]) * 1024
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1]) * 1024
            count += 1
    return rss, pss, count


def peak_memory(cmd: list[str], interval: float = 0.05) -> dict[str, Any]:
    """Run ``cmd``; sample its process tree's RSS and PSS every ``interval`` s."""
    with tempfile.TemporaryFile() as log:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=lambda: os.nice(10))
        peak = {"rss": 0, "pss": 0, "processes": 0}
        samples = 0
        while proc.poll() is None:
            rss, pss, count = tree_memory(proc.pid)
            peak = {"rss": max(peak["rss"], rss), "pss": max(peak["pss"], pss),
                    "processes": max(peak["processes"], count)}
            samples += 1
            time.sleep(interval)
        wall = time.perf_counter() - start
        log.seek(0)
        tail = log.read().decode(errors="replace").strip().splitlines()[-5:]
    out = {"peak_rss_mb": round(peak["rss"] / 2**20, 1),
           "peak_pss_mb": round(peak["pss"] / 2**20, 1),
           "max_processes": peak["processes"], "samples": samples, "wall_s": round(wall, 1),
           "exit": proc.returncode}
    if proc.returncode:
        out["log_tail"] = tail
    return out


def build_sets(folder: Path, steps: int, workers: int = 2) -> list[str]:
    """The spec of the memory builds: DCGAN 64x64 RGB, batch 64, ``steps`` steps."""
    return [*data_sets(str(folder)), f"train.max_steps={steps}",
            f"run.data_workers={workers}"]


def in_memory_child(folder: Path, steps: int) -> None:
    """The pre-issue-20 path: the whole train split decoded into one float tensor, then the
    same DCGAN trained ``steps`` steps on batches indexed from it (see the module doc)."""
    import torch

    from zoo.api import resolve_spec
    from zoo.data import load_images
    from zoo.training.runtime import make_accelerator, seed_everything

    family, spec = resolve_spec("dcgan", None, build_sets(folder, steps))
    accelerator, _ = make_accelerator(spec)
    seed_everything(0)
    images, _ = load_images(spec.data, "train", training=True)
    impl = family.load()
    trainer = impl.trainer(spec, impl.build(spec), accelerator)
    trainer.start(images)
    rng = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(len(images), (spec.train.batch_size,), generator=rng)
        trainer.begin_step()
        trainer.step(trainer.in_layout(images[idx]), None, rng)
    print(f"in-memory: {len(images):,} images, {images.numel() * 4 / 2**20:.0f} MiB float32")


def run_rss(args: argparse.Namespace, small: Path, large: Path,
            result: dict[str, Any]) -> None:
    steps = args.rss_steps
    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="zoo-data-bench-") as tmp:
        for label, folder in (("small", small), ("large", large)):
            n = folder_info(folder)["images"]
            cmd = [sys.executable, "-m", "zoo", "build", "dcgan", "--quiet", "--out",
                   f"{tmp}/{label}"] + [a for s in build_sets(folder, steps)
                                        for a in ("--set", s)]
            print(f"rss: zoo build dcgan on {n:,} images, {steps} steps", file=sys.stderr)
            runs[f"zoo build {n}"] = peak_memory(cmd) | {"images": n}
        n = folder_info(large)["images"]
        print(f"rss: in-memory path on {n:,} images, {steps} steps", file=sys.stderr)
        runs[f"in-memory {n}"] = peak_memory(
            [sys.executable, __file__, "--in-memory-child", str(large), "--rss-steps",
             str(steps)]) | {"images": n}
    names = list(runs)
    if any(r["exit"] for r in runs.values()):  # a failed build's peak compares nothing
        diff = {"rss": None, "pss": None}
    else:
        diff = {m: (runs[names[1]][f"peak_{m}_mb"] - runs[names[0]][f"peak_{m}_mb"])
                / runs[names[0]][f"peak_{m}_mb"] for m in ("rss", "pss")}
    result["rss"] = {
        "spec": build_sets(Path("FOLDER"), steps), "sample_interval_s": 0.05,
        "what": "peak over the sampled process tree (the build and its DataLoader workers); "
                "in-memory = load_images of the whole train split + the same steps "
                "(bench/data.py --in-memory-child), no model folder written",
        "runs": runs,
        "large_vs_small": {m: None if d is None else round(d, 4) for m, d in diff.items()},
        "target": RSS_TARGET}
    for name, r in runs.items():
        print(f"data rss {name}: peak RSS {r['peak_rss_mb']:.0f} MB, PSS "
              f"{r['peak_pss_mb']:.0f} MB ({r['max_processes']} processes, {r['wall_s']} s"
              + (f", EXIT {r['exit']}" if r["exit"] else "") + ")")
    for m, d in diff.items():
        print(f"data rss {names[1]} vs {names[0]} {m.upper()}: " + (
            "not compared (a build failed)" if d is None else f"{d:+.1%} (target <= "
            f"{RSS_TARGET:.0%})" + ("" if abs(d) <= RSS_TARGET else "  MISSED")))


# --------------------------------------------------------------------------- gpu


def run_gpu(args: argparse.Namespace, folder: Path, result: dict[str, Any]) -> None:
    """Step time fed from the JPEG folder vs on batches resident in GPU memory."""
    import torch

    sys.path.insert(0, str(HERE))
    from dcgan_train import OUR_CONFIGS, OURS_DEFAULT

    batch, k, workers, device = args.gpu_batch, args.steps_per_call, args.gpu_workers, args.device
    sets = data_sets(str(folder), batch=batch)
    loader = our_loader(sets, workers, device=device)

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    def endless() -> Iterator[Any]:
        seed = 0
        while True:
            for images, _ in loader.epoch(seed):
                yield images
            seed += 1

    feed = endless()
    resident = [next(feed).clone() for _ in range(8)]
    _, precision, trainer = build_step(sets, OUR_CONFIGS[OURS_DEFAULT], resident[0])
    rng = torch.Generator(device=device).manual_seed(0)

    def fed() -> int:
        for _ in range(k):
            trainer.begin_step()
            trainer.step(trainer.in_layout(next(feed)), None, rng)
        sync()
        return k * batch

    laid_out = [trainer.in_layout(x) for x in resident]

    def in_memory() -> int:
        for i in range(k):
            trainer.begin_step()
            trainer.step(laid_out[i % len(laid_out)], None, rng)
        sync()
        return k * batch

    per_round = timed_rounds({"fed from JPEG folder": fed, "batches in GPU memory": in_memory},
                             args.rounds)
    loader.close()
    rates = {n: statistics.median(r) for n, r in per_round.items()}
    step_ms = {n: batch / r * 1e3 for n, r in rates.items()}
    slower = step_ms["fed from JPEG folder"] / step_ms["batches in GPU memory"] - 1
    result["gpu"] = {"folder": folder_info(folder), "batch": batch, "workers": workers,
                     "precision": precision, "steps_per_call": k, "rounds": args.rounds,
                     "loader_impl": loader.impl, "images_per_s_per_round": per_round,
                     "images_per_s": {n: round(r, 1) for n, r in rates.items()},
                     "step_ms": {n: round(v, 3) for n, v in step_ms.items()},
                     "fed_vs_resident": round(slower, 4), "target": GPU_TARGET}
    for n, v in step_ms.items():
        print(f"data gpu b{batch} {n}: {v:.2f} ms/step ({rates[n]:.0f} img/s)")
    print(f"data gpu b{batch} fed vs resident: {slower:+.1%} (target <= {GPU_TARGET:.0%})"
          + ("" if slower <= GPU_TARGET else "  MISSED"))


# --------------------------------------------------------------------------- table


def markdown_table(result: dict[str, Any]) -> str:
    """The docs/benchmarks.md tables of a results file (the parts it holds)."""
    out: list[str] = []
    if "rate" in result:
        r = result["rate"]
        rates, ratios = r["images_per_s"], r["ratios"]
        step = rates[r["step_compared"]]
        out += [f"DCGAN 64×64 RGB train step, batch 64, {r['default_precision']} (what a "
                f"default build runs): **{step:,.0f} images/s** (fp32: "
                f"{rates['step ' + OURS_FP32_NAME]:,.0f}).", "",
                f"| loader, W workers | ours, images/s | torchvision, images/s | ours / "
                f"torchvision (≥ {TV_TARGET:g}×) | ours / step (≥ {STEP_TARGET:g}×) |",
                "|---|---|---|---|---|"]
        for kind, label in (("folder", "JPEG folder"), ("wds", "`wds:` shards")):
            for w in WORKERS:
                ours = rates[f"ours {kind} W={w}"]
                out.append(f"| {label}, W={w} | {ours:,.0f} | {rates[f'torchvision W={w}']:,.0f} "
                           f"| {ratios[f'ours {kind} W={w} / torchvision W={w}']:.2f}× | "
                           f"{ratios[f'ours {kind} W={w} / step']:.1f}× |")
        out.append("")
    if "rss" in result:
        m = result["rss"]
        out += ["| build (peak over the process and its workers) | images | peak RSS, MB | "
                "peak PSS, MB | wall, s |", "|---|---|---|---|---|"]
        for name, run in m["runs"].items():
            out.append(f"| {name.rsplit(' ', 1)[0]} | {run['images']:,} | "
                       f"{run['peak_rss_mb']:,.0f} | {run['peak_pss_mb']:,.0f} | {run['wall_s']} |")
        d = m["large_vs_small"]
        shown = {k: "failed" if v is None else f"{v:+.1%}" for k, v in d.items()}
        out += ["", f"Large vs small folder: RSS {shown['rss']}, PSS {shown['pss']} "
                f"(target ≤ {RSS_TARGET:.0%}).", ""]
    if "gpu" in result:
        g = result["gpu"]
        ms = g["step_ms"]
        out.append(f"GPU, batch {g['batch']}, W={g['workers']}: "
                   f"{ms['fed from JPEG folder']:.2f} ms/step fed from the JPEG folder, "
                   f"{ms['batches in GPU memory']:.2f} ms/step on batches in GPU memory "
                   f"({g['fed_vs_resident']:+.1%}; target ≤ {GPU_TARGET:.0%}).")
    return "\n".join(out).rstrip()


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", choices=("rate", "rss", "gpu"), action="append",
                   help="run these parts (default: rate and rss)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 5,000 / 20,000 images, 3 rounds, 20 build steps (both "
                        "train views above data.fit_images = 4,096, which a streamed build "
                        "holds in memory)")
    p.add_argument("--sizes", type=int, nargs=2, default=None, metavar=("SMALL", "LARGE"),
                   help="images in the two folders (default 10,000 100,000)")
    p.add_argument("--rounds", type=int, default=None, help="timed rounds (default 5)")
    p.add_argument("--steps-per-call", type=int, default=None,
                   help="train steps per timed step call (default 5; gpu 20)")
    p.add_argument("--rss-steps", type=int, default=None, help="build steps (default 200)")
    p.add_argument("--shard-size", type=int, default=1000, help="images per shard")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                   help="torch threads of the step (default: the cores available)")
    p.add_argument("--processes", type=int, default=len(os.sched_getaffinity(0)),
                   help="processes generating the folders")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="where the gpu part trains (cpu: a smoke test of that part)")
    p.add_argument("--gpu-batch", type=int, default=256)
    p.add_argument("--gpu-workers", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--out", type=Path, default=None, help="JSON results path")
    p.add_argument("--table", type=Path, default=None, metavar="JSON",
                   help="print the docs/benchmarks.md table of a results file and exit")
    p.add_argument("--in-memory-child", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.only = args.only or (["gpu"] if args.device == "cuda" else ["rate", "rss"])
    args.sizes = args.sizes or ((5000, 20_000) if args.quick else (10_000, 100_000))
    args.rounds = args.rounds or (3 if args.quick else 5)
    args.steps_per_call = args.steps_per_call or (20 if "gpu" in args.only else
                                                  2 if args.quick else 5)
    args.rss_steps = args.rss_steps or (20 if args.quick else 200)
    suffix = (".cuda" if args.device == "cuda" else "") + (".quick" if args.quick else "")
    args.out = args.out or RESULTS / f"data{suffix}.json"
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.table is not None:
        print(markdown_table(json.loads(args.table.read_text())))
        return
    if args.in_memory_child is not None:
        in_memory_child(args.in_memory_child, args.rss_steps)
        return
    from importlib.metadata import PackageNotFoundError, version

    from benchlib import machine_info

    try:
        torchvision_version = version("torchvision")
    except PackageNotFoundError:  # only the rate part needs it
        torchvision_version = "not installed"

    small, large = (jpeg_folder(n, args.processes) for n in args.sizes)
    result: dict[str, Any] = {
        "benchmark": "data loading at scale (issue 20): loader rate, peak memory, GPU feed",
        "machine": machine_info() | {"torchvision": torchvision_version},
        "settings": {"quick": args.quick, "sizes": args.sizes, "rounds": args.rounds,
                     "steps_per_call": args.steps_per_call, "rss_steps": args.rss_steps,
                     "batch": BATCH, "image_size": SIZE, "workers": WORKERS,
                     "only": args.only},
        "folders": [folder_info(small), folder_info(large)]}
    if "rate" in args.only:
        run_rate(args, small, result)
    if "rss" in args.only:
        run_rss(args, small, large, result)
    if "gpu" in args.only:
        run_gpu(args, large, result)
    write_result(args.out, result)


def write_result(out: Path, result: dict[str, Any]) -> None:
    """Write ``result`` to ``out``, keeping the parts of an earlier file this run did not
    redo (``--only``); each part says when it was measured."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for part in PARTS:
        if part in result:
            result[part]["measured"] = now
    with contextlib.suppress(OSError, ValueError):
        earlier = json.loads(out.read_text())
        for part in PARTS:
            if part not in result and part in earlier:
                result[part] = {"settings_then": earlier.get("settings")} | earlier[part]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(out)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
