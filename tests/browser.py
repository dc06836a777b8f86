"""A small headless-Chromium driver over the DevTools protocol (for browser tests).

    with Browser() as browser:
        page = browser.open(path.as_uri())
        page.evaluate("document.title")
        page.screenshot(Path("shot.png"))
        page.errors  # console errors, log errors and uncaught exceptions seen so far

Chromium runs with an empty profile in a temporary folder and `--remote-debugging-port=0`; the
port it chose is read from the profile's DevToolsActivePort file, and the driver talks to the
browser's websocket (flattened target sessions) with the `websockets` sync client.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--window-size=1280,900",
    "--remote-debugging-port=0",
)


class BrowserError(RuntimeError):
    """Chromium did not start or did not answer in time."""


def find_chromium() -> str | None:
    """The path of a Chromium (or Chrome) binary: $CHROMIUM, /usr/bin/chromium, or the PATH."""
    explicit = os.environ.get("CHROMIUM")
    if explicit and Path(explicit).exists():
        return explicit
    if Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium"
    return next((found for name in CANDIDATES if (found := shutil.which(name))), None)


class Page:
    """One tab, attached through a flattened DevTools session."""

    def __init__(self, browser: Browser, session: str) -> None:
        self.browser, self.session = browser, session
        self.errors: list[str] = []

    def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.browser.send(method, params, session=self.session)

    def on_event(self, message: dict[str, Any]) -> None:
        """Keep what counts as an error: console.error/assert, error log entries, exceptions."""
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            texts = [str(a.get("value", a.get("description", ""))) for a in params.get("args", [])]
            self.errors.append("console: " + " ".join(texts))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            self.errors.append(f"log ({entry.get('source')}): {entry.get('text')}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            description = details.get("exception", {}).get("description") or details.get("text")
            self.errors.append(f"exception: {description}")

    def navigate(self, url: str, timeout: float = 10.0) -> None:
        self.send("Page.navigate", {"url": url})
        self.browser.wait_for("Page.loadEventFired", self.session, timeout)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (JSON-serialisable results only)."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise BrowserError(f"evaluate failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page (beyond the viewport) at path."""
        metrics = self.send("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        shot = self.send(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True, "clip": clip},
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


class Browser:
    """Headless Chromium with a throwaway profile; a context manager that always cleans up."""

    def __init__(self, binary: str | None = None, start_timeout: float = 15.0) -> None:
        self.binary = binary or find_chromium()
        if self.binary is None:
            raise BrowserError("no Chromium binary found")
        self.start_timeout = start_timeout
        self.profile = Path(tempfile.mkdtemp(prefix="jm-chromium-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.ws: ClientConnection | None = None
        self.pages: dict[str, Page] = {}
        self._ids = itertools.count(1)

    def __enter__(self) -> Browser:
        try:
            self.process = subprocess.Popen(
                [self.binary, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self.ws = connect(self._endpoint(), max_size=None, open_timeout=self.start_timeout)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _endpoint(self) -> str:
        """The browser's websocket URL, from DevToolsActivePort (port, then path)."""
        marker = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise BrowserError(f"Chromium exited with status {self.process.returncode}")
            lines = marker.read_text().split() if marker.exists() else []
            if len(lines) >= 2:
                return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
            time.sleep(0.05)
        raise BrowserError(f"Chromium did not open its DevTools port in {self.start_timeout} s")

    def close(self) -> None:
        if self.ws is not None:
            self.ws.close()
            self.ws = None
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        shutil.rmtree(self.profile, ignore_errors=True)

    def send(
        self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None
    ) -> dict[str, Any]:
        """Send one command and return its result; events that arrive meanwhile are routed."""
        assert self.ws is not None, "the browser is not running"
        message: dict[str, Any] = {"id": next(self._ids), "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        while True:
            reply = self._receive(20.0)
            if reply.get("id") == message["id"]:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def wait_for(self, method: str, session: str | None, timeout: float) -> dict[str, Any]:
        """Block until the event `method` arrives (for `session`)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            message = self._receive(left)
            if message.get("method") == method and message.get("sessionId") == session:
                return message
        raise BrowserError(f"no {method} within {timeout} s")

    def _receive(self, timeout: float) -> dict[str, Any]:
        assert self.ws is not None
        try:
            message = json.loads(self.ws.recv(timeout=timeout))
        except TimeoutError:
            raise BrowserError(f"Chromium did not answer within {timeout:.0f} s") from None
        page = self.pages.get(message.get("sessionId", ""))
        if page is not None and "method" in message:
            page.on_event(message)
        return message

    def open(self, url: str) -> Page:
        """A new tab with errors collected from the start, navigated to url (load waited)."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})
        page = Page(self, session["sessionId"])
        self.pages[page.session] = page
        for domain in ("Page", "Runtime", "Log"):
            page.send(f"{domain}.enable")
        page.navigate(url)
        return page
