"""`journeyman deliveries list / resolve`: unknown records are listed and settled by an
operator with an audit note, on a real DuckDB ledger, through the installed command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from connector_helpers import make_messages, utc_now

from journeyman import settings
from journeyman.connectors.destination import BatchResult, DeliveryStatus
from journeyman.connectors.ledger import DeliveryLedger
from journeyman.tables import ensure_journeyman_tables
from journeyman.warehouse import Warehouse

JOURNEYMAN = Path(sys.executable).parent / "journeyman"


def _run(path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, settings.WAREHOUSE_ENV: str(path), "COLUMNS": "200"}
    return subprocess.run(
        [str(JOURNEYMAN), "deliveries", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def _ledger_with_unknowns(path: Path) -> tuple[DeliveryLedger, list[str]]:
    wh = Warehouse(path)
    ensure_journeyman_tables(wh)
    ledger = DeliveryLedger(wh, "sendgrid")
    now = utc_now()
    ids = [m.decision_id for m in make_messages(5)]
    ledger.mark_in_flight_bulk(ids, [1] * 5, now, fresh=False)
    outcome = BatchResult(
        [DeliveryStatus.UNKNOWN] * 3 + [DeliveryStatus.DELIVERED] * 2,
        ["outcome_unknown_connection_lost"] * 3 + [None] * 2,
    )
    ledger.settle_bulk(ids, outcome, [1] * 5, now)
    return ledger, ids


def test_list_shows_unknown_records_and_resolve_settles_them_with_an_audit(tmp_path):
    path = tmp_path / "wh.duckdb"
    ledger, ids = _ledger_with_unknowns(path)
    listed = _run(path, "list", "sendgrid", "--status", "unknown", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [r["decision_id"] for r in rows] == ids[:3]
    assert {r["error"] for r in rows} == {"outcome_unknown_connection_lost"}

    done = _run(
        path, "resolve", "sendgrid", "--as", "sent", "--decision-id", ids[0], "--note", "seen"
    )
    assert done.returncode == 0, done.stderr
    assert "1 record(s) resolved as sent" in done.stdout
    failed = _run(path, "resolve", "sendgrid", "--as", "failed", "--before", "2999-01-01T00:00:00Z")
    assert "2 record(s) resolved as failed" in failed.stdout
    statuses = {d: s for d, (s, _) in ledger.statuses().items()}
    assert statuses[ids[0]] == "delivered"
    assert statuses[ids[1]] == statuses[ids[2]] == "failed_permanent"
    assert statuses[ids[3]] == statuses[ids[4]] == "delivered"  # settled records never change
    audit = {r["decision_id"]: r["error"] for r in ledger.records()}
    assert audit[ids[0]].startswith("resolved_sent_by_operator:") and audit[ids[0]].endswith(
        ": seen"
    )
    assert audit[ids[1]].startswith("resolved_failed_by_operator:")


def test_resolve_without_a_selection_and_a_missing_warehouse_are_one_line_errors(tmp_path):
    path = tmp_path / "wh.duckdb"
    _ledger_with_unknowns(path)
    bare = _run(path, "resolve", "sendgrid", "--as", "sent")
    assert bare.returncode == 2 and "--decision-id" in bare.stderr
    assert "Traceback" not in bare.stderr
    missing = _run(tmp_path / "nope.duckdb", "list", "sendgrid")
    assert missing.returncode == 2 and "JOURNEYMAN_WAREHOUSE" in missing.stderr
    assert "Traceback" not in missing.stderr
    bad_time = _run(path, "list", "sendgrid", "--before", "yesterday")
    assert bad_time.returncode == 2 and "Traceback" not in bad_time.stderr
