"""``zoo probe``: linear classifiers on a model's frozen features.

The family's ``features`` (its contract; e.g. an autoencoder's codes, a GAN
discriminator's pooled conv features, a diffusion UNet's middle block) of the
training split and the held-out split of the model's own data source are
standardised with training-split statistics; a multinomial logistic regression
(:mod:`zoo.evaluation.logistic`; C chosen by 3-fold cross-validation on the
labelled subset, or on one of the 3 folds above :data:`MANY_LABELS` labels) is
fitted on class-balanced subsets of 100, 1,000 or all training labels and scored
by its accuracy on the held-out split. Subsets are drawn by seed (several seeds,
mean ± std); every count is scored beside two baselines in the same run: the raw
pixels, and the same architecture randomly initialised (the family's ``build`` and
trainer after seeding with the spec's ``train.seed``).

Results go to ``metrics.json["probe"]`` (``features.100``, ``features.100.std``,
``pixels.100``, ``random.100``, ...) and the model card's probe table, as
``zoo eval`` writes its scores.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from zoo.core.errors import CapabilityError, DataError
from zoo.evaluation.logistic import C_GRID, choose_c, fit

#: Images per batch when features are computed.
BATCH = 500
#: Above this many labels, C is chosen on one validation fold (of 3) instead of all three.
MANY_LABELS = 2000


def extract(features: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
            batch: int = BATCH) -> torch.Tensor:
    """``features`` of ``images`` in batches, without gradients: float32 (N, F) on the CPU."""
    with torch.no_grad():
        parts = [features(images[i : i + batch]).float().flatten(1).cpu()
                 for i in range(0, len(images), batch)]
    return torch.cat(parts)


def standardise(train: torch.Tensor, test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both sets centred and scaled by the training set's mean and standard deviation
    (a constant feature is centred only)."""
    mean, std = train.mean(0), train.std(0)
    std = torch.where(std > 1e-6, std, torch.ones_like(std))
    return (train - mean) / std, (test - mean) / std


def balanced_subset(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Indices of ``n`` examples, ``n / classes`` of each class, drawn by ``seed``; a
    one-line ``DataError`` when a class has too few."""
    classes = torch.unique(labels)
    per_class = n // len(classes)
    if per_class < 1:
        raise DataError(f"{n} labels are fewer than one per class ({len(classes)} classes)")
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for label in classes:
        members = torch.nonzero(labels == label).flatten()
        if len(members) < per_class:
            raise DataError(f"class {int(label)} has {len(members)} training images, fewer "
                            f"than the {per_class} per class that {n} labels need")
        chosen.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
    return torch.cat(chosen)


def score(train: torch.Tensor, train_y: torch.Tensor, test: torch.Tensor,
          test_y: torch.Tensor, labels: Sequence[int | None], seeds: int,
          grid: tuple[float, ...] = C_GRID) -> dict[str, float]:
    """Held-out accuracy of linear probes on standardised features, per label count
    (``None``: all): ``{"100": mean, "100.std": std, "100.c": median C, ...}``; counts
    below the training set's size are drawn with ``seeds`` seeds."""
    classes = int(train_y.max()) + 1
    result: dict[str, float] = {}
    for n in labels:
        if n is not None and n > len(train_y):
            raise DataError(f"{n:,} labels asked for, but the training split has "
                            f"{len(train_y):,} labelled images (give at most that many, or all)")
        name = "all" if n is None else str(n)
        draws = [None] if n is None or n >= len(train_y) else range(seeds)
        accuracies, cs = [], []
        for seed in draws:
            idx = (torch.arange(len(train_y)) if seed is None
                   else balanced_subset(train_y, n, seed))
            rounds = 1 if len(idx) > MANY_LABELS else None
            c, _ = choose_c(train[idx], train_y[idx], classes, grid, seed=seed or 0,
                            rounds=rounds)
            model = fit(train[idx], train_y[idx], classes, c, max_iter=300, tol=1e-5)
            accuracies.append(model.accuracy(test, test_y))
            cs.append(c)
        values = torch.tensor(accuracies, dtype=torch.float64)
        result[name] = round(float(values.mean()), 4)
        result[f"{name}.std"] = round(float(values.std()) if len(values) > 1 else 0.0, 4)
        result[f"{name}.c"] = statistics.median_low(cs)
    return result


def labelled_splits(spec_data: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                            torch.Tensor]:
    """(train images, train labels, held-out images, held-out labels) of a data spec, as a
    model trained on it sees them (no ``data.limit``; at most ``data.eval_images`` images
    of an indexed or streamed split); a one-line ``DataError`` for unlabelled data."""
    from zoo.data import load_images

    spec = spec_data.model_copy(update={"limit": None})
    splits = []
    for split in ("train", "test"):
        images, labels = load_images(spec, split, at_most=spec.eval_images)
        if labels is None:
            raise DataError(f"data source {spec_data.source!r} has no labels ({split} split): "
                            "a linear probe needs labelled training and held-out images")
        splits += [images, labels.long()]
    return splits[0], splits[1], splits[2], splits[3]


def families_with_features() -> list[str]:
    """The installed families whose contract provides ``features``."""
    from zoo.core.registry import get_registry

    families = get_registry().families
    return sorted(name for name, rec in families.items() if "features" in rec.capabilities)


def probe_model(model: Any, labels: Sequence[int | None] = (100, 1000, None), seeds: int = 5,
                trained: Mapping[str, torch.nn.Module] | None = None) -> dict[str, Any]:
    """Probe a loaded model (``zoo.ZooModel``): the scores of :func:`score` for its
    features, the raw pixels and its randomly initialised architecture, as
    ``{"features.100": ..., "pixels.100": ..., "random.100": ..., "features.dim": ...}``.
    ``trained``: its trainer's modules (default: from its folder's ``training_state/``)."""
    from zoo.training.trained import TrainedModules, fresh_modules

    record = model.family
    if "features" not in record.capabilities:
        raise CapabilityError(
            f"family {record.name!r} exposes no features for a linear probe (its family does "
            f"not override features); families that do: {', '.join(families_with_features())}")
    impl, spec = record.load(), model.spec
    train_x, train_y, test_x, test_y = labelled_splits(spec.data)
    trained = TrainedModules(model, "zoo probe") if trained is None else trained
    module = model.module.eval()
    device = next(module.parameters(), torch.empty(0)).device
    random_model, random_modules = fresh_modules(impl, spec, spec.train.seed)
    sources = {
        "features": lambda x: impl.features(module, x.to(device), spec, trained),
        "pixels": lambda x: x.flatten(1),
        "random": lambda x: impl.features(random_model, x, spec, random_modules),
    }
    result: dict[str, Any] = {}
    for kind, features in sources.items():
        train, test = standardise(extract(features, train_x), extract(features, test_x))
        result[f"{kind}.dim"] = train.shape[1]
        scores = score(train, train_y, test, test_y, labels, seeds)
        result.update({f"{kind}.{key}": value for key, value in scores.items()})
    result.update({"seeds": seeds, "train_images": len(train_y), "test_images": len(test_y)})
    return result


def probe_folder(path: str | Path, labels: Sequence[int | None] = (100, 1000, None),
                 seeds: int = 5) -> dict[str, Any]:
    """Probe a model (folder, Hub id or named model) and merge the result into its
    folder's ``metrics.json["probe"]`` and card, as ``zoo eval`` does (a Hub snapshot in
    the cache stays as downloaded). See :func:`probe_model`."""
    from zoo.artifact import METRICS, WEIGHTS, check_finite, read_metrics, verify_folder, write_json
    from zoo.folder.write import update_card
    from zoo.hub import check_data_path
    from zoo.model import from_pretrained

    model = from_pretrained(path)
    verify_folder(model.path)
    check_finite(model.module, model.path / WEIGHTS)
    check_data_path(model.spec, model.path, model.repo_id,
                    "zoo probe reads the labelled data the spec names, so it cannot probe it")
    result = probe_model(model, labels, seeds)
    if model.repo_id is None:
        metrics = read_metrics(model.path)
        metrics["probe"] = result
        write_json(model.path / METRICS, metrics)
        update_card(model.path)
    return result
