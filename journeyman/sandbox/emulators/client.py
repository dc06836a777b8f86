"""Run an emulator in its own process and talk to it through its control API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import fields
from typing import Any

import requests

from journeyman.sandbox.emulators.server import Delivery


class EmulatorClient:
    """The same reading / fault-injection surface as an in-thread Emulator, over HTTP."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self._session = requests.Session()
        self._session.trust_env = False

    def _get(self, name: str) -> Any:
        response = self._session.get(f"{self.url}/_emulator/{name}", timeout=30)
        response.raise_for_status()
        return response.json()

    def _post(self, name: str, body: Any) -> Any:
        response = self._session.post(f"{self.url}/_emulator/{name}", json=body, timeout=60)
        response.raise_for_status()
        return response.json()

    def deliveries(self) -> list[Delivery]:
        names = {f.name for f in fields(Delivery)}
        return [
            Delivery(**{k: v for k, v in d.items() if k in names}) for d in self._get("deliveries")
        ]

    @property
    def counts(self) -> dict[str, int]:
        return self._get("counts")

    def stats(self) -> dict[str, Any]:
        return self._get("stats")

    def inject(self, kind: str, times: int = 1, **params: Any) -> None:
        self._post("faults", [{"kind": str(kind), "times": times, **params}])

    def clear_faults(self) -> None:
        self._post("faults/clear", {})

    def reject_recipients(self, recipients: list[str]) -> None:
        self._post("invalid", list(recipients))

    def reset(self) -> None:
        self._post("reset", {})

    def emit_events(self, url: str, kinds: list[str], decision_ids: list[str] | None = None) -> int:
        return self._post("events", {"url": url, "events": kinds, "decision_ids": decision_ids})[
            "sent"
        ]


class EmulatorProcess:
    """`python -m journeyman.sandbox.emulators <vendor> --port 0 ...` as a child process."""

    def __init__(self, vendor: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.vendor = vendor
        self.args = list(args)
        self.env = env
        self.process: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> EmulatorClient:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "journeyman.sandbox.emulators",
                self.vendor,
                "--port",
                "0",
                *self.args,
            ],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, **(self.env or {})},
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"emulator {self.vendor} did not start: {line!r}")
        self.url = line.split(" ", 1)[1]
        return EmulatorClient(self.url)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> EmulatorClient:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
