"""The ``zoo`` command: parse, call the public API (:mod:`zoo.api`), print. Errors become one
line and exit 2.

Besides ``zoo.api``, this module imports only ``zoo.core.errors`` and, to start up,
``zoo.core.plugins`` (loading plugins and adding their commands); an import-linter
contract in pyproject.toml keeps it so.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from zoo.core.errors import ZooError

app = typer.Typer(
    name="zoo",
    help="A declarative model zoo for generative image models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: The largest seed (64-bit, as torch.Generator takes; zoo.core.spec.MAX_INT, not imported here).
MAX_SEED = 2**63 - 1

SamplingOpts = Annotated[list[str] | None, typer.Option(
    "--opt", help="A sampling option of the model's family, KEY=VALUE (repeatable; "
    "zoo spec FAMILY lists them), e.g. --opt steps=20.")]
Sets = Annotated[list[str] | None, typer.Option("--set", help="Override a spec key: a.b=value.")]
Model = Annotated[str, typer.Argument(
    help="Model folder, Hub id (namespace/name\\[@revision]) or published named model.")]


@app.callback()
def options(
    endpoint: Annotated[str | None, typer.Option(
        "--endpoint", help="Hub URL (default: $HF_ENDPOINT, else https://huggingface.co).")] = None,
    offline: Annotated[bool, typer.Option(
        "--offline", help="Use only the local Hub cache (like HF_HUB_OFFLINE=1).")] = False,
) -> None:
    """A declarative model zoo for generative image models."""
    from zoo.api import set_hub_options

    set_hub_options(endpoint=endpoint, offline=offline)


def _console():
    from rich.console import Console

    return Console(highlight=False)


def _printable(text: str) -> str:
    """``text`` with control characters (terminal escape sequences) shown escaped, not sent."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def _shown(text: object, style: str = "") -> Any:
    """A value read from a model's files or the Hub as rich ``Text``: never taken as markup,
    and control characters shown escaped (:func:`_printable`)."""
    from rich.text import Text

    return Text(_printable(str(text)), style=style)


@app.command("list")
def list_cmd(
    patterns: Annotated[list[str] | None, typer.Argument(help="Wildcards, e.g. 'dc*'.")] = None,
    exclude: Annotated[list[str] | None, typer.Option(help="Wildcards to leave out.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    remote: Annotated[bool, typer.Option(
        "--remote", help="List genzoo models on the Hub (wildcards match the id).")] = False,
) -> None:
    """List families and named models, or genzoo models on the Hub (no torch import)."""
    if remote:
        _list_remote(patterns, exclude, as_json)
        return
    from zoo.api import list_entries

    rows = list_entries(patterns or ["*"], exclude or [])
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    table = Table("name", "kind", "family", "description", box=None)
    for r in rows:
        table.add_row(r["name"], r["kind"], r["family"], r["description"])
    _console().print(table)


def _list_remote(patterns: list[str] | None, exclude: list[str] | None, as_json: bool) -> None:
    from zoo.api import list_remote

    rows = list_remote(patterns, exclude or [])
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    table = Table("id", "family", "downloads", "last modified", box=None)
    for r in rows:
        table.add_row(_shown(r["id"]), _shown(r["family"]),
                      "" if r["downloads"] is None else f"{r['downloads']:,}",
                      _shown((r["last_modified"] or "")[:10]))
    _console().print(table)


@app.command("spec")
def spec_cmd(
    name: Annotated[str, typer.Argument(help="Family or named model.")],
    schema: Annotated[bool, typer.Option("--schema", help="Print JSON Schema instead.")] = False,
    sets: Sets = None,
) -> None:
    """Print a complete default spec as commented TOML (no torch import)."""
    from zoo.api import spec_text

    sys.stdout.write(spec_text(name, sets or [], schema=schema))


@app.command("build")
def build_cmd(
    name: Annotated[str | None, typer.Argument(help="Family or named model.")] = None,
    spec: Annotated[Path | None, typer.Option("--spec", help="Spec file (TOML or JSON).")] = None,
    sets: Sets = None,
    out: Annotated[Path | None, typer.Option(help="Model folder to write.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from OUT.ckpt or OUT.")] = False,
    force: Annotated[bool, typer.Option(help="Replace an existing OUT.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Validate and print the spec only.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress display.")] = False,
    processes: Annotated[int, typer.Option(
        min=1, help="Train with N local processes (torchrun, data parallel); "
        "train.batch_size stays the global batch.")] = 1,
) -> None:
    """Train a model and write its model folder."""
    from zoo.api import plan_build

    if name is None and spec is None:
        raise ZooError("give a family or named model, or --spec FILE")
    plan = plan_build(name, spec, sets or [], out)
    out = plan.out
    if dry_run:
        sys.stdout.write(plan.toml(f"dry run: would write {out}"))
        return
    if processes > 1:
        from zoo.api import launch_build

        raise typer.Exit(launch_build(processes, plan.spec.train.batch_size, out,
                                      resume=resume, force=force))
    from zoo.core.errors import Aborted, Interrupted

    try:
        folder = plan.run(resume=resume, force=force, progress=not quiet)
    except Aborted as exc:  # typer would turn it into a silent exit 130, even for SIGTERM
        name = signal.Signals(exc.signum).name
        raise Interrupted(f"aborted at once by a second {name}; nothing more was written "
                          "(a checkpoint written before is kept)",
                          exit_status=128 + exc.signum) from None
    if os.environ.get("RANK", "0") == "0":  # under torchrun only the main process reports
        print(f"wrote {folder}")


@app.command("sample")
def sample_cmd(
    path: Model,
    n: Annotated[int, typer.Option("-n", min=1, max=100_000, help="Number of images.")] = 64,
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED,
                                      help="Image i depends only on (seed, i).")] = 0,
    output: Annotated[Path, typer.Option(
        "-o", "--output", help="FILE.png: one grid (at most 4,096 images); DIR (a new folder: "
        "a name without a suffix): one PNG per image; FILE.npy, FILE.npz or "
        "FILE.safetensors: one uint8 NxCxHxW tensor. DIR and tensor files are written as the "
        "images are made.")] = Path("samples.png"),
    nrow: Annotated[int | None, typer.Option(min=1, help="Images per grid row.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=65536,
                                            help="Images per forward pass.")] = 64,
    label: Annotated[int | None, typer.Option(min=0, help="Class to sample (conditional "
                                              "families; the same as --opt label=N).")] = None,
    precision: Annotated[str, typer.Option(
        help="fp32, or bf16: the sampler under bf16 autocast (faster where the CPU or GPU "
        "has bf16 units; images move by bf16 rounding).")] = "fp32",
    input_image: Annotated[Path | None, typer.Option(
        "--input", help="Image to work on (families with an input option: inpaint, scene, "
        "superres; the same as --opt input=FILE).")] = None,
    mask: Annotated[Path | None, typer.Option(
        "--mask", help="Mask of the --input image, white where to fill (inpaint, scene; the "
        "same as --opt mask=FILE).")] = None,
    opts: SamplingOpts = None,
) -> None:
    """Sample images from a model folder or a Hub model: a grid, a folder of PNGs or a tensor
    file."""
    from zoo.api import parse_options, write_samples

    options = with_files(parse_options(opts or []), input=input_image, mask=mask)
    kind = write_samples(path, output, n, seed, batch_size, nrow, label=label,
                         options=options, precision=precision)
    shown = f"{output}{os.sep}" if kind == "folder" else str(output)
    print(f"wrote {shown} ({n} images, seed {seed})")


def with_files(options: dict[str, Any], **files: Path | None) -> dict[str, Any]:
    """``options`` with the file options given as flags (``--input F`` is ``--opt input=F``);
    the same option given both ways with different values is a one-line ``SpecError``."""
    from zoo.core.errors import SpecError

    for key, value in files.items():
        if value is None:
            continue
        if key in options and str(options[key]) != str(value):
            raise SpecError(f"--{key} {value} and --opt {key}={options[key]} disagree; give one")
        options[key] = str(value)
    return options


@app.command("info")
def info_cmd(
    name: Model,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    verify: Annotated[bool, typer.Option(
        help="Also compare the sha256 of every weights file with config.json.")] = False,
) -> None:
    """Show a model's family, parameters, spec, metrics and files, after checking it as
    loading does (spec, weights metadata, keys, shapes, dtypes; --verify: every byte)."""
    from zoo.api import info as model_info

    info = model_info(name, verify=verify)
    if as_json:
        print(json.dumps(info, indent=2))
        return
    console = _console()
    label = info["path"] if info["repo_id"] is None else f"{info['repo_id']}@{info['commit'][:12]}"
    console.print(_shown(label, "bold") + _shown(f": {info['family']} — {info['summary']}"))
    console.print(_shown(f"parameters {info['parameters']:,}  tensors {info['tensors']}  "
                         f"spec hash {info['spec_hash']}  genzoo {info['genzoo_version']}"))
    note = {"verified": "every weights file matches its recorded sha256",
            "recorded": "recorded in config.json (check them with --verify)",
            "unverified": "none recorded (written before genzoo recorded them)"}[info["sha256"]]
    console.print(f"sha256 {info['sha256']}: {note}")
    data, train = info["spec"]["data"], info["spec"]["train"]
    console.print(_shown(f"data {data['source']} {data['image_size']}px  "
                         f"train {train['max_steps'] or str(train['epochs']) + ' epochs'}"))
    for section, values in info["metrics"].items():
        console.print(_shown(f"{section}: " + json.dumps(values)))
    console.print(_shown("files: " + ", ".join(info["files"])))
    for row in info["visualizations"]:
        console.print(_shown(f"visualization: {row['path']} ({row['caption']})"))


@app.command("eval")
def eval_cmd(
    path: Model,
    n: Annotated[int, typer.Option("-n", min=10, help="Number of samples.")] = 1000,
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED, help="Sampling seed.")] = 0,
    features: Annotated[str | None, typer.Option(
        help="Feature network for FID, KID, precision/recall and memorisation: digits, "
        "inception or one a plugin registers (default: digits for the digit sets, else "
        "inception).")] = None,
    against: Annotated[str, typer.Option(
        help="Reference images: test (the held-out split) or train.")] = "test",
    memorisation: Annotated[bool, typer.Option(
        help="Find each sample's nearest training image (memorised@FEATURES and "
        "memorisation.png).")] = True,
    baseline: Annotated[bool, typer.Option(help="Also score an untrained model.")] = False,
    iwae_k: Annotated[int, typer.Option(min=1, help="Importance samples for the NLL.")] = 1000,
    reference_only: Annotated[bool, typer.Option(
        "--reference-only", help="PATH is a data source (a folder, mnist5k, hf:..., "
        "wds:...; data.KEY=VALUE with --set) or a model: compute and cache its real "
        "images' features only, so later evaluations skip them.")] = False,
    sets: Annotated[list[str] | None, typer.Option(
        "--set", help="With --reference-only: a data key of the source, data.KEY=VALUE.")
                    ] = None,
) -> None:
    """Score a model: FID, KID, precision/recall and memorisation on a feature network,
    reconstruction error, IWAE NLL, digit-classifier class coverage, and the metrics
    plugins register.

    Results are merged into metrics.json and the model card of a local folder.
    """
    if reference_only:
        from zoo.api import precompute_reference

        done = precompute_reference(path, features, sets or [])
        for split, what in (("held-out", done["test"]), ("training", done["train"])):
            how = "already cached" if what["cached"] else "computed and cached"
            print(f"{done['features']} features of {what['images']:,} {split} images: "
                  f"{how} ({what['seconds']} s)")
        return
    if sets:
        raise ZooError("--set applies only with --reference-only (a model's spec names "
                       "its data)")
    from zoo.api import evaluate

    result = evaluate(path, n=n, seed=seed, baseline=baseline, iwae_k=iwae_k,
                      features=features, against=against, memorise=memorisation)
    if not Path(path).exists():
        print(f"note: {path} is a Hub model, its cached files stay as downloaded; to keep the "
              f"scores: zoo pull {path} --local-dir DIR, then zoo eval DIR", file=sys.stderr)
    from rich.table import Table

    table = Table("metric", "value", box=None)
    for key, value in result.items():
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    _console().print(table)


@app.command("probe")
def probe_cmd(
    path: Model,
    labels: Annotated[str, typer.Option(
        help="Label counts to train the probes with, comma-separated; all: every "
        "training label.")] = "100,1000,all",
    seeds: Annotated[int, typer.Option(
        min=1, max=100, help="Class-balanced draws of each smaller label count.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False,
) -> None:
    """Linear probes on a model's frozen features (its family's features: codes,
    discriminator features, ...), beside raw pixels and a randomly initialised network of
    the same architecture: held-out accuracy at 100, 1,000 and all training labels.

    Results are merged into metrics.json (probe.*) and the model card of a local folder.
    """
    from zoo.api import probe

    result = probe(path, labels=labels, seeds=seeds)
    if as_json:
        print(json.dumps(result, indent=2))
        return
    from rich.table import Table

    kinds = ("features", "pixels", "random")
    table = Table("labels", *(f"{k} ({result[f'{k}.dim']:,})" for k in kinds), box=None)
    counts = [k.removeprefix("features.") for k in result
              if k.startswith("features.") and k.count(".") == 1 and k != "features.dim"]
    for count in counts:
        cells = []
        for kind in kinds:
            std = result[f"{kind}.{count}.std"]
            cells.append(f"{100 * result[f'{kind}.{count}']:.1f}"
                         + (f" ± {100 * std:.1f}" if std else ""))
        table.add_row(count, *cells)
    _console().print(table)
    print(f"held-out accuracy (%) on {result['test_images']:,} images; {result['seeds']} "
          "seeds for the smaller label counts")


visualize_app = typer.Typer(
    name="visualize", no_args_is_help=True, suggest_commands=True,
    help="Look inside a model: latent interpolation, filters, activation maximisation, "
    "deconv. Writes PNGs into visualize/ of the model folder (listed by zoo info, linked "
    "from the card) or into -o DIR.")
app.add_typer(visualize_app)

Output = Annotated[Path | None, typer.Option(
    "-o", "--output", help="Folder for the PNGs (default: visualize/ in the model folder, "
    "linked from its card).")]
Module = Annotated[str | None, typer.Option(
    help="discriminator, encoder, model, classifier, ... (default: the first of those that "
    "takes the model's images).")]
Layer = Annotated[str | None, typer.Option(help="Dotted layer name, e.g. net.2 or head.1.")]
Units = Annotated[list[int] | None, typer.Option(min=0, help="Unit or channel (repeatable).")]
Label = Annotated[int | None, typer.Option(min=0, help="Class of a conditional model (the same "
                                          "as --opt label=N).")]


def _visualize(path: str, what: str, output: Path | None, **options: Any) -> None:
    from zoo.api import visualize

    for written in visualize(path, what, output, **options):
        print(f"wrote {written}")


@visualize_app.command("interpolate")
def visualize_interpolate(
    path: Model,
    pairs: Annotated[int | None, typer.Option(min=1, help="Strips (default 4).")] = None,
    frames: Annotated[int | None, typer.Option(min=2, help="Images per strip (default 8).")
                      ] = None,
    method: Annotated[str | None, typer.Option(help="slerp (default) or lerp.")] = None,
    seed: Annotated[int | None, typer.Option(
        min=0, max=MAX_SEED, help="Strip j walks from sample 2j to 2j+1 of this seed.")] = None,
    label: Label = None,
    opts: SamplingOpts = None,
    output: Output = None,
) -> None:
    """Walks between latent codes (families with the latent capability), one strip a pair."""
    from zoo.api import parse_options, with_label

    sampling = with_label(parse_options(opts or []), label)
    _visualize(path, "interpolate", output, pairs=pairs, frames=frames, method=method,
               seed=seed, sampling=sampling or None)


@visualize_app.command("steps")
def visualize_steps(
    path: Model,
    count: Annotated[int | None, typer.Option(min=1, max=64, help="Samples, one row each "
                                              "(default 8).")] = None,
    seed: Annotated[int | None, typer.Option(min=0, max=MAX_SEED, help="Rows are samples "
                                             "0 .. count-1 of this seed.")] = None,
    label: Label = None,
    opts: SamplingOpts = None,
    output: Output = None,
) -> None:
    """The stages a sampler builds its images in (DRAW's canvas per step, LAPGAN's pyramid)."""
    from zoo.api import parse_options, with_label

    sampling = with_label(parse_options(opts or []), label)
    _visualize(path, "steps", output, count=count, seed=seed, sampling=sampling or None)


@visualize_app.command("filters")
def visualize_filters(
    path: Model,
    module: Module = None,
    count: Annotated[int | None, typer.Option(min=1, help="At most this many (default 256).")
                     ] = None,
    output: Output = None,
) -> None:
    """The first layer's filters of a discriminator or encoder."""
    _visualize(path, "filters", output, module=module, count=count)


@visualize_app.command("activation-max")
def visualize_activation_max(
    path: Model,
    module: Module = None,
    layer: Layer = None,
    unit: Units = None,
    iterations: Annotated[int | None, typer.Option(min=1, help="Gradient steps (default 256).")
                          ] = None,
    lr: Annotated[float | None, typer.Option(min=0.0, help="Adam step (default 0.1).")] = None,
    jitter: Annotated[int | None, typer.Option(min=0, help="Random shift in pixels (default: "
                                               "size / 14).")] = None,
    blur: Annotated[float | None, typer.Option(min=0.0, help="Gaussian blur sigma in pixels "
                                               "(default 0.5).")] = None,
    decay: Annotated[float | None, typer.Option(min=0.0, max=1.0, help="L2 decay per step "
                                                "(default 0.002).")] = None,
    seed: Annotated[int | None, typer.Option(min=0, max=MAX_SEED, help="The start image.")
                    ] = None,
    output: Output = None,
) -> None:
    """Images that maximise a unit of a layer (regularised gradient ascent on the input)."""
    _visualize(path, "activation-max", output, module=module, layer=layer, unit=unit or None,
               iterations=iterations, lr=lr, jitter=jitter, blur=blur, decay=decay, seed=seed)


@visualize_app.command("deconv")
def visualize_deconv(
    path: Model,
    module: Module = None,
    layer: Layer = None,
    unit: Units = None,
    top_k: Annotated[int | None, typer.Option(min=1, help="Top inputs (default 9).")] = None,
    data: Annotated[str | None, typer.Option(help="Data source or image folder (default: the "
                                             "model's).")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Images searched (default 1000).")
                     ] = None,
    rule: Annotated[str | None, typer.Option(help="guided (default) or deconvnet.")] = None,
    output: Output = None,
) -> None:
    """The inputs that activate a unit most, with their receptive fields and projections."""
    _visualize(path, "deconv", output, module=module, layer=layer, unit=unit or None,
               top_k=top_k, data=data, limit=limit, rule=rule)


@app.command("demo")
def demo_cmd(
    source: Annotated[str, typer.Argument(
        help="Model folder, Hub id (namespace/name\\[@revision]), named model, or a folder of "
        "model folders (a gallery of them all); with --export, the Hub id the Space loads.")],
    port: Annotated[int | None, typer.Option(
        min=1, max=65535, help="Port to serve on (default: the first free one from 7860).")
                    ] = None,
    host: Annotated[str, typer.Option(help="Address to serve on (0.0.0.0: every interface)."
                                      )] = "127.0.0.1",
    share: Annotated[str, typer.Option(
        "--share", metavar="true|false",
        help="true: also open a public Gradio share link (needs the internet).")] = "false",
    export: Annotated[Path | None, typer.Option(
        "--export", metavar="DIR", help="Write a Hugging Face Space (app.py, requirements.txt, "
        "README.md) that serves the demo of the Hub model SOURCE, instead of serving.")
                      ] = None,
    requirement_genzoo: Annotated[str | None, typer.Option(
        help="With --export: genzoo's requirement line, or a local checkout's path (default: "
        "genzoo\\[demo]==this version).")] = None,
    requirement: Annotated[list[str] | None, typer.Option(
        help="With --export: another requirement line, e.g. the plugin package of the "
        "model's family (repeatable).")] = None,
    force: Annotated[bool, typer.Option(help="With --export: replace existing files.")] = False,
) -> None:
    """See a model in a browser: sample grids by seed and count, the family's sampling
    options, interpolation, the model card (needs pip install 'genzoo\\[demo]')."""
    if export is not None:
        from zoo.api import export_demo

        for path in export_demo(export, source, requirement_genzoo, requirement or [], force):
            print(f"wrote {path}")
        return
    if requirement_genzoo is not None or requirement or force:
        raise ZooError("--requirement-genzoo, --requirement and --force apply only with "
                       "--export DIR")
    if share.lower() not in ("true", "false"):
        raise ZooError(f"--share {share!r}: expected true or false")
    from zoo.api import demo

    demo(source, port=port, host=host, share=share.lower() == "true")


@app.command("push")
def push_cmd(
    path: Annotated[Path, typer.Argument(help="Model folder to upload.")],
    repo_id: Annotated[str | None, typer.Argument(
        help="Hub repo, namespace/name (default: hub.repo_id of the spec).")] = None,
    revision: Annotated[str | None, typer.Option(
        help="Branch to commit to (created from main if missing).")] = None,
    private: Annotated[bool, typer.Option(help="Create the repo private.")] = False,
    message: Annotated[str | None, typer.Option(help="Commit message.")] = None,
    create_pr: Annotated[bool, typer.Option(help="Open a pull request instead.")] = False,
) -> None:
    """Validate a model folder, then upload it to the Hub in one commit; print the commit URL."""
    from zoo.api import push

    result = push(path, repo_id, revision=revision, private=private or None, message=message,
                  create_pr=create_pr)
    print(result.pr_url or result.commit_url)


@app.command("pull")
def pull_cmd(
    repo_id: Annotated[str, typer.Argument(help="namespace/name\\[@revision] or named model.")],
    local_dir: Annotated[Path | None, typer.Option(
        help="Download into this folder instead of the Hub cache.")] = None,
) -> None:
    """Download a model repo snapshot (cache by default) and print its path."""
    from zoo.api import pull

    print(pull(repo_id, local_dir=local_dir).path)


@app.command("plugins")
def plugins_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Installed plugins, their distributions, versions, status and what they register.

    A broken plugin (it failed to import, has an unknown hook, or registers a
    name another plugin has) is listed with the reason it was skipped.
    """
    from zoo.api import plugins

    rows = plugins()
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    table = Table("plugin", "distribution", "version", "status", "registers", box=None)
    kinds = {"families": "families", "datasets": "data sets", "metrics": "metrics",
             "features": "feature networks"}
    for r in rows:
        status = r["status"] + (f": {r['reason']}" if r["reason"] else "")
        registers = "; ".join(f"{label}: {', '.join(r[key])}" for key, label in kinds.items()
                              if r[key])
        table.add_row(r["name"] + (" (built-in)" if r["builtin"] else ""), r["distribution"],
                      r["version"], status, registers)
    _console().print(table)


data_app = typer.Typer(help="Data tools: pack images into WebDataset shards, index shards.",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("pack")
def data_pack_cmd(
    source: Annotated[str, typer.Argument(
        help="A folder of images, or a data source: mnist5k, hf:NAME, wds:PATTERN, ...")],
    out: Annotated[Path, typer.Argument(help="The folder of shards to write.")],
    shard_size: Annotated[int, typer.Option(min=1, help="Images per shard.")] = 1000,
    max_shard_mb: Annotated[float, typer.Option(min=0.001, help="About this many MB per "
                                                "shard at most.")] = 1024,
    split: Annotated[str, typer.Option(
        help="all (keys keep the hash split), train or test.")] = "all",
    size: Annotated[int | None, typer.Option(
        min=4, max=1024, help="Store each image decoded and resized to SIZE x SIZE as PNG "
        "(default: the original bytes).")] = None,
    sets: Annotated[list[str] | None, typer.Option(
        "--set", help="A data key of the source: data.KEY=VALUE (e.g. data.key_column=path).")
                    ] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing OUT (shards only).")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Write a data source's images as WebDataset tar shards, with an index, and print the
    data.source that reads them (needs pip install 'genzoo\\[data]')."""
    from zoo.api import pack_data

    if split not in ("train", "test", "all"):
        raise ZooError(f"--split {split!r}: expected train, test or all")
    result = pack_data(source, out, shard_size=shard_size, max_shard_mb=max_shard_mb,
                       split=split, size=size, overrides=sets or [], force=force,
                       progress=not quiet)
    print(_printable(result.summary()))


@data_app.command("index")
def data_index_cmd(
    pattern: Annotated[str, typer.Argument(
        help="Local .tar shards of one folder, a brace pattern: DIR/shard-{000000..000009}.tar")],
) -> None:
    """Write index.tsv.gz and index.json beside WebDataset shards made elsewhere, so the wds:
    source opens them without scanning every tar header."""
    from zoo.api import index_data

    print(f"wrote {_printable(str(index_data(pattern)))}")


plugin_app = typer.Typer(help="Tools for plugin authors.", no_args_is_help=True)
app.add_typer(plugin_app, name="plugin")


@plugin_app.command("check")
def plugin_check_cmd(
    families: Annotated[list[str], typer.Argument(help="Families to check.")],
    sets: Sets = None,
) -> None:
    """Run the conformance kit on families: spec, tiny build, sampling, loading, card.

    Exit status 1 if any check fails (one line per failure).
    """
    from rich.table import Table

    from zoo.api import check_families

    failed = 0
    table = Table("family", "check", "result", box=None)
    for family, check in check_families(families, sets or ()):  # unknown names fail first
        failed += not check.ok
        mark = "[green]ok[/green]" if check.ok else "[red]FAIL[/red]"
        table.add_row(family, check.name, f"{mark} {check.detail}")
    _console().print(table)
    if failed:
        raise typer.Exit(1)


def main() -> None:
    """Console-script entry point: run the app; exit with its status.

    Bad input of any kind, a ``ZooError`` or a bad option or argument, is one
    ``error: ...`` line on stderr and exit status 2; ``Interrupted`` exits 128 + its
    signal (130 for Ctrl-C, 143 for SIGTERM).
    """
    from zoo.core.errors import Interrupted

    try:
        from contextlib import suppress

        from zoo.api import load_registry
        from zoo.core.errors import SpecError
        from zoo.core.plugins import add_commands, load_plugins

        pm = load_plugins()
        # a plugin that loses a name to another is skipped before it adds commands; a bad
        # registry.toml is reported by the commands that read it
        with suppress(SpecError):
            load_registry()
        add_commands(pm, app)
        code = app(standalone_mode=False)  # --help, typer.Exit and Ctrl-C return a status
    except typer.TyperException as exc:  # click's errors: a bad option value, a missing argument
        if type(exc).__name__ == "NoArgsIsHelpError":  # typer has printed the help already
            code = getattr(exc, "exit_code", 2)
        else:
            _error(usage_message(exc))
            code = 2
    except typer.Abort:
        print("Aborted!", file=sys.stderr)
        code = 1
    except ZooError as exc:
        _error(str(exc))
        code = exc.exit_status if isinstance(exc, Interrupted) else 2
    finally:  # --endpoint/--offline hold for one command, even when run in-process
        from zoo.api import set_hub_options

        set_hub_options()
    sys.exit(code if isinstance(code, int) else 0)


def usage_message(exc: Exception) -> str:
    """A click usage error as one line: the command, what is wrong, where help is."""
    format_message = getattr(exc, "format_message", None)
    message = format_message() if callable(format_message) else str(exc)
    ctx = getattr(exc, "ctx", None)
    if ctx is None:
        return message
    return f"{ctx.command_path}: {message} (see {ctx.command_path} --help)"


def _error(message: str) -> None:
    # one line; values from a repo or a file (a card's library_name) may hold escape sequences
    print("error: " + _printable(" ".join(message.splitlines())), file=sys.stderr)
