"""Twilio Programmable Messaging (`POST /2010-04-01/Accounts/{sid}/Messages.json`): SMS.

Form-encoded, HTTP Basic auth (Account SID + auth token), one recipient per request. A message
due 15 minutes to 35 days ahead is scheduled (`ScheduleType=fixed`, `SendAt`, which needs a
`MessagingServiceSid`); anything else is dispatched when due by a frequent sync.

Reconciliation: Twilio has no idempotency key, but its Message list can be filtered by `To`.
A record whose outcome is unknown (lost response, crash) is held if a message with the same body
went to the same number; it is sent again only when the list answered completely without it and
the attempt is older than `lookup_lag_s`. A failing or throttled list leaves it unknown.
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from journeyman.connectors.destination import (
    BatchResult,
    DeliveryStatus,
    Lookup,
    LookupUnavailable,
    MessageBatch,
    RetryableError,
)
from journeyman.connectors.http import HttpDestination, Secret, loads, parse_send_at, require
from journeyman.connectors.pacing import RateLimit

#: Twilio error codes that mean this recipient can never be reached as addressed.
PERMANENT_RECIPIENT_ERRORS = {
    21211: "invalid_recipient",  # invalid 'To' phone number
    21614: "invalid_recipient",  # 'To' is not a valid mobile number
    21610: "unsubscribed_recipient",  # recipient replied STOP
    21408: "region_not_enabled",
    21612: "unreachable_recipient",
}


class TwilioDestination(HttpDestination):
    """SMS through Twilio's Messages resource."""

    default_base_url = "https://api.twilio.com"
    max_batch_size = 1
    #: one message per request; Twilio allows 100 concurrent requests per account
    default_concurrency = 16
    default_rate_limit = RateLimit(
        100, 100, "Twilio: 100 concurrent API requests per account; sender MPS varies"
    )
    can_lookup = True
    lookup_needs_content = True
    lookup_rate_limit = RateLimit(10, 10, "journeyman default for Message list lookups")
    #: messages to one number the list is asked for; a fuller page is not a complete answer
    LOOKUP_PAGE = 100

    def __init__(
        self,
        name: str = "twilio",
        *,
        account_sid: str,
        auth_token: str | Secret,
        messaging_service_sid: str | None = None,
        from_number: str | None = None,
        status_callback: str | None = None,
        lookup_lag_s: float = 300.0,
        base_url: str | None = None,
        timeout_s: float | tuple[float, float] = (5.0, 30.0),
    ) -> None:
        self.auth_token = Secret(auth_token)
        super().__init__(name, base_url=base_url, timeout_s=timeout_s, secrets=[self.auth_token])
        self.account_sid = account_sid
        self.messaging_service_sid = messaging_service_sid
        self.from_number = from_number
        self.status_callback = status_callback
        self.lookup_lag = timedelta(seconds=lookup_lag_s)
        # scheduling needs a Messaging Service
        self.schedule_window = (
            (timedelta(minutes=15), timedelta(days=35)) if messaging_service_sid else None
        )

    @property
    def messages_path(self) -> str:
        return f"/2010-04-01/Accounts/{self.account_sid}/Messages.json"

    def auth_headers(self) -> dict[str, str]:
        pair = f"{self.account_sid}:{self.auth_token.reveal()}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}

    def check(self) -> None:
        require(self.account_sid, "the Account SID", self.name, "TWILIO_ACCOUNT_SID")
        require(self.auth_token, "the auth token", self.name, "TWILIO_AUTH_TOKEN")
        if not (self.messaging_service_sid or self.from_number):
            require(None, "messaging_service_sid or from_number", self.name)
        self.probe("GET", self.messages_path, "GET Messages.json", params={"PageSize": "1"})

    def form(self, batch: MessageBatch, i: int, now: datetime) -> dict[str, str]:
        """The form fields of one message."""
        fields: dict[str, str] = {"To": batch.to[i], "Body": batch.body[i]}
        if self.messaging_service_sid:
            fields["MessagingServiceSid"] = self.messaging_service_sid
        if self.from_number:
            fields["From"] = self.from_number
        if self.status_callback:
            # Twilio echoes nothing of ours in a status callback: the decision and customer ride
            # in the callback URL (signed by Twilio with it), where the intake reads them.
            ids = urlencode(
                {"decision_id": batch.decision_id[i], "customer_id": batch.customer_id[i]}
            )
            joiner = "&" if "?" in self.status_callback else "?"
            fields["StatusCallback"] = f"{self.status_callback}{joiner}{ids}"
        when = parse_send_at(batch.send_at[i])
        if self.can_schedule(when, now):
            fields["ScheduleType"] = "fixed"
            fields["SendAt"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
        return fields

    def send_batch(self, batch: MessageBatch, now: datetime) -> BatchResult:
        result = BatchResult([], [], [])
        for i in range(len(batch)):
            response = self.request("POST", self.messages_path, data=self.form(batch, i, now))
            if response.status_code in (200, 201):
                sid = loads(response.content).get("sid")
                result.extend(BatchResult([DeliveryStatus.DELIVERED], [None], [sid]))
                continue
            code, info = _twilio_error(response)
            if code == 20429:
                raise RetryableError("twilio_20429", wait_s=self.vendor_wait_s(response))
            self.raise_for_request(response, "twilio")
            reason = PERMANENT_RECIPIENT_ERRORS.get(code or 0, "twilio_error")
            result.extend(
                BatchResult([DeliveryStatus.FAILED_PERMANENT], [f"{reason}:{code}:{info}"], [None])
            )
        return result

    def lookup(self, batch: MessageBatch) -> dict[str, Lookup]:
        """Look each record up by `To` and body in the Message list."""
        out: dict[str, Lookup] = {}
        for d, to, body in zip(batch.decision_id, batch.to, batch.body, strict=True):
            response = self.request(
                "GET", self.messages_path, params={"To": to, "PageSize": str(self.LOOKUP_PAGE)}
            )
            status = response.status_code
            if status == 429 or status >= 500:
                raise RetryableError(f"list_{status}", wait_s=self.vendor_wait_s(response))
            if status != 200:
                raise LookupUnavailable(
                    f"destination {self.name!r}: the Message list answered HTTP {status}; "
                    "records with an unknown outcome stay unknown"
                )
            try:
                page = loads(response.content)
                messages: list[dict[str, Any]] = page.get("messages")
            except (ValueError, AttributeError):
                continue
            if not isinstance(messages, list):
                continue
            if any(m.get("body") == body and m.get("to") == to for m in messages):
                out[d] = Lookup.HELD
            elif len(messages) < self.LOOKUP_PAGE and not page.get("next_page_uri"):
                out[d] = Lookup.ABSENT  # the whole list for this number, without it
        return out


def _twilio_error(response: Any) -> tuple[int | None, str]:
    try:
        body = loads(response.content)
        return int(body.get("code") or 0) or None, str(body.get("status", response.status_code))
    except (ValueError, TypeError, AttributeError):
        return None, str(response.status_code)
