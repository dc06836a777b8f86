"""The demo's default delivery path: connectors → vendor emulators → the world answers what they
accepted → signed SendGrid / Twilio webhooks → the event intake → raw.message_events → dbt."""

from __future__ import annotations

import os
from datetime import date, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from journeyman import settings
from journeyman.connectors.catalog import CATALOG_ENV
from journeyman.orchestration.demo import DemoOptions, demo_delivery, prepare_warehouse, run_demo
from journeyman.sandbox import SandboxWorld
from journeyman.warehouse import Warehouse

START = date(2026, 3, 2)
OPTIONS = DemoOptions(customers=300, days=1, seed=5, start=START)
# rows the world loads itself carry its nightly-ETL stamp (02:00 UTC after the simulated day, an
# hour later for re-sent copies); the intake stamps the wall clock, long after the sandbox dates
DIRECT = "_loaded_at <= timestamp '2026-03-06 03:00'"
# what happened in the simulated days, not the brand's campaign history the world starts with
SIMULATED = "occurred_at >= timestamp '2026-03-02'"
EVENTS = (
    "select event_id, decision_id, customer_id, channel, event_type, occurred_at "
    "from raw.message_events order by all"
)


def _run(root, monkeypatch) -> dict:
    """One demo run through the emulators; what the vendors and the intake saw, afterwards."""
    path = root / "warehouse.duckdb"
    monkeypatch.setenv(settings.WAREHOUSE_ENV, str(path))
    from journeyman.orchestration.definitions import defs

    catalog_before = os.environ.get(CATALOG_ENV)
    with demo_delivery("emulators", root, path, OPTIONS.seed) as delivery:
        settings_env = {k: os.environ.get(k) for k in ("SENDGRID_API_KEY", CATALOG_ENV)}
        warehouse = prepare_warehouse(path, root / "outbox")
        run_demo(OPTIONS, defs(), warehouse, root / "outbox", delivery=delivery)
        vendors, intake = delivery.vendors, delivery.intake
        out = {
            "warehouse": Warehouse(path),
            "counts": {
                "sendgrid": dict(vendors.sendgrid.counts),
                "fcm": dict(vendors.fcm.counts),
            },
            "twilio": vendors.twilio.deliveries(),
            "sendgrid_requests": vendors.sendgrid.stats(),
            "sent": dict(vendors.sent),
            "events": dict(intake.metrics.events),
            "rejected": sum(intake.metrics.rejected.values()),
            "answered": dict(delivery.answered),
            "summaries": SandboxWorld(warehouse, seed=OPTIONS.seed).summaries(),
            "env_inside": settings_env,
        }
    out["catalog_after"] = os.environ.get(CATALOG_ENV)
    out["catalog_before"] = catalog_before
    out["secret_after"] = os.environ.get("SENDGRID_API_KEY")
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    try:
        first = _run(tmp_path_factory.mktemp("emulated-a"), mp)
        second = _run(tmp_path_factory.mktemp("emulated-b"), mp)
        yield first, second
    finally:
        mp.undo()


def _ledger(wh: Warehouse, destination: str) -> set[str]:
    return {
        r[0]
        for r in wh.rows(
            "select decision_id from journeyman.deliveries "
            "where destination = :d and status = 'delivered'",
            {"d": destination},
        )
    }


def test_each_decision_reaches_its_emulator_exactly_once(runs):
    run, _ = runs
    wh = run["warehouse"]
    for vendor in ("sendgrid", "fcm"):
        counts = run["counts"][vendor]
        assert counts, f"nothing reached the {vendor} emulator"
        assert set(counts.values()) == {1}
        assert set(counts) == _ledger(wh, vendor)
    sms = [parse_qs(urlsplit(d.callback).query)["decision_id"][0] for d in run["twilio"]]
    assert sms and len(sms) == len(set(sms))
    assert set(sms) == _ledger(wh, "twilio")
    # the world answered exactly what the emulators accepted: every message found its decision
    assert run["answered"]["unknown"] == 0
    accepted = sum(len(c) for c in run["counts"].values()) + len(sms)
    assert run["answered"]["accepted"] == accepted
    assert sum(s.messages + s.ignored for s in run["summaries"]) == accepted


def test_email_and_sms_receipts_came_through_the_intake(runs):
    run, _ = runs
    wh = run["warehouse"]
    events = run["events"]
    assert run["rejected"] == 0
    # e-mail: every stored event is one the SendGrid webhook carried, none written directly
    email = wh.scalar(
        f"select count(*) from raw.message_events where channel = 'email' and {SIMULATED}"
    )
    assert email > 0 and email == events["sendgrid", "accepted"]
    assert run["sent"]["sendgrid_events"] == email + events["sendgrid", "duplicates"]
    assert run["sent"]["sendgrid_posts"] >= OPTIONS.days
    direct_email = wh.scalar(
        f"select count(*) from raw.message_events where channel = 'email' and {DIRECT} "
        f"and {SIMULATED}"
    )
    assert direct_email == 0
    # e-mail events belong to messages SendGrid accepted, at most one delivered-or-bounce each
    accepted_ids = set(run["counts"]["sendgrid"])
    rows = wh.rows(
        "select decision_id, count(*) filter (where event_type in ('delivered', 'bounce')) "
        f"from raw.message_events where channel = 'email' and {SIMULATED} group by 1"
    )
    assert {r[0] for r in rows} <= accepted_ids
    assert all(r[1] <= 1 for r in rows)
    # SMS: delivery receipts arrive as Twilio status callbacks keyed MessageSid:status
    sids = {d.provider_id for d in run["twilio"]}
    receipts = wh.rows(
        "select event_id, event_type from raw.message_events where channel = 'sms' "
        f"and event_type in ('delivered', 'bounce') and {SIMULATED}"
    )
    assert receipts and len(receipts) == events["twilio", "accepted"]
    assert run["sent"]["twilio_callbacks"] == len(receipts) + events["twilio", "duplicates"]
    for event_id, event_type in receipts:
        sid, _, status = event_id.partition(":")
        assert sid in sids
        assert status == {"delivered": "delivered", "bounce": "undelivered"}[event_type]
    # push (no per-message webhooks) and SMS clicks / opt-outs: loaded by the world directly
    other = wh.rows(
        "select distinct channel, event_type from raw.message_events "
        f"where {DIRECT} and {SIMULATED} order by all"
    )
    assert other and all(
        c == "push" or (c == "sms" and t not in ("delivered", "bounce")) for c, t in other
    )


def test_dbt_sees_the_received_events(runs):
    run, _ = runs
    wh = run["warehouse"]
    raw = wh.scalar("select count(distinct event_id) from raw.message_events")
    assert wh.scalar("select count(*) from staging.stg_raw__message_events") == raw
    # the views are compiled as of the final build: the day after the last simulated one
    opened = wh.scalar(
        "select sum(messages_opened) from intermediate.int_message_engagement_aggregated "
        "where channel = 'email'"
    )
    expected = wh.scalar(
        "select count(distinct decision_id) from raw.message_events "
        "where channel = 'email' and event_type = 'open' "
        f"and occurred_at < timestamp '{START + timedelta(days=OPTIONS.days)}'"
    )
    assert opened == expected > 0


def test_same_seed_same_events_and_vendor_ids(runs):
    first, second = runs
    assert first["warehouse"].rows(EVENTS) == second["warehouse"].rows(EVENTS)
    ledger = (
        "select decision_id, destination, status, provider_message_id "
        "from journeyman.deliveries order by all"
    )
    assert first["warehouse"].rows(ledger) == second["warehouse"].rows(ledger)
    outcomes = "select * from marts.agent_group_outcomes order by all"
    assert first["warehouse"].rows(outcomes) == second["warehouse"].rows(outcomes)


def test_sandbox_secrets_and_catalog_live_only_inside_the_demo(runs):
    run, _ = runs
    assert run["env_inside"]["SENDGRID_API_KEY"]
    assert run["env_inside"][CATALOG_ENV] != run["catalog_before"]
    assert run["catalog_after"] == run["catalog_before"]
    assert run["secret_after"] is None
