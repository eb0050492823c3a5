"""``zoo dedup`` end to end: get a hashing model, hash every image in batches, group.

:func:`dedup` trains a ``dedup-ae`` on the source through the shared training
loop (``zoo.training.loop.fit``, so the result is a normal model folder) or reuses one,
hashes the images chunk by chunk (decoding in threads, one forward pass per
chunk for the images and their mirrors), and groups the hashes within Hamming
distance ``k``, each match confirmed by the angle between the real-valued
codes, with :mod:`zoo_dedup.hashing`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from zoo.core.errors import ArtifactError, DataError, ZooError
from zoo_dedup.hashing import CodeSet, find_groups, pack_bits, unit_rows
from zoo_dedup.images import Source, is_grey, iter_chunks, open_source, scan_headers

if TYPE_CHECKING:
    from zoo.api import ZooModel

FAMILY = "dedup-ae"
#: Training budget of ``zoo dedup`` when neither train.epochs nor train.max_steps is set.
MAX_STEPS = 3000
#: Defaults of ``zoo dedup`` (chosen on the seed-0 benchmark set; see docs/benchmarks.md).
MAX_DISTANCE = 4
MAX_ANGLE = 4.0


@dataclass
class DedupResult:
    """What :func:`dedup` found: the groups (indices into ``paths``) and how long it took."""

    source: Source
    groups: list[list[int]]
    model: Path
    max_distance: int
    max_angle: float | None
    flip: bool
    n_bits: int
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def paths(self) -> list[str]:
        """Every image path, as given, in the stable (sorted) order."""
        return self.source.paths

    @property
    def path_groups(self) -> list[list[str]]:
        """The groups as path lists (first member: the one kept)."""
        return [[self.paths[i] for i in group] for group in self.groups]

    @property
    def removed(self) -> set[int]:
        """Indices dropped by a clean copy: every group member but the first."""
        return {i for group in self.groups for i in group[1:]}

    @property
    def images_per_s(self) -> float:
        """Hashing throughput: images read, resized and hashed per second."""
        return len(self.paths) / max(self.timings.get("hash_s", 0.0), 1e-9)


def dedup(source: str, *, model: str | Path | None = None, save_model: str | Path | None = None,
          force: bool = False, max_distance: int = MAX_DISTANCE,
          max_angle: float | None = MAX_ANGLE, flip: bool = True,
          overrides: Iterable[str] = (), batch_size: int = 1024, progress: bool = True,
          follow_links: bool = False) -> DedupResult:
    """Group the near-duplicates of ``source`` (a folder or a registered data set).

    ``model``: a ``dedup-ae`` model folder or Hub id to reuse; otherwise one is
    trained on the source with ``overrides`` and written to ``save_model``
    (default ``runs/dedup-<source name>``). ``max_distance``: the Hamming
    radius (0: identical hashes). ``max_angle``: degrees between the ReLU codes
    of a matching pair (None: every hash match counts). ``flip``: a mirrored
    copy counts as a duplicate (each image is hashed as is and mirrored).
    ``follow_links``: include symbolic links to files outside a source folder
    (left out by default: a link could win over the real in-source image).
    Images over the pixel limit are skipped with a warning and recorded in
    ``result.source.too_large``.
    """
    src = open_source(source, follow_links=follow_links)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    overrides = list(overrides)
    if model is not None:
        if overrides or save_model is not None:
            raise ZooError("--set and --save-model configure training; they do not go with "
                           "--model")
        zoo_model, folder = _load(model), Path(str(model))
    else:
        from zoo_dedup.report import inside

        target = Path(save_model) if save_model else default_model_dir(src)
        if src.is_folder and inside(target, src.name):  # its samples.png would be read next
            raise ZooError(f"the model would be written to {target}, inside the source "
                           f"{source}; pass --save-model DIR outside it (zoo dedup never "
                           "writes into its source)")
        if src.is_folder:  # images over the pixel limit neither train nor count in the batch
            src = src.without(scan_headers(src)[1])
        folder = train_hash_model(src, target, overrides, force=force, progress=progress)
        zoo_model = _load(folder)
        timings["train_s"] = time.perf_counter() - started
    n_bits = zoo_model.module.code_dim
    if max_distance >= n_bits:
        raise ZooError(f"--max-distance {max_distance}: the codes have {n_bits} bits")
    started = time.perf_counter()
    skipped: list[int] = []
    codes = hash_source(zoo_model, src, flip=flip, vectors=max_angle is not None,
                        batch_size=batch_size, progress=progress, skipped=skipped)
    timings["hash_s"] = time.perf_counter() - started
    src = src.without(skipped)
    if not src.paths:
        raise DataError(f"no image under {source} could be hashed: every one is over the "
                        "pixel limit")
    started = time.perf_counter()
    groups = find_groups(codes, max_distance, max_angle)
    timings["group_s"] = time.perf_counter() - started
    return DedupResult(src, groups, folder, max_distance, max_angle, flip, n_bits, timings)


def default_model_dir(src: Source) -> Path:
    """Where an automatically trained model goes: ``runs/dedup-<source name>``."""
    return Path("runs") / f"dedup-{Path(src.name.rstrip('/')).name or 'images'}"


def _load(model: str | Path) -> ZooModel:
    from zoo.api import from_pretrained

    loaded = from_pretrained(model)
    if loaded.family.name != FAMILY:
        raise ArtifactError(f"{model} is a {loaded.family.name!r} model; zoo dedup needs a "
                            f"{FAMILY!r} model")
    return loaded


def training_overrides(src: Source, user: Iterable[str]) -> list[str]:
    """The spec overrides that train a hashing model on ``src``, then the user's.

    Data: the folder (grey images: the 1024-d model, else 3072-d) or the data
    set. Budget: the spec's epochs, at most ``MAX_STEPS`` steps, unless the
    user sets train.epochs or train.max_steps; the batch shrinks for tiny sources.
    """
    user = list(user)
    keys = {text.partition("=")[0].strip() for text in user}
    if src.is_folder:
        out = ["data.source=folder", f"data.path={Path(src.name).resolve()}",
               f"data.channels={1 if is_grey(src) else 3}"]
    else:
        out = [f"data.source={src.dataset}"]
    n_train = train_count(src, out + user)
    if "train.batch_size" not in keys:
        out.append(f"train.batch_size={min(128, n_train)}")
    if not keys & {"train.epochs", "train.max_steps"}:
        from zoo_dedup import DedupTrain

        batch = min(128, n_train)
        out.append(f"train.max_steps={min(MAX_STEPS, DedupTrain().epochs * (n_train // batch))}")
    return out + user


def train_count(src: Source, overrides: list[str]) -> int:
    """How many training images the hashing model gets from ``src`` with ``overrides``: a
    folder's hash split (``data.held_out``, ``data.limit``) less its images over the pixel
    limit, a data set's train split; at least 1 (fit refuses an empty split itself)."""
    from zoo.api import resolve_spec
    from zoo.data import split_size

    data = resolve_spec(FAMILY, None, overrides)[1].data
    try:
        if src.is_folder:
            from zoo.data.files import FolderSource
            from zoo.data.split import view

            return len(view(FolderSource(Path(src.name), src.files), "train", data))
        return split_size(data, "train")
    except DataError:
        return 1


def train_hash_model(src: Source, out: Path, overrides: Iterable[str], *, force: bool = False,
                     progress: bool = True) -> Path:
    """Train a ``dedup-ae`` on ``src`` through the shared trainer; return its model folder."""
    from zoo.api import resolve_spec
    from zoo.training.loop import fit

    if out.exists() and not force:
        raise ArtifactError(f"{out} already exists; reuse it with --model {out}, or pass "
                            "--force to train it again")
    family, spec = resolve_spec(FAMILY, None, training_overrides(src, overrides))
    return fit(family, spec, out, force=force, progress=progress)


def hash_source(model: ZooModel, src: Source, *, flip: bool = True, vectors: bool = True,
                batch_size: int = 1024, progress: bool = True,
                skipped: list[int] | None = None) -> CodeSet:
    """Hashes of every image in source order (and of its mirror when ``flip``); with
    ``vectors``, also the unit-length ReLU codes (float16) that confirm matches.

    Given a ``skipped`` list, images over the pixel limit are left out and their
    indices appended there (see :func:`zoo_dedup.images.iter_chunks`)."""
    import torch

    from zoo.data import num_channels

    spec = model.spec
    size, channels = spec.data.image_size, num_channels(spec.data)
    parts: dict[str, list[np.ndarray]] = {"codes": [], "mirrors": [], "vectors": [],
                                          "mirror_vectors": []}
    module, encode = model.module.eval(), model.family.load().encode
    with torch.inference_mode(), _progress(len(src), progress) as advance:
        for chunk in iter_chunks(src, size, channels, batch_size, skipped=skipped):
            x = torch.from_numpy(chunk).float().div_(255.0)
            h = encode(module, torch.cat([x, x.flip(-1)]) if flip else x).numpy()
            n = len(x)
            parts["codes"].append(pack_bits(h[:n] > 0))
            if vectors:
                parts["vectors"].append(unit_rows(h[:n]).astype(np.float16))
            if flip:
                parts["mirrors"].append(pack_bits(h[n:] > 0))
                if vectors:
                    parts["mirror_vectors"].append(unit_rows(h[n:]).astype(np.float16))
            advance(n)
    if not parts["codes"]:
        return CodeSet(pack_bits(np.zeros((0, model.module.code_dim), bool)),
                       model.module.code_dim)  # every image skipped: dedup() says so
    joined = {k: np.concatenate(v) if v else None for k, v in parts.items()}
    return CodeSet(joined["codes"], model.module.code_dim, joined["mirrors"], joined["vectors"],
                   joined["mirror_vectors"])


class _progress:
    """A rich progress bar on stderr for the hashing pass (nothing when disabled)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled, self.bar = total, enabled, None

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            console = Console(stderr=True)
            if console.is_terminal:
                self.bar = Progress(TextColumn("hash"), BarColumn(), MofNCompleteColumn(),
                                    TimeRemainingColumn(), console=console, transient=True)
                self.task = self.bar.add_task("hash", total=self.total)
                self.bar.start()
        return self._advance

    def _advance(self, n: int) -> None:
        if self.bar is not None:
            self.bar.advance(self.task, n)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def iter_kept(result: DedupResult) -> Iterator[int]:
    """Indices a clean copy keeps: every image except non-first members of groups."""
    removed = result.removed
    return (i for i in range(len(result.paths)) if i not in removed)
