"""Specs: pydantic models for one model's complete recipe, TOML in and out.

A spec is one document with ``spec_version``, ``family`` and the sections
``model`` (family-specific), ``data``, ``train``, ``sample`` and ``hub`` (the
recipe: what the model is, covered by the spec hash) and ``run`` (how a run
executes: device, kernels, memory layout, compiler, logging and checkpoint
cadence; provenance, outside the hash). Every model forbids unknown keys;
errors name the key path, the bad value, what was expected and the closest
known spelling. Documents of older ``spec_version`` are migrated explicitly
(:func:`migrate`). This module never imports torch.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import math
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import tomli_w
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from zoo.core.errors import PluginError, SpecError

SPEC_VERSION = 2
#: The section that says how a run executes; every other section is the recipe.
EXECUTION = "run"
#: The keys spec_version 1 kept in ``train`` that spec_version 2 keeps in ``run``.
V1_EXECUTION_KEYS = ("device", "fused_optimizer", "sync_batchnorm", "channels_last", "compile",
                     "compile_mode", "checkpoint_every", "log_every")

#: Limits on what a spec may say, so absurd input fails at once with one line.
MAX_FILE_BYTES = 1 << 20  # a spec file is a few hundred bytes; refuse anything over 1 MiB
MAX_DEPTH = 32  # tables and arrays nested deeper than this are refused
MAX_STRING = 4096  # characters in any string value
MAX_PATH_BYTES, MAX_NAME_BYTES = 4096, 255  # PATH_MAX and NAME_MAX of Linux file systems
MAX_INT = 2**63 - 1  # integers must fit in 64 bits (torch.Generator takes seeds up to this)
MAX_STEPS = 10**9  # train.max_steps
MAX_EPOCHS = 10**6  # train.epochs
MAX_ERRORS = 3  # validation errors described in the one error line
#: Hub repository ids: namespace/name, each starting with a letter or digit (the Hub's rule).
REPO_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$"
MAX_REPO_ID = 96


def is_repo_id(name: str) -> bool:
    """Whether ``name`` is a Hub model id ``namespace/name`` (ASCII letters, digits, ``_.-``;
    no ``..``, no ``.git`` ending, at most 96 characters): the one rule for specs and the Hub."""
    return (len(name) <= MAX_REPO_ID and re.fullmatch(REPO_ID_PATTERN, name) is not None
            and ".." not in name and not name.endswith(".git"))


class Section(BaseModel):
    """Base of every spec model: frozen, unknown keys rejected, defaults validated."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, protected_namespaces=(),
        allow_inf_nan=False,
    )


class ModelSpec(Section):
    """Architecture hyper-parameters; each family subclasses this."""


class DataSplits(Section):
    """hf: the data set's own splits that train and test read, e.g. test = "validation"."""

    train: str | None = Field(None, min_length=1, max_length=256,
                              description="The split training reads.")
    test: str | None = Field(None, min_length=1, max_length=256,
                             description="The split held out (zoo eval).")


class DataSpec(Section):
    """Where training images come from and how they are shaped."""

    source: str = Field(
        "mnist5k", min_length=1, max_length=MAX_STRING,
        description="Data source: mnist5k (5,000 real MNIST digits), digits (sklearn 8x8), "
        "folder (needs path; streamed), hf:<name> (a Hugging Face data set: a Hub id, "
        "imagefolder/parquet/arrow with path, or a save_to_disk folder), wds:<pattern> "
        "(WebDataset tar shards, brace patterns), or torchvision:<Name> (needs path).",
    )
    path: str | None = Field(
        None, min_length=1, max_length=MAX_STRING, pattern=r"^[^\x00]*$",
        description="Image folder (source 'folder'), the data files or folder of hf:imagefolder"
        "/parquet/arrow, or the torchvision root; unset otherwise."
    )
    image_size: int = Field(
        32, ge=4, le=1024, description="Images are resized to this square size."
    )
    channels: Literal[1, 3] | None = Field(
        None,
        description="1 (greyscale) or 3 (RGB); unset: the source's own "
        "(digits 1, folders and torchvision 3).",
    )
    limit: int | None = Field(
        None, ge=1, le=MAX_INT, description="Use at most this many training images (unset: all)."
    )
    binarize: Literal["none", "static", "dynamic", "threshold"] = Field(
        "none",
        description="Binary pixels for Bernoulli likelihoods: static (sampled once, fixed "
        "seed), dynamic (resampled every batch in training; static for evaluation), "
        "threshold (> 0.5), or none.",
    )
    split: Literal["auto", "hash", "seeded"] = Field(
        "auto",
        description="How a source without its own splits is split into train and held-out "
        "images: hash (by a stable hash of each image's key, so adding images moves no old one; "
        "the folder, hf: and wds: sources), seeded (a seeded 90/10 split of the whole set; the "
        "in-memory sources), or auto (hash where the source has keys, else seeded).",
    )
    held_out: float = Field(
        0.1, gt=0, le=0.5, description="The fraction of images the hash split holds out."
    )
    last_batch: Literal["drop", "wrap"] = Field(
        "drop",
        description="The images an epoch leaves over after its last full batch: drop (not seen "
        "that epoch) or wrap (the next epoch's order continues the batch, so every image of "
        "every epoch is seen exactly once).",
    )
    strict: bool = Field(
        False, description="A corrupt, truncated or oversized image stops the build (off: it "
        "is skipped with a counted warning, recorded in metrics.json).",
    )
    fit_images: int = Field(
        4096, ge=1, le=MAX_INT,
        description="Images a family's start/finish see for a streamed source (e.g. the mean "
        "image, a code Gaussian): the first of epoch 0's order. In-memory sources give all.",
    )
    eval_images: int = Field(
        10_000, ge=1, le=MAX_INT,
        description="Held-out images zoo eval decodes from a streamed source (in key order).",
    )
    streaming: bool = Field(
        False, description="hf: and wds: read the data sequentially (Hugging Face streaming, "
        "remote or compressed shards) instead of by index; for data larger than the disk.",
    )
    shuffle_buffer: int = Field(
        10_000, ge=1, le=10_000_000,
        description="With data.streaming: images in the shuffle buffer after the shard order "
        "is shuffled.",
    )
    config: str | None = Field(
        None, min_length=1, max_length=256, description="hf: the data set's configuration name."
    )
    revision: str | None = Field(
        None, min_length=1, max_length=256, description="hf: a branch, tag or commit of the "
        "data set's repository.",
    )
    splits: DataSplits = Field(
        default_factory=lambda: DataSplits(),
        description="hf: the data set's own splits to use (unset: its train split, split by "
        "data.split).",
    )
    image_column: str = Field(
        "image", min_length=1, max_length=256, description="hf: the column holding the images."
    )
    label_column: str | None = Field(
        None, min_length=1, max_length=256,
        description="hf: the column of integer labels (wds: the field, e.g. cls); unset: none.",
    )
    key_column: str | None = Field(
        None, min_length=1, max_length=256,
        description="hf: a column of unique keys (e.g. file paths) that names each image for "
        "the hash split and the order; unset: the row index.",
    )

    @model_validator(mode="after")
    def _keys_fit_the_source(self) -> DataSpec:
        """Refuse keys the source does not read, so a typo'd source is not silently ignored."""
        kind = self.source.partition(":")[0] if ":" in self.source else self.source
        hf_only = [key for key in ("config", "revision", "key_column") if getattr(self, key)]
        hf_only += ["splits"] if self.splits.train or self.splits.test else []
        if self.image_column != "image":
            hf_only.append("image_column")
        if kind != "hf" and hf_only:
            raise ValueError(f"data.{hf_only[0]} is read by hf: sources only, not by "
                             f"source {self.source!r}")
        if self.label_column and kind not in ("hf", "wds"):
            raise ValueError(f"data.label_column is read by hf: and wds: sources only, not by "
                             f"source {self.source!r}")
        if self.streaming and kind not in ("hf", "wds"):
            raise ValueError(f"data.streaming is for hf: and wds: sources, not {self.source!r}")
        return self

    @field_validator("path")
    @classmethod
    def _path_fits_file_systems(cls, path: str | None) -> str | None:
        """Refuse paths no file system takes (so probing them is not an OSError)."""
        if path is None:
            return path
        if len(path.encode("utf-8")) >= MAX_PATH_BYTES:
            raise ValueError(f"data.path is longer than {MAX_PATH_BYTES - 1} bytes")
        if any(len(part.encode("utf-8")) > MAX_NAME_BYTES
               for part in path.replace("\\", "/").split("/")):
            raise ValueError(f"data.path has a folder or file name over {MAX_NAME_BYTES} bytes")
        return path


class TrainSpec(Section):
    """The shared training loop's settings; families may add optimiser fields."""

    max_steps: int | None = Field(
        None, ge=1, le=MAX_STEPS,
        description="Stop after this many optimisation steps (wins over epochs).",
    )
    epochs: int = Field(
        1, ge=1, le=MAX_EPOCHS, description="Passes over the training data when max_steps is unset."
    )
    batch_size: int = Field(64, ge=1, le=65536, description="Images per optimisation step.")
    seed: int = Field(
        0, ge=0, le=MAX_INT, description="Seeds initialisation, data order and training noise."
    )
    precision: Literal["fp32", "bf16"] = Field(
        "bf16",
        description="bf16 autocast where the device supports it (falls back to fp32), or fp32. "
        "Part of the recipe: it changes the numbers the model is trained to.",
    )
    ema_decay: float = Field(
        0.0, ge=0, lt=1,
        description="Keep an exponential moving average of the model's weights (timm "
        "ModelEmaV3, decay warmed up from 0); the model folder stores the average. 0: off.",
    )

    @model_validator(mode="after")
    def _shared_limits(self) -> TrainSpec:
        """Hold the shared limits even where a family redeclares a field without them."""
        for key, limit in (("max_steps", MAX_STEPS), ("epochs", MAX_EPOCHS), ("seed", MAX_INT)):
            value = getattr(self, key, None)
            if isinstance(value, int) and value > limit:
                raise ValueError(f"train.{key} = {value}: must be at most {limit}")
        return self


class GANTrainSpec(TrainSpec):
    """Train keys every GAN family shares: Adam's betas and batch-norm re-estimation."""

    beta1: float = Field(0.5, ge=0, lt=1, description="Adam beta1 (0.5, as in the DCGAN paper).")
    beta2: float = Field(0.999, ge=0, lt=1, description="Adam beta2.")
    bn_batches: int = Field(
        20, ge=0, le=10_000,
        description="After training, re-estimate the generators' batch-norm statistics on this "
        "many batches so eval-mode samples are independent of batch size (0: keep running stats).",
    )


class SampleSpec(Section):
    """Defaults for the sample grid written into the model folder."""

    n: int = Field(64, ge=1, le=100_000, description="Number of images in the sample grid.")
    seed: int = Field(0, ge=0, le=MAX_INT, description="Image i depends only on (seed, i).")


class HubSpec(Section):
    """Where the model is published on the Hugging Face Hub."""

    repo_id: str | None = Field(
        None, max_length=MAX_REPO_ID, pattern=REPO_ID_PATTERN,
        description="Hub repository, namespace/name, e.g. 'me/dcgan-mnist'.",
    )
    revision: str | None = Field(
        None, min_length=1, max_length=256, pattern=r"^[^\x00-\x20\x7f]+$",
        description="Branch, tag or commit to publish to.",
    )
    license: str = Field(
        "mit", description="License of the published model: a Hub license identifier (mit, "
        "apache-2.0, cc-by-4.0, ...), or 'other' with license_name.",
    )
    license_name: str | None = Field(
        None, description="With license 'other': a short lowercase name for the license "
        "(put its text in a LICENSE file in the repo).",
    )

    @field_validator("repo_id")
    @classmethod
    def _hub_repo_id(cls, value: str | None) -> str | None:
        if value is not None and not is_repo_id(value):
            raise ValueError(f"hub.repo_id {value!r} is not a Hub model id (namespace/name: "
                             "letters, digits, '_.-'; no '..', no '.git' ending)")
        return value

    @model_validator(mode="after")
    def _hub_license(self) -> HubSpec:
        from zoo.core.licenses import license_problem

        problem = license_problem(self.license, self.license_name)
        if problem:
            raise ValueError(f"hub.{problem}")
        return self


class RunSpec(Section):
    """How a run executes, not what it trains: outside the spec hash, free to change on --resume."""

    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto picks a GPU when one is visible."
    )
    fused_optimizer: bool = Field(
        True, description="Use the fused optimiser kernel when available."
    )
    sync_batchnorm: bool = Field(
        False, description="With several GPU processes, batch norm over the global batch "
        "(SyncBatchNorm) instead of each process's share.",
    )
    channels_last: bool = Field(
        False, description="Keep 4-D weights and image batches channels-last (NHWC) in memory "
        "while training; faster for some nets, slower for others (docs/benchmarks.md). Shapes, "
        "values and the written weights are unchanged. Ignored with run.compile, which picks "
        "layouts itself.",
    )
    compile: bool = Field(
        False, description="torch.compile every trained module in place (nn.Module.compile; "
        "weights and state-dict keys unchanged); the first steps compile "
        "(docs/benchmarks.md says when it paid off).",
    )
    compile_mode: Literal["default", "reduce-overhead", "max-autotune",
                          "max-autotune-no-cudagraphs"] = Field(
        "default", description="The torch.compile mode with run.compile. reduce-overhead and "
        "max-autotune replay each module's kernels as CUDA graphs on a GPU (the loop marks the "
        "start of every step for them).",
    )
    checkpoint_every: int = Field(
        0, ge=0, le=MAX_STEPS,
        description="Write a resumable checkpoint every N steps (0: only when stopped).",
    )
    log_every: int = Field(
        10, ge=1, le=MAX_STEPS, description="Refresh the progress line every N steps."
    )
    data_workers: int | None = Field(
        None, ge=0, le=256,
        description="DataLoader worker processes that decode a streamed source's images "
        "(0: in the training process); unset: one per spare CPU core, up to 8. The order of "
        "the images does not depend on it.",
    )


class Spec(Section):
    """A model's recipe and how to run it. Families subclass it with ``family: Literal[...]``
    (and may subclass a section, ``run`` included, to change its defaults)."""

    spec_version: Literal[2] = Field(SPEC_VERSION, description="Version of this document format.")
    family: str = Field(description="The model family this spec builds.")
    model: ModelSpec = Field(default_factory=ModelSpec)
    data: DataSpec = Field(default_factory=DataSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    sample: SampleSpec = Field(default_factory=SampleSpec)
    hub: HubSpec = Field(default_factory=HubSpec)
    run: RunSpec = Field(default_factory=RunSpec)


# --------------------------------------------------------------------------- documents


def read_document(path: str | Path) -> dict[str, Any]:
    """Read a spec document (TOML, or JSON for ``.json``) into a dict.

    Anything that is not a small, UTF-8, well-formed and not absurdly nested
    document is a one-line ``SpecError``.
    """
    path = Path(path)
    where = show(str(path), 300)
    try:
        if not path.is_file():
            if path.exists():  # a folder, a FIFO, a device: never opened (it could block)
                raise SpecError(f"spec file {where} is not a regular file")
            raise SpecError(f"spec file not found: {where}")
        with path.open("rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise SpecError(f"cannot read spec file {where}: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise SpecError(f"{where}: larger than {MAX_FILE_BYTES:,} bytes; a spec is a short "
                        "text file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{where}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                        f"{exc.start})") from None
    kind = "JSON" if path.suffix == ".json" else "TOML"
    try:
        doc = json.loads(text) if kind == "JSON" else tomllib.loads(text)
    except RecursionError:
        raise SpecError(f"{where}: nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # TOMLDecodeError, JSONDecodeError, a too-long integer
        raise SpecError(f"{where}: not valid {kind}: {show(str(exc), 200)}") from None
    if not isinstance(doc, dict):
        raise SpecError(f"{where}: a spec must be a table of sections")
    check_document(doc, where)
    return doc


def check_document(doc: Any, source: str = "spec") -> None:
    """Refuse documents nested deeper than ``MAX_DEPTH``, integers beyond 64 bits, strings
    over ``MAX_STRING`` characters and non-finite numbers, with one ``SpecError`` line."""
    stack: list[tuple[Any, list[str], int]] = [(doc, [], 0)]
    while stack:
        node, path, depth = stack.pop()
        key = ".".join(path) or "document"
        if depth > MAX_DEPTH:
            raise SpecError(f"{source}: '{show(key)}' is nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, Mapping):
            for k in node:
                _check_string(str(k), source, f"{key} key")
            stack.extend((v, [*path, show(str(k))], depth + 1) for k, v in node.items())
        elif isinstance(node, list | tuple):
            stack.extend((v, [*path, str(i)], depth + 1) for i, v in enumerate(node))
        elif isinstance(node, int) and not isinstance(node, bool) and abs(node) > MAX_INT:
            raise SpecError(f"{source}: '{show(key)}' = {show(node)}: integers in a spec must "
                            f"be within +-{MAX_INT} (64 bits)")
        elif isinstance(node, float) and not math.isfinite(node):
            raise SpecError(f"{source}: '{show(key)}' = {node}: must be a finite number")
        elif isinstance(node, str):
            _check_string(node, source, key)


def _check_string(text: str, source: str, key: str) -> None:
    if len(text) > MAX_STRING:
        raise SpecError(f"{source}: '{show(key)}' is {len(text):,} characters long; "
                        f"strings in a spec are at most {MAX_STRING:,}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, which JSON can spell
        raise SpecError(f"{source}: '{show(key)}' is not valid Unicode text") from None


def show(value: Any, limit: int = 60) -> str:
    """``value`` for an error line: printable, on one line, at most ``limit`` characters
    (a longer one keeps its start and end)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"<a {value.bit_length()}-bit integer>"
    text = value if isinstance(value, str) else repr(value)
    text = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    if len(text) <= limit:
        return text
    head = (limit - 3) // 2
    return text[:head] + "..." + text[len(text) - (limit - 3 - head):]


def parse_override(text: str, flag: str = "--set") -> tuple[list[str], Any]:
    """Split ``a.b=value`` into a key path and a TOML-parsed value.

    Bare words stay strings; ``null`` unsets an optional key (TOML has no null).
    ``flag`` names the option in error messages.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise SpecError(f"{flag} {show(text)!r}: expected " + (
            "KEY.PATH=VALUE, e.g. train.max_steps=20" if flag == "--set"
            else "KEY=VALUE, e.g. steps=20"))
    path = key.split(".")
    if len(path) > MAX_DEPTH:
        raise SpecError(f"{flag} {show(text)!r}: key nested deeper than {MAX_DEPTH} levels")
    raw = raw.strip()
    if raw == "null":
        return path, None
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except RecursionError:
        raise SpecError(f"{flag} {show(text)!r}: value nested deeper than {MAX_DEPTH} levels"
                        ) from None
    except ValueError:  # not a TOML value (or an integer too long to parse): a bare string
        value = raw
    check_document({key: value}, f"{flag} {show(text)!r}")
    return path, value


#: The arguments of ``model.sample`` itself: no sampling option may take their names
#: (``--opt seed=3`` would be a second ``seed``).
SAMPLE_ARGUMENTS = {"n": "-n", "seed": "--seed", "batch_size": "--batch-size"}


def parse_options(texts: Iterable[str]) -> dict[str, Any]:
    """``KEY=VALUE`` sampling options (``zoo sample --opt``) as a dict; values are read as
    ``--set`` reads them (TOML, else a bare string)."""
    options: dict[str, Any] = {}
    for text in texts:
        path, value = parse_override(text, "--opt")
        if len(path) != 1:
            raise SpecError(f"--opt {show(text)!r}: a sampling option is one name, e.g. steps=20")
        if path[0] in SAMPLE_ARGUMENTS:
            raise SpecError(f"--opt {show(text)!r}: {path[0]} is not a sampling option; zoo "
                            f"sample has {SAMPLE_ARGUMENTS[path[0]]} for it")
        options[path[0]] = value
    return options


def options_toml(options: type[BaseModel]) -> str:
    """A family's sampling options as TOML comments (for ``zoo spec``): name, default, help."""
    lines = ["# Sampling options: zoo sample RUN --opt KEY=VALUE, or model.sample(n, KEY=VALUE)"]
    for name, info in options.model_fields.items():
        about = " ".join((info.description or "").split())  # a comment is one line
        lines.append(f"#   {name} = {_option_default(info)}" + (f"  # {about}" if about else ""))
    if len(lines) == 1:
        lines.append("#   (none)")
    return "\n".join(lines) + "\n"


def _option_default(info: Any) -> str:
    """A sampling option's default on one line, as ``--opt`` would take it: ``unset`` for
    None, ``required`` for none, else TOML for a plain value and JSON for any other."""
    from pydantic_core import PydanticUndefined, to_jsonable_python

    if info.is_required():
        return "required"
    default = info.get_default(call_default_factory=True)
    if default is None or default is PydanticUndefined:
        return "unset"
    if isinstance(default, str | bool | int | float):
        return tomli_w.dumps({"v": default})[4:].strip()
    try:
        return json.dumps(to_jsonable_python(default), ensure_ascii=False)
    except Exception:  # a default no format can show: its repr, on one line
        return " ".join(repr(default).split())


def apply_overrides(doc: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of ``doc`` with each ``a.b=value`` override set."""
    out = copy.deepcopy(dict(doc))
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise SpecError(f"--set {show(text)!r}: {show(part)!r} is a value, not a section")
            node = child
        node[path[-1]] = value
    return out


def merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merge two spec documents key by key; values in ``top`` win."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def default_document(spec_cls: type[Spec], family: str) -> dict[str, Any]:
    """A family's complete default spec as a plain document: every key with its value.

    Specs, named models and ``--set`` are merged onto this key by key, so a
    family's own defaults (``default_factory`` sections) hold for every key not given.
    """
    spec = validate(spec_cls, {"family": family}, source=f"family {family!r} default spec")
    return spec.model_dump(mode="json")


def migrate(doc: Mapping[str, Any], source: str = "spec") -> dict[str, Any]:
    """``doc`` in the current ``spec_version`` (a document without one is taken as current).

    Each old version has an explicit migration; nothing is dropped silently.
    Version 1 -> 2: the execution keys move from ``train`` to ``run``.
    """
    doc = dict(doc)
    version = doc.get("spec_version", SPEC_VERSION)
    if not isinstance(version, int) or isinstance(version, bool):
        return doc  # validation names the bad value
    if version > SPEC_VERSION:
        raise SpecError(
            f"{source}: spec_version {version} is newer than this genzoo understands "
            f"({SPEC_VERSION}); upgrade genzoo"
        )
    if version == 1:
        doc = _v1_to_v2(doc, source)
    return doc


def _v1_to_v2(doc: dict[str, Any], source: str) -> dict[str, Any]:
    if EXECUTION in doc:
        raise SpecError(f"{source}: spec_version 1 has no [{EXECUTION}] section (it came with "
                        "spec_version 2); set spec_version = 2")
    train = doc.get("train")
    if isinstance(train, Mapping):
        train = dict(train)
        moved = {key: train.pop(key) for key in V1_EXECUTION_KEYS if key in train}
        doc["train"] = train
        if moved:
            doc[EXECUTION] = moved
    doc["spec_version"] = 2
    return doc


def validate(spec_cls: type[Spec], doc: Mapping[str, Any], source: str = "spec") -> Spec:
    """Validate a document (of any known ``spec_version``) against a family's spec class;
    one-line ``SpecError`` on failure."""
    check_document(doc, source)
    doc = migrate(doc, source)
    try:
        return spec_cls.model_validate(doc)
    except ValidationError as exc:
        raise SpecError(f"{source}: {describe_errors(spec_cls, exc)}") from None
    except Exception as exc:  # a family's validator broke (pydantic wraps only ValueError)
        raise PluginError(f"{source}: the spec class {spec_cls.__module__}."
                          f"{spec_cls.__qualname__} failed on this spec: "
                          f"{type(exc).__name__}: {show(str(exc), 200)}") from None


def describe_errors(spec_cls: type[BaseModel], exc: ValidationError) -> str:
    """Render pydantic errors as one line: key path, bad value, expectation, suggestion.

    The first three errors are described; the line says how many more there are.
    """
    parts = []
    errors = exc.errors()
    for err in errors[:MAX_ERRORS]:
        loc = [str(p) for p in err["loc"]]
        key = show(".".join(loc), 100)
        if err["type"] == "extra_forbidden" and loc[:1] == ["train"] and len(loc) == 2 \
                and loc[1] in V1_EXECUTION_KEYS:
            parts.append(f"'{key}' is an execution setting since spec_version 2: set "
                         f"'{EXECUTION}.{loc[1]}'")
        elif err["type"] == "extra_forbidden" and loc == ["data", "workers"]:
            parts.append(f"'{key}' is an execution setting (the image order does not depend "
                         f"on it): set '{EXECUTION}.data_workers'")
        elif err["type"] == "extra_forbidden":
            known = _fields_at(spec_cls, loc[:-1])
            close = difflib.get_close_matches(loc[-1], known, n=1, cutoff=0.5)
            prefix = show(".".join([*loc[:-1], ""]), 100)
            hint = (
                f"did you mean '{prefix}{close[0]}'?"
                if close
                else f"known keys: {', '.join(sorted(known))}"
            )
            parts.append(f"unknown key '{key}' ({hint})")
        elif err["type"] == "missing":
            parts.append(f"'{key}' is required")
        elif err["type"] == "value_error":  # a model validator; its message names the keys
            parts.append(show(err["msg"].removeprefix("Value error, "), 300))
        else:
            bad = err.get("input")
            value = show(repr(bad) if isinstance(bad, str) else bad)
            parts.append(f"'{key}' = {value}: {show(err['msg'], 200)}")
    more = len(errors) - MAX_ERRORS
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _fields_at(model: type[BaseModel], path: list[str]) -> list[str]:
    for part in path:
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


# --------------------------------------------------------------------------- output


def spec_hash(spec: Spec) -> str:
    """A stable hash of the resolved recipe (the spec but its ``run`` section), stored with
    the weights and checked on load: two builds that differ only in how they ran share it."""
    return document_hash(spec.model_dump(mode="json"))


def recipe(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The recipe part of a spec document: every section but ``run`` (all of a version 1
    document, which has no ``run``)."""
    return {key: value for key, value in doc.items() if key != EXECUTION}


def document_hash(doc: Mapping[str, Any]) -> str:
    """The hash of a spec document's recipe as stored (``config.json``'s ``spec``).

    Loading checks this, not the hash of the re-validated spec: a key added to
    a family later (with its default) must not break folders written before,
    nor must migrating a version 1 document (hashed as it was written).
    """
    canonical = json.dumps(recipe(doc), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def to_toml(spec: Spec, header: str = "") -> str:
    """Render a spec as commented TOML that validates back to the same spec."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    if lines:
        lines.append("")
    top, tables = [], []
    for name, field in type(spec).model_fields.items():
        value = getattr(spec, name)
        if isinstance(value, BaseModel):
            tables.append((name, value))
        else:
            top.extend(_toml_entry(name, value, field.description))
    lines.extend(top)
    for name, value in tables:
        lines.extend(_toml_table(name, value))
    return "\n".join(lines).rstrip() + "\n"


def _toml_table(path: str, model: BaseModel) -> list[str]:
    lines = ["", f"[{path}]"]
    doc = (type(model).__doc__ or "").strip().splitlines()
    if doc:
        lines.insert(1, f"# {doc[0]}")
    nested = []
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            nested.append((f"{path}.{name}", value))
        else:
            lines.extend(_toml_entry(name, value, field.description))
    for sub, value in nested:
        lines.extend(_toml_table(sub, value))
    return lines


def _toml_entry(name: str, value: Any, description: str | None) -> list[str]:
    lines = [f"# {description}"] if description else []
    if value is None:
        lines.append(f"# {name} = ...  (unset)")
    else:
        lines.append(tomli_w.dumps({name: value}).strip())
    return lines


def json_schema(spec_cls: type[Spec]) -> dict[str, Any]:
    """The JSON Schema of a family's spec."""
    return spec_cls.model_json_schema()
