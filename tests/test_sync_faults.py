"""Fault tests: SIGKILL mid-run, 429 storms, bad recipients, 401, dropped connections,
timeouts, and secrets kept out of logs and errors — real HTTP to loopback emulators."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from backends import backend_params, new_warehouse
from connector_helpers import fast_retry, make_ledger, make_messages, utc_now

from journeyman.connectors.destination import AuthError, DestinationError
from journeyman.connectors.fcm import FcmDestination
from journeyman.connectors.klaviyo import KlaviyoDestination
from journeyman.connectors.ledger import DeliveryLedger
from journeyman.connectors.pacing import RateLimit, TokenBucket
from journeyman.connectors.sendgrid import SendGridDestination
from journeyman.connectors.sync import sync
from journeyman.connectors.twilio import TwilioDestination
from journeyman.sandbox.emulators import (
    EmulatorProcess,
    FcmEmulator,
    KlaviyoEmulator,
    SendGridEmulator,
    TwilioEmulator,
)
from journeyman.tables import ensure_journeyman_tables
from journeyman.warehouse import Warehouse

TESTS = Path(__file__).parent
SID = "AC" + "3" * 32


def sendgrid(url: str, key: str = "SG.fault", **kw) -> SendGridDestination:
    return SendGridDestination(api_key=key, from_email="news@shop.example", base_url=url, **kw)


@pytest.mark.parametrize("backend", backend_params())
def test_sigkill_mid_run_then_rerun_delivers_each_decision_exactly_once(tmp_path, backend):
    with new_warehouse(backend, tmp_path, "kill") as warehouse:
        ensure_journeyman_tables(Warehouse(warehouse))
        _sigkill_mid_run_then_rerun(warehouse)


def _sigkill_mid_run_then_rerun(warehouse: str) -> None:
    n = 600
    with EmulatorProcess("sendgrid", "--api-key", "SG.kill-test") as emulator:
        emulator.inject("slow", times=10_000, seconds=0.05)  # keep the run busy for a while
        env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        worker = subprocess.Popen(
            [sys.executable, str(TESTS / "sync_worker.py"), emulator.url, str(warehouse), str(n)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        # 150 = mid-way through the second ledger chunk (4 requests of 25 per chunk of 100)
        while emulator.stats()["recipients"] < 150 and time.monotonic() < deadline:
            time.sleep(0.005)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        killed_at = emulator.stats()["recipients"]
        assert 0 < killed_at < n, "the kill must land mid-run"
        ledger = DeliveryLedger(Warehouse(warehouse), "sendgrid")
        # in flight means on the wire: at most one request's records (25) are uncertain
        assert len(ledger.in_flight()) <= 25
        marked = ledger.statuses()
        assert len(marked) <= killed_at + 25
        emulator.clear_faults()
        rerun = subprocess.run(
            [sys.executable, str(TESTS / "sync_worker.py"), emulator.url, str(warehouse), str(n)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        assert "DONE" in rerun.stdout
        counts = emulator.counts
        assert len(counts) == n
        assert set(counts.values()) == {1}, "no decision may be delivered twice"
        statuses = {s for s, _ in ledger.statuses().values()}
        assert statuses == {"delivered"}
        assert emulator.stats()["validation_errors"] == []


def test_429_storm_is_retried_with_vendor_waits_and_bounded(tmp_path):
    now = utc_now()
    with SendGridEmulator(api_key="SG.fault") as sg:
        dest = sendgrid(sg.url)
        dest.max_batch_size = 100
        sg.inject("429", times=8, reset_in=3, path="/v3/mail/send")  # X-RateLimit-Reset
        retry, slept = fast_retry(max_attempts=10)
        msgs = make_messages(500, send_at=now)
        report = sync(dest, make_ledger(tmp_path, "sendgrid"), msgs, now, retry=retry)
        assert report.delivered == 500 and report.retries == 8
        assert report.errors["retried_sendgrid_429"] == 8
        assert min(slept) >= 1.5  # honoured the reset (≈3 s), not just the jittered backoff
        assert set(sg.counts.values()) == {1} and len(sg.counts) == 500

        # an endless storm: attempts are bounded, records left for the next run
        sg.reset()
        sg.inject("429", times=1000, retry_after=1, path="/v3/mail/send")
        retry, slept = fast_retry(max_attempts=4)
        more = make_messages(150, send_at=now, prefix="storm")
        ledger = make_ledger(tmp_path, "sg2")
        report = sync(dest, ledger, more, now, retry=retry)
        assert report.failed_retryable == 150 and report.delivered == 0
        # two request batches, four attempts each
        assert sg.requests_by_path["/v3/mail/send"] == 2 * 4
        sg.clear_faults()
        report = sync(dest, ledger, more, now, retry=retry)
        assert report.delivered == 150
        assert {a for _, a in ledger.statuses().values()} == {2}


def test_rate_limit_paces_requests_with_a_token_bucket():
    clock = [0.0]
    waits: list[float] = []

    def sleep(s: float) -> None:
        waits.append(s)
        clock[0] += s

    bucket = TokenBucket(RateLimit(10, 2), clock=lambda: clock[0], sleep=sleep)
    for _ in range(12):
        bucket.acquire()
    assert clock[0] == pytest.approx(1.0, abs=1e-6)  # 2 burst + 10 more at 10/s


def test_bad_recipients_are_isolated_by_splitting_and_marked_permanent(tmp_path):
    now = utc_now()
    with SendGridEmulator(api_key="SG.fault") as sg:
        msgs = make_messages(400, send_at=now)
        bad = [msgs[17].to, msgs[201].to, msgs[399].to]
        sg.reject_recipients(bad)
        ledger = make_ledger(tmp_path, "sendgrid")
        report = sync(sendgrid(sg.url), ledger, msgs, now)
        assert (report.delivered, report.failed_permanent) == (397, 3)
        # SendGrid names the bad personalization: dropped and the rest re-sent, no halving
        assert report.splits == 0 and report.requests == 4
        assert report.errors["invalid_recipient"] == 3
        statuses = ledger.statuses()
        assert {d for d, (s, _) in statuses.items() if s == "failed_permanent"} == {
            msgs[i].decision_id for i in (17, 201, 399)
        }
        assert len(sg.counts) == 397 and set(sg.counts.values()) == {1}
        again = sync(sendgrid(sg.url), ledger, msgs, now)  # permanent: never retried
        assert again.sent == 0 and again.skipped_already_settled == 400

    with TwilioEmulator(account_sid=SID, auth_token="tw-fault") as tw:
        sms = make_messages(5, channel="sms", send_at=now)
        tw.reject_recipients([sms[3].to])
        dest = TwilioDestination(
            account_sid=SID, auth_token="tw-fault", from_number="+15550001", base_url=tw.url
        )
        report = sync(dest, make_ledger(tmp_path, "twilio"), sms, now)
        assert (report.delivered, report.failed_permanent) == (4, 1)
        assert report.errors["invalid_recipient"] == 1


def test_401_is_one_clear_error_and_nothing_is_marked_delivered(tmp_path):
    now = utc_now()
    with SendGridEmulator(api_key="SG.right") as sg:
        dest = sendgrid(sg.url, key="SG.wrong-key")
        dest.max_batch_size = 50
        ledger = make_ledger(tmp_path, "sendgrid")
        with pytest.raises(AuthError) as info:
            sync(dest, ledger, make_messages(300, send_at=now), now)
        assert "rejected the credentials" in str(info.value)
        assert "SG.wrong-key" not in str(info.value)
        assert sg.auth_failures == 1  # stopped at the first 401, no hammering
        statuses = ledger.statuses()
        assert {s for s, _ in statuses.values()} <= {"failed_retryable"}
        assert sg.recipients == 0

        # a key revoked mid-run: what went out stays delivered, the rest waits for the next run
        good = sendgrid(sg.url, key="SG.right")
        good.max_batch_size = 50
        sg.inject("401", times=1, path="/v3/mail/send")
        ledger2 = make_ledger(tmp_path, "sg_b")
        with pytest.raises(AuthError):
            sync(good, ledger2, make_messages(120, send_at=now, prefix="b"), now)
        delivered = [d for d, (s, _) in ledger2.statuses().items() if s == "delivered"]
        assert len(delivered) == sg.recipients


def test_dropped_connections_and_timeouts_never_duplicate(tmp_path):
    now = utc_now()
    later = now + timedelta(minutes=11)  # past SendGrid's activity-index lag (10 min default)
    with SendGridEmulator(api_key="SG.fault") as sg:
        retry, _ = fast_retry()
        dest = sendgrid(sg.url, activity_lookup=True)
        # dropped before the vendor acted: unknown now; once the index has caught up the lookup
        # answers "absent" and the record is sent — once
        sg.inject("drop", times=1, path="/v3/mail/send")
        msgs = make_messages(30, send_at=now)
        ledger = make_ledger(tmp_path, "a")
        report = sync(dest, ledger, msgs, now, retry=retry)
        assert report.unknown == 30 and report.delivered == 0 and report.retries == 0
        assert sg.counts.total() == 0
        retry, slept = fast_retry()
        # lookups are paced to SendGrid's 6 a minute: 30 of them need a 5-minute budget
        again = sync(dest, ledger, msgs, later, retry=retry, lookup_budget_s=600)
        assert again.reconciled == 30 and again.delivered == 30 and again.lookups == 30
        assert sum(slept) >= 29 * 10 - 1e-6
        assert set(sg.counts.values()) == {1} and len(sg.counts) == 30
        # dropped after the vendor acted: the lookup finds them, nothing is re-sent
        sg.inject("drop_after", times=1, path="/v3/mail/send")
        msgs2 = make_messages(30, send_at=now, prefix="after")
        ledger2 = make_ledger(tmp_path, "b")
        report = sync(dest, ledger2, msgs2, now, retry=retry)
        assert report.unknown == 30 and report.retries == 0
        short = sync(dest, ledger2, msgs2, later, retry=retry)  # the default 60 s budget
        assert short.lookups <= 7 and short.unknown_total == 30 - short.reconciled
        again = sync(dest, ledger2, msgs2, later, retry=retry, lookup_budget_s=600)
        assert again.sent == 0 and short.reconciled + again.reconciled == 30
        assert {s for s, _ in ledger2.statuses().values()} == {"delivered"}
        assert all(sg.counts[m.decision_id] == 1 for m in msgs2)
        # without a lookup the outcome stays unknown: reported, never re-sent
        sg.inject("drop_after", times=1, path="/v3/mail/send")
        blind = sendgrid(sg.url)
        msgs3 = make_messages(10, send_at=now, prefix="blind")
        ledger = make_ledger(tmp_path, "c")
        report = sync(blind, ledger, msgs3, now, retry=retry)
        assert report.unknown == 10 and report.delivered == 0
        assert all(sg.counts[m.decision_id] == 1 for m in msgs3)
        again = sync(blind, ledger, msgs3, later, retry=retry)
        assert again.skipped_unknown == 10 and again.unknown_total == 10 and again.sent == 0
        assert all(sg.counts[m.decision_id] == 1 for m in msgs3)

    with KlaviyoEmulator(api_key="pk_fault") as kl:
        # a read timeout on a vendor that de-duplicates: simply retried
        kl.inject("slow", times=1, seconds=0.6)
        kl.inject("500", times=2)
        dest = KlaviyoDestination(api_key="pk_fault", base_url=kl.url, timeout_s=(1.0, 0.3))
        msgs = make_messages(40, send_at=now)
        retry, _ = fast_retry()
        report = sync(dest, make_ledger(tmp_path, "k"), msgs, now, retry=retry)
        assert report.delivered == 40 and report.retries == 3
        time.sleep(0.5)  # let the slow request finish on the emulator side
        assert all(kl.counts[m.decision_id] == 1 for m in msgs)


SENTINELS = {
    "sendgrid": "SG.sentinel-secret-8f3a",
    "twilio": "sentinel-twilio-token-77",
}


def test_no_secret_reaches_logs_errors_or_reprs(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    now = utc_now()
    texts: list[str] = []

    def collect(exc: BaseException) -> None:
        while exc is not None:
            texts.append(f"{exc!s} {exc!r}")
            exc = exc.__cause__ or exc.__context__

    with SendGridEmulator(api_key="SG.other") as sg:
        dest = sendgrid(sg.url, key=SENTINELS["sendgrid"])
        texts.append(repr(dest))
        texts.append(repr(vars(dest)))
        for call in (
            dest.check,
            lambda: sync(dest, make_ledger(tmp_path, "s"), make_messages(3, send_at=now), now),
        ):
            with pytest.raises(DestinationError) as info:
                call()
            collect(info.value)
    unreachable = sendgrid("http://127.0.0.1:9", key=SENTINELS["sendgrid"])
    with pytest.raises(DestinationError) as info:
        unreachable.check()
    collect(info.value)
    with TwilioEmulator(account_sid=SID, auth_token="right") as tw:
        dest = TwilioDestination(
            account_sid=SID,
            auth_token=SENTINELS["twilio"],
            from_number="+15550001",
            base_url=tw.url,
        )
        texts.append(repr(vars(dest)))
        with pytest.raises(DestinationError) as info:
            dest.check()
        collect(info.value)
    with FcmEmulator() as fcm:
        key_json = fcm.service_account_json()
        private_line = [ln for ln in key_json.split("\\n") if ln and "PRIVATE" not in ln][1]
        dest = FcmDestination(service_account_json=key_json, token_url=f"{fcm.url}/nope")
        texts.append(repr(vars(dest)))
        with pytest.raises(DestinationError) as info:
            dest.check()
        collect(info.value)
    texts.extend(r.getMessage() for r in caplog.records)
    texts.extend(str(r.args) for r in caplog.records)
    blob = "\n".join(texts)
    assert "rejected the credentials" in blob  # the errors were captured at all
    for secret in (*SENTINELS.values(), private_line):
        assert secret not in blob
