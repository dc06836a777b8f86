"""The sandbox's vendors: SendGrid, Twilio and FCM emulators on loopback, as the demo uses them.

Connectors deliver to the emulators exactly as they would to the vendors (the emulators check
auth and validate every request); the world answers what the emulators accepted (`accepted()`),
and the events a vendor reports by webhook travel back as that vendor sends them (`report`):

- e-mail (SendGrid): every event — delivered, bounce, open, click, unsubscribe, spam report —
  as signed Event Webhook posts (JSON arrays of up to 1,000 events, ECDSA-signed), echoing the
  message's `custom_args`;
- SMS (Twilio): delivery receipts only — `delivered`, `undelivered` — as signed status
  callbacks to each message's StatusCallback URL, with the carrier's `RawDlrDoneDate`.

Everything else (push events: FCM reports none per message; SMS clicks: the shop's site
analytics; SMS opt-outs: the consent system) is left for the world to load directly.
Vendor ids (batch ids, message SIDs) are seeded, so the same run gives the same ids. The posts
themselves are the emulators' (`SendGridEmulator.post_events`, `TwilioEmulator.status_callback`),
with the world's event ids and times.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import requests

from journeyman.sandbox.emulators import Delivery, FcmEmulator, SendGridEmulator, TwilioEmulator

#: status callbacks in flight at once: Twilio posts each message's callback on its own, uncapped
TWILIO_CONCURRENCY = 32
SENDGRID_EVENTS = {
    "delivered": "delivered",
    "bounce": "bounce",
    "open": "open",
    "click": "click",
    "unsubscribe": "unsubscribe",
    "complaint": "spamreport",
}
TWILIO_STATUSES = {"delivered": "delivered", "bounce": "undelivered"}
VENDOR_CHANNEL = {"sendgrid": "email", "twilio": "sms", "fcm": "push"}


class VendorError(RuntimeError):
    """A webhook the sandbox's vendors sent was refused; the message says which and why."""


@dataclass(frozen=True)
class Accepted:
    """One message a vendor accepted: what the world needs to find the decision it answers."""

    vendor: str
    channel: str
    decision_id: str | None  # SendGrid custom_args, FCM data, Twilio StatusCallback query
    customer_id: str | None  # Twilio StatusCallback query; else None
    recipient: str
    send_at: str | None  # when the vendor holds the message for later, else None (sent now)


def _callback_ids(url: str | None) -> tuple[str | None, str | None]:
    query = parse_qs(urlsplit(url).query) if url else {}
    return (query.get("decision_id") or [None])[0], (query.get("customer_id") or [None])[0]


def _epoch_seconds(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Naive-UTC timestamps → whole epoch seconds (what SendGrid's `timestamp` carries)."""
    micros = pc.cast(column, pa.timestamp("us")).cast(pa.int64()).to_numpy(zero_copy_only=False)
    return micros // 1_000_000


class SandboxVendors:
    """SendGrid, Twilio and FCM emulators in threads, plus what connects them to the loop."""

    def __init__(
        self,
        seed: int = 1,
        *,
        fcm_project_id: str = "journeyman-sandbox",
        validate: str = "all",
    ) -> None:
        self.sendgrid = SendGridEmulator(
            api_key="SG.sandbox-" + secrets.token_urlsafe(16), id_seed=seed, validate=validate
        )
        self.twilio = TwilioEmulator(
            auth_token=secrets.token_hex(16), id_seed=seed, validate=validate
        )
        self.fcm = FcmEmulator(project_id=fcm_project_id, id_seed=seed, validate=validate)
        self.intake_url: str | None = None
        self._seen = {"sendgrid": 0, "twilio": 0, "fcm": 0}
        self._email: dict[str, Delivery] = {}
        self._sms: dict[str, tuple[Delivery, str]] = {}  # decision → (delivery, callback URL)
        self._local = threading.local()
        self.sent = {"sendgrid_events": 0, "sendgrid_posts": 0, "twilio_callbacks": 0}

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> SandboxVendors:
        for emulator in (self.sendgrid, self.twilio, self.fcm):
            emulator.start()
        return self

    def stop(self) -> None:
        for emulator in (self.sendgrid, self.twilio, self.fcm):
            emulator.stop()

    def __enter__(self) -> SandboxVendors:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- configuration -------------------------------------------------------------------------

    def secrets(self) -> dict[str, str]:
        """Environment variable → value of the credentials the emulators accept (sandbox only)."""
        return {
            "SENDGRID_API_KEY": self.sendgrid.api_key,
            "TWILIO_ACCOUNT_SID": self.twilio.account_sid,
            "TWILIO_AUTH_TOKEN": self.twilio.auth_token,
            "FCM_SERVICE_ACCOUNT_JSON": self.fcm.service_account_json(),
        }

    def catalog(
        self, base: Mapping[str, Mapping[str, Any]], intake_url: str
    ) -> dict[str, dict[str, Any]]:
        """`base` (a destinations catalog) with every SendGrid / Twilio / FCM entry pointed at
        the emulators, Twilio's status callbacks at `intake_url`; other entries unchanged."""
        self.intake_url = intake_url.rstrip("/")
        out: dict[str, dict[str, Any]] = {}
        for name, entry in base.items():
            entry = dict(entry)
            kind = entry.get("kind")
            if kind == "sendgrid":
                entry["base_url"] = self.sendgrid.url
            elif kind == "twilio":
                entry["base_url"] = self.twilio.url
                entry["status_callback"] = f"{self.intake_url}/webhooks/twilio"
                if not (entry.get("messaging_service_sid") or entry.get("from_number")):
                    entry["messaging_service_sid"] = "MG" + "0" * 32
            elif kind == "fcm":
                entry["base_url"] = self.fcm.url
                entry["project_id"] = self.fcm.project_id
            out[name] = entry
        return out

    # -- what the vendors accepted -------------------------------------------------------------

    def accepted(self) -> list[Accepted]:
        """Messages the emulators accepted since the last call, in the order they arrived."""
        out: list[Accepted] = []
        for vendor, emulator in (
            ("sendgrid", self.sendgrid),
            ("twilio", self.twilio),
            ("fcm", self.fcm),
        ):
            new = emulator.deliveries()[self._seen[vendor] :]
            self._seen[vendor] += len(new)
            for d in new:
                decision, customer = d.decision_id, None
                if vendor == "twilio":
                    decision, customer = _callback_ids(d.callback)
                    if decision and d.callback:
                        self._sms[decision] = (d, d.callback)
                elif vendor == "sendgrid" and decision:
                    self._email[decision] = d
                out.append(
                    Accepted(
                        vendor, VENDOR_CHANNEL[vendor], decision, customer, d.recipient, d.send_at
                    )
                )
        return out

    # -- events back, as each vendor sends them ------------------------------------------------

    def report(self, events: pa.Table) -> pa.Table:
        """Send the events SendGrid and Twilio report by webhook (signed, to the intake); return
        the rest for the world to load directly. Raises VendorError if the intake refuses one."""
        if events.num_rows == 0 or self.intake_url is None:
            return events
        channel = events.column("channel").to_numpy(zero_copy_only=False)
        kind = events.column("event_type").to_numpy(zero_copy_only=False)
        decision = events.column("decision_id").to_numpy(zero_copy_only=False)
        known_email = np.array([d in self._email for d in decision], dtype=bool)
        known_sms = np.array([d in self._sms for d in decision], dtype=bool)
        email = (channel == "email") & known_email & np.isin(kind, list(SENDGRID_EVENTS))
        sms = (channel == "sms") & known_sms & np.isin(kind, list(TWILIO_STATUSES))
        if email.any():
            self._sendgrid_webhooks(events.filter(pa.array(email)))
        if sms.any():
            self._twilio_callbacks(events.filter(pa.array(sms)))
        return events.filter(pa.array(~(email | sms)))

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _sendgrid_webhooks(self, events: pa.Table) -> None:
        ids = events.column("event_id").to_pylist()
        decisions = events.column("decision_id").to_pylist()
        kinds = events.column("event_type").to_pylist()
        stamps = _epoch_seconds(events.column("occurred_at")).tolist()
        batch = [
            self.sendgrid.event(self._email[decision], SENDGRID_EVENTS[kind], event_id, int(stamp))
            for event_id, decision, kind, stamp in zip(ids, decisions, kinds, stamps, strict=True)
        ]
        url = f"{self.intake_url}/webhooks/sendgrid"
        for n, response in self.sendgrid.post_events(url, batch, self._session().post):
            if response.status_code != 200:
                raise VendorError(
                    f"the intake refused a SendGrid event post: HTTP {response.status_code} "
                    f"{response.text[:200]}"
                )
            self.sent["sendgrid_posts"] += 1
            self.sent["sendgrid_events"] += n

    def _twilio_callbacks(self, events: pa.Table) -> None:
        decisions = events.column("decision_id").to_pylist()
        kinds = events.column("event_type").to_pylist()
        stamps = _epoch_seconds(events.column("occurred_at")).tolist()

        def post(item: tuple[str, str, int]) -> None:
            decision, kind, stamp = item
            delivery, callback = self._sms[decision]
            response = self.twilio.status_callback(
                delivery, TWILIO_STATUSES[kind], callback, done_at=stamp, post=self._session().post
            )
            if response.status_code != 200:
                raise VendorError(
                    f"the intake refused a Twilio status callback: HTTP {response.status_code} "
                    f"{response.text[:200]}"
                )

        items = list(zip(decisions, kinds, stamps, strict=True))
        with ThreadPoolExecutor(TWILIO_CONCURRENCY, thread_name_prefix="twilio-cb") as pool:
            for _ in pool.map(post, items):
                pass
        self.sent["twilio_callbacks"] += len(items)
