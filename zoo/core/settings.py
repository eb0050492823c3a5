"""Settings read from the environment at the moment they are needed."""

from __future__ import annotations

import os

from zoo.core.errors import ZooError


def seconds_from_env(name: str, default: float, maximum: float,
                     error: type[ZooError]) -> float:
    """Seconds from ``$name`` (read now), else ``default``: a positive number at most
    ``maximum``; anything else is a one-line ``error``."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        seconds = float(raw)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds <= maximum:
        raise error(f"{name}={raw!r}: expected a positive number of seconds, at most "
                    f"{maximum:g}")
    return seconds
