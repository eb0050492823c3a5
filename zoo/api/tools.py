"""Tools that work on a model or a family: score it, look inside it, check a family."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zoo.model import ZooModel
    from zoo.testing.conformance import Check

__all__ = ["check_families", "evaluate", "precompute_reference", "probe", "visualize"]


def evaluate(model: str | Path, n: int = 1000, seed: int = 0, baseline: bool = False,
             iwae_k: int = 1000, iwae_limit: int | None = None, features: str | None = None,
             against: str = "test", memorise: bool = True) -> dict[str, Any]:
    """Score a model (folder, Hub id or named model) and return the metrics; a local
    folder's ``metrics.json`` and card take them too (a Hub snapshot stays as downloaded).
    ``features``: the feature network for FID/KID/precision/recall (default: ``digits``
    for the digit sets, else ``inception``); ``against``: ``"test"`` (the held-out split)
    or ``"train"``. See :func:`zoo.evaluation.evaluate.evaluate_folder`."""
    from zoo.core.errors import SpecError
    from zoo.evaluation.evaluate import evaluate_folder
    from zoo.evaluation.quality import AGAINST

    if against not in AGAINST:
        raise SpecError(f"against {against!r}: expected test (the held-out split) or train")
    return evaluate_folder(model, n=n, seed=seed, baseline=baseline, iwae_k=iwae_k,
                           iwae_limit=iwae_limit, features=features, against=against,
                           memorise=memorise)


def probe(model: str | Path, labels: str | Iterable[int | str | None] = "100,1000,all",
          seeds: int = 5) -> dict[str, Any]:
    """Linear probes on a model's frozen features (its family's ``features``), beside raw
    pixels and a random network of the same architecture: held-out accuracy at each label
    count of ``labels`` (``"100,1000,all"`` or a list; ``all``/None: every training
    label), ``seeds`` class-balanced draws of each smaller count (mean ± std). A local
    folder's ``metrics.json["probe"]`` and card take the result. See
    :func:`zoo.evaluation.probe.probe_folder`."""
    from zoo.core.errors import SpecError
    from zoo.evaluation.probe import probe_folder

    if seeds < 1:
        raise SpecError(f"seeds {seeds}: expected at least 1")
    return probe_folder(model, parse_labels(labels), seeds)


def parse_labels(labels: str | Iterable[int | str | None]) -> list[int | None]:
    """Label counts from ``"100,1000,all"`` (or a list of counts, ``"all"`` or None): each a
    positive integer or None (all labels); a one-line ``SpecError`` otherwise."""
    from zoo.core.errors import SpecError

    items = labels.split(",") if isinstance(labels, str) else list(labels)
    counts: list[int | None] = []
    for item in items:
        text = str(item).strip().lower() if item is not None else "all"
        if text in ("all", "none"):
            counts.append(None)
        elif text.isdigit() and int(text) > 0:
            counts.append(int(text))
        else:
            raise SpecError(f"--labels {item!r}: expected positive label counts or all, "
                            "e.g. 100,1000,all")
    if not counts:
        raise SpecError("--labels names no label count (e.g. 100,1000,all)")
    return list(dict.fromkeys(counts))


def precompute_reference(source: str | Path, features: str | None = None,
                         overrides: Iterable[str] = ()) -> dict[str, Any]:
    """Compute and cache the real-image features ``zoo eval`` needs for models trained on
    ``source`` (a model folder or named model: its data spec; else a folder or data source
    with ``data.KEY=VALUE`` ``overrides``, as ``zoo data pack`` reads it), so a later
    evaluation skips them. See :func:`zoo.evaluation.quality.precompute_reference`."""
    from zoo.api.data import data_spec
    from zoo.core.registry import default_features, get_dataset
    from zoo.evaluation.quality import precompute_reference as precompute

    spec_data = model_data_spec(source, list(overrides)) or data_spec(source, overrides)
    get_dataset(spec_data.source)  # an unknown source fails before any network loads
    return precompute(spec_data, features or default_features(spec_data.source))


def model_data_spec(source: str | Path, overrides: list[str]) -> Any:
    """The data spec of a model folder (with ``config.json``) or named model, or None."""
    from zoo.core.errors import SpecError

    path = Path(source)
    if (path / "config.json").is_file():
        from zoo.artifact import load_spec

        spec = load_spec(path)[1]
    else:
        from zoo.core.registry import get_registry

        if str(source) not in get_registry().models:
            return None
        from zoo.model import resolve_spec

        spec = resolve_spec(str(source))[1]
    if overrides:
        raise SpecError("--set applies to a data source, not to a model (its spec names "
                        "the data)")
    return spec.data


def visualize(model: ZooModel | str | Path, what: str, out: str | Path | None = None,
              **options: Any) -> list[Path]:
    """Render ``what`` (``interpolate``, ``filters``, ``activation-max``, ``deconv``) for a
    model and write its PNGs into ``out`` (default: ``visualize/`` of the model folder,
    linked from its card); return the paths written. ``None`` options take the
    renderer's default. See :func:`zoo.visualize.visualize`."""
    from zoo.visualize import visualize as _visualize

    return _visualize(model, what, out, **options)


def check_families(names: Iterable[str], overrides: Iterable[str] = ()
                   ) -> Iterator[tuple[str, Check]]:
    """Run the conformance kit on each family, yielding ``(family, check)`` as the checks
    finish (``check.ok``, ``check.name``, ``check.detail``). Every name is looked up
    first, so an unknown one fails before any work. See :func:`zoo.testing.check_family`."""
    from zoo.core.registry import get_family

    records = [get_family(name) for name in names]
    overrides = list(overrides)
    return _checks(records, overrides)


def _checks(records: list[Any], overrides: list[str]) -> Iterator[tuple[str, Check]]:
    from zoo.testing.conformance import check_family

    for record in records:
        for check in check_family(record, overrides):
            yield record.name, check
