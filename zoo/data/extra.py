"""The optional packages some data sources need (the ``genzoo[data]`` extra), imported only
when such a source is opened, and named in one line when they are missing."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from zoo.core.errors import DataError

#: What ``pip install`` takes to get the packages of the data extra.
EXTRA = "genzoo[data]"


def missing(package: str, source: str) -> DataError:
    """The one-line error for a data ``source`` (or a command, given as ``zoo ...``) whose
    ``package`` is not installed."""
    who = source if source.startswith("zoo ") else f"data source {source!r}"
    return DataError(f"{who} needs the {package} package: pip install '{EXTRA}'")


def need(package: str, source: str) -> ModuleType:
    """Import ``package`` for ``source``, or raise :func:`missing`'s one line."""
    try:
        return importlib.import_module(package)
    except ImportError:
        raise missing(package, source) from None


def check_installed(package: str, source: str) -> None:
    """Raise :func:`missing`'s one line unless ``package`` is installed, without importing it
    (``webdataset`` imports torch at import time)."""
    try:
        found = importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise missing(package, source)
