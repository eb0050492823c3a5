"""How genzoo names WebDataset samples and shards: key escaping, member names, the image
fields, and which shard names are shell commands (never run)."""

from __future__ import annotations

import re

from zoo.data.decode import IMAGE_SUFFIXES

#: The member extensions read as an image.
IMAGE_FIELDS = frozenset(s[1:] for s in IMAGE_SUFFIXES)



def escape_key(stem: str) -> str:
    """A relative path less its suffix as a WebDataset ``__key__``: ``%`` and ``.`` escaped
    (``%25``, ``%2E``), since readers split a member name into key and field at the first
    dot."""
    return stem.replace("%", "%25").replace(".", "%2E")


def unescape_key(key: str) -> str:
    """:func:`escape_key` undone (only its two escapes; any other ``%`` stays)."""
    return re.sub(r"%(25|2[Ee])", lambda m: "%" if m.group(1) == "25" else ".", key)


def split_member(name: str) -> tuple[str, str] | None:
    """A member name as (key, field), split at the first dot of its file name; None
    without a dot."""
    folder, _, base = name.rpartition("/")
    stem, dot, field = base.partition(".")
    if not dot or not stem:
        return None
    return (f"{folder}/{stem}" if folder else stem), field


def is_pipe(url: str) -> bool:
    """Whether ``webdataset.gopen`` would run ``url`` as a shell command: its scheme, as
    ``urllib.parse`` reads it (case and leading blanks ignored), is ``pipe``."""
    from urllib.parse import urlparse

    return url.lstrip().lower().startswith("pipe:") or urlparse(url).scheme == "pipe"
