"""The one training loop every family's trainer plugs into.

A family provides ``trainer(spec, model, accelerator) -> Trainer``; the loop
owns everything else: device and precision (accelerate), seeding, the data
order, progress, periodic and interrupt checkpoints, ``--resume``, and writing
the model folder atomically.

Several processes (``torchrun``/``accelerate launch``, or ``zoo build
--processes N``): ``train.batch_size`` is the global batch, and each process
trains on its own equal share of every global batch. Every process draws the
whole global batch's random numbers from the same generator and keeps its
rows (:class:`Draws`), so an example gets the same noise for any process
count. Each optimiser averages exactly its own parameters' gradients across
processes in :meth:`Trainer.update` (one all-reduce per update; a GAN's G
update never syncs D). Batch norm uses each process's share (or
``run.sync_batchnorm`` on GPUs). Only the main process writes checkpoints
and the model folder; checkpoints hold no per-process state, so a build can
resume with a different process count.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import Aborted, ArtifactError, DataError, Interrupted, SpecError

if TYPE_CHECKING:
    import torch
    from accelerate import Accelerator
    from torch import nn

    from zoo.records import FamilyRecord
    from zoo.spec import Spec, TrainSpec

CHECKPOINT_SUFFIX = ".ckpt"


# --------------------------------------------------------------------------- devices


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


def check_global_batch(batch_size: int, processes: int) -> None:
    """``train.batch_size`` is the global batch: each of the processes must get an equal share."""
    if batch_size % processes:
        raise SpecError(f"train.batch_size = {batch_size} is the global batch; it must be "
                        f"divisible by --processes {processes}")


# --------------------------------------------------------------------------- draws


class Draws:
    """Random draws for this process's rows of a global batch.

    ``randn(n, ...)`` draws ``n * world`` rows from the generator and returns
    rows ``rank * n`` to ``(rank + 1) * n``. With one process it is exactly
    ``torch.randn``; with several, every example gets the numbers it would get
    in a single-process run, and no two processes share noise.
    """

    def __init__(self, rank: int = 0, world: int = 1) -> None:
        self.rank, self.world = rank, world

    def rows(self, x: torch.Tensor) -> torch.Tensor:
        """This process's rows of a global-batch tensor (all of it for one process)."""
        if self.world == 1:
            return x
        n = len(x) // self.world
        return x[self.rank * n:(self.rank + 1) * n]

    def _global(self, size: tuple) -> tuple[int, ...]:
        if len(size) == 1 and not isinstance(size[0], int):
            size = tuple(size[0])
        return (size[0] * self.world, *size[1:])

    def randn(self, *size: Any, generator: torch.Generator, device: Any) -> torch.Tensor:
        """Standard normal draws of this process's rows (``size`` as for ``torch.randn``)."""
        import torch

        return self.rows(torch.randn(self._global(size), generator=generator, device=device))

    def rand(self, *size: Any, generator: torch.Generator, device: Any) -> torch.Tensor:
        """Uniform [0, 1) draws of this process's rows."""
        import torch

        return self.rows(torch.rand(self._global(size), generator=generator, device=device))

    def randint(self, high: int, size: tuple[int, ...], generator: torch.Generator,
                device: Any) -> torch.Tensor:
        """Integers in [0, high) for this process's rows."""
        import torch

        return self.rows(torch.randint(high, self._global((size,)), generator=generator,
                                       device=device))


#: Draws of a single process (plain torch draws).
LOCAL = Draws()


# --------------------------------------------------------------------------- trainer base


class Trainer:
    """Base of a family's training logic.

    A subclass registers its modules (the sampling model under ``"model"``) with
    :meth:`add_module` and its optimisers with :meth:`adam`, and implements
    :meth:`step`. Everything registered is checkpointed and resumed.
    """

    def __init__(self, spec: Spec, model: nn.Module, accelerator: Accelerator) -> None:
        self.spec = spec
        self.accelerator = accelerator
        self.device = accelerator.device
        self.rank, self.world = accelerator.process_index, accelerator.num_processes
        self.draws = Draws(self.rank, self.world)
        self.modules: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.base_lrs: dict[str, float] = {}
        self.progress = 0.0  # fraction of training done; the loop sets it before each step
        self.steps_done = 0  # optimisation steps before the current one; set with progress
        # compiled modules get their layouts from the compiler (inductor's layout
        # optimisation); given channels-last weights as well, torch 2.11's compiled
        # backward on CUDA failed a stride assertion in convolution_backward
        eager_nhwc = spec.run.channels_last and not spec.run.compile
        self.memory_format = "channels_last" if eager_nhwc else "contiguous_format"
        # provenance: how each session of a (resumed) build ran; see runs()
        self.history: list[dict[str, Any]] = []  # earlier sessions, from the checkpoint
        self.session: dict[str, Any] = {}  # this one; the loop fills it in
        self.ema = None
        if spec.train.ema_decay:
            from timm.utils import ModelEmaV3

            # copied before accelerate wraps the model's forward for autocast
            self.ema = ModelEmaV3(self.in_layout(model.to(self.device)),
                                  decay=spec.train.ema_decay,
                                  use_warmup=True)
            self.ema.module.requires_grad_(False)
            self.modules["ema"] = self.ema.module  # checkpointed and resumed with the rest
        self.model = self.add_module("model", model)

    def add_module(self, name: str, module: nn.Module, mixed_precision: bool = True
                   ) -> nn.Module:
        """Place ``module`` on the device and track it.

        With ``mixed_precision`` (the default) accelerate runs its forward under
        bf16 autocast when the spec asks for bf16; ``False`` keeps it in fp32
        (for small, precision-sensitive nets). With ``run.channels_last`` its
        4-D weights are stored channels-last (values and state-dict keys are
        unchanged). With ``run.compile`` the module is compiled in place, so
        its state-dict keys stay those of the plain module.

        The module is never wrapped in DistributedDataParallel: :meth:`update`
        averages gradients per optimiser. With several processes its weights are
        broadcast from the main process (they are equal already when every
        process seeds alike; this makes it so regardless).
        """
        module = self.in_layout(module.train().to(self.device))
        if self.world > 1:
            import torch

            if self.spec.run.sync_batchnorm:
                module = torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
            for tensor in module.state_dict().values():
                torch.distributed.broadcast(tensor, src=0)
        if mixed_precision:  # autocast only; evaluation_mode: no DDP wrapper
            prepared = self.accelerator.prepare_model(module, evaluation_mode=True)
        else:
            prepared = module
        if self.spec.run.compile:
            mode = self.spec.run.compile_mode
            prepared.compile(mode=None if mode == "default" else mode)
        self.modules[name] = prepared
        return prepared

    def adam(
        self, name: str, params: Iterable[Any], lr: float, betas: tuple[float, float],
        weight_decay: float = 0.0,
    ) -> torch.optim.Optimizer:
        """An Adam optimiser (fused kernel when the spec allows it and the device has one)."""
        import torch

        params = list(params)
        fused = self.spec.run.fused_optimizer and self.device.type in ("cpu", "cuda")
        optimizer = torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay,
                                     fused=fused or None)
        prepared = self.accelerator.prepare(optimizer)
        self.optimizers[name] = prepared
        self.base_lrs[name] = lr
        return prepared

    def update(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor,
               max_grad_norm: float = 0.0) -> None:
        """One optimiser step on ``loss``: clear gradients, backpropagate, clip, step.

        ``max_grad_norm`` > 0 clips the gradient norm of the optimiser's parameters.
        """
        optimizer.zero_grad(set_to_none=True)
        self.accelerator.backward(loss)
        params = [p for group in optimizer.param_groups for p in group["params"]]
        if self.world > 1:
            average_gradients(params, self.world)
        if max_grad_norm > 0:
            self.accelerator.clip_grad_norm_(params, max_grad_norm)
        optimizer.step()

    def scale_lr(self, factor: float) -> None:
        """Set every optimiser's lr to ``factor`` times its base lr (e.g. for a warm-up)."""
        for name, optimizer in self.optimizers.items():
            for group in optimizer.param_groups:
                group["lr"] = self.base_lrs[name] * factor

    def cosine_lr(self, floor: float = 0.0) -> None:
        """Set every optimiser's lr to a cosine decay of its base lr over training.

        The schedule is a pure function of ``self.progress``, so ``--resume``
        needs no scheduler state.
        """
        self.scale_lr(floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * self.progress)))

    def autocast(self) -> Any:
        """A context manager for mixed precision as configured (a no-op in fp32)."""
        return self.accelerator.autocast()

    def in_layout(self, tensor_or_module: Any) -> Any:
        """``tensor_or_module`` in the training memory layout (``run.channels_last``).

        The loop passes every batch through this before :meth:`step`; a 4-D
        tensor or a module's 4-D weights become channels-last (NHWC in memory,
        same shape and values), anything else is returned as it is.
        """
        import torch

        layout = getattr(torch, self.memory_format)
        if isinstance(tensor_or_module, torch.Tensor):
            if tensor_or_module.dim() != 4:
                return tensor_or_module
            return tensor_or_module.contiguous(memory_format=layout)
        return tensor_or_module.to(memory_format=layout)

    def standard_layout(self) -> None:
        """Store every module's weights contiguously again (the loop calls this after the
        last step, so :meth:`finish` and the written model run as a loaded model does)."""
        import torch

        for module in self.raw_modules().values():
            module.to(memory_format=torch.contiguous_format)

    @property
    def cuda_graphs(self) -> bool:
        """Whether the compiled modules replay CUDA graphs (``run.compile_mode``)."""
        run = self.spec.run
        return (run.compile and self.device.type == "cuda"
                and run.compile_mode in ("reduce-overhead", "max-autotune"))

    def begin_step(self) -> None:
        """The loop calls this before each :meth:`step`.

        With CUDA graphs it starts a new graph generation, so the buffers of the
        previous step's graph outputs may be reused (a step must not keep them).
        """
        if self.cuda_graphs:
            import torch

            torch.compiler.cudagraph_mark_step_begin()

    def runs(self, step: int) -> list[dict[str, Any]]:
        """How the build ran, one entry per session up to ``step``: steps, device,
        precision, processes and the ``run`` settings (``--resume`` may change them)."""
        return [*self.history, {**self.session, "to_step": step}]

    def raw_modules(self) -> dict[str, nn.Module]:
        """The tracked modules without accelerate/DDP wrappers (for state dicts)."""
        return {n: self.accelerator.unwrap_model(m) for n, m in self.modules.items()}

    def start(self, images: torch.Tensor) -> None:
        """Called once before the first step of a fresh build (data-dependent initialisation)."""

    def step(
        self, images: torch.Tensor, labels: torch.Tensor | None, rng: torch.Generator
    ) -> dict[str, torch.Tensor]:
        """One optimisation step on a batch of images in [0, 1]; returns detached losses."""
        raise NotImplementedError

    def finish(
        self, images: torch.Tensor, labels: torch.Tensor | None, rng: torch.Generator
    ) -> None:
        """Called once after the last step (e.g. to re-estimate batch-norm statistics)."""

    def update_ema(self, step: int) -> None:
        """Move the weight average towards the model (the loop calls this after each step)."""
        if self.ema is not None:
            self.ema.update(self.accelerator.unwrap_model(self.modules["model"]), step)

    def sampling_module(self) -> nn.Module:
        """The module saved as ``model.safetensors``: fp32, no wrappers, in eval mode.

        With ``train.ema_decay`` it is the weight average, else the trained model.
        """
        if self.ema is not None:
            return self.ema.module.eval()
        return self.accelerator.unwrap_model(self.modules["model"], keep_fp32_wrapper=False).eval()


def average_gradients(params: list[torch.Tensor], world: int) -> None:
    """Replace each gradient by its mean over the processes: one flat all-reduce."""
    import torch

    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat)
    flat /= world
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def mean_over_processes(losses: dict[str, torch.Tensor], world: int) -> dict[str, torch.Tensor]:
    """Each logged value averaged over the processes (one small all-reduce)."""
    import torch

    if not losses:
        return losses
    stacked = torch.stack([v.detach().float().reshape(()) for v in losses.values()])
    torch.distributed.all_reduce(stacked)
    return dict(zip(losses, stacked / world, strict=True))


# --------------------------------------------------------------------------- the loop


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The data order of one epoch; depends only on (seed, epoch), so resume can recompute it."""
    import torch

    from zoo.sample import sample_seed

    return torch.randperm(n, generator=torch.Generator().manual_seed(sample_seed(seed, epoch, 1)))


def checkpoint_dir(out: Path) -> Path:
    """Where an unfinished build keeps its checkpoint: a sibling ``OUT.ckpt``."""
    return out.with_name(out.name + CHECKPOINT_SUFFIX)


def total_steps(train: TrainSpec, n_images: int) -> int:
    """``max_steps`` if set, else ``epochs`` full passes (last partial batch dropped)."""
    return train.max_steps or train.epochs * (n_images // train.batch_size)


def fit(
    family: FamilyRecord,
    spec: Spec,
    out: str | Path,
    *,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> Path:
    """Train ``spec`` and write its model folder to ``out``; return the folder.

    The build holds a lock on ``out`` throughout (:mod:`zoo.lock`), so a second
    build of the same folder stops at once, and it first cleans up after builds
    of ``out`` that were killed (one ``note:`` line each). Ctrl-C (SIGINT) or
    SIGTERM stops at the next step boundary, writes ``OUT.ckpt`` and raises
    :class:`Interrupted` (exit status 130 or 143); ``resume=True`` continues
    from it bit for bit.
    """
    from zoo.artifact import resolvable
    from zoo.lock import claim

    out = resolvable(out, "OUT")
    data = spec.data
    if data.source == "folder" and data.path and out.is_relative_to(
            resolvable(Path(data.path), "data.path")):
        raise ArtifactError(f"cannot write {out}: it is inside data.path {data.path}, where "
                            "its samples.png would be read as a training image; give an OUT "
                            "outside it")
    main = os.environ.get("RANK", "0") == "0"  # before the process group exists
    with claim(out) if main else contextlib.nullcontext():
        return _train(family, spec, out, resume=resume, force=force, progress=progress,
                      on_step=on_step)


def _train(
    family: FamilyRecord,
    spec: Spec,
    out: Path,
    *,
    resume: bool,
    force: bool,
    progress: bool,
    on_step: Callable[[int], None] | None,
) -> Path:
    import torch

    from zoo.artifact import remove_folder
    from zoo.checkpoint import load_training_state, save_training_state
    from zoo.data import load_images
    from zoo.sample import sample_seed
    from zoo.write import write_model_folder

    ckpt = checkpoint_dir(out)
    first = os.environ.get("RANK", "0") == "0"
    # the main process checks before the others: it holds the lock and may have just
    # restored a checkpoint; creating the process group waits for it
    source = check_destination(out, resume, force) if first else None
    train, run = spec.train, spec.run
    accelerator, precision = make_accelerator(spec)
    if not first:
        source = check_destination(out, resume, force)
    seed_everything(train.seed)
    images, labels = load_images(spec.data, "train", training=True)
    dynamic = spec.data.binarize == "dynamic"
    if len(images) < train.batch_size:
        raise DataError(f"{spec.data.source} gives {len(images)} training images, fewer than "
                        f"train.batch_size = {train.batch_size}")
    impl = family.load()
    trainer: Trainer = impl.trainer(spec, impl.build(spec), accelerator)
    rng = torch.Generator(device=accelerator.device).manual_seed(train.seed)
    step = load_training_state(source, trainer, rng, spec) if source else 0
    trainer.session = {"from_step": step, "device": str(accelerator.device),
                       "precision": precision, "processes": trainer.world,
                       "run": spec.run.model_dump(mode="json")}
    total = total_steps(train, len(images))
    if step >= total:
        raise SpecError(f"nothing to resume: already trained {step} of {total} steps; "
                        "raise train.max_steps or train.epochs")
    images = images.to(accelerator.device)
    labels = None if labels is None else labels.to(accelerator.device)
    if step == 0:
        trainer.start(images)
    main = accelerator.is_main_process
    display = Progress(total, step, train.batch_size, enabled=progress and main)
    per_epoch = len(images) // train.batch_size
    order, order_epoch = None, -1
    started = time.perf_counter()
    with StopOnSignal() as stop:
        while step < total:
            epoch, pos = divmod(step, per_epoch)
            if epoch != order_epoch:
                order, order_epoch = epoch_order(train.seed, epoch, len(images)), epoch
                order = order.to(accelerator.device)
            idx = order[pos * train.batch_size : (pos + 1) * train.batch_size]
            batch = images[idx]
            if dynamic:  # drawn for the global batch, like every random number
                batch = torch.bernoulli(batch, generator=rng)
            batch, idx = trainer.in_layout(trainer.draws.rows(batch)), trainer.draws.rows(idx)
            trainer.progress, trainer.steps_done = step / total, step
            trainer.begin_step()
            losses = trainer.step(batch, None if labels is None else labels[idx], rng)
            if trainer.world > 1:  # the global batch's mean losses, as one process would log
                losses = mean_over_processes(losses, trainer.world)
            step += 1
            trainer.update_ema(step)
            display.update(step, losses, force=step % run.log_every == 0 or step == total)
            if run.checkpoint_every and step % run.checkpoint_every == 0 and step < total:
                _write_checkpoint(ckpt, trainer, step, rng, spec, accelerator)
            if on_step is not None:
                on_step(step)
            stopping = stop.requested
            if trainer.world > 1:  # every process stops at the same step, or none does
                stopping = any_process(stopping, accelerator.device)
            if stopping and step < total:
                display.close()
                _write_checkpoint(ckpt, trainer, step, rng, spec, accelerator)
                raise Interrupted(f"{stop.cause} at step {step} of {total}; "
                                  f"checkpoint in {ckpt}; continue with --resume",
                                  exit_status=128 + stop.signum)
        display.close()
        trainer.standard_layout()
        # finish() draws from its own generator, so a later --resume continues the
        # training noise stream exactly where the loop left it
        finish_rng = torch.Generator(device=accelerator.device).manual_seed(
            sample_seed(train.seed, step, 2))
        trainer.finish(images, labels, finish_rng)
        wall = time.perf_counter() - started
        metrics = {"train": {
            "steps": step, "epochs": round(step / per_epoch, 3),
            "images_seen": step * train.batch_size, "wall_time_s": round(wall, 2),
            "images_per_s": round(display.images_done / max(wall, 1e-9), 1),
            "precision": precision, "device": str(accelerator.device),
            "processes": trainer.world, "runs": trainer.runs(step),
            "losses": display.last_losses(), "loss_curve": display.curve,
        }}
        if main:
            # without --force or --resume, a folder that appeared at OUT while we trained
            # is not replaced: the model goes beside it (atomic_folder does the same for one
            # that appears while the folder is written)
            overwrite = force or source is not None
            target = out
            if out.exists() and not overwrite:
                target = out.with_name(f"{out.name}.new-{os.getpid()}")
            write_model_folder(
                target, family, spec, trainer.sampling_module(), metrics,
                state_writer=lambda d: save_training_state(d, trainer, step, rng, spec),
                overwrite=overwrite)
            remove_folder(ckpt)
            if target != out:
                raise ArtifactError(f"{out} appeared while it was being written; the new one "
                                    f"is in {target}")
        accelerator.wait_for_everyone()
    if trainer.world > 1:
        # tear the process group down before the interpreter exits: a gloo group
        # left to the exit handlers sometimes aborts a process ("terminate called
        # without an active exception") after the work is done
        accelerator.end_training()
    return out


def check_destination(out: Path, resume: bool, force: bool) -> Path | None:
    """Raise unless a build may write ``out``; return the checkpoint to resume from, if any.

    Checked before training (and before ``--processes`` launches anything), not after.
    """
    from zoo.artifact import replaceable

    out = Path(out).resolve()
    ckpt = checkpoint_dir(out)
    source = _resume_source(out, ckpt) if resume else None
    if out.exists() and not replaceable(out):
        raise ArtifactError(f"refusing to replace {out}: not a genzoo model folder")
    if source is None and not force:
        if out.exists():
            raise ArtifactError(f"{out} already exists; pass --force to replace it or --resume")
        if ckpt.exists():
            raise ArtifactError(f"an interrupted build left {ckpt}; pass --resume to continue it "
                                "or --force to start over")
    return source


class StopOnSignal:
    """Within the block, the first SIGINT (Ctrl-C) or SIGTERM only sets ``requested``.

    The training loop then checkpoints at the next step boundary and raises
    :class:`Interrupted` with exit status 128 + the signal's number (130 for
    SIGINT, 143 for SIGTERM, as a shell reports a process killed by it). A
    second signal aborts at once (:class:`zoo.errors.Aborted`, a
    ``KeyboardInterrupt``). Outside the main thread no handler can be installed
    and the block changes nothing.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self) -> StopOnSignal:
        self.requested = False
        self.signum = signal.SIGINT
        self.previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self.previous[signum] = signal.signal(signum, self._handle)
        return self

    @property
    def cause(self) -> str:
        """What stopped the build, for messages: ``interrupted`` or ``terminated``."""
        return "terminated (SIGTERM)" if self.signum == signal.SIGTERM else "interrupted"

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise Aborted(signum)
        self.requested, self.signum = True, signum
        again = "Ctrl-C" if signum == signal.SIGINT else "signal"
        print(f"\nstopping after this step ({again} again to abort)", file=sys.stderr,
              flush=True)

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


def any_process(flag: bool, device: Any) -> bool:
    """Whether ``flag`` is set in any process (one tiny all-reduce)."""
    import torch

    value = torch.tensor([float(flag)], device=device)
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
    return bool(value.item())


def _resume_source(out: Path, ckpt: Path) -> Path:
    from zoo.artifact import TRAINING_STATE
    from zoo.checkpoint import META

    for candidate in (ckpt, out / TRAINING_STATE):
        if (candidate / META).is_file():
            return candidate
    raise ArtifactError(f"nothing to resume: neither {ckpt} nor {out / TRAINING_STATE} exists")


def _write_checkpoint(ckpt: Path, trainer: Trainer, step: int, rng, spec: Spec,
                      accelerator: Accelerator) -> None:
    """The main process writes the checkpoint; the others wait for it."""
    from zoo.artifact import atomic_folder
    from zoo.checkpoint import save_training_state

    if accelerator.is_main_process:
        atomic_folder(ckpt, lambda d: save_training_state(d, trainer, step, rng, spec),
                      overwrite=True)
    accelerator.wait_for_everyone()


# --------------------------------------------------------------------------- progress


class Progress:
    """A rich progress bar with losses and images/s; plain lines when not on a terminal."""

    def __init__(self, total: int, start: int, batch_size: int, enabled: bool = True) -> None:
        self.total, self.batch_size, self.enabled = total, batch_size, enabled
        self.start_step = self.last_step = start
        self.last_time = time.perf_counter()
        self.images_done = 0
        self.sums: dict[str, Any] = {}
        self.count = 0
        self.shown: dict[str, float] = {}
        self.curve: list[dict[str, float]] = []  # mean losses of each run.log_every window
        self.bar = None
        self.plain_every = 0
        self.next_plain = start
        if enabled:
            from rich.console import Console

            console = Console(stderr=True)
            if console.is_terminal:
                from rich.progress import (
                    BarColumn,
                    MofNCompleteColumn,
                    TextColumn,
                    TimeRemainingColumn,
                )
                from rich.progress import Progress as RichProgress

                self.bar = RichProgress(TextColumn("train"), BarColumn(), MofNCompleteColumn(),
                                        TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                                        console=console)
                self.task = self.bar.add_task("train", total=total, completed=start, info="")
                self.bar.start()
            else:  # logs and CI: about ten plain lines
                self.plain_every = max(1, (total - start) // 10)

    def update(self, step: int, losses: dict[str, Any], force: bool = False) -> None:
        """Accumulate this step's losses; refresh the display every ``run.log_every`` steps."""
        self.images_done += self.batch_size
        for k, v in losses.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.count += 1
        if not force:
            return
        now = time.perf_counter()
        rate = (step - self.last_step) * self.batch_size / max(now - self.last_time, 1e-9)
        self.shown = {k: float(v) / self.count for k, v in self.sums.items()}
        self.curve.append({"step": step, **{k: round(v, 5) for k, v in self.shown.items()}})
        self.sums, self.count = {}, 0
        self.last_step, self.last_time = step, now
        info = "  ".join(f"{k} {v:.4f}" for k, v in self.shown.items()) + f"  {rate:.1f} img/s"
        if self.bar is not None:
            self.bar.update(self.task, completed=step, info=info)
        elif self.plain_every and (step >= self.next_plain or step == self.total):
            self.next_plain = step + self.plain_every
            print(f"step {step}/{self.total}  {info}", file=sys.stderr, flush=True)

    def last_losses(self) -> dict[str, float]:
        """Mean losses of the last display window."""
        return {k: round(v, 5) for k, v in self.shown.items()}

    def close(self) -> None:
        """Stop the live display."""
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
