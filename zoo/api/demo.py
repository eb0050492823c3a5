"""The demo from the API: serve a model's Gradio page, or export it as a Space."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

__all__ = ["demo", "export_demo"]


def demo(source: str | Path, port: int | None = None, host: str = "127.0.0.1",
         share: bool = False, block: bool = True) -> str:
    """Serve the demo page of ``source`` (a model folder, a Hub id or named model, or a
    folder of model folders) on ``host:port`` and return its URL; ``block``: until
    Ctrl-C. Gradio missing, a port in use or an unknown model is a one-line ``ZooError``
    before anything is served. See :mod:`zoo.demo`."""
    from zoo.demo import app, launch, require_gradio
    from zoo.demo.serve import check_port

    require_gradio()
    if port is not None:
        check_port(host, port)  # before the models load
    return launch(app(source), host, port, share, block=block)


def export_demo(out: str | Path, model: str, genzoo: str | None = None,
                requirements: Iterable[str] = (), force: bool = False) -> list[Path]:
    """Write ``app.py``, ``requirements.txt`` and ``README.md`` of a Hugging Face Space
    that serves the demo of the Hub model ``model``; return the paths. ``genzoo``: the
    genzoo requirement (a local checkout's path, or a requirement; default this
    version). See :func:`zoo.demo.export_space`."""
    from zoo.demo import export_space

    return export_space(out, model, genzoo, requirements, force)
