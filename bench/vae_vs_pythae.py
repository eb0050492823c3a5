"""VAE training and held-out likelihood, side by side: genzoo against pythae.

The peer is ``pythae`` (pip package, for this bench only; not a dependency of
the project), driven through its public API as its documentation shows:

* ``pythae.models.VAE`` with ``VAEConfig(input_dim=(1, 28, 28), latent_dim=16,
  reconstruction_loss="bce")`` and custom ``BaseEncoder`` / ``BaseDecoder``
  subclasses defined here: 784-512-256 with ReLU, then two linear heads
  (mu, log_var) of size 16; and 16-256-512-784 with ReLU and a final sigmoid
  (pythae's BCE loss takes probabilities). Same layer sizes and parameter count
  as ours (our encoder has one 256->32 layer split into mu and logvar, which is
  the same parametrisation);
* ``pythae.trainers.BaseTrainerConfig(num_epochs, learning_rate=1e-3,
  per_device_train_batch_size=64, per_device_eval_batch_size=64,
  optimizer_cls="Adam", seed, output_dir=<tmp>, no_cuda=True, steps_saving=None)``
  and ``pythae.pipelines.TrainingPipeline(model, training_config)(train_data=
  x_train, eval_data=None, callbacks=[timer])``. The model's weights are
  initialised after ``torch.manual_seed(seed)``; the trainer seeds itself again
  from ``seed`` before its loop.

Our side is ``zoo.build("vae-mnist", None, overrides, out)`` exactly as
``zoo build vae-mnist`` does it, with ``train.seed``, ``train.epochs``,
``train.precision=fp32``, ``run.device=cpu`` (pythae runs with ``no_cuda``;
on a CPU-only box the same as "auto") and ``sample.n=16``; the model comes back
through ``zoo.from_pretrained``. Everything else is the spec's default
(``zoo spec vae-mnist``): Adam lr 1e-3, batch 64, fused Adam kernel, Bernoulli
decoder on logits.

Data: the bundled ``mnist5k`` digits, statically binarised, as our trainer
sees them: ``zoo.data.load_images(spec.data, "train")`` (4,500 images) is given
to pythae as a NumPy array of shape (4500, 1, 28, 28); the held-out set is
``load_images(spec.data, "test")`` (500 images).

Figures:

* held-out NLL in nats, IWAE with k = 1000 importance samples per image.
  Ours: ``-model.log_likelihood(x_test, k, seed=0).mean()``. pythae:
  ``-model.get_nll(x_test, n_samples=k, batch_size=k)``: pythae's own
  importance-sampled estimate, which returns the mean of log p(x) (a negative
  number, despite its name) and takes all k samples in one batch when
  ``batch_size = k``. It is called under ``torch.no_grad()`` (pythae does not
  do that itself) after ``torch.manual_seed(0)``. The pythae model evaluated is
  the one pythae writes as ``final_model``: with no eval data its trainer keeps
  the epoch with the best training loss (``trainer._best_model``), normally the
  last epoch; the JSON says whether it was.
* training time: the whole ``zoo.build`` call and the whole pipeline call
  (each includes its own data checks and the writing of its model folder), and
  the training loops alone: ours from ``metrics.json`` ``train.wall_time_s``,
  pythae's from a ``TrainingCallback`` (``on_train_begin`` to the last
  ``on_epoch_end``, which includes the per-epoch model copy pythae makes to keep
  its best model).

pythae's console output (logging, tqdm bars) is switched off during its call
(``logging.disable`` and stdout/stderr to /dev/null); its files go to a
temporary directory that is deleted afterwards.

Known differences between the two sides, left as each library does it:

* our loop drops the last partial batch (70 steps per epoch on 4,500 images),
  pythae's DataLoader keeps it (71 steps, the last one of 20 images);
* our decoder's output bias starts at the data's mean log-odds, pythae's
  layers keep PyTorch's default initialisation;
* our loss is BCE on logits; pythae's is ``F.binary_cross_entropy`` on sigmoid
  outputs, whose log terms are clamped at -100, in training and in ``get_nll``;
* ours uses the fused CPU Adam kernel (spec default), pythae torch's default
  Adam implementation (same update rule);
* pythae's trainer runs one extra forward pass as a sanity check, deep-copies
  the model whenever the epoch's training loss improves and updates tqdm bars;
  none of this can be turned off through its config.

Fraction of peak: after each run, one more untimed step on a batch of 64 is
counted with ``FlopCounterMode`` (``benchlib.step_flops``; ours: a trainer
built as the loop builds it; pythae: its ``train_step`` body on the trainer it
just used); seconds per step are the loop time over the steps (median over
seeds), and the achieved FLOP/s is divided by the fp32 matmul peak
(``benchlib.peak_flops``).

Method: for each seed both sides train once, ours first for even seed indices
and pythae first for odd ones, so slow drifts of the machine hit both alike.
Reported figures are medians over seeds; the difference is median(ours) -
median(pythae) in nats and the time ratios are median(ours) / median(pythae).
torch's thread count is left at its default.

Usage::

    python bench/vae_vs_pythae.py            # seeds 0 1 2, 50 epochs, k = 1000
    python bench/vae_vs_pythae.py --quick    # seed 0, 2 epochs, k = 100 (smoke test)

Results go to ``bench/results/vae_vs_pythae.json`` (``--quick``:
``vae_vs_pythae.quick.json``, so a smoke test never replaces a real run).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from benchlib import machine_info, peak_flops, peak_line, peak_runs, step_flops, vs_peak
from torch import nn

HERE = Path(__file__).resolve().parent

MODEL = "vae-mnist"
INPUT_DIM = (1, 28, 28)
HIDDEN = (512, 256)
LATENT = 16
BATCH = 64
LR = 1e-3
NLL_SEED = 0
MAX_NLL_BATCH = 1000  # importance samples per pythae get_nll batch


def our_overrides(seed: int, epochs: int) -> list[str]:
    """``zoo build vae-mnist`` with seed and epochs set, fp32 on the CPU."""
    return [f"train.seed={seed}", f"train.epochs={epochs}", "train.precision=fp32",
            "run.device=cpu", "sample.n=16"]


# --------------------------------------------------------------------------- data


@dataclass
class Data:
    """The training and held-out images, binarised as our trainer sees them."""

    train: torch.Tensor  # (4500, 1, 28, 28) float32 in {0, 1}
    test: torch.Tensor  # (500, 1, 28, 28)


def load_data() -> Data:
    """``mnist5k`` train and test splits per the ``vae-mnist`` spec (static binarisation)."""
    from zoo.api import resolve_spec
    from zoo.data import load_images

    _, spec = resolve_spec(MODEL)
    if spec.data.binarize != "static":
        raise SystemExit(f"{MODEL}: expected data.binarize = 'static', got {spec.data.binarize!r}")
    train, _ = load_images(spec.data, "train")
    test, _ = load_images(spec.data, "test")
    for name, x in (("train", train), ("test", test)):
        if tuple(x.shape[1:]) != INPUT_DIM or not torch.all((x == 0) | (x == 1)):
            raise SystemExit(f"{MODEL} {name} images are not binary {INPUT_DIM}: {tuple(x.shape)}")
    return Data(train.contiguous(), test.contiguous())


# --------------------------------------------------------------------------- result of one run


@dataclass
class Run:
    """One side trained with one seed."""

    side: str
    seed: int
    nll_nats: float  # held-out, IWAE with k samples
    call_s: float  # zoo.build / TrainingPipeline call
    loop_s: float  # the training loop alone
    nll_s: float  # time of the NLL estimate
    train_steps: int
    last_train_loss: float | None
    parameters: int
    note: str = ""
    flops_per_step: int = 0  # FlopCounterMode, one more (untimed) step of a batch of 64


# --------------------------------------------------------------------------- our side


def run_ours(seed: int, epochs: int, k: int, test: torch.Tensor, workdir: Path) -> Run:
    """Build ``vae-mnist`` through the public API, load it back, estimate the held-out NLL."""
    import zoo
    from zoo.data import load_images

    out = workdir / f"ours-seed{seed}"
    start = time.perf_counter()
    folder = zoo.build(MODEL, None, our_overrides(seed, epochs), out)
    call_s = time.perf_counter() - start
    model = zoo.from_pretrained(folder)
    x_test, _ = load_images(model.spec.data, "test")
    if not torch.equal(x_test, test):
        raise SystemExit("our model's test split differs from the one given to pythae")
    train = model.metrics["train"]
    start = time.perf_counter()
    nll = -model.log_likelihood(x_test, k=k, seed=NLL_SEED).mean().item()
    nll_s = time.perf_counter() - start
    loss = train.get("losses", {}).get("loss")
    return Run("ours", seed, nll, call_s, float(train["wall_time_s"]), nll_s,
               int(train["steps"]), None if loss is None else float(loss),
               model.num_parameters, f"precision {train['precision']}",
               our_step_flops(seed, epochs, test[:BATCH]))


def our_step_flops(seed: int, epochs: int, batch: torch.Tensor) -> int:
    """FLOPs of one step of our trainer, built as the loop builds it, on ``batch``."""
    from zoo.api import resolve_spec
    from zoo.training.runtime import make_accelerator

    family, spec = resolve_spec(MODEL, None, our_overrides(seed, epochs))
    accelerator, _ = make_accelerator(spec)
    impl = family.load()
    trainer = impl.trainer(spec, impl.build(spec), accelerator)
    images, rng = trainer.in_layout(batch), torch.Generator().manual_seed(seed)
    return step_flops(lambda: (trainer.begin_step(), trainer.step(images, None, rng)))


# --------------------------------------------------------------------------- pythae side


def pythae_classes() -> tuple[type, type]:
    """Encoder and decoder for pythae, the same MLP as ours (ReLU, 784-512-256-16)."""
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    n_pixels = int(np.prod(INPUT_DIM))

    class Encoder(BaseEncoder):
        """784-512-256, then mu and log_var heads of size 16."""

        def __init__(self) -> None:
            BaseEncoder.__init__(self)
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(n_pixels, HIDDEN[0]), nn.ReLU(),
                                      nn.Linear(HIDDEN[0], HIDDEN[1]), nn.ReLU())
            self.mu = nn.Linear(HIDDEN[1], LATENT)
            self.log_var = nn.Linear(HIDDEN[1], LATENT)

        def forward(self, x: torch.Tensor) -> ModelOutput:
            h = self.body(x)
            return ModelOutput(embedding=self.mu(h), log_covariance=self.log_var(h))

    class Decoder(BaseDecoder):
        """16-256-512-784, sigmoid probabilities (pythae's BCE takes probabilities)."""

        def __init__(self) -> None:
            BaseDecoder.__init__(self)
            self.net = nn.Sequential(nn.Linear(LATENT, HIDDEN[1]), nn.ReLU(),
                                     nn.Linear(HIDDEN[1], HIDDEN[0]), nn.ReLU(),
                                     nn.Linear(HIDDEN[0], n_pixels), nn.Sigmoid())

        def forward(self, z: torch.Tensor) -> ModelOutput:
            return ModelOutput(reconstruction=self.net(z).reshape(len(z), *INPUT_DIM))

    return Encoder, Decoder


def pythae_timer() -> Any:
    """A pythae ``TrainingCallback`` timing the loop and keeping the last epoch loss."""
    from pythae.trainers.training_callbacks import TrainingCallback

    class Timer(TrainingCallback):
        def __init__(self) -> None:
            self.begin = self.end = float("nan")
            self.epochs = 0
            self.last_loss: float | None = None

        def on_train_begin(self, training_config, **kwargs) -> None:
            self.begin = time.perf_counter()

        def on_epoch_end(self, training_config, **kwargs) -> None:
            self.end = time.perf_counter()
            self.epochs += 1

        def on_log(self, training_config, logs, **kwargs) -> None:
            self.last_loss = logs.get("train_epoch_loss", self.last_loss)

    return Timer()


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """No logging records below WARNING, stdout and stderr (tqdm) to /dev/null."""
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull), \
            contextlib.redirect_stderr(devnull):
        logging.disable(logging.INFO)
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)


def nll_batch(k: int) -> int:
    """The largest divisor of k up to MAX_NLL_BATCH: get_nll uses batch * (k // batch) samples."""
    return next(b for b in range(min(k, MAX_NLL_BATCH), 0, -1) if k % b == 0)


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[n], sb[n]) for n in sa)


def run_pythae(seed: int, epochs: int, k: int, data: Data, workdir: Path) -> Run:
    """Train pythae's VAE with its TrainingPipeline; estimate the NLL with its get_nll."""
    from pythae.models import VAE, VAEConfig
    from pythae.pipelines import TrainingPipeline
    from pythae.trainers import BaseTrainerConfig

    encoder_cls, decoder_cls = pythae_classes()
    out = workdir / f"pythae-seed{seed}"
    x_train = data.train.numpy()
    with quiet():
        torch.manual_seed(seed)
        model = VAE(VAEConfig(input_dim=INPUT_DIM, latent_dim=LATENT, reconstruction_loss="bce"),
                    encoder=encoder_cls(), decoder=decoder_cls())
        config = BaseTrainerConfig(
            num_epochs=epochs, learning_rate=LR, per_device_train_batch_size=BATCH,
            per_device_eval_batch_size=BATCH, optimizer_cls="Adam", seed=seed,
            output_dir=str(out), no_cuda=True, steps_saving=None)
        pipeline = TrainingPipeline(model=model, training_config=config)
        timer = pythae_timer()
        start = time.perf_counter()
        pipeline(train_data=x_train, eval_data=None, callbacks=[timer])
        call_s = time.perf_counter() - start
    if timer.epochs != epochs:
        raise SystemExit(f"pythae ran {timer.epochs} epochs, not {epochs}")
    trainer = pipeline.trainer
    best = trainer._best_model  # what pythae writes as final_model
    steps = epochs * len(trainer.train_loader)
    best.eval()
    torch.manual_seed(NLL_SEED)
    start = time.perf_counter()
    with torch.no_grad():
        log_p = best.get_nll(data.test, n_samples=k, batch_size=nll_batch(k))
    nll_s = time.perf_counter() - start
    note = ("evaluated model = last epoch" if same_weights(best, trainer.model)
            else "evaluated model = best training-loss epoch, not the last")
    return Run("pythae", seed, -float(log_p), call_s, timer.end - timer.begin, nll_s, steps,
               timer.last_loss, sum(p.numel() for p in best.parameters()), note,
               pythae_step_flops(trainer))


def pythae_step_flops(trainer: Any) -> int:
    """FLOPs of one more step of pythae's own ``train_step`` body on a full batch."""
    inputs = trainer._set_inputs_to_device(next(iter(trainer.train_loader)))
    trainer.model.train()

    def step() -> None:
        out = trainer.model(inputs, epoch=0, dataset_size=len(trainer.train_loader.dataset),
                            uses_ddp=False)
        trainer._optimizers_step(out)

    with quiet():
        return step_flops(step)


# --------------------------------------------------------------------------- report


def versions() -> dict[str, str]:
    return {name: importlib.metadata.version(dist) for name, dist in
            (("torch", "torch"), ("pythae", "pythae"), ("genzoo", "genzoo"),
             ("numpy", "numpy"), ("pydantic", "pydantic"))}


def medians(runs: list[Run], side: str) -> dict[str, float]:
    mine = [r for r in runs if r.side == side]
    return {f: statistics.median(getattr(r, f) for r in mine)
            for f in ("nll_nats", "call_s", "loop_s", "nll_s")}


def loop_vs_peak(runs: list[Run], side: str) -> dict[str, Any]:
    """FLOPs of a step at the median seconds per step of the training loop, vs the fp32 peak.

    Seconds per step are loop time / steps, so they include what each loop does
    between steps (data loading, logging; pythae's per-epoch model copies).
    """
    mine = [r for r in runs if r.side == side]
    seconds = statistics.median(r.loop_s / r.train_steps for r in mine)
    return vs_peak(mine[0].flops_per_step, seconds, peak_flops("fp32")) | {"precision": "fp32"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default 0 1 2)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default 50)")
    p.add_argument("-k", type=int, default=None,
                   help="importance samples per held-out image (default 1000)")
    p.add_argument("--quick", action="store_true", help="smoke test: seed 0, 2 epochs, k=100")
    p.add_argument("--out", type=Path, default=None, help="JSON results path")
    args = p.parse_args(argv)
    args.seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    args.epochs = args.epochs or (2 if args.quick else 50)
    args.k = args.k or (100 if args.quick else 1000)
    name = "vae_vs_pythae.quick.json" if args.quick else "vae_vs_pythae.json"
    args.out = args.out or HERE / "results" / name
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    print(f"threads: {torch.get_num_threads()}  seeds: {args.seeds}  epochs: {args.epochs}  "
          f"k: {args.k}", flush=True)
    data = load_data()
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="vae_vs_pythae_") as tmp:
        for i, seed in enumerate(args.seeds):
            order = ("ours", "pythae") if i % 2 == 0 else ("pythae", "ours")
            for side in order:
                if side == "ours":
                    run = run_ours(seed, args.epochs, args.k, data.test, Path(tmp))
                else:
                    run = run_pythae(seed, args.epochs, args.k, data, Path(tmp))
                runs.append(run)
                print(f"  seed {seed} {side}: nll {run.nll_nats:.2f} nats, call "
                      f"{run.call_s:.1f} s, loop {run.loop_s:.1f} s, {run.train_steps} steps"
                      f" ({run.note})", file=sys.stderr, flush=True)
    if len({r.parameters for r in runs}) != 1:
        raise SystemExit(f"parameter counts differ: {[(r.side, r.parameters) for r in runs]}")

    ours, peer = medians(runs, "ours"), medians(runs, "pythae")
    n = len(args.seeds)
    what = f"(median of {n} seed{'s' if n > 1 else ''})"
    diff = ours["nll_nats"] - peer["nll_nats"]
    call_ratio = ours["call_s"] / peer["call_s"]
    loop_ratio = ours["loop_s"] / peer["loop_s"]
    print(f"vae nll ours: {ours['nll_nats']:.1f} nats {what}")
    print(f"vae nll pythae: {peer['nll_nats']:.1f} nats {what}")
    print(f"vae nll difference ours-pythae: {diff:+.1f} nats")
    print(f"vae train time ours: {ours['call_s']:.1f} s (zoo.build call)")
    print(f"vae train time pythae: {peer['call_s']:.1f} s (TrainingPipeline call)")
    print(f"vae time ratio ours/pythae: {call_ratio:.2f}")
    print(f"vae train loop time ours: {ours['loop_s']:.1f} s")
    print(f"vae train loop time pythae: {peer['loop_s']:.1f} s")
    print(f"vae loop time ratio ours/pythae: {loop_ratio:.2f}")
    of_peak = {side: loop_vs_peak(runs, side) for side in ("ours", "pythae")}
    for side, row in of_peak.items():
        print(peak_line(f"vae train step {side}", row, "fp32"))

    per_seed_diff = [a.nll_nats - b.nll_nats for a in runs if a.side == "ours"
                     for b in runs if b.side == "pythae" and b.seed == a.seed]
    result = {
        "benchmark": "VAE 784-512-256-16, mnist5k 4,500/500 statically binarised, CPU fp32: "
                     "held-out IWAE NLL and training time, genzoo vs pythae",
        "machine": machine_info(),
        "versions": versions(),
        "settings": {"seeds": args.seeds, "epochs": args.epochs, "k": args.k,
                     "quick": args.quick, "batch": BATCH, "lr": LR, "optimizer": "Adam",
                     "hidden": list(HIDDEN), "latent": LATENT, "n_train": len(data.train),
                     "n_test": len(data.test), "nll_seed": NLL_SEED,
                     "ours": {"model": MODEL, "overrides": our_overrides(0, args.epochs)[1:],
                              "seed_override": "train.seed=<seed>"},
                     "pythae": {"reconstruction_loss": "bce", "eval_data": None,
                                "steps_saving": None, "no_cuda": True,
                                "nll": f"-get_nll(x_test, n_samples={args.k}, "
                                       f"batch_size={nll_batch(args.k)}) under no_grad"}},
        "runs": [asdict(r) for r in runs],
        "median": {"ours": ours, "pythae": peer},
        "nll_difference_ours_minus_pythae_nats": round(diff, 3),
        "nll_difference_per_seed_nats": [round(d, 3) for d in per_seed_diff],
        "time_ratio_ours_over_pythae": {"call": round(call_ratio, 3),
                                        "loop": round(loop_ratio, 3)},
        "vs_peak": of_peak, "peak_matmul_gflops_runs": peak_runs(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
