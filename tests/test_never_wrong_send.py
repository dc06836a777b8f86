"""Never a wrong send: the sync engine's guarantees against real HTTP on loopback emulators and
real DuckDB ledgers (connectors/sync.py module docstring); the SIGKILL test on PostgreSQL too.

- unknown is never absent: a lost response is re-sent only on a lookup's definitive "absent"
  after the vendor's indexing lag; throttled, lagging, missing or failing lookups leave it
  unknown (SendGrid Email Activity, Twilio Message list);
- in flight means on the wire: a SIGKILL leaves at most one request's records uncertain;
- auxiliary failures (batch id, a request rejected for the settings) stop the sync with one
  clear error and nothing marked failed;
- one batch id per run, and cancelling it withdraws exactly what the ledger marks cancelled
  (including records whose outcome was unknown: the vendor may hold them);
- send windows: nothing is sent after its `send_until`; yesterday's open window still sends;
- consent withdrawn (or an unsubscribe) after deciding suppresses the send, however the raw
  row is spelled (as dbt staging accepts it);
- a vendor template travels as `template_id` + `dynamic_template_data`.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from backends import backend_params, new_warehouse
from connector_helpers import fast_retry, make_ledger, make_messages, utc_now

from journeyman.connectors.cancel import cancel_scheduled
from journeyman.connectors.destination import DestinationError, OutboundMessage
from journeyman.connectors.ledger import DeliveryLedger
from journeyman.connectors.outbound import Creative, build_outbox_tables, deliver_day
from journeyman.connectors.sendgrid import SendGridDestination
from journeyman.connectors.sync import sync
from journeyman.connectors.twilio import TwilioDestination
from journeyman.sandbox.emulators import EmulatorProcess, SendGridEmulator, TwilioEmulator
from journeyman.sandbox.emulators.server import Request, Response
from journeyman.tables import ensure_journeyman_tables, ensure_raw_tables
from journeyman.warehouse import Warehouse

TESTS = Path(__file__).parent
KEY = "SG.never-wrong"
SID = "AC" + "5" * 32
TOKEN = "tw-never-wrong"
ISO = "%Y-%m-%dT%H:%M:%SZ"
MAIL_SEND = "/v3/mail/send"
#: a fixed run clock for tests that schedule nothing (the emulators only need wall time for
#: scheduled sends and lookups)
NOW = datetime(2026, 3, 2, 9, 0)


# -- helpers -----------------------------------------------------------------------------------


class RecordingSendGrid(SendGridEmulator):
    """The SendGrid emulator, also keeping every Mail Send request body as sent (test-only)."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.payloads: list[dict[str, Any]] = []

    def _send(self, request: Request) -> Response:
        try:
            body = request.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            with self.lock:
                self.payloads.append(body)
            self.before_send(body)
        return super()._send(request)

    def before_send(self, body: dict[str, Any]) -> None:
        """Called with each recorded body before the emulator answers (a hook for subclasses)."""


def sendgrid(url: str, **kw: Any) -> SendGridDestination:
    return SendGridDestination(api_key=KEY, from_email="news@shop.example", base_url=url, **kw)


def twilio(url: str) -> TwilioDestination:
    return TwilioDestination(
        account_sid=SID, auth_token=TOKEN, from_number="+15550001", base_url=url
    )


def retry():
    return fast_retry()[0]


def statuses(ledger: DeliveryLedger) -> dict[str, str]:
    return {d: s for d, (s, _) in ledger.statuses().items()}


def assert_once(counts: Any, ids: list[str]) -> None:
    """Each id reached the vendor exactly once, and nothing else did."""
    assert dict(counts) == dict.fromkeys(ids, 1)


def message(
    decision_id: str, send_at: datetime, send_until: datetime | None, **kw: Any
) -> OutboundMessage:
    return OutboundMessage(
        decision_id=decision_id,
        idempotency_key=f"sendgrid:{decision_id}",
        agent="winback",
        customer_id=decision_id.rsplit("-", 1)[-1],
        channel="email",
        message_id="ten_off",
        to=f"{decision_id}@example.com",
        subject="10% off",
        body=f"Hello {decision_id}",
        send_at=send_at.strftime(ISO),
        send_until=None if send_until is None else send_until.strftime(ISO),
        **kw,
    )


def decision(customer: str, day: date, send_at: datetime, send_until: datetime) -> dict[str, Any]:
    """One treatment decision row of journeyman.decisions (email, message ten_off)."""
    return {
        "decision_id": f"winback-{day:%Y%m%d}-{customer}",
        "agent": "winback",
        "decision_date": day,
        "customer_id": customer,
        "policy": "bandit",
        "policy_version": "v1",
        "experiment_group": "treatment",
        "action_id": "ten_off",
        "message_id": "ten_off",
        "channel": "email",
        "subject_variant": 0,
        "send_at": send_at,
        "send_until": send_until,
        "goal_metric": "conversion",
        "attribution_window_days": 7,
        "created_at": datetime.combine(day, datetime.min.time()),
    }


def decision_warehouse(tmp_path: Path, customers: list[str], decisions: list[dict]) -> Warehouse:
    """A DuckDB warehouse with journeyman's and the raw tables, marts.customer_features for
    `customers` and the given decisions."""
    wh = Warehouse(tmp_path / "wh.duckdb")
    ensure_journeyman_tables(wh)
    ensure_raw_tables(wh)
    wh.execute(
        "create schema if not exists marts;\n"
        "create table marts.customer_features (customer_id varchar, email varchar, "
        "phone varchar, first_name varchar)"
    )
    wh.append_arrow(
        "marts.customer_features",
        pa.Table.from_pylist(
            [
                {
                    "customer_id": c,
                    "email": f"{c}@example.com",
                    "phone": None,
                    "first_name": c.upper(),
                }
                for c in customers
            ]
        ),
    )
    wh.append_arrow("journeyman.decisions", pa.Table.from_pylist(decisions))
    return wh


CREATIVES = {
    ("winback", "ten_off", "email"): Creative(
        body="Hi {{ first_name }}, 10% off", subject="Come back, {{ first_name }}"
    )
}
ROUTES = {("winback", "email"): "sendgrid"}


# -- 1. SendGrid: a lost response, then lookups that cannot vouch -----------------------------


@pytest.mark.parametrize("failure", ["throttled_429", "index_lag", "missing_404", "denied_403"])
def test_sendgrid_lost_response_stays_unknown_while_the_activity_lookup_cannot_vouch(
    tmp_path, failure
):
    """A Mail Send whose response was lost is not sent again when the Email Activity lookup is
    throttled, unavailable, or too young for the index: records stay `unknown` and reported;
    fresh records still go out; once the lookup answers, they settle without a re-send."""
    now = utc_now()
    past_lag = now + timedelta(minutes=11)  # SendGrid's 10-minute activity lag has passed
    msgs = make_messages(5, send_at=now, prefix=f"lost-{failure}")
    fresh = make_messages(3, send_at=now, prefix=f"fresh-{failure}")
    lost = [m.decision_id for m in msgs]
    with SendGridEmulator(api_key=KEY) as sg:
        dest = sendgrid(sg.url, activity_lookup=True)
        ledger = make_ledger(tmp_path, "sendgrid")
        sg.inject("drop_after", path=MAIL_SEND)  # SendGrid accepted it; we never heard back
        first = sync(dest, ledger, msgs, now, retry=retry())
        assert (first.unknown, first.delivered, first.retries) == (5, 0, 0)
        assert_once(sg.counts, lost)

        if failure == "index_lag":
            # the index shows nothing for an hour; the engine must not look before its own lag
            sg.activity_lag_s = 3600
            when = now + timedelta(minutes=9)
        else:
            kind = failure.split("_")[1]
            sg.inject(kind, times=1000, path="/v3/messages", reset_in=30)
            when = past_lag
        rerun = sync(dest, ledger, msgs + fresh, when, retry=retry())
        assert rerun.reconciled == 0 and rerun.skipped_unknown == 5
        assert rerun.unknown_total == 5
        assert rerun.delivered == 3 and rerun.sent == 3  # only the fresh ones
        if failure == "index_lag":
            assert rerun.lookups == 0  # an "absent" younger than the lag means nothing
        elif failure == "throttled_429":
            assert 1 <= rerun.lookups <= 3  # tried, bounded
        else:
            assert rerun.lookups == 1  # unavailable: lookups stop for the run
        assert {statuses(ledger)[d] for d in lost} == {"unknown"}
        assert_once(sg.counts, lost + [m.decision_id for m in fresh])
        assert sg.requests_by_path[MAIL_SEND] == 2

        sg.clear_faults()
        sg.activity_lag_s = 0.0
        healed = sync(dest, ledger, msgs + fresh, past_lag, retry=retry())
        assert healed.reconciled == 5 and healed.sent == 0 and healed.unknown_total == 0
        assert set(statuses(ledger).values()) == {"delivered"}
        assert_once(sg.counts, lost + [m.decision_id for m in fresh])


# -- 2. Twilio: a lost response, then a failing Message list ----------------------------------


@pytest.mark.parametrize("failure", ["list_500", "list_429", "list_lag"])
def test_twilio_lost_response_is_not_resent_while_the_message_list_cannot_vouch(tmp_path, failure):
    """An SMS whose response was lost is not sent twice when the Message list fails, is
    throttled, or is younger than the list's lag; once the list shows it, it settles."""
    now = utc_now()
    sms = make_messages(3, channel="sms", send_at=now, prefix=f"tw-{failure}")
    with TwilioEmulator(account_sid=SID, auth_token=TOKEN) as tw:
        dest = twilio(tw.url)
        ledger = make_ledger(tmp_path, "twilio")
        tw.inject("drop_after", path=dest.messages_path)  # the first SMS: created, answer lost
        first = sync(dest, ledger, sms, now, retry=retry())
        assert (first.unknown, first.delivered) == (1, 2)
        assert statuses(ledger)[sms[0].decision_id] == "unknown"

        if failure == "list_lag":
            tw.list_lag_s = 3600
            when = now + timedelta(minutes=4)  # inside Twilio's 5-minute lookup lag
        else:
            # POST and GET share the path: nothing but the lookup is requested in this run
            tw.inject(failure.split("_")[1], times=1000, path=dest.messages_path, retry_after=2)
            when = now + timedelta(minutes=6)
        rerun = sync(dest, ledger, sms, when, retry=retry())
        assert rerun.sent == 0 and rerun.requests == 0
        assert rerun.skipped_unknown == 1 and rerun.skipped_already_settled == 2
        assert rerun.unknown_total == 1 and rerun.reconciled == 0
        assert rerun.lookups == 0 if failure == "list_lag" else 1 <= rerun.lookups <= 3
        assert statuses(ledger)[sms[0].decision_id] == "unknown"
        assert Counter(m["to"] for m in tw.messages) == {m.to: 1 for m in sms}

        tw.clear_faults()
        tw.list_lag_s = 0.0
        healed = sync(dest, ledger, sms, now + timedelta(minutes=6), retry=retry())
        assert healed.reconciled == 1 and healed.sent == 0 and healed.unknown_total == 0
        assert set(statuses(ledger).values()) == {"delivered"}
        assert Counter(m["to"] for m in tw.messages) == {m.to: 1 for m in sms}


# -- 3. SIGKILL right after the first request --------------------------------------------------


@pytest.fixture(params=backend_params())
def ledger_warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new warehouse of each backend for a sync run in another process (path or URL)."""
    with new_warehouse(request.param, tmp_path, "ledger") as location:
        ensure_journeyman_tables(Warehouse(location))
        yield location


def test_sigkill_after_the_first_request_leaves_at_most_one_request_uncertain(ledger_warehouse):
    """A run killed right after its first request: the vendor holds nothing the ledger has not
    marked, at most one request's records (25) are in flight, and the re-run settles them by
    lookup and sends the rest — every decision exactly once. On both backends."""
    n, per_request = 200, 25  # tests/sync_worker.py: max_batch_size 25, concurrency 1
    warehouse = ledger_warehouse
    env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    command = [sys.executable, str(TESTS / "sync_worker.py")]
    with EmulatorProcess("sendgrid", "--api-key", "SG.kill-test") as emulator:
        emulator.inject("slow", times=10_000, seconds=0.25, path=MAIL_SEND)
        worker = subprocess.Popen(
            [*command, emulator.url, str(warehouse), str(n)], env=env, stdout=subprocess.PIPE
        )
        try:
            deadline = time.monotonic() + 60
            while emulator.stats()["recipients"] < per_request and time.monotonic() < deadline:
                time.sleep(0.005)
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait()
        # let the emulator finish a request that reached it before the kill
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            stats = emulator.stats()
            if stats["recipients"] == per_request * stats["requests_by_path"].get(MAIL_SEND, 0):
                break
            time.sleep(0.05)
        held = set(emulator.counts)
        assert per_request <= len(held) < n, "the kill must land after the first request"

        ledger = DeliveryLedger(Warehouse(warehouse), "sendgrid")
        marked = statuses(ledger)
        in_flight = {d for d, s in marked.items() if s == "in_flight"}
        delivered = {d for d, s in marked.items() if s == "delivered"}
        assert set(marked.values()) <= {"in_flight", "delivered"}
        assert held <= set(marked), "the vendor holds a record the ledger never marked"
        assert len(in_flight) <= per_request
        assert len(set(marked) - held) <= per_request  # marks only for what is on the wire
        assert delivered <= held

        emulator.clear_faults()
        rerun = subprocess.run(
            [*command, emulator.url, str(warehouse), str(n)],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        done = dict(re.findall(r"(\w+)=(\d+)", rerun.stdout))
        assert int(done["reconciled"]) == len(in_flight)
        assert int(done["sent"]) == n - len(delivered) - len(in_flight & held)
        counts = emulator.counts
        assert len(counts) == n and set(counts.values()) == {1}
        assert set(statuses(ledger).values()) == {"delivered"}


# -- 4. auxiliary failures stop the sync cleanly ----------------------------------------------


def test_batch_id_404_stops_the_sync_with_nothing_sent_or_marked(tmp_path):
    """A 404 from `POST /v3/mail/batch` is one clear DestinationError before anything is
    marked: no ledger row, no Mail Send; a later healthy run delivers each exactly once."""
    now = utc_now()
    msgs = make_messages(40, send_at=now, prefix="batch404")
    with SendGridEmulator(api_key=KEY) as sg:
        ledger = make_ledger(tmp_path, "sendgrid")
        sg.inject("404", path="/v3/mail/batch")
        with pytest.raises(DestinationError) as info:
            sync(sendgrid(sg.url), ledger, msgs, now, retry=retry())
        text = str(info.value)
        assert "/v3/mail/batch" in text and "404" in text and KEY not in text
        assert ledger.statuses() == {} and ledger.stuck().num_rows == 0
        assert sg.requests_by_path[MAIL_SEND] == 0 and sg.recipients == 0

        report = sync(sendgrid(sg.url), ledger, msgs, now, retry=retry())
        assert report.delivered == 40 and report.failed == 0
        assert_once(sg.counts, [m.decision_id for m in msgs])


def test_request_rejected_for_the_settings_mid_run_releases_the_rest(tmp_path):
    """A Mail Send rejected as a whole for the destination's settings (a 404 naming no
    personalization) mid-run: what went out stays delivered, nothing is marked failed or left
    in flight, and the next run sends the rest once."""
    now = utc_now()
    msgs = make_messages(30, send_at=now, prefix="reject404")
    with SendGridEmulator(api_key=KEY) as sg:
        dest = sendgrid(sg.url)
        dest.max_batch_size = 10
        ledger = make_ledger(tmp_path, "sendgrid")
        sg.inject("slow", times=1, seconds=0, path=MAIL_SEND)  # the first request passes
        sg.inject("404", times=1, path=MAIL_SEND)  # the second is refused as a whole
        with pytest.raises(DestinationError, match="rejected the request as a whole"):
            sync(dest, ledger, msgs, now, retry=retry())
        marked = statuses(ledger)
        assert set(marked.values()) == {"delivered"} and len(marked) == 10
        assert marked.keys() == set(sg.counts)

        report = sync(dest, ledger, msgs, now, retry=retry())
        assert report.delivered == 20 and report.skipped_already_settled == 10
        assert_once(sg.counts, [m.decision_id for m in msgs])


# -- 5. one batch id per run; cancelling is exact --------------------------------------------


def test_concurrent_run_shares_one_batch_id_and_cancel_withdraws_exactly_the_cancelled(tmp_path):
    """Two threads, many small requests: every request and ledger row carries the run's one
    batch id. Cancelling that batch withdraws at the vendor exactly the records the ledger
    marks cancelled (scheduled, not yet due); other runs' batches are untouched."""
    now = utc_now()
    due = make_messages(20, send_at=now, prefix="due")
    ahead = make_messages(60, send_at=now + timedelta(hours=2), prefix="ahead")
    other = make_messages(40, send_at=now + timedelta(hours=3), prefix="other")
    with RecordingSendGrid(api_key=KEY) as sg:
        dest = sendgrid(sg.url)
        dest.max_batch_size = 7
        ledger = make_ledger(tmp_path, "sendgrid")
        report = sync(dest, ledger, due + ahead, now, retry=retry(), concurrency=2)
        assert report.delivered == 80 and report.requests == 12
        batch = report.batch_id
        assert batch and sg.batch_ids == {batch}
        assert {p["batch_id"] for p in sg.payloads} == {batch} and len(sg.payloads) == 12
        rows = ledger.records()
        assert len(rows) == 80 and {r["batch_id"] for r in rows} == {batch}

        second = sync(sendgrid(sg.url), ledger, other, now, retry=retry(), concurrency=2)
        assert second.batch_id not in (None, batch)
        assert ledger.scheduled(now) == {batch: 60, second.batch_id: 40}

        cancelled = cancel_scheduled(sendgrid(sg.url), ledger, now, batch_ids=[batch])
        assert (cancelled.cancelled, cancelled.uncertain) == (60, 0)
        marked = statuses(ledger)
        in_ledger = {d for d, s in marked.items() if s == "cancelled"}
        assert in_ledger == sg.cancelled == {m.decision_id for m in ahead}
        assert {marked[m.decision_id] for m in due + other} == {"delivered"}
        assert_once(sg.counts, [m.decision_id for m in due + other])


def test_cancelled_records_whose_outcome_was_unknown_are_not_sent_again(tmp_path):
    """A scheduled batch, one of its requests accepted with the answer lost (records
    `unknown`): the cancel withdraws all of the batch at the vendor, so the unknown records
    must not be sent by a later sync either (its lookup now rightly answers "absent"), and the
    ledger must count as cancelled exactly what the vendor withdrew."""
    now = utc_now()
    later = now + timedelta(minutes=11)  # past SendGrid's activity lag, before the send time
    ahead = make_messages(10, send_at=now + timedelta(hours=2), prefix="cx")
    withdrawn = {m.decision_id for m in ahead}
    with SendGridEmulator(api_key=KEY) as sg:
        dest = sendgrid(sg.url, activity_lookup=True)
        dest.max_batch_size = 5
        ledger = make_ledger(tmp_path, "sendgrid")
        sg.inject("slow", times=1, seconds=0, path=MAIL_SEND)  # the first request is answered
        sg.inject("drop_after", times=1, path=MAIL_SEND)  # the second: accepted, answer lost
        first = sync(dest, ledger, ahead, now, retry=retry())
        assert (first.delivered, first.unknown) == (5, 5)
        assert_once(sg.counts, sorted(withdrawn))

        cancel_scheduled(sendgrid(sg.url), ledger, now)
        assert sg.cancelled == withdrawn  # the vendor holds none of the batch any more

        again = sync(dest, ledger, ahead, later, retry=retry(), lookup_budget_s=600)
        resent = sorted(sg.counts)
        assert resent == [], f"cancelled records sent again after the cancel: {resent}"
        assert again.sent == 0
        marked = statuses(ledger)
        assert {d for d, s in marked.items() if s == "cancelled"} == withdrawn


def test_cancel_reaches_a_batch_whose_records_are_all_unknown(tmp_path):
    """A scheduled batch whose only request was accepted with the answer lost: the vendor holds
    its messages, so `cancel_scheduled` (all batches) must cancel it too, not skip it because
    no record of it is known `delivered`."""
    now = utc_now()
    ahead = make_messages(4, send_at=now + timedelta(hours=2), prefix="cx-alone")
    with SendGridEmulator(api_key=KEY) as sg:
        ledger = make_ledger(tmp_path, "sendgrid")
        sg.inject("drop_after", times=1, path=MAIL_SEND)
        first = sync(sendgrid(sg.url), ledger, ahead, now, retry=retry())
        assert first.unknown == 4
        assert_once(sg.counts, [m.decision_id for m in ahead])

        report = cancel_scheduled(sendgrid(sg.url), ledger, now)
        assert report.batches == [first.batch_id], "the batch the vendor holds was not cancelled"
        assert sg.batch_status == {first.batch_id: "cancel"}
        assert sg.cancelled == {m.decision_id for m in ahead}


# -- 6. send windows ---------------------------------------------------------------------------


def test_send_window_closed_is_expired_and_yesterdays_open_window_is_sent(tmp_path):
    """A record past its `send_until` is `expired` and never sent (also when its first attempt
    failed and the retry comes after the window); yesterday's record whose window is still
    open is sent."""
    closed = message("win-closed", NOW - timedelta(hours=3), NOW - timedelta(hours=1))
    yesterday = message("win-yesterday", NOW - timedelta(days=1), NOW + timedelta(hours=2))
    unbounded = message("win-none", NOW, None)
    retried = message("win-retried", NOW, NOW + timedelta(hours=1))
    with SendGridEmulator(api_key=KEY) as sg:
        ledger = make_ledger(tmp_path, "sendgrid")
        report = sync(sendgrid(sg.url), ledger, [closed, yesterday, unbounded], NOW, retry=retry())
        assert (report.expired, report.delivered, report.requests) == (1, 2, 1)
        assert ledger.records("expired")[0]["decision_id"] == "win-closed"
        assert ledger.records("expired")[0]["error"] == "send_window_closed"
        assert_once(sg.counts, ["win-yesterday", "win-none"])

        sg.inject("500", times=6, path=MAIL_SEND)  # every attempt of this run fails
        failed = sync(sendgrid(sg.url), ledger, [retried], NOW, retry=retry())
        assert failed.failed_retryable == 1
        assert statuses(ledger)["win-retried"] == "failed_retryable"
        sg.clear_faults()
        late = NOW + timedelta(hours=2)  # the retry run comes after the window closed
        again = sync(
            sendgrid(sg.url), ledger, [closed, yesterday, unbounded, retried], late, retry=retry()
        )
        assert again.expired == 1 and again.sent == 0 and again.skipped_already_settled == 3
        assert statuses(ledger)["win-retried"] == "expired"
        assert_once(sg.counts, ["win-yesterday", "win-none"])


def test_deliver_day_sends_yesterdays_open_window_and_expires_a_closed_one(tmp_path):
    """Through `deliver_day` (Arrow outbox, carry-over day): yesterday's decision whose window
    is open is sent, one whose window closed is expired, today's is sent."""
    today, yesterday = NOW.date(), NOW.date() - timedelta(days=1)
    rows = [
        decision("c1", today, NOW, NOW + timedelta(hours=4)),
        decision("c2", yesterday, NOW - timedelta(days=1), NOW + timedelta(hours=1)),
        decision("c3", yesterday, NOW - timedelta(days=1), NOW - timedelta(hours=6)),
    ]
    wh = decision_warehouse(tmp_path, ["c1", "c2", "c3"], rows)
    with SendGridEmulator(api_key=KEY) as sg:
        report, unsettled = deliver_day(
            wh, today, sendgrid(sg.url), CREATIVES, ROUTES, NOW, retry=retry()
        )
        assert unsettled == 3
        assert (report.delivered, report.expired) == (2, 1)
        ledger = DeliveryLedger(wh, "sendgrid")
        assert statuses(ledger) == {
            rows[0]["decision_id"]: "delivered",
            rows[1]["decision_id"]: "delivered",
            rows[2]["decision_id"]: "expired",
        }
        assert_once(sg.counts, [rows[0]["decision_id"], rows[1]["decision_id"]])


# -- 7. consent withdrawn after deciding -------------------------------------------------------


def test_consent_withdrawn_or_unsubscribe_after_deciding_suppresses_the_send(tmp_path):
    """Consent re-checked at dispatch: an email opt-out recorded after the decision day began,
    an unsubscribe, and a complaint known only by an older decision's id suppress the send;
    an opt-out then opt-in again, or an opt-out of another channel, does not."""
    today = NOW.date()
    day_start = datetime.combine(today, datetime.min.time())
    customers = ["c0", "c1", "c2", "c3", "c4", "c5"]
    rows = [decision(c, today, NOW, NOW + timedelta(hours=6)) for c in customers]
    older = decision("c5", today - timedelta(days=5), NOW - timedelta(days=5), None)
    wh = decision_warehouse(tmp_path, customers, [*rows, older])
    consents = [
        ("c0", "email", "opted_out", day_start + timedelta(hours=2)),  # withdrawn
        ("c3", "email", "opted_out", day_start + timedelta(hours=1)),
        ("c3", "email", "opted_in", day_start + timedelta(hours=3)),  # and given again
        ("c4", "sms", "opted_out", day_start + timedelta(hours=2)),  # another channel
    ]
    wh.append_arrow(
        "raw.consents",
        pa.Table.from_pylist(
            [
                {"customer_id": c, "channel": ch, "status": s, "recorded_at": at}
                for c, ch, s, at in consents
            ]
        ),
    )
    events = [
        ("ev1", None, "c1", "email", "unsubscribe", day_start + timedelta(hours=4)),
        ("ev2", older["decision_id"], None, None, "complaint", day_start + timedelta(hours=5)),
    ]
    wh.append_arrow(
        "raw.message_events",
        pa.Table.from_pylist(
            [
                {
                    "event_id": e,
                    "decision_id": d,
                    "customer_id": c,
                    "channel": ch,
                    "event_type": t,
                    "occurred_at": at,
                }
                for e, d, c, ch, t, at in events
            ],
            schema=pa.schema(
                [
                    ("event_id", pa.string()),
                    ("decision_id", pa.string()),
                    ("customer_id", pa.string()),
                    ("channel", pa.string()),
                    ("event_type", pa.string()),
                    ("occurred_at", pa.timestamp("us")),
                ]
            ),
        ),
    )
    ids = {c: r["decision_id"] for c, r in zip(customers, rows, strict=True)}
    with SendGridEmulator(api_key=KEY) as sg:
        report, unsettled = deliver_day(
            wh, today, sendgrid(sg.url), CREATIVES, ROUTES, NOW, retry=retry()
        )
        assert unsettled == 6
        assert (report.suppressed, report.delivered) == (3, 3)
        ledger = DeliveryLedger(wh, "sendgrid")
        suppressed = {r["decision_id"]: r["error"] for r in ledger.records("suppressed")}
        assert suppressed == {
            ids["c0"]: "consent_withdrawn",
            ids["c1"]: "unsubscribed",
            ids["c5"]: "unsubscribed",
        }
        assert_once(sg.counts, [ids["c2"], ids["c3"], ids["c4"]])

        again, unsettled = deliver_day(
            wh, today, sendgrid(sg.url), CREATIVES, ROUTES, NOW + timedelta(hours=1), retry=retry()
        )
        assert unsettled == 0 and again.sent == 0
        assert_once(sg.counts, [ids["c2"], ids["c3"], ids["c4"]])


def test_consent_withdrawn_as_the_etl_loaded_it_suppresses_the_send(tmp_path):
    """An opt-out row as an ETL tool may load it (`'Email '`, `'OPTED_OUT'`) is a valid
    opt-out for the project (dbt staging lower-cases and trims channel and status): the
    dispatch re-check must honour it as well."""
    today = NOW.date()
    day_start = datetime.combine(today, datetime.min.time())
    rows = [decision(c, today, NOW, NOW + timedelta(hours=6)) for c in ("c0", "c1")]
    wh = decision_warehouse(tmp_path, ["c0", "c1"], rows)
    wh.append_arrow(
        "raw.consents",
        pa.Table.from_pylist(
            [
                {
                    "customer_id": "c0",
                    "channel": "Email ",
                    "status": "OPTED_OUT",
                    "recorded_at": day_start + timedelta(hours=2),
                }
            ]
        ),
    )
    with SendGridEmulator(api_key=KEY) as sg:
        report, _ = deliver_day(wh, today, sendgrid(sg.url), CREATIVES, ROUTES, NOW, retry=retry())
        sent = sorted(sg.counts)
        assert rows[0]["decision_id"] not in sent, "sent after the customer opted out"
        assert (report.suppressed, report.delivered) == (1, 1)
        assert_once(sg.counts, [rows[1]["decision_id"]])


# -- 8. vendor templates ----------------------------------------------------------------------


def test_template_message_arrives_with_template_id_and_dynamic_template_data(tmp_path):
    """A message with a vendor template goes out as `template_id` with its variables in the
    personalization's `dynamic_template_data`, in its own request; a plain message beside it
    keeps the substitution body and no template (Arrow outbox built from Creatives)."""
    rows = [
        {
            "decision_id": f"tpl-{i}",
            "agent": "winback",
            "channel": "email",
            "message_id": "templated" if i < 2 else "plain",
            "customer_id": f"c{i}",
            "email": f"u{i}@example.com",
            "first_name": ["Ada", "Grace", "Linus"][i],
            "send_at": NOW,
            "send_until": NOW + timedelta(hours=1),
            "subject_variant": 0,
        }
        for i in range(3)
    ]
    creatives = {
        ("winback", "templated", "email"): Creative(
            body=None,
            subject="Hi {{ first_name }}",
            template_id="d-0123456789abcdef",
            variables={"first_name": "{{ first_name }}", "code": "SAVE10"},
        ),
        ("winback", "plain", "email"): Creative(body="Plain {{ first_name }}", subject="Plain"),
    }
    box = build_outbox_tables(pa.Table.from_pylist(rows), creatives, ROUTES)["sendgrid"]
    assert box.rejected == []
    with RecordingSendGrid(api_key=KEY) as sg:
        report = sync(
            sendgrid(sg.url), make_ledger(tmp_path, "sendgrid"), box.messages, NOW, retry=retry()
        )
        assert report.delivered == 3
        assert_once(sg.counts, ["tpl-0", "tpl-1", "tpl-2"])
        assert sg.validation_errors == []
        templated = [p for p in sg.payloads if "template_id" in p]
        plain = [p for p in sg.payloads if "template_id" not in p]
        assert len(templated) == 1 and len(plain) == 1
        assert templated[0]["template_id"] == "d-0123456789abcdef"
        assert "content" not in templated[0]
        data = {
            p["custom_args"]["decision_id"]: p["dynamic_template_data"]
            for p in templated[0]["personalizations"]
        }
        assert data == {
            "tpl-0": {"subject": "Hi Ada", "first_name": "Ada", "code": "SAVE10"},
            "tpl-1": {"subject": "Hi Grace", "first_name": "Grace", "code": "SAVE10"},
        }
        (only,) = plain[0]["personalizations"]
        assert only["custom_args"]["decision_id"] == "tpl-2"
        assert "dynamic_template_data" not in only
        assert list(only["substitutions"].values()) == ["Plain Linus"]
