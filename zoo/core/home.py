"""The user directory: ``$ZOO_HOME`` or ``$XDG_CACHE_HOME/genzoo`` (``~/.cache/genzoo``)."""

from __future__ import annotations

import os
from pathlib import Path


def zoo_home() -> Path:
    """Where genzoo keeps caches such as the digit classifier's weights."""
    explicit = os.environ.get("ZOO_HOME")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "genzoo"
