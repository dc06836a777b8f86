"""Outcomes come back through the production path: a message delivered to the SendGrid
emulator, the emulator's signed Event Webhook, the intake receiver, raw.message_events."""

from __future__ import annotations

import base64
from datetime import timedelta

import requests
from connector_helpers import fast_retry, make_ledger, make_messages, utc_now
from cryptography.hazmat.primitives import serialization
from test_intake import Receiver

from journeyman.connectors.sendgrid import SendGridDestination
from journeyman.connectors.sync import sync
from journeyman.connectors.twilio import TwilioDestination
from journeyman.intake.config import IntakeSettings
from journeyman.sandbox.emulators import SendGridEmulator, TwilioEmulator


def _public_key_b64(private_pem: bytes) -> str:
    key = serialization.load_pem_private_key(private_pem, password=None)
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def test_sendgrid_events_reach_the_warehouse_once_and_forgeries_never(tmp_path):
    now = utc_now()
    with SendGridEmulator(api_key="SG.roundtrip") as sg:
        messages = make_messages(5, send_at=now - timedelta(minutes=1), prefix="rt")
        retry, _ = fast_retry()
        destination = SendGridDestination(
            api_key="SG.roundtrip", from_email="news@shop.example", base_url=sg.url
        )
        report = sync(destination, make_ledger(tmp_path, "sendgrid"), messages, now, retry=retry)
        assert report.delivered == 5
        receiver = Receiver(
            IntakeSettings(
                warehouse=tmp_path / "events.duckdb",
                sendgrid_public_key=_public_key_b64(sg.signing_key_pem),
            )
        )
        try:
            url = receiver.base + "/webhooks/sendgrid"
            sent = sg.emit_events(url, ["delivered", "open"])
            assert sent == 10
            stored = receiver.stored()
            assert len(stored) == 10
            assert {r[1] for r in stored} == {m.decision_id for m in messages}
            # custom_args carry the customer too: each event names its decision's customer
            owner = {m.decision_id: m.customer_id for m in messages}
            assert all(r[2] == owner[r[1]] for r in stored)
            assert {r[4] for r in stored} == {"delivered", "open"}
            forged = requests.post(
                url,
                data=b'[{"event": "open", "sg_event_id": "forged", "timestamp": 1}]',
                headers={
                    "X-Twilio-Email-Event-Webhook-Signature": "AAAA",
                    "X-Twilio-Email-Event-Webhook-Timestamp": str(int(now.timestamp())),
                },
                timeout=10,
            )
            assert forged.status_code in (401, 403)
            assert len(receiver.stored()) == 10
        finally:
            receiver.stop()


def test_twilio_status_callbacks_carry_the_decision_back_once(tmp_path):
    now = utc_now()
    with TwilioEmulator(auth_token="rt-token") as tw:
        receiver = Receiver(
            IntakeSettings(warehouse=tmp_path / "events.duckdb", twilio_auth_token="rt-token")
        )
        try:
            callback = receiver.base + "/webhooks/twilio"
            destination = TwilioDestination(
                account_sid=tw.account_sid,
                auth_token="rt-token",
                from_number="+15005550006",
                status_callback=callback,
                base_url=tw.url,
            )
            messages = make_messages(
                3, send_at=now - timedelta(minutes=1), prefix="tw", channel="sms"
            )
            retry, _ = fast_retry()
            report = sync(destination, make_ledger(tmp_path, "twilio"), messages, now, retry=retry)
            assert report.delivered == 3
            assert tw.emit_events(None, ["delivered"]) == 3
            assert tw.emit_events(None, ["delivered"]) == 3  # Twilio retries: stored once
            stored = receiver.stored()
            assert len(stored) == 3
            assert {r[1] for r in stored} == {m.decision_id for m in messages}
            assert {r[2] for r in stored} == {m.customer_id for m in messages}
        finally:
            receiver.stop()
