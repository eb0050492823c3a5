"""The hooks a plugin may implement. Each hook receives a ``register`` callback.

A plugin module implements any of these with ``@zoo.hookimpl`` and calls
``register(record)`` once per thing it provides. Hooks are called once, when
plugins are loaded; they must not import torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from zoo.records import DatasetRecord, FamilyRecord, MetricRecord

hookspec = pluggy.HookspecMarker("zoo")
hookimpl = pluggy.HookimplMarker("zoo")


@hookspec
def register_families(register: Callable[[FamilyRecord], None]) -> None:
    """Register model families: call ``register(FamilyRecord(...))`` for each."""


@hookspec
def register_datasets(register: Callable[[DatasetRecord], None]) -> None:
    """Register data sources: call ``register(DatasetRecord(...))`` for each."""


@hookspec
def register_metrics(register: Callable[[MetricRecord], None]) -> None:
    """Register evaluation metrics: call ``register(MetricRecord(...))`` for each."""


@hookspec
def register_commands(cli: Any) -> None:
    """Add sub-commands to the ``zoo`` typer app passed as ``cli``."""
