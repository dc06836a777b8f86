"""Cancelling a destination's scheduled SendGrid batch: the vendor withdraws the messages not yet
due, the ledger marks them cancelled (never delivered, never re-sent), the rest is untouched."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests
from connector_helpers import make_ledger, make_messages, utc_now

from journeyman.connectors.cancel import cancel_scheduled
from journeyman.connectors.destination import DestinationError
from journeyman.connectors.file import FileDestination
from journeyman.connectors.sendgrid import SendGridDestination
from journeyman.connectors.sync import sync
from journeyman.sandbox.emulators import SendGridEmulator

KEY = "SG.cancel-test"


def _sendgrid(url: str) -> SendGridDestination:
    return SendGridDestination(api_key=KEY, from_email="news@shop.example", base_url=url)


def test_cancelling_a_batch_withdraws_scheduled_sends_and_marks_them_cancelled(tmp_path):
    now = utc_now()
    due_now = make_messages(10, send_at=now, prefix="now")
    soon = make_messages(10, send_at=now + timedelta(minutes=4), prefix="soon")
    later = make_messages(10, send_at=now + timedelta(hours=2), prefix="later")
    messages = due_now + soon + later
    with SendGridEmulator(api_key=KEY) as sg:
        ledger = make_ledger(tmp_path, "sendgrid")
        dest = _sendgrid(sg.url)
        report = sync(dest, ledger, messages, now)
        assert report.delivered == 30
        batch = dest.send_group()
        assert batch and ledger.scheduled(now) == {batch: 20}

        cancelled = cancel_scheduled(_sendgrid(sg.url), ledger, now)

        # the vendor holds the batch as cancelled and will not deliver its scheduled messages
        assert sg.batch_status == {batch: "cancel"}
        listed = requests.get(
            f"{sg.url}/v3/user/scheduled_sends",
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=5,
        ).json()
        assert listed == [{"batch_id": batch, "status": "cancel"}]
        delivered = {d.decision_id for d in sg.deliveries()}
        assert {m.decision_id for m in later}.isdisjoint(delivered)
        assert {m.decision_id for m in due_now} <= delivered  # already sent: untouched
        assert all(sg.counts.get(m.decision_id, 0) == 0 for m in later)

        # the ledger: messages due after the 10-minute cut-off are cancelled, not delivered;
        # those due sooner may still go out (SendGrid does not guarantee), reported uncertain
        assert cancelled.batches == [batch]
        assert (cancelled.cancelled, cancelled.uncertain) == (10, 10)
        statuses = {d: s for d, (s, _) in ledger.statuses().items()}
        assert {statuses[m.decision_id] for m in later} == {"cancelled"}
        assert {statuses[m.decision_id] for m in due_now + soon} == {"delivered"}

        # a later sync never sends a cancelled decision again
        again = sync(_sendgrid(sg.url), ledger, messages, now)
        assert again.sent == 0 and again.skipped_already_settled == 30
        assert all(sg.counts.get(m.decision_id, 0) == 0 for m in later)

        # repeating the cancellation is safe (the vendor answers 400 "already cancelled")
        repeat = cancel_scheduled(_sendgrid(sg.url), ledger, now)
        assert (repeat.cancelled, repeat.uncertain) == (0, 10)


def test_sends_with_an_already_cancelled_batch_are_withdrawn_by_the_emulator():
    now = utc_now()
    with SendGridEmulator(api_key=KEY) as sg:
        dest = _sendgrid(sg.url)
        batch = dest.batch_id()
        dest.cancel_group(batch)
        later = make_messages(3, send_at=now + timedelta(hours=1), prefix="late")
        assert [r.status.value for r in dest.send(later)] == ["delivered"] * 3
        assert sg.deliveries() == [] and sum(sg.counts.values()) == 0


def test_the_scheduled_sends_route_checks_its_request():
    with SendGridEmulator(api_key=KEY) as sg:
        headers = {"Authorization": f"Bearer {KEY}"}
        url = f"{sg.url}/v3/user/scheduled_sends"
        batch = _sendgrid(sg.url).batch_id()
        bad = requests.post(url, json={"batch_id": batch, "status": "stop"}, headers=headers)
        assert bad.status_code == 400
        unknown = requests.post(url, json={"batch_id": "nope", "status": "cancel"}, headers=headers)
        assert unknown.status_code == 400
        assert requests.post(url, json={"batch_id": batch, "status": "pause"}).status_code == 401
        ok = requests.post(url, json={"batch_id": batch, "status": "pause"}, headers=headers)
        assert (ok.status_code, ok.json()) == (201, {"batch_id": batch, "status": "pause"})
        twice = requests.post(url, json={"batch_id": batch, "status": "cancel"}, headers=headers)
        assert twice.status_code == 400  # already paused: the documented 400
        with pytest.raises(DestinationError, match="HTTP 400"):
            _sendgrid(sg.url).cancel_group(batch)  # paused, not cancelled: said plainly
        with pytest.raises(DestinationError, match="HTTP 400"):
            _sendgrid(sg.url).cancel_group("unknown-batch")


def test_destinations_without_batches_say_they_cannot_cancel(tmp_path):
    ledger = make_ledger(tmp_path, "file")
    with pytest.raises(DestinationError, match="cannot cancel"):
        cancel_scheduled(FileDestination(tmp_path / "out"), ledger, utc_now(), batch_ids=["x"])
    with pytest.raises(DestinationError, match="cannot cancel"):  # never a silent "0 cancelled"
        cancel_scheduled(FileDestination(tmp_path / "out"), ledger, utc_now())
