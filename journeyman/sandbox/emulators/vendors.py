"""One emulator per vendor: request validation (OpenAPI where published, documented limits
elsewhere), auth like the vendor, answers like the vendor, delivery records, signed callbacks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from journeyman.sandbox.emulators.server import Delivery, Emulator, Fault, Request, Response
from journeyman.sandbox.emulators.spec import (
    discovery_validator,
    package_validator,
    validator,
)

TWILIO_MESSAGES = "/2010-04-01/Accounts/{AccountSid}/Messages.json"


def _bearer(request: Request) -> str:
    value = request.headers.get("Authorization") or ""
    return value[7:] if value.startswith("Bearer ") else ""


# -- SendGrid ----------------------------------------------------------------------------------


class SendGridEmulator(Emulator):
    """`POST /v3/mail/send`, `/v3/mail/batch`, `GET /v3/scopes`, `GET /v3/messages` (activity),
    `/v3/user/scheduled_sends` (cancel / pause a batch: its scheduled messages not yet due are
    never delivered, counted or reported in events)."""

    vendor = "sendgrid"
    SPEC = "sendgrid_mail_v3.json"

    def __init__(self, *, api_key: str = "SG.emulator-key", **kw: Any) -> None:
        super().__init__(**kw)
        self.api_key = api_key
        self.batch_ids: set[str] = set()
        self.batch_status: dict[str, str] = {}  # batch_id → cancel | pause
        self._scheduled: dict[str, list[tuple[str, int]]] = {}  # batch → (decision, send_at)
        self.cancelled: set[str] = set()  # decision ids whose scheduled send was cancelled
        #: seconds before an accepted message shows in the Email Activity API (indexing lag)
        self.activity_lag_s = 0.0
        key = ec.generate_private_key(ec.SECP256R1())
        self.signing_key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self.public_key_b64 = base64.b64encode(
            key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        ).decode()
        self._by_decision: dict[str, str] = {}

    def unauthorized(self) -> Response:
        return Response(
            401,
            {
                "errors": [
                    {
                        "field": None,
                        "message": "The provided authorization "
                        "grant is invalid, expired, or revoked",
                    }
                ]
            },
        )

    def fault_response(self, fault: Fault) -> Response:
        if fault.kind == "429":
            reset = fault.reset_in if fault.reset_in is not None else 1
            headers = {
                "X-RateLimit-Limit": "600",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(int(time.time() + reset)),
            }
            if fault.retry_after is not None:
                headers["Retry-After"] = str(int(fault.retry_after))
            return Response(
                429, {"errors": [{"field": None, "message": "too many requests"}]}, headers
            )
        return super().fault_response(fault)

    def handle(self, request: Request) -> Response:
        if _bearer(request) != self.api_key:
            with self.lock:
                self.auth_failures += 1
            if not request.headers.get("Authorization"):
                return Response(
                    401, {"errors": [{"field": None, "message": "authorization required"}]}
                )
            return self.unauthorized()
        if request.path == "/v3/scopes" and request.method == "GET":
            return Response(200, {"scopes": ["mail.send", "mail.batch.create", "mail.batch.read"]})
        if request.path == "/v3/mail/batch" and request.method == "POST":
            batch_id = self.next_id("")
            with self.lock:
                self.batch_ids.add(batch_id)
            return Response(201, {"batch_id": batch_id})
        if request.path == "/v3/messages" and request.method == "GET":
            return self._activity(request)
        if request.path.startswith("/v3/user/scheduled_sends"):
            return self._scheduled_sends(request)
        if request.path == "/v3/mail/send" and request.method == "POST":
            return self._send(request)
        return Response(404, {"errors": [{"field": None, "message": "not found"}]})

    def _send(self, request: Request) -> Response:
        try:
            payload = request.json()
        except ValueError:
            return Response(400, {"errors": [{"field": None, "message": "Bad Request"}]})
        if self.should_validate():
            check = validator(self.SPEC, "/v3/mail/send", "post", "application/json")
            sample = payload
            if self.validate == "sample" and len(payload.get("personalizations") or []) > 20:
                # benchmark mode: the schema check on 20 personalizations, limits on all
                sample = {**payload, "personalizations": payload["personalizations"][:20]}
            errors = check.errors(sample) if check else []
            errors += _sendgrid_limits(payload)
            if errors:
                self.invalid(errors)
                return Response(
                    400, {"errors": [{"field": e.split(":")[0], "message": e} for e in errors]}
                )
        personalizations = payload.get("personalizations") or []
        if not 1 <= len(personalizations) <= 1000:
            return Response(
                400,
                {"errors": [{"field": "personalizations", "message": "must have 1-1000 items"}]},
            )
        batch_id = payload.get("batch_id")
        if batch_id is not None and batch_id not in self.batch_ids:
            return Response(400, {"errors": [{"field": "batch_id", "message": "invalid batch id"}]})
        if self.invalid_recipients:
            for i, p in enumerate(personalizations):
                if p["to"][0]["email"] in self.invalid_recipients:
                    return Response(
                        400,
                        {
                            "errors": [
                                {
                                    "field": f"personalizations.{i}.to.0.email",
                                    "message": "Does not contain a valid address.",
                                }
                            ]
                        },
                    )
        message_id = self.next_id("", request.body)[:22]
        if self.record == "counts":
            self.accept_counts(
                [p.get("custom_args", {}).get("decision_id") for p in personalizations]
            )
        else:
            content = (payload.get("content") or [{}])[0].get("value")
            deliveries = []
            for p in personalizations:
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
            self.accept(deliveries)
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

    def _scheduled_sends(self, request: Request) -> Response:
        """Scheduled Sends API: POST {batch_id, status: cancel|pause} → 201; GET lists."""
        rest = request.path[len("/v3/user/scheduled_sends") :].strip("/")
        if request.method == "GET":
            with self.lock:
                listed = [
                    {"batch_id": b, "status": st}
                    for b, st in self.batch_status.items()
                    if not rest or b == rest
                ]
            return Response(200, listed)
        if request.method != "POST" or rest:
            return Response(405, {"errors": [{"field": None, "message": "method not allowed"}]})
        try:
            body = request.json()
        except ValueError:
            return Response(400, {"errors": [{"field": None, "message": "Bad Request"}]})
        batch_id = body.get("batch_id") if isinstance(body, dict) else None
        status = body.get("status") if isinstance(body, dict) else None
        if status not in ("cancel", "pause"):
            return Response(
                400, {"errors": [{"field": "status", "message": "status must be cancel or pause"}]}
            )
        with self.lock:
            known = batch_id in self.batch_ids
            taken = batch_id in self.batch_status
            if known and not taken:
                self.batch_status[batch_id] = status
        if not known:
            return Response(400, {"errors": [{"field": "batch_id", "message": "invalid batch id"}]})
        if taken:
            return Response(
                400,
                {"errors": [{"field": "batch_id", "message": "batch already paused or cancelled"}]},
            )
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
        return Response(
            200,
            {
                "messages": [
                    {
                        "msg_id": d.provider_id,
                        "to_email": d.recipient,
                        "subject": d.subject,
                        "status": "delivered",
                        "from_email": "",
                        "opens_count": 0,
                        "clicks_count": 0,
                    }
                    for d in held
                ]
            },
        )

    def emit_events(self, url: str, kinds: list[str], decision_ids: list[str] | None = None) -> int:
        """SendGrid Signed Event Webhook: one JSON array, ECDSA-signed."""
        from journeyman.intake.signing import sign_sendgrid

        events = []
        for d in self.deliveries():
            if decision_ids is not None and d.decision_id not in decision_ids:
                continue
            for kind in kinds:
                events.append(
                    {
                        "email": d.recipient,
                        "timestamp": int(time.time()),
                        "event": kind,
                        "sg_event_id": self.next_id("")[:22],
                        "sg_message_id": d.provider_id,
                        # SendGrid echoes the personalization's custom_args in every event
                        **(d.custom_args or {"decision_id": d.decision_id}),
                    }
                )
        if not events:
            return 0
        body = json.dumps(events).encode()
        timestamp = str(int(time.time()))
        signature = sign_sendgrid(self.signing_key_pem, timestamp, body)
        requests.post(
            url,
            data=body,
            timeout=10,
            headers={
                "Content-Type": "application/json",
                "X-Twilio-Email-Event-Webhook-Signature": signature,
                "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
            },
        )
        return len(events)


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


# -- Twilio ------------------------------------------------------------------------------------


class TwilioEmulator(Emulator):
    """Messages.json create (form-encoded, Basic auth) and list (filter by To)."""

    vendor = "twilio"
    SPEC = "twilio_api_v2010_messages.json"

    def __init__(
        self, *, account_sid: str = "AC" + "0" * 32, auth_token: str = "emulator-token", **kw: Any
    ) -> None:
        super().__init__(**kw)
        self.account_sid, self.auth_token = account_sid, auth_token
        self.messages: list[dict[str, Any]] = []
        self._listed_at: list[float] = []
        #: seconds before a created message shows in the Message list
        self.list_lag_s = 0.0

    def unauthorized(self) -> Response:
        return Response(
            401,
            {
                "code": 20003,
                "message": "Authenticate",
                "status": 401,
                "more_info": "https://www.twilio.com/docs/errors/20003",
            },
        )

    def fault_response(self, fault: Fault) -> Response:
        if fault.kind == "429":
            return Response(
                429,
                {
                    "code": 20429,
                    "message": "Too Many Requests",
                    "status": 429,
                    "more_info": "https://www.twilio.com/docs/errors/20429",
                },
                self.rate_headers(fault),
            )
        return super().fault_response(fault)

    def _authorized(self, request: Request) -> bool:
        value = request.headers.get("Authorization") or ""
        try:
            sid, _, token = base64.b64decode(value[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return (
            value.startswith("Basic ")
            and sid == self.account_sid
            and hmac.compare_digest(token, self.auth_token)
        )

    def handle(self, request: Request) -> Response:
        path = f"/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        if not self._authorized(request):
            with self.lock:
                self.auth_failures += 1
            return self.unauthorized()
        if request.path != path:
            return Response(404, {"code": 20404, "message": "not found", "status": 404})
        if request.method == "GET":
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
                    "uri": path,
                    "first_page_uri": path,
                    "next_page_uri": None,
                    "previous_page_uri": None,
                },
            )
        form = request.form()
        if self.should_validate():
            check = validator(
                self.SPEC, TWILIO_MESSAGES, "post", "application/x-www-form-urlencoded"
            )
            errors = check.form_errors(form) if check else []
            errors += _twilio_limits(form)
            if errors:
                self.invalid(errors)
                return Response(
                    400, {"code": 21000, "message": "; ".join(errors)[:300], "status": 400}
                )
        to = form.get("To", [""])[-1]
        if to in self.invalid_recipients or not to.startswith("+"):
            return Response(
                400,
                {
                    "code": 21211,
                    "status": 400,
                    "message": f"The 'To' number {to} is not a valid phone number.",
                    "more_info": "https://www.twilio.com/docs/errors/21211",
                },
            )
        callback = form.get("StatusCallback", [None])[-1]
        # seeded ids from what identifies the message (the callback's host and port vary by run)
        sid = self.next_id("SM", f"{to}\n{form.get('Body', [''])[-1]}\n{_query(callback)}".encode())
        scheduled = "SendAt" in form
        message = {
            "sid": sid,
            "account_sid": self.account_sid,
            "to": to,
            "from": form.get("From", [None])[-1],
            "body": form.get("Body", [""])[-1],
            "status": "scheduled" if scheduled else "queued",
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
        with self.lock:
            self.messages.append(message)
            self._listed_at.append(time.time())
        self.accept(
            [
                Delivery(
                    "twilio",
                    None,
                    to,
                    None,
                    message["body"],
                    form.get("SendAt", [None])[-1],
                    sid,
                    callback,
                )
            ]
        )
        return Response(201, message)

    def emit_events(
        self, url: str | None, kinds: list[str], decision_ids: list[str] | None = None
    ) -> int:
        """Status callbacks (form-encoded, X-Twilio-Signature) to each message's StatusCallback
        (or `url`)."""
        from journeyman.intake.signing import twilio_signature

        sent = 0
        for d in self.deliveries():
            target = url or d.callback
            if not target:
                continue
            for kind in kinds:
                params = {
                    "AccountSid": self.account_sid,
                    "MessageSid": d.provider_id,
                    "MessageStatus": kind,
                    "SmsStatus": kind,
                    "To": d.recipient,
                    "ApiVersion": "2010-04-01",
                }
                signature = twilio_signature(self.auth_token, target, params)
                requests.post(
                    target, data=params, timeout=10, headers={"X-Twilio-Signature": signature}
                )
                sent += 1
        return sent


def _query(url: str | None) -> str:
    return url.partition("?")[2] if url else ""


def _twilio_limits(form: dict[str, list[str]]) -> list[str]:
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


# -- FCM ---------------------------------------------------------------------------------------


class FcmEmulator(Emulator):
    """`POST /v1/projects/{id}/messages:send` and the OAuth2 token endpoint `POST /token`.

    Request bodies are validated against Google's own schema (`SendMessageRequest` of the FCM
    discovery document, converted to JSON Schema) plus the documented limits it does not encode
    (`_fcm_limits`); without the shared spec folder, the documented limits only."""

    vendor = "fcm"
    SPEC = "fcm_v1_discovery.json"

    def __init__(self, *, project_id: str = "journeyman-sandbox", **kw: Any) -> None:
        super().__init__(**kw)
        self.project_id = project_id
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.client_email = f"sync@{project_id}.iam.gserviceaccount.com"
        self.tokens: dict[str, float] = {}
        self.token_requests = 0

    def service_account_json(self, token_url: str | None = None) -> str:
        """A service-account key file (JSON text) this emulator's token endpoint accepts."""
        pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return json.dumps(
            {
                "type": "service_account",
                "project_id": self.project_id,
                "private_key_id": "emulator",
                "private_key": pem,
                "client_email": self.client_email,
                "token_uri": token_url or f"{self.url}/token",
            }
        )

    def unauthorized(self) -> Response:
        return Response(
            401,
            {
                "error": {
                    "code": 401,
                    "status": "UNAUTHENTICATED",
                    "message": "Request had invalid authentication credentials.",
                }
            },
        )

    def fault_response(self, fault: Fault) -> Response:
        if fault.kind == "429":
            return Response(
                429,
                {
                    "error": {
                        "code": 429,
                        "status": "RESOURCE_EXHAUSTED",
                        "message": "Quota exceeded",
                        "details": [
                            {
                                "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                                "errorCode": "QUOTA_EXCEEDED",
                            }
                        ],
                    }
                },
                self.rate_headers(fault),
            )
        if fault.kind in ("500", "503"):
            status = "INTERNAL" if fault.kind == "500" else "UNAVAILABLE"
            return Response(
                int(fault.kind),
                {"error": {"code": int(fault.kind), "status": status, "message": status}},
            )
        return super().fault_response(fault)

    def handle(self, request: Request) -> Response:
        if request.path == "/token" and request.method == "POST":
            return self._token(request)
        expected = f"/v1/projects/{self.project_id}/messages:send"
        token = _bearer(request)
        if self.tokens.get(token, 0) < time.time():
            with self.lock:
                self.auth_failures += 1
            return self.unauthorized()
        if request.path != expected or request.method != "POST":
            return Response(
                404, {"error": {"code": 404, "status": "NOT_FOUND", "message": "not found"}}
            )
        errors = []
        if len(request.body) > 4096:
            errors.append(f"message: payload {len(request.body)} bytes over the 4096-byte limit")
        try:
            payload = request.json()
        except ValueError:
            payload, errors = None, [*errors, "(root): malformed JSON"]
        message = payload.get("message") if isinstance(payload, dict) else None
        if not isinstance(message, dict):
            errors.append("message: required (an object)")
        if self.should_validate() or errors:
            check = discovery_validator(self.SPEC, "SendMessageRequest")
            if check is not None and payload is not None:
                errors += [
                    e for e in check.errors(payload) if not e.startswith("(root): 'message'")
                ]
            errors += _fcm_limits(message)
        if errors:
            self.invalid(errors)
            return Response(
                400,
                {
                    "error": {
                        "code": 400,
                        "status": "INVALID_ARGUMENT",
                        "message": "; ".join(errors),
                        "details": [{"errorCode": "INVALID_ARGUMENT"}],
                    }
                },
            )
        message = message or {}
        if message.get("token") in self.invalid_recipients:
            return Response(
                404,
                {
                    "error": {
                        "code": 404,
                        "status": "NOT_FOUND",
                        "message": "Requested entity was not found.",
                        "details": [
                            {
                                "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                                "errorCode": "UNREGISTERED",
                            }
                        ],
                    }
                },
            )
        name = f"projects/{self.project_id}/messages/{self.next_id('', request.body)[:16]}"
        notification = message.get("notification") or {}
        self.accept(
            [
                Delivery(
                    "fcm",
                    (message.get("data") or {}).get("decision_id"),
                    message.get("token") or message.get("topic") or message.get("fid") or "",
                    notification.get("title"),
                    notification.get("body"),
                    None,
                    name,
                )
            ]
        )
        return Response(200, {"name": name})

    def _token(self, request: Request) -> Response:
        form = {k: v[-1] for k, v in request.form().items()}
        with self.lock:
            self.token_requests += 1
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return Response(400, {"error": "unsupported_grant_type"})
        try:
            claims = jwt.decode(
                form.get("assertion", ""),
                self._key.public_key(),
                algorithms=["RS256"],
                audience=f"{self.url}/token",
            )
        except jwt.PyJWTError:
            with self.lock:
                self.auth_failures += 1
            return Response(400, {"error": "invalid_grant", "error_description": "Invalid JWT"})
        if claims.get("iss") != self.client_email or "firebase.messaging" not in claims.get(
            "scope", ""
        ):
            return Response(400, {"error": "invalid_scope"})
        token = "ya29." + self.next_id("")
        with self.lock:
            self.tokens[token] = time.time() + 3600
        return Response(200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})


_FCM_TARGETS = ("token", "topic", "condition", "fid")
_FCM_RESERVED = ("from", "message_type")
_FCM_RESERVED_PREFIXES = ("google.", "gcm.notification.")


def _fcm_limits(message: Any) -> list[str]:
    """What the discovery document's schema does not encode but Google's documentation states:
    exactly one target (the `target` oneof), reserved `data` keys, `topic` without the
    "/topics/" prefix, `android` and `androidV2` mutually exclusive."""
    if not isinstance(message, dict):
        return []
    errors = []
    targets = [k for k in _FCM_TARGETS if message.get(k) is not None]
    if len(targets) != 1:
        errors.append(f"message: exactly one of token, topic, condition, fid (got {targets})")
    data = message.get("data")
    if isinstance(data, dict):
        reserved = [
            k for k in data if k in _FCM_RESERVED or str(k).startswith(_FCM_RESERVED_PREFIXES)
        ]
        if reserved:
            errors.append(f"message.data: reserved keys {sorted(reserved)}")
    if isinstance(message.get("topic"), str) and message["topic"].startswith("/topics/"):
        errors.append("message.topic: give the topic name without the /topics/ prefix")
    if message.get("android") is not None and (
        message.get("androidV2") is not None or message.get("android_v2") is not None
    ):
        errors.append("message: android and androidV2 are mutually exclusive")
    return errors


# -- Braze -------------------------------------------------------------------------------------


class BrazeEmulator(Emulator):
    """`/users/track` (≤ 75 attributes), `/campaigns/trigger/schedule/create` and
    `/campaigns/trigger/send` (≤ 50 recipients), `GET /campaigns/list`.

    Braze publishes no machine-readable schema: request bodies are validated against the rules
    of its documentation written down as JSON Schema in `braze_schema.json` (one `$defs` entry
    per endpoint, `SCHEMAS`)."""

    vendor = "braze"
    SCHEMA = "braze_schema.json"
    SCHEMAS = {
        "/users/track": "users_track",
        "/campaigns/trigger/send": "campaigns_trigger_send",
        "/campaigns/trigger/schedule/create": "campaigns_trigger_schedule_create",
    }

    def __init__(
        self, *, api_key: str = "braze-emulator-key", campaign_id: str = "cmp-1", **kw: Any
    ) -> None:
        super().__init__(**kw)
        self.api_key, self.campaign_id = api_key, campaign_id
        #: the account's API-triggered campaigns (a message's template id names one)
        self.campaigns: set[str] = {campaign_id}
        #: (campaign_id, trigger_properties) of every recipient triggered
        self.triggered: list[tuple[str, dict[str, Any]]] = []
        self.attributes: dict[str, dict[str, Any]] = {}

    def _headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": "50000",
            "X-RateLimit-Remaining": "49999",
            "X-RateLimit-Reset": str(int(time.time()) + 60),
        }

    def unauthorized(self) -> Response:
        return Response(401, {"message": "Invalid API key"}, self._headers())

    def fault_response(self, fault: Fault) -> Response:
        if fault.kind == "429":
            headers = {**self._headers(), "X-RateLimit-Remaining": "0"}
            headers.update(self.rate_headers(fault))
            return Response(429, {"message": "Too Many Requests"}, headers)
        return super().fault_response(fault)

    def handle(self, request: Request) -> Response:
        if _bearer(request) != self.api_key:
            with self.lock:
                self.auth_failures += 1
            return self.unauthorized()
        if request.path == "/campaigns/list":
            return Response(
                200,
                {
                    "campaigns": [{"id": self.campaign_id, "name": "journeyman"}],
                    "message": "success",
                },
                self._headers(),
            )
        try:
            payload = request.json()
        except ValueError:
            return Response(400, {"message": "Invalid JSON"}, self._headers())
        definition = self.SCHEMAS.get(request.path)
        if definition is not None and self.should_validate():
            errors = package_validator(self.SCHEMA, definition).errors(payload)
            if errors:
                self.invalid([f"{request.path} {e}" for e in errors])
                return Response(400, {"message": "; ".join(errors)[:500]}, self._headers())
        if not isinstance(payload, dict):
            return Response(400, {"message": "Invalid JSON object"}, self._headers())
        if request.path == "/users/track":
            return self._track(payload)
        if request.path in ("/campaigns/trigger/schedule/create", "/campaigns/trigger/send"):
            return self._trigger(request.path, payload)
        return Response(404, {"message": "not found"}, self._headers())

    def _track(self, payload: dict[str, Any]) -> Response:
        objects = sum(len(payload.get(k) or []) for k in ("attributes", "events", "purchases"))
        if objects == 0 or any(
            len(payload.get(k) or []) > 75 for k in ("attributes", "events", "purchases")
        ):
            self.invalid([f"users/track: {objects} objects (1-75 of each kind per request)"])
            return Response(400, {"message": "Too many objects"}, self._headers())
        errors, accepted = [], []
        for i, attrs in enumerate(payload.get("attributes") or []):
            if not attrs.get("external_id") or attrs.get("external_id") in self.invalid_recipients:
                errors.append(
                    {
                        "type": "'external_id' is required or invalid",
                        "input_array": "attributes",
                        "index": i,
                    }
                )
                continue
            with self.lock:
                previous = self.attributes.get(attrs["external_id"], {})
                changed = previous.get("jm_decision_id") != attrs.get("jm_decision_id")
                self.attributes[attrs["external_id"]] = {**previous, **attrs}
            if changed and attrs.get("jm_decision_id"):  # the Canvas fires on a change only
                accepted.append(
                    Delivery(
                        "braze",
                        attrs.get("jm_decision_id"),
                        attrs["external_id"],
                        attrs.get("jm_subject"),
                        attrs.get("jm_body"),
                        attrs.get("jm_send_at"),
                        self.next_id(""),
                    )
                )
        self.accept(accepted)
        body: dict[str, Any] = {"message": "success", "attributes_processed": len(accepted)}
        if errors:
            body["errors"] = errors
        return Response(201, body, self._headers())

    def _trigger(self, path: str, payload: dict[str, Any]) -> Response:
        recipients = payload.get("recipients") or []
        problems = []
        if payload.get("campaign_id") not in self.campaigns:
            problems.append("campaign_id: unknown campaign")
        if not 1 <= len(recipients) <= 50:
            problems.append(f"recipients: {len(recipients)} (1-50 per request)")
        schedule = payload.get("schedule")
        if path.endswith("schedule/create"):
            try:
                datetime.fromisoformat(schedule["time"].replace("Z", "+00:00"))
            except (TypeError, KeyError, ValueError, AttributeError):
                problems.append("schedule.time: ISO 8601 required")
        if problems:
            self.invalid(problems)
            return Response(400, {"message": "; ".join(problems)}, self._headers())
        when = (schedule or {}).get("time")
        with self.lock:
            self.triggered.extend(
                (payload["campaign_id"], dict(r.get("trigger_properties") or {}))
                for r in recipients
            )
        self.accept(
            [
                Delivery(
                    "braze",
                    (r.get("trigger_properties") or {}).get("decision_id"),
                    r.get("external_user_id"),
                    (r.get("trigger_properties") or {}).get("subject"),
                    (r.get("trigger_properties") or {}).get("body"),
                    when,
                    self.next_id(""),
                )
                for r in recipients
            ]
        )
        body = {"dispatch_id": self.next_id(""), "message": "success"}
        if when:
            body["schedule_id"] = self.next_id("")
        return Response(201, body, self._headers())


# -- Klaviyo -----------------------------------------------------------------------------------


class KlaviyoEmulator(Emulator):
    """`POST /api/events`, `/api/event-bulk-create-jobs`, `/api/profile-bulk-import-jobs`,
    `GET /api/accounts`; de-duplicates events by `unique_id` like Klaviyo."""

    vendor = "klaviyo"
    SPECS = {
        "/api/events": "klaviyo_create_event.json",
        "/api/event-bulk-create-jobs": "klaviyo_bulk_create_events.json",
        "/api/profile-bulk-import-jobs": "klaviyo_bulk_import_profiles.json",
    }

    def __init__(self, *, api_key: str = "pk_emulator", **kw: Any) -> None:
        super().__init__(**kw)
        self.api_key = api_key
        self.unique_ids: set[str] = set()
        self.duplicates_ignored = 0
        self.profiles_imported = 0

    def _error(self, status: int, code: str, detail: str) -> Response:
        return Response(
            status,
            {
                "errors": [
                    {
                        "id": self.next_id(""),
                        "status": status,
                        "code": code,
                        "title": code,
                        "detail": detail,
                        "source": {"pointer": "/data/"},
                    }
                ]
            },
            content_type="application/vnd.api+json",
        )

    def unauthorized(self) -> Response:
        return self._error(401, "not_authenticated", "Incorrect authentication credentials.")

    def fault_response(self, fault: Fault) -> Response:
        if fault.kind == "429":
            response = self._error(429, "throttled", "Request was throttled.")
            response.headers["Retry-After"] = str(int(fault.retry_after or 1))
            return response
        return super().fault_response(fault)

    def handle(self, request: Request) -> Response:
        if request.headers.get("Authorization") != f"Klaviyo-API-Key {self.api_key}":
            with self.lock:
                self.auth_failures += 1
            return self.unauthorized()
        if not request.headers.get("revision"):
            return self._error(400, "invalid", "Missing required header: revision")
        rate = {"RateLimit-Limit": "3500", "RateLimit-Remaining": "3499", "RateLimit-Reset": "60"}
        if request.path in ("/api/accounts", "/api/accounts/") and request.method == "GET":
            return Response(
                200,
                {"data": [{"type": "account", "id": "emulator"}]},
                rate,
                "application/vnd.api+json",
            )
        spec = self.SPECS.get(request.path)
        if spec is None or request.method != "POST":
            return self._error(404, "not_found", "not found")
        if not (request.headers.get("Content-Type") or "").startswith("application/vnd.api+json"):
            return self._error(415, "unsupported_media_type", "use application/vnd.api+json")
        try:
            payload = request.json()
        except ValueError:
            return self._error(400, "invalid", "malformed JSON")
        if self.should_validate():
            check = validator(spec, request.path, "post", "application/vnd.api+json")
            errors = check.errors(payload) if check else []
            if errors:
                self.invalid(errors)
                return self._error(400, "invalid", "; ".join(errors)[:300])
        if request.path == "/api/profile-bulk-import-jobs":
            n = len(payload["data"]["attributes"]["profiles"]["data"])
            with self.lock:
                self.profiles_imported += n
            return Response(
                202,
                {
                    "data": {
                        "type": "profile-bulk-import-job",
                        "id": self.next_id(""),
                        "attributes": {"status": "queued", "total_count": n},
                    }
                },
                rate,
                "application/vnd.api+json",
            )
        if request.path == "/api/events":
            attrs = payload["data"]["attributes"]
            pairs = [(attrs["profile"]["data"], attrs)]
        else:
            entries = payload["data"]["attributes"]["events-bulk-create"]["data"]
            if len(entries) > 1000:
                self.invalid(["events-bulk-create: more than 1000 events"])
                return self._error(400, "invalid", "at most 1000 events per job")
            pairs = [
                (e["attributes"]["profile"]["data"], ev["attributes"])
                for e in entries
                for ev in e["attributes"]["events"]["data"]
            ]
        fresh = []
        for profile, event in pairs:
            unique = event.get("unique_id")
            with self.lock:
                if unique and unique in self.unique_ids:
                    self.duplicates_ignored += 1
                    continue
                if unique:
                    self.unique_ids.add(unique)
            props = event.get("properties") or {}
            who = profile.get("attributes", {})
            fresh.append(
                Delivery(
                    "klaviyo",
                    props.get("decision_id") or unique,
                    who.get("email") or who.get("phone_number") or "",
                    props.get("subject"),
                    props.get("body"),
                    props.get("send_at"),
                    unique or self.next_id(""),
                    custom_args={str(k): str(v) for k, v in props.items()},
                )
            )
        self.accept(fresh)
        if request.path == "/api/events":
            return Response(202, b"", rate)
        return Response(
            202,
            {
                "data": {
                    "type": "event-bulk-create-job",
                    "id": self.next_id(""),
                    "attributes": {"status": "queued"},
                }
            },
            rate,
            "application/vnd.api+json",
        )


# -- Mailchimp Transactional -------------------------------------------------------------------


class MailchimpEmulator(Emulator):
    """`POST /api/1.0/messages/send`, `/messages/send-template` and `/api/1.0/users/ping` (key
    in the JSON body)."""

    vendor = "mailchimp"
    SPEC = "mailchimp_transactional_messages_send.json"
    PREFIX = "/api/1.0"

    def __init__(self, *, api_key: str = "md-emulator-key", **kw: Any) -> None:
        #: (template_name, merge vars) of every recipient sent with a template
        self.templates: list[tuple[str, dict[str, str]]] = []
        super().__init__(**kw)
        self.api_key = api_key

    def unauthorized(self) -> Response:
        return Response(
            401,
            {"status": "error", "code": -1, "name": "Invalid_Key", "message": "Invalid API key"},
        )

    def fault_response(self, fault: Fault) -> Response:
        if fault.kind == "429":
            return Response(
                429,
                {
                    "status": "error",
                    "code": -1,
                    "name": "Too_Many_Requests",
                    "message": "Too many requests",
                },
                self.rate_headers(fault),
            )
        if fault.kind in ("500", "503"):
            return Response(
                int(fault.kind),
                {"status": "error", "code": -1, "name": "GeneralError", "message": "try again"},
            )
        return super().fault_response(fault)

    def handle(self, request: Request) -> Response:
        path = request.path[len(self.PREFIX) :] if request.path.startswith(self.PREFIX) else ""
        try:
            payload = request.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict) or payload.get("key") != self.api_key:
            with self.lock:
                self.auth_failures += 1
            return self.unauthorized()
        if path == "/users/ping":
            return Response(200, b'"PONG!"')
        if path not in ("/messages/send", "/messages/send-template"):
            return Response(
                404,
                {"status": "error", "code": -1, "name": "Unknown_Method", "message": "not found"},
            )
        template = payload.get("template_name") if path == "/messages/send-template" else None
        if self.should_validate():
            check = validator(self.SPEC, "/messages/send", "post", "application/json")
            # send-template takes send's body plus the template (the spec has send only)
            plain = {
                k: v for k, v in payload.items() if k not in ("template_name", "template_content")
            }
            errors = check.errors(plain) if check else []
            if path == "/messages/send-template" and not (
                isinstance(template, str)
                and template
                and isinstance(payload.get("template_content"), list)
            ):
                errors.append("template_name / template_content: required by send-template")
            if payload.get("send_at"):
                try:
                    datetime.strptime(payload["send_at"], "%Y-%m-%d %H:%M:%S")
                except (TypeError, ValueError):
                    errors.append("send_at: must be YYYY-MM-DD HH:MM:SS")
            if errors:
                self.invalid(errors)
                return Response(
                    500,
                    {
                        "status": "error",
                        "code": -2,
                        "name": "ValidationError",
                        "message": "; ".join(errors)[:300],
                    },
                )
        message = payload["message"]
        merge = {
            m["rcpt"]: {v["name"]: v["content"] for v in m.get("vars", [])}
            for m in message.get("merge_vars") or []
        }
        meta = {m["rcpt"]: m.get("values", {}) for m in message.get("recipient_metadata") or []}
        results, accepted = [], []
        for to in message.get("to") or []:
            email = to["email"]
            item_id = self.next_id("")
            if email in self.invalid_recipients:
                results.append(
                    {
                        "email": email,
                        "status": "rejected",
                        "reject_reason": "hard-bounce",
                        "_id": item_id,
                    }
                )
                continue
            status = "scheduled" if payload.get("send_at") else "sent"
            results.append(
                {"email": email, "status": status, "_id": item_id, "reject_reason": None}
            )
            vars_ = merge.get(email, {})
            if template is not None:
                with self.lock:
                    self.templates.append((template, dict(vars_)))
            accepted.append(
                Delivery(
                    "mailchimp",
                    meta.get(email, {}).get("decision_id"),
                    email,
                    vars_.get("JM_SUBJECT", message.get("subject")),
                    vars_.get("JM_BODY", message.get("text")),
                    payload.get("send_at"),
                    item_id,
                )
            )
        self.accept(accepted)
        return Response(200, results)


# -- generic webhook receiver ------------------------------------------------------------------


class WebhookEmulator(Emulator):
    """A receiver for the generic webhook: checks the HMAC signature and timestamp."""

    vendor = "webhook"

    def __init__(
        self,
        *,
        secret: str = "whsec-emulator",
        max_age_s: float = 300,
        dedup: bool = True,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.secret, self.max_age_s, self.dedup = secret, max_age_s, dedup
        self.keys: set[str] = set()

    def handle(self, request: Request) -> Response:
        timestamp = request.headers.get("X-Journeyman-Timestamp") or ""
        signature = request.headers.get("X-Journeyman-Signature") or ""
        expected = (
            "sha256="
            + hmac.new(
                self.secret.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256
            ).hexdigest()
        )
        fresh = timestamp.isdigit() and abs(time.time() - int(timestamp)) <= self.max_age_s
        if not (fresh and hmac.compare_digest(expected, signature)):
            with self.lock:
                self.auth_failures += 1
            return Response(401, {"error": "bad signature"})
        try:
            messages = request.json()["messages"]
        except (ValueError, KeyError, TypeError):
            self.invalid(["body: {'messages': [...]} required"])
            return Response(400, {"error": "bad body"})
        results, accepted = [], []
        for m in messages:
            if m.get("to") in self.invalid_recipients:
                results.append(
                    {
                        "decision_id": m.get("decision_id"),
                        "status": "rejected",
                        "error": "invalid_recipient",
                    }
                )
                continue
            key = m.get("idempotency_key") or ""
            with self.lock:
                duplicate = self.dedup and key in self.keys
                self.keys.add(key)
            results.append({"decision_id": m.get("decision_id"), "status": "accepted"})
            if not duplicate:
                accepted.append(
                    Delivery(
                        "webhook",
                        m.get("decision_id"),
                        m.get("to", ""),
                        m.get("subject"),
                        m.get("body"),
                        m.get("send_at"),
                        key,
                    )
                )
        self.accept(accepted)
        return Response(200, {"results": results})


EMULATORS: dict[str, type[Emulator]] = {
    "sendgrid": SendGridEmulator,
    "twilio": TwilioEmulator,
    "fcm": FcmEmulator,
    "braze": BrazeEmulator,
    "klaviyo": KlaviyoEmulator,
    "mailchimp": MailchimpEmulator,
    "webhook": WebhookEmulator,
}
