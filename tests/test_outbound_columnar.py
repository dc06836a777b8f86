"""The columnar outbox (what the sync assets run) renders exactly what the per-row reference
does: same messages, same rejections with the same reasons."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa
from outbox_reference import build_outboxes

from journeyman.connectors.outbound import Creative, build_outbox_tables

NOW = datetime(2026, 3, 2, 9, 0)


def _rows() -> list[dict]:
    rows = []
    for i in range(60):
        rows.append(
            {
                "decision_id": f"d{i:03d}",
                "agent": "a" if i % 3 else "b",
                "channel": "email" if i % 5 else "sms",
                "message_id": ["m", "bad", "fancy", "float"][i % 4],
                "customer_id": f"c{i}",
                "email": None if i % 7 == 0 else f"u{i}@example.com",
                "phone": None if i % 11 == 0 else f"+1555000{i:04d}",
                "send_at": NOW,
                "subject_variant": [None, 0, 1, 2][i % 4],
                "first_name": None if i % 13 == 0 else ["Ada", 'Gr"ace'][i % 2],
                "days": i,
                "score": i / 3,
            }
        )
    return rows


CREATIVES = {
    (agent, message, channel): creative
    for agent in ("a", "b")
    for channel in ("email", "sms")
    for message, creative in {
        "m": Creative(
            body="Hi {{ first_name }}, {{ days }} days",
            subject="Hello {{ first_name }}",
            subject_variants=("Hello {{ first_name }}", "Still there, {{ first_name }}?"),
            tags={"offer": "ten_off"},
        ),
        "bad": Creative(body="{{ missing_column }}", subject="x"),
        "fancy": Creative(body="{{ first_name | upper }} {% if days > 3 %}late{% endif %}"),
        "float": Creative(body="score {{ score }}", title="T {{ days }}"),
    }.items()
}
ROUTES = {("a", "email"): "sg", ("b", "email"): "sg", ("a", "sms"): "tw", ("b", "sms"): "tw"}


def test_columnar_outboxes_match_the_per_row_reference():
    rows = _rows()
    reference = build_outboxes(rows, CREATIVES, ROUTES)
    columnar = build_outbox_tables(pa.Table.from_pylist(rows), CREATIVES, ROUTES)
    assert set(columnar) == set(reference)
    for name, box in reference.items():
        got = columnar[name]
        expected = [m.to_dict() for m in box.messages]
        messages = got.messages.to_pylist()
        for m in messages:
            m["tags"] = dict(m["tags"])
            m["variables"] = dict(m["variables"])
        assert messages == expected
        assert sorted((r.decision_id, r.status, r.error) for r in got.rejected) == sorted(
            (r.decision_id, r.status, r.error) for r in box.rejected
        )
    assert any(r.error == "missing_contact" for r in columnar["sg"].rejected)
    assert any(r.error.startswith("template_error") for r in columnar["sg"].rejected)


def test_the_column_wise_sync_path_checks_pieces_against_the_inputs_known_ids_only():
    """The ids a sync checks each piece against are the input's ids the ledger knows, not the
    destination's whole ledger (hashed again for every piece, that was quadratic in history)."""
    from journeyman.connectors.sync import _columnar

    ledger = {f"old-{i}": "delivered" for i in range(10_000)} | {"today-2": "failed_retryable"}
    table = pa.table({"decision_id": ["today-1", "today-2", "today-3"]})
    assert _columnar(table, ledger).to_pylist() == ["today-2"]
    assert len(_columnar(table, {f"old-{i}": "delivered" for i in range(10)})) == 0
    duplicated = pa.table({"decision_id": ["today-1", "today-1"]})
    assert _columnar(duplicated, ledger) is None  # the per-record path takes repeated ids
