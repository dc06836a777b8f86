"""Delivery: the file destination, the ledger and the sync engine's at-most-once guarantee,
on a real DuckDB file."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from outbox_reference import build_outboxes

from journeyman.connectors.destination import DeliveryStatus, OutboundMessage
from journeyman.connectors.file import FileDestination
from journeyman.connectors.ledger import DeliveryLedger
from journeyman.connectors.outbound import Creative
from journeyman.connectors.render import TemplateError, render
from journeyman.connectors.sync import sync
from journeyman.tables import ensure_journeyman_tables
from journeyman.warehouse import Warehouse

NOW = datetime(2026, 3, 2, 1, 0)


@pytest.fixture
def warehouse(tmp_path) -> Warehouse:
    wh = Warehouse(tmp_path / "wh.duckdb")
    ensure_journeyman_tables(wh)
    return wh


def messages(n: int) -> list[OutboundMessage]:
    return [
        OutboundMessage(
            decision_id=f"winback-20260302-c{i:05d}",
            idempotency_key=f"file:winback-20260302-c{i:05d}",
            agent="winback",
            customer_id=f"c{i:05d}",
            channel="email",
            message_id="ten_off",
            to=f"u{i}@example.com",
            subject="10% off",
            body="hello",
            send_at="2026-03-02T09:00:00Z",
            tags={"offer": "discount_10"},
        )
        for i in range(n)
    ]


def delivered_lines(dest: FileDestination) -> list[dict]:
    return [json.loads(line) for p in dest.folder.glob("*.jsonl") for line in p.open()]


class CrashingDestination(FileDestination):
    """Writes the second batch, then dies before the ledger hears back (like a SIGKILL)."""

    max_batch_size = 10
    calls = 0

    def send_batch(self, batch, now):
        result = super().send_batch(batch, now)
        type(self).calls += 1
        if type(self).calls == 2:
            raise KeyboardInterrupt("killed")
        return result


def test_sync_delivers_each_message_once_and_records_the_ledger(warehouse, tmp_path):
    dest = FileDestination(tmp_path / "outbox")
    ledger = DeliveryLedger(warehouse, "file")
    report = sync(dest, ledger, messages(25), NOW)
    assert (report.sent, report.delivered) == (25, 25)
    again = sync(dest, ledger, messages(25), NOW)
    assert again.sent == 0 and again.skipped_already_settled == 25
    lines = delivered_lines(dest)
    assert len(lines) == 25 == len({line["decision_id"] for line in lines})
    statuses = ledger.statuses()
    assert {s for s, _ in statuses.values()} == {"delivered"}


def test_crash_mid_sync_then_rerun_delivers_exactly_once(warehouse, tmp_path):
    CrashingDestination.calls = 0
    crashing = CrashingDestination(tmp_path / "outbox")
    ledger = DeliveryLedger(warehouse, "file")
    with pytest.raises(KeyboardInterrupt):
        sync(crashing, ledger, messages(35), NOW)
    stuck = ledger.in_flight()
    assert len(stuck) == 10  # the batch written but never settled
    healthy = FileDestination(tmp_path / "outbox")
    report = sync(healthy, ledger, messages(35), NOW)
    assert report.reconciled == 10
    assert report.sent == 15  # only what never went out
    lines = delivered_lines(healthy)
    assert len(lines) == 35 == len({line["decision_id"] for line in lines})
    assert {s for s, _ in ledger.statuses().values()} == {"delivered"}


def test_in_flight_that_never_arrived_is_retried(warehouse, tmp_path):
    ledger = DeliveryLedger(warehouse, "file")
    ids = [m.decision_id for m in messages(3)]
    ledger.mark_in_flight_bulk(ids, [1] * 3, NOW, fresh=False)  # crashed before writing
    dest = FileDestination(tmp_path / "outbox")
    report = sync(dest, ledger, messages(3), NOW)
    assert report.reconciled == 3 and report.sent == 3
    assert len(delivered_lines(dest)) == 3
    assert all(a == 2 for _, a in ledger.statuses().values())


def test_bad_records_are_rejected_not_sent(warehouse, tmp_path):
    rows = [
        {
            "decision_id": "d1",
            "agent": "a",
            "channel": "email",
            "message_id": "m",
            "customer_id": "c1",
            "email": "x@example.com",
            "send_at": NOW,
            "days": 3,
        },
        {
            "decision_id": "d2",
            "agent": "a",
            "channel": "email",
            "message_id": "m",
            "customer_id": "c2",
            "email": None,
            "send_at": NOW,
            "days": 3,
        },
        {
            "decision_id": "d3",
            "agent": "a",
            "channel": "email",
            "message_id": "bad",
            "customer_id": "c3",
            "email": "y@example.com",
            "send_at": NOW,
        },
    ]
    creatives = {
        ("a", "m", "email"): Creative(body="{{ days }} days", subject="hi"),
        ("a", "bad", "email"): Creative(body="{{ missing_column }}"),
    }
    box = build_outboxes(rows, creatives, {("a", "email"): "file"})["file"]
    assert [m.decision_id for m in box.messages] == ["d1"]
    assert box.messages[0].body == "3 days"
    reasons = {r.decision_id: r.error for r in box.rejected}
    assert reasons["d2"] == "missing_contact"
    assert reasons["d3"].startswith("template_error")
    ledger = DeliveryLedger(warehouse, "file")
    sync(FileDestination(tmp_path / "o"), ledger, box.messages, NOW, rejected=box.rejected)
    statuses = ledger.statuses()
    assert statuses["d2"][0] == statuses["d3"][0] == DeliveryStatus.FAILED_PERMANENT.value
    assert statuses["d1"][0] == DeliveryStatus.DELIVERED.value


def test_templates_are_sandboxed_and_checked():
    assert render("Hi {{ name }}", {"name": "Ada"}) == "Hi Ada"
    with pytest.raises(TemplateError):
        render("{{ ''.__class__.__mro__ }}", {})


def test_the_decisions_subject_variant_is_rendered():
    rows = [
        {
            "decision_id": f"d{v}",
            "agent": "a",
            "channel": "email",
            "message_id": "m",
            "customer_id": "c1",
            "email": "x@example.com",
            "send_at": NOW,
            "subject_variant": v,
            "days": 3,
        }
        for v in (0, 1)
    ]
    creative = Creative(body="b", subject="first", subject_variants=("first {{ days }}", "second"))
    box = build_outboxes(rows, {("a", "m", "email"): creative}, {("a", "email"): "file"})["file"]
    assert [m.subject for m in box.messages] == ["first 3", "second"]


def test_a_run_reads_only_the_ledger_rows_it_may_touch(warehouse, tmp_path):
    """A run loads the statuses of its input's records and of the stuck ones, not the
    destination's whole history (which grows every day); what it does is unchanged: settled
    input is skipped, a stuck record outside the input is still reconciled."""
    from dataclasses import replace

    from journeyman.connectors.sync import SyncOptions, SyncRun

    dest = FileDestination(tmp_path / "outbox")
    ledger = DeliveryLedger(warehouse, "file")
    sync(dest, ledger, messages(25), NOW)  # the history: 25 delivered
    stuck_id = messages(25)[7].decision_id
    unknown = "update journeyman.deliveries set status = 'unknown' where decision_id = :d"
    warehouse.execute(unknown, {"d": stuck_id})
    later = [
        replace(m, decision_id=m.decision_id + "-next", idempotency_key=m.idempotency_key + "-n")
        for m in messages(3)
    ]
    settled = messages(1)  # delivered yesterday, offered again
    run = SyncRun(dest, ledger, NOW, SyncOptions())
    report = run.run(later + settled, [])
    assert set(run.status_of) == {m.decision_id for m in later + settled} | {stuck_id}
    assert (report.sent, report.skipped_already_settled) == (3, 1)
    assert report.reconciled == 1 and report.unknown_total == 0  # the file holds it
    assert ledger.statuses([stuck_id]) == {stuck_id: ("delivered", 1)}
    assert len(ledger.statuses()) == 28
