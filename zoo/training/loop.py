"""The one training loop every family's trainer plugs into.

A family provides ``trainer(spec, model, accelerator) -> Trainer``; the loop
owns everything else: device and precision (accelerate), seeding, the data
order, progress, periodic and interrupt checkpoints, ``--resume``, and writing
the model folder atomically.

Several processes (``torchrun``/``accelerate launch``, or ``zoo build
--processes N``): ``train.batch_size`` is the global batch, and each process
trains on its own equal share of every global batch. Every process draws the
whole global batch's random numbers from the same generator and keeps its rows
(:class:`zoo.training.distributed.Draws`), so an example gets the same noise
for any process count. Each optimiser averages exactly its own parameters'
gradients across processes in :meth:`zoo.training.trainer.Trainer.update`
(one all-reduce per update; a GAN's G update never syncs D). Batch norm uses
each process's share (or ``run.sync_batchnorm`` on GPUs). Only the main
process writes checkpoints and the model folder; checkpoints hold no
per-process state, so a build can resume with a different process count.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.core.errors import ArtifactError, Interrupted, SpecError
from zoo.training.destination import StopOnSignal, check_destination, checkpoint_dir
from zoo.training.distributed import any_process, mean_over_processes
from zoo.training.feed import total_steps
from zoo.training.progress import Progress
from zoo.training.runtime import make_accelerator, seed_everything

if TYPE_CHECKING:
    from accelerate import Accelerator

    from zoo.core.records import FamilyRecord
    from zoo.core.spec import Spec
    from zoo.training.trainer import Trainer


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

    The build holds a lock on ``out`` throughout (:mod:`zoo.training.lock`), so a second
    build of the same folder stops at once, and it first cleans up after builds
    of ``out`` that were killed (one ``note:`` line each). Ctrl-C (SIGINT) or
    SIGTERM stops at the next step boundary, writes ``OUT.ckpt`` and raises
    :class:`Interrupted` (exit status 130 or 143); ``resume=True`` continues
    from it bit for bit.
    """
    from zoo.artifact import resolvable
    from zoo.training.lock import claim

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
    from zoo.folder.write import write_model_folder
    from zoo.sampling.sample import sample_seed
    from zoo.training.checkpoint import load_training_state, save_training_state
    from zoo.training.feed import open_feed

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
    # the training images: in memory on the device, or decoded batch by batch in workers
    feed = open_feed(spec, accelerator.device, accelerator.process_index,
                     accelerator.num_processes)
    data_state = feed.checkpoint()
    impl = family.load()
    trainer: Trainer = impl.trainer(spec, impl.build(spec), accelerator)
    rng = torch.Generator(device=accelerator.device).manual_seed(train.seed)
    step = load_training_state(source, trainer, rng, spec, data_state) if source else 0
    trainer.session = {"from_step": step, "device": str(accelerator.device),
                       "precision": precision, "processes": trainer.world,
                       "run": spec.run.model_dump(mode="json")}
    total = total_steps(train, feed.n, spec.data.last_batch)
    if step >= total:
        raise SpecError(f"nothing to resume: already trained {step} of {total} steps; "
                        "raise train.max_steps or train.epochs")
    if step == 0 and _overrides(trainer, "start"):
        start_trainer(trainer, feed)
    main = accelerator.is_main_process
    display = Progress(total, step, train.batch_size, enabled=progress and main)
    started = time.perf_counter()
    # the feed starts its workers with the first batch; closing it stops them, whatever happens
    with StopOnSignal() as stop, contextlib.closing(feed):
        for batch, labels in feed.batches(step, total, rng):
            batch = trainer.in_layout(batch)
            trainer.progress, trainer.steps_done = step / total, step
            trainer.begin_step()
            losses = trainer.step(batch, labels, rng)
            if trainer.world > 1:  # the global batch's mean losses, as one process would log
                losses = mean_over_processes(losses, trainer.world)
            step += 1
            trainer.update_ema(step)
            display.update(step, losses, force=step % run.log_every == 0 or step == total)
            if run.checkpoint_every and step % run.checkpoint_every == 0 and step < total:
                _write_checkpoint(ckpt, trainer, step, rng, spec, accelerator, data_state)
            if on_step is not None:
                on_step(step)
            stopping = stop.requested
            if trainer.world > 1:  # every process stops at the same step, or none does
                stopping = any_process(stopping, accelerator.device)
            if stopping and step < total:
                display.close()
                _write_checkpoint(ckpt, trainer, step, rng, spec, accelerator, data_state)
                raise Interrupted(f"{stop.cause} at step {step} of {total}; "
                                  f"checkpoint in {ckpt}; continue with --resume",
                                  exit_status=128 + stop.signum)
        feed.close()
        display.close()
        trainer.standard_layout()
        # finish() draws from its own generator, so a later --resume continues the
        # training noise stream exactly where the loop left it
        finish_rng = torch.Generator(device=accelerator.device).manual_seed(
            sample_seed(train.seed, step, 2))
        if _overrides(trainer, "finish"):
            trainer.finish(feed.fit_images(), feed.fit_labels(), finish_rng)
        wall = time.perf_counter() - started
        metrics = {"train": {
            "steps": step, "epochs": feed.epochs(step),
            "images_seen": step * train.batch_size, "wall_time_s": round(wall, 2),
            "images_per_s": round(display.images_done / max(wall, 1e-9), 1),
            "precision": precision, "device": str(accelerator.device),
            "processes": trainer.world, "runs": trainer.runs(step),
            "losses": display.last_losses(), "loss_curve": display.curve,
        }, "data": feed.summary()}  # every process takes part (it gathers the skipped images)
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
                state_writer=lambda d: save_training_state(d, trainer, step, rng, spec,
                                                           data_state),
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


def _overrides(trainer: Trainer, hook: str) -> bool:
    """Whether the family's trainer has its own ``start``/``finish``: the base ones do nothing,
    so a streamed source's fit images are not decoded for them."""
    from zoo.training.trainer import Trainer

    return getattr(type(trainer), hook) is not getattr(Trainer, hook)


def start_trainer(trainer: Trainer, feed: Any) -> None:
    """Call ``trainer.start`` with the images it fits to, and with their labels (or None)
    when its signature has a ``labels`` parameter (0.2's ``start(images)`` keeps working)."""
    import inspect

    if "labels" in inspect.signature(trainer.start).parameters:
        trainer.start(feed.fit_images(), labels=feed.fit_labels())
    else:
        trainer.start(feed.fit_images())


def _write_checkpoint(ckpt: Path, trainer: Trainer, step: int, rng, spec: Spec,
                      accelerator: Accelerator, data_state: dict[str, Any] | None) -> None:
    """The main process writes the checkpoint; the others wait for it."""
    from zoo.artifact import atomic_folder
    from zoo.training.checkpoint import save_training_state

    if accelerator.is_main_process:
        atomic_folder(ckpt, lambda d: save_training_state(d, trainer, step, rng, spec, data_state),
                      overwrite=True)
    accelerator.wait_for_everyone()
