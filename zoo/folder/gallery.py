"""The visualisations kept in a model folder: ``visualize/*.png`` and their index.

``zoo visualize`` (:mod:`zoo.visualize`) writes them; ``zoo info`` and the model
card list them. Torch-free.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: The model folder's subfolder for visualisations.
FOLDER = "visualize"
#: ``FOLDER/INDEX``: PNG name -> what made it (``what``, ``caption``, ``options``).
INDEX = "index.json"


def read_index(folder: Path) -> dict[str, Any]:
    """``index.json`` of a visualisation folder, or an empty dict."""
    from zoo.artifact import read_json

    path = Path(folder) / INDEX
    index = read_json(path) if path.is_file() else {}
    return index if isinstance(index, dict) else {}


def listing(model_folder: Path) -> list[tuple[str, str]]:
    """(path relative to the model folder, caption) of each PNG in its ``visualize/``."""
    folder = Path(model_folder) / FOLDER
    if not folder.is_dir():
        return []
    index = read_index(folder)
    entries = {name: e for name, e in index.items() if isinstance(e, dict)}  # others: no caption
    return [(f"{FOLDER}/{p.name}", str(entries.get(p.name, {}).get("caption") or p.stem))
            for p in sorted(folder.glob("*.png"))]
