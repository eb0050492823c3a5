"""One-line warnings about data, each said once per process."""

from __future__ import annotations

import sys

_warned: set[object] = set()


def warn_once(message: str, key: object = None) -> None:
    """Print ``warning: message`` on stderr once per process for each ``key`` (default: the
    message). A folder is read once per split, and ``zoo dedup`` reads it to train and to
    hash: key a warning about a file by its resolved path to say it once."""
    key = message if key is None else key
    if key not in _warned:
        _warned.add(key)
        print(f"warning: {message}", file=sys.stderr)
