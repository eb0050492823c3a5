"""DCGAN training step, side by side: genzoo against the PyTorch examples DCGAN.

The peer is ``dcgan/main.py`` of pytorch/examples. Its code is not copied into
this repository: the script reads the file at run time from a git mirror
(``git --git-dir=<mirror> show HEAD:dcgan/main.py``) or from a checkout such as
``bench/peers/examples`` (git-ignored), and executes the peer's own code.
``main.py`` is a top-level script, so ``ast`` picks out of it:

* its imports and its argparse parser (``opt`` is parsed from the script's own
  defaults, plus explicit values for the sizes compared here and a temporary
  ``--outf``);
* ``weights_init``, ``Generator``, ``Discriminator`` and the statements that
  build the nets, the criterion, the labels and the two Adam optimisers
  (``ngpu``/``nz``/``ngf``/``ndf``, ``netG``/``netD`` with ``.apply(weights_init)``,
  ``criterion``, ``fixed_noise``, ``real_label``/``fake_label``,
  ``optimizerD``/``optimizerG``), executed in source order;
* the body of the inner training loop ``for i, data in enumerate(dataloader, 0)``,
  which is executed unmodified for each peer step, with ``i = 1`` (no image
  dumps), ``epoch = 0``, ``data = (batch,)`` and stdout sent to /dev/null (the
  body prints a line every step).

The namespace is prepared as the script would leave it for 64x64 MNIST on the
chosen device (``--device``, default cpu) with ``nc = 1`` (set by branches that
are not executed).

Our side is the genzoo DCGAN trainer, built through the API exactly as
``zoo build`` does (``resolve_spec``, ``make_accelerator``, ``family.load()``,
``impl.trainer``), in two configurations: fp32 with the plain Adam and NCHW
memory layout (the peer's settings) and our defaults (bf16 autocast, fused
Adam, channels-last weights and batches; the batch goes through the
trainer's ``in_layout`` as the loop passes each batch).
``--compile`` adds ``torch.compile`` on both sides: ours with
``run.compile=true`` on the default settings, the peer with ``netG.compile()``
and ``netD.compile()`` (in place, as a user of that script would add it).
``--compile-mode`` picks the mode for both (``run.compile_mode``; with CUDA
graphs each side marks the start of every step, ours through the trainer's
``begin_step`` as the loop does, the peer's with
``torch.compiler.cudagraph_mark_step_begin()`` as PyTorch's docs ask).
On ``--device cuda`` every timed step is followed by ``torch.cuda.synchronize``
and the peak GPU memory of each configuration is recorded; PyTorch's defaults
apply on both sides (cuDNN convolutions may use TF32; the flags are recorded).

Both sides train on the same fixed batch of 64 real MNIST digits from the bundled
``mnist5k`` set, resized to 64x64: ours gets it in [0, 1] (as the training loop
feeds it), the peer in [-1, 1] (what its ``ToTensor`` + ``Normalize(0.5, 0.5)``
give). Data loading is not timed on either side.

Method: ``benchlib`` (each side warmed up, then interleaved rounds of K steps
per configuration, order reversed every other round); reported figures are the
medians of the per-step times over all rounds, as images/s, and ours/peer ratios.
Fraction of peak: after the rounds, one more untimed step of each configuration
is run under ``FlopCounterMode`` (``benchlib.step_flops``; a compiled
configuration counts as its eager one), and its FLOP/s at the median step time
is divided by the matmul peak of its precision (``benchlib.peak_flops``: fp32
for the peer and our fp32 trainer, bf16 for the defaults).

Both of our trainers live in one process although ``make_accelerator`` resets
accelerate's global state: a prepared module keeps the autocast wrapper it was
given. A forward-hook probe checks the dtype of every convolution's output
(fp32 trainer: float32 only; bf16 trainer: bfloat16); if the fp32 trainer were
found running in bf16, the script would fall back to one phase per
configuration, each phase still interleaving ours and the peer round by round.

Usage::

    python bench/dcgan_train.py            # rounds=7, K=5
    python bench/dcgan_train.py --quick    # rounds=3, K=2 (smoke test)
    python bench/dcgan_train.py --device cuda --compile --batch 256

Results go to ``bench/results/dcgan_train.json`` (``--quick``:
``dcgan_train.quick.json``, so a smoke test never replaces a real run).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import CodeType
from typing import Any

import accelerate
import torch
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
from torch import nn

HERE = Path(__file__).resolve().parent
DEFAULT_MIRROR = Path("/work/.mirror/pytorch+examples/repo")
DEFAULT_CHECKOUT = HERE / "peers" / "examples"
PEER_FILE = "dcgan/main.py"

BATCH, IMAGE_SIZE, NZ, NGF, NDF, NC = 64, 64, 100, 64, 64, 1

PEER = "peer fp32"
PEER_COMPILED = "peer fp32 compiled"
OURS_FP32 = "ours fp32"
OURS_DEFAULT = "ours default(bf16+fused+NHWC)"
OURS_COMPILED = "ours default compiled"
OUR_CONFIGS = {
    OURS_FP32: ["train.precision=fp32", "run.fused_optimizer=false",
                "run.channels_last=false"],  # the peer's settings
    OURS_DEFAULT: ["train.precision=bf16", "run.fused_optimizer=true",
                   "run.channels_last=true"],  # the defaults
}
COMPILED_CONFIG = {OURS_COMPILED: [*OUR_CONFIGS[OURS_DEFAULT], "run.compile=true"]}
EXPECTED_CONV_DTYPE = {OURS_FP32: "torch.float32", OURS_DEFAULT: "torch.bfloat16"}
# a compiled step does the arithmetic of its eager configuration: its FLOPs are counted there
FLOPS_OF = {OURS_COMPILED: OURS_DEFAULT, PEER_COMPILED: PEER}


def our_base(batch: int, device: str) -> list[str]:
    """The overrides that make our DCGAN the peer's size, batch and device."""
    return [f"data.image_size={IMAGE_SIZE}", f"data.channels={NC}",
            f"model.latent_dim={NZ}", f"model.base_channels={NGF}",
            f"model.disc_channels={NDF}", f"train.batch_size={batch}",
            f"run.device={device}"]

# What ast takes from the peer's top level (everything else is left out: dataset,
# dataloader, checkpoint loading, prints, the epoch loop itself).
PEER_DEFS = {"weights_init", "Generator", "Discriminator"}
PEER_ASSIGNED = {"parser", "ngpu", "nz", "ngf", "ndf", "netG", "netD", "criterion",
                 "fixed_noise", "real_label", "fake_label", "optimizerD", "optimizerG"}
PEER_CALLED_ON = {"parser", "netG", "netD"}  # parser.add_argument(...), netX.apply(weights_init)

StepFn = Callable[[], Any]


# --------------------------------------------------------------------------- peer source


@dataclass
class PeerSource:
    """The peer's ``main.py`` as read at run time, and where it came from."""

    text: str
    repo: Path
    commit: str


def _git(repo: Path, *args: str) -> str:
    """Run a read-only git command on a bare mirror or a checkout; return stdout."""
    where = ["-C", str(repo)] if (repo / ".git").exists() else [f"--git-dir={repo}"]
    return subprocess.run(["git", *where, *args], check=True, capture_output=True,
                           text=True).stdout


def default_peer_repo() -> Path:
    """The mirror if present, else the git-ignored checkout ``bench/peers/examples``."""
    return DEFAULT_MIRROR if DEFAULT_MIRROR.exists() else DEFAULT_CHECKOUT


def read_peer_source(repo: Path) -> PeerSource:
    """``dcgan/main.py`` at HEAD of the peer repository (or of an exported copy) and its commit."""
    if not repo.exists():
        raise SystemExit(f"peer repository not found: {repo} (pass --peer-repo)")
    if (repo / PEER_FILE).is_file() and not (repo / ".git").exists():
        # an exported copy (e.g. carried to a GPU machine without git): the commit
        # it was exported from is in COMMIT; the source hash is recorded either way
        commit = repo / "COMMIT"
        return PeerSource((repo / PEER_FILE).read_text(), repo,
                          commit.read_text().strip() if commit.exists() else "unknown")
    text = _git(repo, "show", f"HEAD:{PEER_FILE}")
    return PeerSource(text, repo, _git(repo, "rev-parse", "HEAD").strip())


# --------------------------------------------------------------------------- peer extraction


@dataclass
class PeerParts:
    """Pieces of the peer script, each still the peer's own code."""

    parser: CodeType  # imports and the argparse parser
    setup: CodeType  # weights_init, the nets, criterion, labels, optimisers
    step: CodeType  # the inner training loop's body


def _assigned_name(node: ast.stmt) -> str | None:
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        target = node.targets[0]
        if isinstance(target, ast.Name):
            return target.id
    return None


def _called_on(node: ast.stmt) -> str | None:
    """``x`` for a statement ``x.method(...)``."""
    if (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Attribute)
            and isinstance(node.value.func.value, ast.Name)):
        return node.value.func.value.id
    return None


def _is_parser_stmt(node: ast.stmt) -> bool:
    if isinstance(node, ast.Import | ast.ImportFrom):
        return not (isinstance(node, ast.ImportFrom) and node.module == "__future__")
    return "parser" in (_assigned_name(node), _called_on(node))


def _is_setup_stmt(node: ast.stmt) -> bool:
    if isinstance(node, ast.FunctionDef | ast.ClassDef):
        return node.name in PEER_DEFS
    return _assigned_name(node) in PEER_ASSIGNED - {"parser"} or (
        _called_on(node) in PEER_CALLED_ON - {"parser"})


def _inner_training_loop(tree: ast.Module) -> ast.For:
    """``for i, data in enumerate(dataloader, 0):`` inside ``for epoch in ...:``."""
    for node in tree.body:
        if isinstance(node, ast.For) and isinstance(node.target, ast.Name) \
                and node.target.id == "epoch":
            for inner in node.body:
                if isinstance(inner, ast.For) and isinstance(inner.target, ast.Tuple) and [
                        ast.unparse(e) for e in inner.target.elts] == ["i", "data"]:
                    return inner
    raise SystemExit(f"peer {PEER_FILE}: training loop `for i, data in ...` not found")


def _compile(nodes: list[ast.stmt], filename: str) -> CodeType:
    module = ast.Module(body=nodes, type_ignores=[])
    ast.fix_missing_locations(module)
    return compile(module, filename, "exec")


def extract_peer(source: str) -> PeerParts:
    """Split the peer script with ``ast``; fails loudly if its layout changed."""
    tree = ast.parse(source)
    filename = f"<peer {PEER_FILE}>"
    parser = [n for n in tree.body if _is_parser_stmt(n)]
    setup = [n for n in tree.body if _is_setup_stmt(n)]
    found = {n.name for n in setup if isinstance(n, ast.FunctionDef | ast.ClassDef)}
    found |= {_assigned_name(n) for n in setup} | {_assigned_name(n) for n in parser}
    missing = (PEER_DEFS | PEER_ASSIGNED) - found
    if missing:
        raise SystemExit(f"peer {PEER_FILE}: not found: {', '.join(sorted(missing))}")
    loop = _inner_training_loop(tree)
    # The loop body is executed unmodified, statement for statement as in the
    # peer's file. It is only wrapped in a one-pass `for` so that its
    # `if opt.dry_run: break` compiles (dry_run is False, so it never breaks).
    once = ast.For(target=ast.Name("_peer_once", ast.Store()),
                   iter=ast.parse("range(1)", mode="eval").body,
                   body=loop.body, orelse=[])
    ast.copy_location(once, loop)
    return PeerParts(_compile(parser, filename), _compile(setup, filename),
                     _compile([once], filename))


def peer_argv(outf: str, batch: int = BATCH) -> list[str]:
    """Command line for the peer's parser: its defaults, with the compared sizes pinned."""
    return ["--dataset", "mnist", "--batchSize", str(batch), "--imageSize", str(IMAGE_SIZE),
            "--nz", str(NZ), "--ngf", str(NGF), "--ndf", str(NDF), "--outf", outf,
            "--manualSeed", "0"]


def build_peer(parts: PeerParts, real: torch.Tensor, outf: str, seed: int = 0,
               compiled: str | None = None) -> dict[str, Any]:
    """Execute the peer's setup in a prepared namespace; return that namespace.

    ``real`` is on the device the peer runs on; ``compiled`` (a torch.compile
    mode) compiles its two nets.
    """
    ns: dict[str, Any] = {"__name__": "peer_dcgan_main"}
    exec(parts.parser, ns)
    ns["opt"] = ns["parser"].parse_args(peer_argv(outf, len(real)))
    # What the script's device and dataset branches would have set for MNIST.
    ns.update(device=real.device, nc=NC)
    torch.manual_seed(seed)  # the script seeds the global RNG from --manualSeed
    exec(parts.setup, ns)
    if compiled:
        ns["netG"].compile(mode=None if compiled == "default" else compiled)
        ns["netD"].compile(mode=None if compiled == "default" else compiled)
    got = {k: ns[k] for k in ("nz", "ngf", "ndf", "nc")}
    if got != {"nz": NZ, "ngf": NGF, "ndf": NDF, "nc": NC}:
        raise SystemExit(f"peer sizes differ from the compared ones: {got}")
    ns.update(epoch=0, i=1, data=(real,), dataloader=[(real,)])
    return ns


def peer_step(parts: PeerParts, ns: dict[str, Any], cuda_graphs: bool = False) -> StepFn:
    """One peer step: the loop body with ``i = 1`` (no image dumps), stdout silenced.

    With ``cuda_graphs`` each step starts a new CUDA-graph generation first.
    """
    devnull = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the closure

    def step() -> None:
        if cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
        with contextlib.redirect_stdout(devnull):
            exec(parts.step, ns)

    return step


# --------------------------------------------------------------------------- our side


def build_ours(overrides: list[str]) -> tuple[Any, str]:
    """Our DCGAN trainer, built as ``zoo.training.loop.fit`` builds it; returns it and the
    precision.

    ``overrides`` include :func:`our_base`.
    """
    from zoo.api import resolve_spec
    from zoo.training.runtime import make_accelerator, seed_everything

    family, spec = resolve_spec("dcgan", None, overrides)
    accelerator, precision = make_accelerator(spec)
    impl = family.load()
    seed_everything(0)
    return impl.trainer(spec, impl.build(spec), accelerator), precision


def our_step(trainer: Any, images01: torch.Tensor) -> StepFn:
    """One optimisation step of our trainer on the fixed batch (on the batch's device).

    The batch is laid out as the training loop lays out each batch (``in_layout``).
    """
    rng = torch.Generator(device=images01.device).manual_seed(0)
    batch = trainer.in_layout(images01)

    def step() -> dict[str, torch.Tensor]:
        trainer.begin_step()
        return trainer.step(batch, None, rng)

    return step


def conv_output_dtypes(trainer: Any, step: StepFn) -> list[str]:
    """The dtypes of all conv outputs (G and D) during one step of ``trainer``."""
    seen: set[str] = set()
    hooks = [m.register_forward_hook(lambda _m, _i, out: seen.add(str(out.dtype)))
             for module in trainer.modules.values() for m in module.modules()
             if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    try:
        step()
    finally:
        for h in hooks:
            h.remove()
    return sorted(seen)


# --------------------------------------------------------------------------- report


def summarise(phases: list[Timings], batch: int) -> tuple[dict[str, float], dict[str, float]]:
    """Images/s per configuration and ratios to the peer taken from the same phase.

    Our configurations are divided by the eager peer; the compiled peer's figure
    is also given as ``ours compiled / peer compiled``.
    """
    def rate(per_round: list[list[float]]) -> float:
        return images_per_s(per_round, batch)

    rates = {PEER: rate([rnd for ph in phases for rnd in ph[PEER]])}
    ratios: dict[str, float] = {}
    for phase in phases:
        for name, per_round in phase.items():
            if name != PEER:
                rates[name] = rate(per_round)
                ratios[name] = rates[name] / rate(phase[PEER])
        if OURS_COMPILED in phase and PEER_COMPILED in phase:
            ratios[f"{OURS_COMPILED} / {PEER_COMPILED}"] = (
                rate(phase[OURS_COMPILED]) / rate(phase[PEER_COMPILED]))
    return rates, ratios


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--peer-repo", type=Path, default=None,
                   help=f"bare mirror or checkout of pytorch/examples (default: {DEFAULT_MIRROR}"
                        f" if present, else {DEFAULT_CHECKOUT})")
    p.add_argument("--batch", type=int, default=BATCH, help="images per step (both sides)")
    add_round_options(p)
    p.add_argument("--compile-mode", default="default",
                   choices=("default", "reduce-overhead", "max-autotune"),
                   help="torch.compile mode for --compile (reduce-overhead: CUDA graphs)")
    args = p.parse_args(argv)
    name = "dcgan_train" + ("" if args.batch == BATCH else f".b{args.batch}")
    args = settle_round_options(args, name)
    args.peer_repo = args.peer_repo or default_peer_repo()
    return args


def load_batch(batch: int = BATCH) -> torch.Tensor:
    """``batch`` real MNIST digits, 64x64x1, float in [0, 1]."""
    from zoo.core.spec import DataSpec
    from zoo.data import load_images

    images, _ = load_images(DataSpec(source="mnist5k", image_size=IMAGE_SIZE, channels=NC))
    return images[:batch].contiguous()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    batch, sync = args.batch, args.sync
    print(f"device: {args.device}  batch: {batch}  threads: {torch.get_num_threads()}  "
          f"rounds: {args.rounds}  K: {args.k}  warmup: {args.warmup}", flush=True)
    source = read_peer_source(args.peer_repo)
    parts = extract_peer(source.text)
    images01 = load_batch(batch).to(args.device)
    real = images01 * 2 - 1  # the peer's ToTensor + Normalize((0.5,), (0.5,))
    base = our_base(batch, args.device)
    configs = OUR_CONFIGS | (COMPILED_CONFIG if args.compile else {})
    if args.compile:
        configs[OURS_COMPILED] = [*configs[OURS_COMPILED],
                                  f"run.compile_mode={args.compile_mode}"]
    cuda_graphs = args.device == "cuda" and args.compile_mode != "default"

    outf = tempfile.TemporaryDirectory(prefix="dcgan_peer_")
    peers = {PEER: peer_step(parts, build_peer(parts, real.clone(), outf.name))}
    if args.compile:
        peers[PEER_COMPILED] = peer_step(
            parts, build_peer(parts, real.clone(), outf.name, compiled=args.compile_mode),
            cuda_graphs)
    trainers = {name: build_ours(base + ov) for name, ov in configs.items()}
    steps = {name: our_step(t, images01) for name, (t, _) in trainers.items()}
    probe = {name: conv_output_dtypes(t, steps[name]) for name, (t, _) in trainers.items()
             if name in OUR_CONFIGS}  # hooks would only make the compiled ones recompile
    precisions = {name: p for name, (_, p) in trainers.items()}
    mode = "interleaved" if probe[OURS_FP32] == [EXPECTED_CONV_DTYPE[OURS_FP32]] else "phased"
    if precisions[OURS_DEFAULT] != "bf16" or probe[OURS_DEFAULT] != ["torch.bfloat16"]:
        print(f"note: default config runs {precisions[OURS_DEFAULT]} here, conv outputs "
              f"{probe[OURS_DEFAULT]}", file=sys.stderr)

    phases: list[Timings] = []
    peak_mib: dict[str, float] = {}
    flops: dict[str, int] = {}  # one more, untimed step of each eager configuration
    if mode == "interleaved":
        calls = {**peers, **steps}
        peak_mib = warm_up(calls, args.warmup, sync)
        phases.append(run_rounds(calls, args.rounds, args.k, batch, sync=sync))
        flops = {name: step_flops(call) for name, call in calls.items() if name not in FLOPS_OF}
    else:
        print(f"note: fp32 trainer ran {probe[OURS_FP32]} after the bf16 one was built; "
              "timing one configuration per phase", file=sys.stderr)
        del trainers, steps
        for name, overrides in configs.items():
            trainer, precisions[name] = build_ours(base + overrides)  # the newest accelerator
            step = our_step(trainer, images01)
            if name in OUR_CONFIGS:
                probe[name] = conv_output_dtypes(trainer, step)
            calls = {**peers, name: step}
            peak_mib |= warm_up(calls, args.warmup, sync)
            phases.append(run_rounds(calls, args.rounds, args.k, batch, sync=sync))
            flops |= {n: step_flops(c) for n, c in calls.items() if n not in FLOPS_OF | flops}
    outf.cleanup()

    rates, ratios = summarise(phases, batch)
    where = f"dcgan64 {args.device} b{batch}"
    for name in [*peers, *configs]:
        vs = f" ({ratios[name]:.2f}x peer)" if name in ratios else ""
        mem = f", peak {peak_mib[name]:.0f} MiB" if name in peak_mib else ""
        print(f"{where} {name}: {rates[name]:.1f} img/s{vs}{mem}")
    for name, ratio in ratios.items():
        if " / " in name:
            print(f"{where} {name}: {ratio:.2f}x")
    precision = {name: precisions.get(name, "fp32") for name in rates}  # the peer runs fp32
    peaks = {p: peak_flops(p, args.device) for p in sorted(set(precision.values()))}
    of_peak = {name: vs_peak(flops[FLOPS_OF.get(name, name)], batch / rate,
                             peaks[precision[name]]) for name, rate in rates.items()}
    for name, row in of_peak.items():
        print(peak_line(f"{where} {name}", row, precision[name]))

    result = {
        "benchmark": f"dcgan64 training step, batch {batch}, 64x64x1 MNIST (mnist5k), "
                     f"{args.device}",
        "machine": machine_info() | {"accelerate": accelerate.__version__},
        "settings": {"rounds": args.rounds, "k": args.k, "warmup": args.warmup,
                     "quick": args.quick, "device": args.device, "compile": args.compile,
                     "compile_mode": args.compile_mode,
                     "batch": batch, "image_size": IMAGE_SIZE,
                     "nz": NZ, "ngf": NGF, "ndf": NDF, "nc": NC, "mode": mode,
                     "ours_overrides": {n: base + ov for n, ov in configs.items()},
                     "ours_precision": precisions, "ours_conv_output_dtypes": probe,
                     "peer_argv": peer_argv("<tmpdir>", batch)},
        "peer": {"repo": str(source.repo), "file": PEER_FILE, "commit": source.commit,
                 "source_sha256": hashlib.sha256(source.text.encode()).hexdigest()},
        "timings_s": phases,  # per phase: configuration -> rounds -> per-step seconds
        "median_step_s": {n: batch / r for n, r in rates.items()},
        "images_per_s": {n: round(r, 2) for n, r in rates.items()},
        "ratio_vs_peer": {n: round(r, 3) for n, r in ratios.items()},
        "peak_gpu_mib": peak_mib,
        "vs_peak": {n: row | {"precision": precision[n]} for n, row in of_peak.items()},
        "peak_matmul_gflops_runs": peak_runs(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
