"""The Hugging Face Hub from the API: endpoint and offline settings, listing, pulling."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zoo.hub import Resolved

__all__ = ["list_remote", "pull", "set_hub_options"]


def set_hub_options(endpoint: str | None = None, offline: bool = False) -> None:
    """Set the Hub endpoint and offline mode for every later Hub call of this process
    (what ``zoo --endpoint URL --offline`` sets for one command); call it without
    arguments to go back to ``$HF_ENDPOINT`` and ``HF_HUB_OFFLINE``."""
    from zoo.hub import CLI_OPTIONS

    CLI_OPTIONS.update(endpoint=endpoint, offline=offline)


def list_remote(patterns: Iterable[str] | None = None, exclude: Iterable[str] = (), *,
                endpoint: str | None = None, token: str | bool | None = None,
                limit: int | None = None) -> list[dict[str, Any]]:
    """genzoo models on the Hub whose id matches a wildcard of ``patterns`` (default: all)
    and none of ``exclude``: ``id``, ``family``, ``downloads``, ``last_modified`` each."""
    from zoo.hub import list_remote as _list_remote

    exclude = list(exclude)
    rows = _list_remote(list(patterns) if patterns else None, endpoint=endpoint, token=token,
                        limit=limit)
    return [r for r in rows if not any(fnmatch.fnmatchcase(r["id"], p) for p in exclude)]


def pull(ref: str, revision: str | None = None, *, local_dir: str | Path | None = None,
         local_files_only: bool = False, cache_dir: str | Path | None = None,
         endpoint: str | None = None, token: str | bool | None = None) -> Resolved:
    """Download a whole model repo snapshot (``namespace/name[@revision]`` or a published
    named model; ``training_state/`` too) into the Hub cache or ``local_dir``; return where
    it is (``.path``) and its ``.commit``. See :func:`zoo.hub.pull`."""
    from zoo.hub import pull as _pull

    return _pull(ref, revision, local_dir=local_dir, local_files_only=local_files_only,
                 cache_dir=cache_dir, endpoint=endpoint, token=token)
