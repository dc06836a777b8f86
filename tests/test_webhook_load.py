"""The intake and the daily job share one DuckDB file (one writing process at a time): under a
sustained webhook load from another process the whole daily job still completes, and every
event the intake acknowledged is stored once. Real `journeyman serve-events` process, real HTTP
on loopback, real dbt and Dagster; the load is bounded in count and time."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
import requests

from journeyman import settings
from journeyman.sandbox import SandboxWorld
from journeyman.signing import webhook_signature
from journeyman.warehouse import Warehouse

JOURNEYMAN = Path(sys.executable).parent / "journeyman"
SECRET = "whsec-load-test"
START = date(2026, 3, 2)
RATE = 40  # posts per second, as a busy ESP sends its event webhooks
MAX_POSTS = 4000  # bound on the load whatever happens


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, i: int) -> int:
    event = {
        "event_id": f"load-{i:06d}",
        "customer_id": f"c{i % 300:05d}",
        "channel": "push",
        "event_type": "open",
        "occurred_at": "2026-03-01T10:00:00Z",
    }
    body = json.dumps({"events": [event]}).encode()
    stamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Journeyman-Timestamp": stamp,
        "X-Journeyman-Signature": webhook_signature(SECRET, stamp, body),
    }
    try:
        return requests.post(url, data=body, headers=headers, timeout=30).status_code
    except requests.RequestException:
        return 0


class Load(threading.Thread):
    """Posts one signed event every 1/RATE s, from concurrent senders as a vendor does, until
    stopped (or MAX_POSTS)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.answers: Counter[int] = Counter()
        self.accepted: list[int] = []
        self.lock = threading.Lock()

    def _one(self, i: int) -> None:
        status = _post(self.url, i)
        with self.lock:
            self.answers[status] += 1
            if status == 200:
                self.accepted.append(i)

    def run(self) -> None:
        next_at = time.monotonic()
        with ThreadPoolExecutor(32) as senders:
            for i in range(MAX_POSTS):
                if self.stop.is_set():
                    break
                senders.submit(self._one, i)
                next_at += 1 / RATE
                time.sleep(max(0.0, next_at - time.monotonic()))


@pytest.fixture
def intake(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    world = SandboxWorld(Warehouse(path), seed=5)
    world.create(n_customers=300, start=START)
    port = _free_port()
    env = {
        **os.environ,
        settings.WAREHOUSE_ENV: str(path),
        "WEBHOOK_SECRET": SECRET,
        "SENDGRID_WEBHOOK_PUBLIC_KEY": "",
        "TWILIO_AUTH_TOKEN": "",
    }
    server = subprocess.Popen(
        [str(JOURNEYMAN), "serve-events", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            time.sleep(0.2)
    else:
        server.kill()
        pytest.fail(f"serve-events did not start: {server.stderr.read()[-2000:]}")
    try:
        yield path, f"{base}/webhooks/generic"
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:  # requests still queued: no need to drain them
            server.kill()
            server.wait()


def test_the_daily_job_completes_under_a_webhook_storm(intake, monkeypatch):
    path, url = intake
    monkeypatch.setenv(settings.WAREHOUSE_ENV, str(path))
    monkeypatch.setenv(settings.SIMULATION_ENV, "1")
    monkeypatch.setenv("JOURNEYMAN_DESTINATIONS", str(path.parent / "destinations.yml"))
    (path.parent / "destinations.yml").write_text(
        "\n".join(f"{name}:\n  kind: file" for name in ("sendgrid", "twilio", "fcm")) + "\n"
    )
    from journeyman.orchestration.definitions import defs

    loaded = defs()
    assets = [a for a in loaded.assets if isinstance(a, dg.AssetsDefinition)]
    load = Load(url)
    load.start()
    try:
        while len(load.accepted) < RATE:  # the storm is on before the job starts
            assert load.is_alive(), dict(load.answers)
            time.sleep(0.05)
        result = dg.materialize(
            assets, partition_key=START.isoformat(), resources=dict(loaded.resources)
        )
    finally:
        load.stop.set()
        load.join(timeout=60)
    assert result.success
    sent = sum(load.answers.values())
    assert sent >= 5 * RATE  # the job ran under the storm for seconds
    # every answer is an acknowledgement or a retryable "busy" (the vendor posts it again)
    assert set(load.answers) <= {200, 503}, dict(load.answers)
    stored = Warehouse(path).rows(
        "select event_id, count(*) from raw.message_events where event_id like 'load-%' "
        "group by event_id"
    )
    counts = dict(stored)
    assert all(counts.get(f"load-{i:06d}") == 1 for i in load.accepted)
    assert all(n == 1 for n in counts.values())
    decided = Warehouse(path).scalar("select count(*) from journeyman.decisions")
    assert decided > 0
