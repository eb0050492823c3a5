"""Load what ``zoo demo`` shows and serve its page: one model (a folder or a Hub id) or a
folder of runs; the checks that fail before the server starts (no Gradio, a port in
use, an unknown model) are one-line ``ZooError``s."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.core.errors import ArtifactError, ZooError

if TYPE_CHECKING:
    import gradio as gr

    from zoo.model import ZooModel

#: What a missing Gradio says.
INSTALL = "zoo demo needs Gradio: pip install 'genzoo[demo]'"
#: Requests waiting beyond the one being sampled (CPU sampling runs one at a time).
QUEUE_SIZE = 16


def require_gradio() -> None:
    """A one-line ``ZooError`` naming the extra to install when Gradio is missing."""
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise ZooError(INSTALL) from None


def load_models(source: str | Path) -> dict[str, ZooModel]:
    """``{name: model}`` of ``source``: a model folder, a Hub id or named model, or a folder
    whose subfolders are model folders (each with a ``config.json``)."""
    from zoo.model import from_pretrained

    path = Path(source)
    if path.is_dir() and not (path / "config.json").is_file():
        runs = sorted(p for p in path.iterdir() if (p / "config.json").is_file())
        if not runs:
            raise ArtifactError(f"{source}: neither a model folder (no config.json) nor a "
                                "folder of model folders")
        return {p.name: from_pretrained(p) for p in runs}
    return {str(source): from_pretrained(source)}


def check_port(host: str, port: int) -> None:
    """A one-line ``ZooError`` when ``port`` on ``host`` cannot be served."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        # as the server binds: a port left in TIME_WAIT by a closed server is free to serve
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ZooError(f"--port {port}: cannot serve on {host}:{port} ({exc.strerror or exc}"
                           "); give another with --port N") from None


def app(source: str | Path, title: str | None = None) -> gr.Blocks:
    """The demo page of ``source`` (see :func:`load_models`) as a ``gr.Blocks``, ready to
    ``launch``; queued for CPU sampling (one request at a time, :data:`QUEUE_SIZE` waiting)."""
    require_gradio()
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from zoo.demo.page import page

    models = load_models(source)
    folder = Path(tempfile.mkdtemp(prefix="zoo-demo-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    blocks = page(models, folder, title or f"genzoo demo: {source}")
    return blocks.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)


def launch(blocks: gr.Blocks, host: str | None = None, port: int | None = None,
           share: bool = False, block: bool = True, quiet: bool = False) -> str:
    """Serve ``blocks`` on ``host:port`` (default: ``$GRADIO_SERVER_NAME`` or 127.0.0.1,
    ``$GRADIO_SERVER_PORT`` or the first free port from 7860); return its URL. ``block``:
    serve until Ctrl-C (else return at once, the server running in a thread)."""
    from zoo.demo.page import CSS, theme

    host = host or os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1"
    if port is None and os.environ.get("GRADIO_SERVER_PORT"):
        port = int(os.environ["GRADIO_SERVER_PORT"])
    if port is not None:
        check_port(host, port)
    _, url, _ = blocks.launch(server_name=host, server_port=port, share=share,
                              prevent_thread_lock=not block, quiet=quiet, theme=theme(),
                              css=CSS, show_error=False, ssr_mode=False,
                              footer_links=["api"])
    return url


def serve(source: str | Path, host: str | None = None, port: int | None = None,
          share: bool = False, **options: Any) -> str:
    """Build the page of ``source`` and serve it (:func:`launch`): what a Space's ``app.py``
    calls."""
    return launch(app(source), host, port, share, **options)
