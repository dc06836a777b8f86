"""SendGrid: Mail Send (validated against SendGrid's OpenAPI document), batches, Scheduled
Sends (cancel / pause), Email Activity, and the Signed Event Webhook it posts back."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import requests

from journeyman.sandbox.emulators.base import Route, Spec, VendorEmulator, bearer
from journeyman.sandbox.emulators.server import Delivery, Fault, Request, Response
from journeyman.signing import sendgrid_headers, sendgrid_key_pair

EVENT_BATCH = 1000  # events per Event Webhook post (SendGrid batches; 2 MiB intake limit)
SCHEDULED_SENDS = "/v3/user/scheduled_sends"
Post = Callable[..., requests.Response]


class SendGridEmulator(VendorEmulator):
    """`POST /v3/mail/send`, `/v3/mail/batch`, `GET /v3/scopes`, `GET /v3/messages` (activity),
    `/v3/user/scheduled_sends` (cancel / pause a batch: its scheduled messages not yet due are
    never delivered, counted or reported in events)."""

    vendor = "sendgrid"
    SPEC = "sendgrid_mail_v3.json"
    ROUTES = (
        Route("GET", "/v3/scopes", "_scopes"),
        Route("POST", "/v3/mail/batch", "_create_batch"),
        Route("GET", "/v3/messages", "_activity"),
        Route("GET", SCHEDULED_SENDS, "_list_scheduled", prefix=True),
        Route(None, SCHEDULED_SENDS, "_scheduled_status", prefix=True),
        Route("POST", "/v3/mail/send", "_send", "json", Spec("openapi", SPEC, "/v3/mail/send")),
    )

    def __init__(self, *, api_key: str = "SG.emulator-key", **kw: Any) -> None:
        super().__init__(**kw)
        self.api_key = api_key
        self.batch_ids: set[str] = set()
        self.batch_status: dict[str, str] = {}  # batch_id → cancel | pause
        self._scheduled: dict[str, list[tuple[str, int]]] = {}  # batch → (decision, send_at)
        self.cancelled: set[str] = set()  # decision ids whose scheduled send was cancelled
        #: seconds before an accepted message shows in the Email Activity API (indexing lag)
        self.activity_lag_s = 0.0
        self.signing_key_pem, self.public_key_b64 = sendgrid_key_pair()

    # -- what differs from the base --------------------------------------------------------------

    @staticmethod
    def error(
        status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None
    ) -> Response:
        """SendGrid's error body."""
        return Response(status, {"errors": [{"field": field, "message": message}]}, headers)

    def authenticate(self, request: Request) -> bool:
        return bearer(request) == self.api_key

    def auth_failure(self, request: Request) -> Response:
        if not request.headers.get("Authorization"):
            return self.error(401, "authorization required")
        return self.unauthorized()

    def unauthorized(self) -> Response:
        return self.error(401, "The provided authorization grant is invalid, expired, or revoked")

    def fault_response(self, fault: Fault) -> Response:
        if fault.kind != "429":
            return super().fault_response(fault)
        reset = fault.reset_in if fault.reset_in is not None else 1
        headers = {
            "X-RateLimit-Limit": "600",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(int(time.time() + reset)),
        }
        if fault.retry_after is not None:
            headers["Retry-After"] = str(int(fault.retry_after))
        return self.error(429, "too many requests", headers=headers)

    def not_found(self, request: Request) -> Response:
        return self.error(404, "not found")

    def malformed(self, request: Request) -> Response:
        return self.error(400, "Bad Request")

    def spec_instance(self, route: Route, payload: Any) -> Any:
        if self.validate == "sample" and len(payload.get("personalizations") or []) > 20:
            # benchmark mode: the schema check on 20 personalizations, limits on all
            return {**payload, "personalizations": payload["personalizations"][:20]}
        return payload

    def limits(self, route: Route, payload: Any) -> list[str]:
        return _sendgrid_limits(payload)

    def rejected(self, errors: list[str]) -> Response:
        return Response(400, {"errors": [{"field": e.split(":")[0], "message": e} for e in errors]})

    # -- routes ------------------------------------------------------------------------------

    def _scopes(self, request: Request) -> Response:
        return Response(200, {"scopes": ["mail.send", "mail.batch.create", "mail.batch.read"]})

    def _create_batch(self, request: Request) -> Response:
        batch_id = self.next_id("")
        with self.lock:
            self.batch_ids.add(batch_id)
        return Response(201, {"batch_id": batch_id})

    def _send(self, request: Request) -> Response:
        payload = request.json()
        personalizations = payload.get("personalizations") or []
        if not 1 <= len(personalizations) <= 1000:
            return self.error(400, "must have 1-1000 items", "personalizations")
        batch_id = payload.get("batch_id")
        if batch_id is not None and batch_id not in self.batch_ids:
            return self.error(400, "invalid batch id", "batch_id")
        if self.invalid_recipients:
            for i, p in enumerate(personalizations):
                if p["to"][0]["email"] in self.invalid_recipients:
                    field = f"personalizations.{i}.to.0.email"
                    return self.error(400, "Does not contain a valid address.", field)
        message_id = self.next_id("", request.body)[:22]
        if self.record == "counts":
            self.accept_counts(
                [p.get("custom_args", {}).get("decision_id") for p in personalizations]
            )
        else:
            self.accept(_deliveries(payload, message_id))
        if batch_id is not None:
            self._schedule(batch_id, personalizations, payload.get("send_at"))
        return Response(202, b"", {"X-Message-Id": message_id})

    def _schedule(self, batch_id: str, personalizations: list[Any], default: Any) -> None:
        """Remember the batch's scheduled messages (so a cancel can withdraw them)."""
        if default:
            due = [
                ((p.get("custom_args") or {}).get("decision_id"), p.get("send_at", default))
                for p in personalizations
            ]
        else:  # one pass over the scheduled ones only
            due = [
                ((p.get("custom_args") or {}).get("decision_id"), p["send_at"])
                for p in personalizations
                if "send_at" in p
            ]
        if due:
            with self.lock:
                self._scheduled.setdefault(batch_id, []).extend(due)
            if self.batch_status.get(batch_id) == "cancel":
                self._withdraw(batch_id)

    def _withdraw(self, batch_id: str) -> None:
        """Cancel: the batch's messages not yet due are never sent."""
        now = time.time()
        with self.lock:
            for decision_id, at in self._scheduled.pop(batch_id, []):
                if decision_id and at and at > now and decision_id not in self.cancelled:
                    self.cancelled.add(decision_id)
                    self.counts[decision_id] -= 1
                    if self.counts[decision_id] <= 0:
                        del self.counts[decision_id]
                    self.recipients -= 1
            if self.cancelled:
                self.delivered = [d for d in self.delivered if d.decision_id not in self.cancelled]

    def _list_scheduled(self, request: Request) -> Response:
        """Scheduled Sends API, GET: every cancelled / paused batch, or the one named."""
        rest = request.path[len(SCHEDULED_SENDS) :].strip("/")
        with self.lock:
            listed = [
                {"batch_id": b, "status": st}
                for b, st in self.batch_status.items()
                if not rest or b == rest
            ]
        return Response(200, listed)

    def _scheduled_status(self, request: Request) -> Response:
        """Scheduled Sends API, POST {batch_id, status: cancel|pause} → 201."""
        if request.method != "POST" or request.path[len(SCHEDULED_SENDS) :].strip("/"):
            return self.error(405, "method not allowed")
        try:
            body = request.json()
        except ValueError:
            return self.malformed(request)
        batch_id = body.get("batch_id") if isinstance(body, dict) else None
        status = body.get("status") if isinstance(body, dict) else None
        if status not in ("cancel", "pause"):
            return self.error(400, "status must be cancel or pause", "status")
        with self.lock:
            known = batch_id in self.batch_ids
            taken = batch_id in self.batch_status
            if known and not taken:
                self.batch_status[batch_id] = status
        if not known:
            return self.error(400, "invalid batch id", "batch_id")
        if taken:
            return self.error(400, "batch already paused or cancelled", "batch_id")
        if status == "cancel":
            self._withdraw(batch_id)
        return Response(201, {"batch_id": batch_id, "status": status})

    def _activity(self, request: Request) -> Response:
        """Email Activity: supports the query `unique_args['decision_id']="<id>"`."""
        query = (request.query.get("query") or [""])[0]
        wanted = query.split('"')[1] if query.count('"') >= 2 else None
        indexed_by = time.time() - self.activity_lag_s
        with self.lock:
            held = [
                d for d in self.delivered if d.decision_id == wanted and d.received_at <= indexed_by
            ]
        return Response(200, {"messages": [_activity_row(d) for d in held]})

    # -- the Signed Event Webhook ----------------------------------------------------------------

    def event(self, delivery: Delivery, kind: str, event_id: str, timestamp: int) -> dict[str, Any]:
        """One Event Webhook event about a delivery, echoing its custom_args as SendGrid does."""
        event = {
            **(delivery.custom_args or {"decision_id": delivery.decision_id}),
            "email": delivery.recipient,
            "timestamp": timestamp,
            "event": kind,
            "sg_event_id": event_id,
            "sg_message_id": delivery.provider_id,
        }
        if kind == "bounce":
            event["type"] = "bounce"
        return event

    def post_events(
        self, url: str, events: list[dict[str, Any]], post: Post = requests.post
    ) -> Iterator[tuple[int, requests.Response]]:
        """Post the events as SendGrid does: JSON arrays of up to EVENT_BATCH events, each
        ECDSA-signed with this emulator's key; yields (events in the post, response) in turn."""
        for start in range(0, len(events), EVENT_BATCH):
            chunk = events[start : start + EVENT_BATCH]
            body = json.dumps(chunk).encode() + b"\r\n"
            headers = sendgrid_headers(self.signing_key_pem, str(int(time.time())), body)
            headers = {"Content-Type": "application/json", **headers}
            yield len(chunk), post(url, data=body, timeout=60, headers=headers)

    def emit_events(self, url: str, kinds: list[str], decision_ids: list[str] | None = None) -> int:
        """Every kind of event for each delivery (those of `decision_ids`), posted to url."""
        now = int(time.time())
        events = [
            self.event(d, kind, self.next_id("")[:22], now)
            for d in self.deliveries()
            if decision_ids is None or d.decision_id in decision_ids
            for kind in kinds
        ]
        for _ in self.post_events(url, events):
            pass
        return len(events)


def _deliveries(payload: dict[str, Any], message_id: str) -> list[Delivery]:
    """One Delivery per personalization of a Mail Send body (substitutions / template data
    applied to the body)."""
    content = (payload.get("content") or [{}])[0].get("value")
    deliveries = []
    for p in payload.get("personalizations") or []:
        args = p.get("custom_args") or {}
        body = content
        for tag, value in (p.get("substitutions") or {}).items():
            body = body.replace(tag, value) if body else body
        if "dynamic_template_data" in p:
            body = p["dynamic_template_data"].get("body")
        send_at = p.get("send_at", payload.get("send_at"))
        deliveries.append(
            Delivery(
                "sendgrid",
                args.get("decision_id"),
                p["to"][0]["email"],
                p.get("subject")
                or (p.get("dynamic_template_data") or {}).get("subject")
                or payload.get("subject"),
                body,
                _iso(send_at) if send_at else None,
                f"{message_id}.{len(deliveries)}",
                custom_args={str(k): str(v) for k, v in args.items()} or None,
            )
        )
    return deliveries


def _activity_row(delivery: Delivery) -> dict[str, Any]:
    """A message as the Email Activity API lists it."""
    return {
        "msg_id": delivery.provider_id,
        "to_email": delivery.recipient,
        "subject": delivery.subject,
        "status": "delivered",
        "from_email": "",
        "opens_count": 0,
        "clicks_count": 0,
    }


def _sendgrid_limits(payload: dict[str, Any]) -> list[str]:
    """Documented limits the spec does not encode: send_at ≤ 72 h ahead, custom_args sizes."""
    errors = []
    horizon = time.time() + 72 * 3600 + 60
    for i, p in enumerate(payload.get("personalizations") or []):
        if isinstance(p.get("send_at"), int) and p["send_at"] > horizon:
            errors.append(f"personalizations.{i}.send_at: more than 72 hours ahead")
        args = p.get("custom_args")
        if isinstance(args, dict) and any(not isinstance(v, str) for v in args.values()):
            errors.append(f"personalizations.{i}.custom_args: values must be strings")
        if len(json.dumps(p.get("substitutions") or {})) > 10_000:
            errors.append(f"personalizations.{i}.substitutions: over 10,000 bytes")
    return errors


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
