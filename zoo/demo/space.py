"""``zoo demo --export DIR MODEL``: a Hugging Face Space that runs the demo of a Hub model.

Three files: ``app.py`` (two lines: :func:`zoo.demo.serve` of the Hub id),
``requirements.txt`` (genzoo with its ``demo`` extra, pinned to this version, plus any
plugin packages the model's family needs) and ``README.md`` (the Space's front matter:
``sdk: gradio``, ``app_file: app.py``). Nothing is downloaded or loaded here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

from zoo.core.errors import ZooError

#: A Hub model id, ``namespace/name`` with an optional ``@revision``.
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}(@[\w./-]{1,200})?")
FILES = ("app.py", "requirements.txt", "README.md")

APP = '''"""A genzoo demo of {model} (written by zoo demo --export)."""

from zoo.demo import serve

serve({model})
'''

README = """---
title: {title}
sdk: gradio
sdk_version: {gradio}
app_file: app.py
pinned: false
models:
- {repo}
tags:
- genzoo
---

# {model}

A [genzoo](https://github.com/genzoo/genzoo) demo of the model `{model}`: sample grids by
seed and count, the family's sampling options, interpolation, the model card's numbers.
Run it locally with `pip install -r requirements.txt && python app.py`.
"""


def genzoo_requirement(spec: str | None = None) -> str:
    """The requirement line for genzoo with its ``demo`` extra: this version by default;
    ``spec`` a local checkout's path (``genzoo[demo] @ file:///...``) or a requirement."""
    from importlib.metadata import PackageNotFoundError, version

    if spec is None:
        try:
            return f"genzoo[demo]=={version('genzoo')}"
        except PackageNotFoundError:
            return "genzoo[demo]"
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "pyproject.toml").is_file():
            raise ZooError(f"--requirement-genzoo {spec}: a folder without pyproject.toml, not "
                           "a genzoo checkout")
        return f"genzoo[demo] @ {path.resolve().as_uri()}"
    if not spec.strip() or "\n" in spec:
        raise ZooError(f"--requirement-genzoo {spec!r}: expected a path or one requirement")
    return spec.strip()


def export_space(out: str | Path, model: str, genzoo: str | None = None,
                 requirements: Iterable[str] = (), force: bool = False) -> list[Path]:
    """Write a Space for the Hub model ``model`` into ``out``; return the files written.

    ``genzoo``: see :func:`genzoo_requirement`; ``requirements``: more lines (a plugin
    package that provides the model's family). Existing Space files are replaced only
    with ``force``.
    """
    from importlib.metadata import PackageNotFoundError, version

    if not HUB_ID.fullmatch(model) or Path(model).exists():
        raise ZooError(f"--export: {model!r} is not a Hub model id (namespace/name[@revision]); "
                       "a Space loads its model from the Hub: zoo push FOLDER ID first")
    extra = [line.strip() for line in requirements]
    if any(not line or "\n" in line for line in extra):
        raise ZooError("--requirement: each is one requirement line")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ZooError(f"--export {out}: exists and is not a folder")
    taken = [name for name in FILES if (out / name).exists()]
    if taken and not force:
        raise ZooError(f"--export {out}: {', '.join(taken)} exists already; --force replaces")
    lines = [genzoo_requirement(genzoo), *extra]
    try:
        gradio = version("gradio")
    except PackageNotFoundError:
        gradio = "6.0.0"
    repo = model.partition("@")[0]
    texts = {"app.py": APP.format(model=json.dumps(model)),
             "requirements.txt": "\n".join(lines) + "\n",
             "README.md": README.format(title=repo.split("/")[1][:30], gradio=gradio,
                                        repo=repo, model=model)}
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in texts.items():
        (out / name).write_text(text, encoding="utf-8")
        written.append(out / name)
    return written
