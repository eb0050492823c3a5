"""A headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
no extra package, no debugging port): open a page, wait for an element, take a screenshot.

Debian's ``chromium`` package provides the browser (``.ci/run`` installs it if missing).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from typing import Any

#: Where the browser is looked for, in order.
NAMES = ("chromium", "chromium-browser", "google-chrome")


def chromium() -> str | None:
    """The path of a Chromium executable, or None."""
    return next((path for name in NAMES if (path := shutil.which(name))), None)


class Browser:
    """One headless Chromium with one page (a context manager)."""

    def __init__(self, width: int = 1200, height: int = 900) -> None:
        self.width, self.height = width, height
        self.profile = tempfile.mkdtemp(prefix="zoo-chromium-")
        self.next_id = 0
        self.buffer = b""

    def __enter__(self) -> Browser:
        executable = chromium()
        if executable is None:
            raise RuntimeError("no chromium on PATH (apt-get install chromium)")
        to_browser, self.write_fd = os.pipe()
        self.read_fd, from_browser = os.pipe()

        def pipes() -> None:  # the browser reads commands on fd 3 and answers on fd 4
            os.dup2(to_browser, 3)
            os.dup2(from_browser, 4)

        self.process = subprocess.Popen(
            [executable, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-dev-shm-usage", "--remote-debugging-pipe", "--hide-scrollbars",
             f"--user-data-dir={self.profile}", f"--window-size={self.width},{self.height}"],
            preexec_fn=pipes, pass_fds=(3, 4), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(to_browser)
        os.close(from_browser)
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget",
                                 {"targetId": target, "flatten": True})["sessionId"]
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": self.width, "height": self.height, "deviceScaleFactor": 1,
                   "mobile": False}, session=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.kill()
        self.process.wait(timeout=30)
        os.close(self.write_fd)
        os.close(self.read_fd)
        shutil.rmtree(self.profile, ignore_errors=True)

    def call(self, method: str, params: dict[str, Any] | None = None, session: bool = False,
             timeout: float = 60.0) -> dict[str, Any]:
        """Send one command and return its result (events in between are dropped)."""
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self.write_fd, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = self._read()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
        raise TimeoutError(f"{method}: no answer in {timeout} s")

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            chunk = os.read(self.read_fd, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed its pipe")
            self.buffer += chunk
        message, _, self.buffer = self.buffer.partition(b"\0")
        return json.loads(message)

    def open(self, url: str) -> None:
        """Load ``url`` in the page."""
        self.call("Page.navigate", {"url": url}, session=True)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = self.call("Runtime.evaluate", {"expression": expression,
                                                "returnByValue": True}, session=True)
        return result["result"].get("value")

    def wait_for_image(self, selector: str, timeout: float = 90.0) -> dict[str, float]:
        """The box (x, y, width, height) of the first ``<img>`` under ``selector`` once it
        has loaded; ``TimeoutError`` if it does not within ``timeout`` seconds."""
        script = f"""(() => {{
            const img = document.querySelector({json.dumps(selector)} + " img");
            if (!img || !img.complete || img.naturalWidth === 0) return null;
            const r = img.getBoundingClientRect();
            return {{x: r.x, y: r.y, width: r.width, height: r.height,
                     natural: img.naturalWidth, src: img.src}};
        }})()"""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            box = self.evaluate(script)
            if box and box["width"] > 0:
                return box
            time.sleep(0.25)
        raise TimeoutError(f"no loaded image under {selector} in {timeout} s")

    def screenshot(self) -> bytes:
        """The page's viewport as PNG bytes."""
        data = self.call("Page.captureScreenshot", {"format": "png"}, session=True)["data"]
        return base64.b64decode(data)
