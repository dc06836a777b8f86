"""Twilio: Messages.json create (form-encoded, Basic auth, validated against Twilio's OpenAPI
document) and list, and the signed status callbacks it posts back."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from journeyman.sandbox.emulators.base import Route, Spec, VendorEmulator
from journeyman.sandbox.emulators.server import Delivery, Fault, Request, Response
from journeyman.signing import TWILIO_SIGNATURE_HEADER, secrets_match, twilio_signature

TWILIO_MESSAGES = "/2010-04-01/Accounts/{AccountSid}/Messages.json"
MESSAGES = "/2010-04-01/Accounts/{account_sid}/Messages.json"  # filled in per emulator
FORM = "application/x-www-form-urlencoded"
Post = Callable[..., requests.Response]


class TwilioEmulator(VendorEmulator):
    """Messages.json create (form-encoded, Basic auth) and list (filter by To)."""

    vendor = "twilio"
    SPEC = "twilio_api_v2010_messages.json"
    ROUTES = (
        Route("GET", MESSAGES, "_list"),
        Route(None, MESSAGES, "_create", "form", Spec("openapi", SPEC, TWILIO_MESSAGES, FORM)),
    )

    def __init__(
        self, *, account_sid: str = "AC" + "0" * 32, auth_token: str = "emulator-token", **kw: Any
    ) -> None:
        super().__init__(**kw)
        self.account_sid, self.auth_token = account_sid, auth_token
        self.messages: list[dict[str, Any]] = []
        self._listed_at: list[float] = []
        #: seconds before a created message shows in the Message list
        self.list_lag_s = 0.0

    # -- what differs from the base --------------------------------------------------------------

    @staticmethod
    def error(
        status: int, code: int, message: str, headers: dict[str, str] | None = None
    ) -> Response:
        """Twilio's error body (with the error's documentation link)."""
        more_info = f"https://www.twilio.com/docs/errors/{code}"
        body = {"code": code, "message": message, "status": status, "more_info": more_info}
        return Response(status, body, headers)

    def authenticate(self, request: Request) -> bool:
        value = request.headers.get("Authorization") or ""
        try:
            sid, _, token = base64.b64decode(value[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return (
            value.startswith("Basic ")
            and sid == self.account_sid
            and secrets_match(self.auth_token, token)
        )

    def unauthorized(self) -> Response:
        return self.error(401, 20003, "Authenticate")

    def fault_response(self, fault: Fault) -> Response:
        if fault.kind == "429":
            return self.error(429, 20429, "Too Many Requests", self.rate_headers(fault))
        return super().fault_response(fault)

    def not_found(self, request: Request) -> Response:
        return Response(404, {"code": 20404, "message": "not found", "status": 404})

    def malformed(self, request: Request) -> Response:
        return self.rejected(["body: not a UTF-8 form"])

    def limits(self, route: Route, payload: Any) -> list[str]:
        return _twilio_limits(payload)

    def rejected(self, errors: list[str]) -> Response:
        return Response(400, {"code": 21000, "message": "; ".join(errors)[:300], "status": 400})

    # -- routes ------------------------------------------------------------------------------

    def _list(self, request: Request) -> Response:
        to = (request.query.get("To") or [None])[0]
        listed_by = time.time() - self.list_lag_s
        with self.lock:
            found = [
                m
                for m, at in zip(self.messages, self._listed_at, strict=True)
                if (to is None or m["to"] == to) and at <= listed_by
            ]
        return Response(
            200,
            {
                "messages": found[-100:],
                "page": 0,
                "page_size": 100,
                "start": 0,
                "end": len(found),
                "uri": request.path,
                "first_page_uri": request.path,
                "next_page_uri": None,
                "previous_page_uri": None,
            },
        )

    def _create(self, request: Request) -> Response:
        form = request.form()
        to = form.get("To", [""])[-1]
        if to in self.invalid_recipients or not to.startswith("+"):
            message = f"The 'To' number {to} is not a valid phone number."
            return self.error(400, 21211, message)
        callback = form.get("StatusCallback", [None])[-1]
        # seeded ids from what identifies the message (the callback's host and port vary by run)
        sid = self.next_id("SM", f"{to}\n{form.get('Body', [''])[-1]}\n{_query(callback)}".encode())
        message = self._message(sid, to, form, request.path)
        with self.lock:
            self.messages.append(message)
            self._listed_at.append(time.time())
        send_at = form.get("SendAt", [None])[-1]
        self.accept([Delivery("twilio", None, to, None, message["body"], send_at, sid, callback)])
        return Response(201, message)

    def _message(self, sid: str, to: str, form: dict[str, list[str]], path: str) -> dict[str, Any]:
        """The Message resource Twilio answers a create with."""
        return {
            "sid": sid,
            "account_sid": self.account_sid,
            "to": to,
            "from": form.get("From", [None])[-1],
            "body": form.get("Body", [""])[-1],
            "status": "scheduled" if "SendAt" in form else "queued",
            "messaging_service_sid": form.get("MessagingServiceSid", [None])[-1],
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "date_created": time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
            "num_segments": "1",
            "num_media": "0",
            "error_code": None,
            "error_message": None,
            "uri": f"{path[:-5]}/{sid}.json",
        }

    # -- status callbacks --------------------------------------------------------------------

    def status_callback(
        self,
        delivery: Delivery,
        status: str,
        url: str,
        *,
        done_at: int | None = None,
        post: Post = requests.post,
    ) -> requests.Response:
        """Post Twilio's status callback about a delivery to url: form-encoded, signed with
        X-Twilio-Signature; `done_at` (epoch seconds) gives the carrier's RawDlrDoneDate."""
        params = {
            "AccountSid": self.account_sid,
            "MessageSid": delivery.provider_id,
            "SmsSid": delivery.provider_id,
            "MessageStatus": status,
            "SmsStatus": status,
            "To": delivery.recipient,
            "ApiVersion": "2010-04-01",
        }
        if done_at is not None:
            params["RawDlrDoneDate"] = dlr_done_date(done_at)
        headers = {TWILIO_SIGNATURE_HEADER: twilio_signature(self.auth_token, url, params)}
        return post(url, data=params, timeout=60, headers=headers)

    def emit_events(
        self, url: str | None, kinds: list[str], decision_ids: list[str] | None = None
    ) -> int:
        """Status callbacks of each kind to each message's StatusCallback (or `url`)."""
        sent = 0
        for d in self.deliveries():
            target = url or d.callback
            if not target:
                continue
            for kind in kinds:
                self.status_callback(d, kind, target)
                sent += 1
        return sent


def dlr_done_date(epoch: int) -> str:
    """Epoch seconds → Twilio's `RawDlrDoneDate` (`YYMMDDhhmm`, UTC here)."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%y%m%d%H%M")


def _query(url: str | None) -> str:
    return url.partition("?")[2] if url else ""


def _twilio_limits(form: dict[str, list[str]]) -> list[str]:
    """Documented rules the spec does not encode: scheduling (fixed, a Messaging Service,
    15 minutes to 35 days ahead), a sender, a body."""
    errors = []
    if "SendAt" in form:
        if form.get("ScheduleType", [""])[-1] != "fixed":
            errors.append("ScheduleType: must be 'fixed' with SendAt")
        if not form.get("MessagingServiceSid"):
            errors.append("MessagingServiceSid: required to schedule")
        try:
            at = datetime.fromisoformat(form["SendAt"][-1].replace("Z", "+00:00"))
            lead = at - datetime.now(UTC)
            if not timedelta(minutes=15) - timedelta(seconds=60) <= lead <= timedelta(days=35):
                errors.append("SendAt: must be 15 minutes to 35 days ahead")
        except ValueError:
            errors.append("SendAt: not ISO 8601")
    if not (form.get("From") or form.get("MessagingServiceSid")):
        errors.append("From: From or MessagingServiceSid is required")
    if not (form.get("Body") or form.get("MediaUrl") or form.get("ContentSid")):
        errors.append("Body: Body, MediaUrl or ContentSid is required")
    return errors
