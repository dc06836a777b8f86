"""What PostgreSQL allows that a DuckDB file does not: several processes writing at once.

- intake workers (`journeyman serve-events --workers 3`, and another `serve-events` beside it)
  receive the same events concurrently, and each event is stored once (the database's unique
  key); they keep answering 200 while a transaction like a dbt build's holds raw tables open;
- two sync processes for one destination, overlapping for sure, never send a decision twice:
  each sends only the records it claimed, and neither touches the other's in-flight records.

Real processes, real HTTP on loopback, one PostgreSQL database (tests/backends.py).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from backends import SKIP_REASON, postgres_database, rows, server_url
from test_never_wrong_send import RecordingSendGrid

from journeyman import settings
from journeyman.connectors.ledger import DeliveryLedger
from journeyman.signing import webhook_signature
from journeyman.tables import ensure_journeyman_tables, ensure_raw_tables
from journeyman.warehouse import Warehouse

pytestmark = [pytest.mark.postgres, pytest.mark.skipif(server_url() is None, reason=SKIP_REASON)]

TESTS = Path(__file__).parent
JOURNEYMAN = Path(sys.executable).parent / "journeyman"
SECRET = "whsec-postgres-workers"
PIPES: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}


# -- the intake: several worker processes ---------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_events(url: str, workers: int) -> Iterator[str]:
    """`journeyman serve-events --workers N` on the database; its base URL once it answers."""
    port = _free_port()
    env = {**os.environ, settings.WAREHOUSE_ENV: url, "WEBHOOK_SECRET": SECRET}
    for name in ("SENDGRID_WEBHOOK_PUBLIC_KEY", "TWILIO_AUTH_TOKEN"):
        env.pop(name, None)
    command = [str(JOURNEYMAN), "serve-events", "--port", str(port), "--workers", str(workers)]
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, f"serve-events exited: {server.stderr.read()[-2000:]}"
            assert time.monotonic() < deadline, "serve-events did not start"
            try:
                if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _event(i: int) -> dict[str, Any]:
    return {
        "event_id": f"e-{i}",
        "decision_id": f"winback-20260302-c{i:05d}",
        "customer_id": f"c{i:05d}",
        "channel": "push",
        "event_type": "open",
        "occurred_at": "2026-03-02T10:00:00Z",
    }


def _post(target: tuple[str, list[dict[str, Any]]]) -> requests.Response:
    """One signed generic-webhook post, on a connection of its own (the workers share the
    listening socket: each connection goes to one of them)."""
    base, events = target
    body = json.dumps({"events": events}).encode()
    stamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Journeyman-Timestamp": stamp,
        "X-Journeyman-Signature": webhook_signature(SECRET, stamp, body),
    }
    return requests.post(f"{base}/webhooks/generic", data=body, headers=headers, timeout=60)


def test_intake_workers_store_each_of_overlapping_duplicates_once() -> None:
    with postgres_database("intake") as url:
        ensure_raw_tables(Warehouse(url))
        with serve_events(url, workers=3) as pool_base, serve_events(url, workers=1) as other:
            # a transaction like a dbt model build's: reads the raw table, writes a model
            engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
            with engine.connect() as build, build.begin():
                build.execute(sa.text("create schema staging"))
                build.execute(
                    sa.text("create table staging.events as select * from raw.message_events")
                )
                during = _post((pool_base, [_event(1000)]))
                assert during.status_code == 200 and during.json()["accepted"] == 1
            engine.dispose()

            # 60 batches of 10 events over 40 ids, each posted to both servers at once
            batches = [[_event((i + j) % 40) for j in range(10)] for i in range(60)]
            targets = [(base, batch) for batch in batches for base in (pool_base, other)]
            with ThreadPoolExecutor(16) as senders:
                answers = list(senders.map(_post, targets))
        assert {a.status_code for a in answers} == {200}
        assert sum(a.json()["accepted"] for a in answers) == 40
        assert sum(a.json()["duplicates"] for a in answers) == len(targets) * 10 - 40
        stored = rows(
            url,
            "select count(*) as n, count(distinct event_id) as ids from raw.message_events",
        )
        assert stored == [{"n": 41, "ids": 41}]
        keys = rows(url, "select count(*) as n from journeyman.intake_event_ids")
        assert keys == [{"n": 41}]


# -- the ledger: two sync processes for one destination -------------------------------------


class GatedSendGrid(RecordingSendGrid):
    """The SendGrid emulator holding every Mail Send request until requests of two runs (two
    batch ids) have arrived: the two sync processes surely overlap."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.runs: set[str] = set()
        self.both = threading.Event()

    def before_send(self, body: dict[str, Any]) -> None:
        with self.lock:
            self.runs.add(str(body.get("batch_id")))
            if len(self.runs) >= 2:
                self.both.set()
        self.both.wait(timeout=120)


def _done(worker: subprocess.Popen) -> dict[str, int]:
    out, err = worker.communicate(timeout=300)
    assert worker.returncode == 0, err[-3000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", out)}


def test_two_sync_processes_for_one_destination_send_each_decision_once() -> None:
    """A second run starts while the first has a request on the wire (held at the vendor):
    it leaves that run's in-flight records alone, and the two share the rest by claims.
    tests/sync_worker.py looks unknown records up with no lag: the harshest setting."""
    n = 600
    env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    with postgres_database("sync") as url, GatedSendGrid(api_key="SG.kill-test") as emulator:
        ensure_journeyman_tables(Warehouse(url))
        command = [sys.executable, str(TESTS / "sync_worker.py"), emulator.url, url, str(n)]
        first = subprocess.Popen(command, env=env, **PIPES)
        deadline = time.monotonic() + 120
        while not emulator.runs:  # the first run's first request is held at the vendor
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        second = subprocess.Popen(command, env=env, **PIPES)
        done = [_done(first), _done(second)]
        assert emulator.both.is_set()
        counts = emulator.counts
        ledger = DeliveryLedger(Warehouse(url), "sendgrid").statuses()
    assert len(counts) == n and set(counts.values()) == {1}, "a decision was sent twice"
    assert len(ledger) == n and {s for s, _ in ledger.values()} == {"delivered"}
    assert all(d["sent"] > 0 for d in done), done  # both runs sent part of the day
    assert sum(d["sent"] for d in done) == n
    assert done[1]["reconciled"] == 0  # the first run's in-flight records were left to it
