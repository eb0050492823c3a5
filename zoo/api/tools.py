"""Tools that work on a model or a family: score it, look inside it, check a family."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zoo.model import ZooModel
    from zoo.testing.conformance import Check

__all__ = ["check_families", "evaluate", "visualize"]


def evaluate(model: str | Path, n: int = 1000, seed: int = 0, baseline: bool = False,
             iwae_k: int = 1000, iwae_limit: int | None = None) -> dict[str, Any]:
    """Score a model (folder, Hub id or named model) and return the metrics; a local
    folder's ``metrics.json`` and card take them too (a Hub snapshot stays as downloaded).
    See :func:`zoo.evaluation.evaluate.evaluate_folder`."""
    from zoo.evaluation.evaluate import evaluate_folder

    return evaluate_folder(model, n=n, seed=seed, baseline=baseline, iwae_k=iwae_k,
                           iwae_limit=iwae_limit)


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
