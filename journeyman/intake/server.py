"""The receiver in a background thread of the current process (the demo, tests).

DuckDB allows one writing process per file, so a program that also writes the warehouse (the
demo runs Dagster in-process) runs the receiver in its own process as a thread; each commit
still opens and closes its own short connection.
"""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from journeyman.intake.app import create_app
from journeyman.intake.config import IntakeSettings


class IntakeServer:
    """uvicorn serving `create_app(settings)` on 127.0.0.1 (ephemeral port) in a daemon thread."""

    def __init__(self, settings: IntakeSettings, *, start_timeout_s: float = 10.0) -> None:
        self.settings = settings
        self.app = create_app(settings)
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        config = uvicorn.Config(
            self.app, log_level="warning", lifespan="on", access_log=False, server_header=False
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )
        self._start_timeout_s = start_timeout_s

    def start(self) -> IntakeServer:
        """Serve until `stop()`; returns once the server accepts requests."""
        self._thread.start()
        deadline = time.monotonic() + self._start_timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the event intake did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._socket.close()

    @property
    def metrics(self):  # noqa: ANN201 - IntakeMetrics
        """The app's counters (accepted, duplicates, rejected … per source)."""
        return self.app.state.metrics

    def __enter__(self) -> IntakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
