"""The signed event receiver: an ASGI app verifying vendor webhooks before anything is stored.

Routes: POST /webhooks/sendgrid, POST /webhooks/twilio, POST /webhooks/generic, GET /healthz,
GET /metrics. A request is stored only after its signature (and, where the vendor sends one,
its timestamp) checks out; a 2xx is returned only after its events are committed.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from journeyman import signing
from journeyman.intake.config import (
    PUBLIC_URL_ENV,
    SENDGRID_KEY_ENV,
    TWILIO_TOKEN_ENV,
    WEBHOOK_SECRET_ENV,
    IntakeConfigError,
    IntakeSettings,
)
from journeyman.intake.events import (
    MalformedPayload,
    ParsedEvents,
    generic_events,
    sendgrid_events,
    twilio_status_event,
)
from journeyman.intake.store import EventStore, WriteResult
from journeyman.settings import masked
from journeyman.warehouse import Warehouse, WarehouseError

log = logging.getLogger("journeyman.intake")

SOURCES = ("sendgrid", "twilio", "generic")
REJECTIONS: dict[str, int] = {
    "too_large": 413,
    "not_configured": 503,
    "unsigned": 401,
    "stale": 401,
    "bad_signature": 403,
    "malformed": 400,
    "unavailable": 503,
}
"""Rejection reason → HTTP status; the reasons are the labels of the rejected counter."""


class Rejected(Exception):
    """A request refused before anything reaches the warehouse."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.status = REJECTIONS[reason]


class IntakeMetrics:
    """Thread-safe counters, rendered in the Prometheus text format."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests_accepted: Counter[str] = Counter({s: 0 for s in SOURCES})
        self.events: Counter[tuple[str, str]] = Counter(
            {(s, k): 0 for s in SOURCES for k in ("accepted", "duplicates", "ignored", "invalid")}
        )
        self.rejected: Counter[tuple[str, str]] = Counter(
            {(s, r): 0 for s in SOURCES for r in REJECTIONS}
        )

    def accept(self, source: str, parsed: ParsedEvents, stored: int, duplicates: int) -> None:
        with self._lock:
            self.requests_accepted[source] += 1
            self.events[source, "accepted"] += stored
            self.events[source, "duplicates"] += duplicates
            self.events[source, "ignored"] += parsed.ignored
            self.events[source, "invalid"] += parsed.invalid

    def reject(self, source: str, reason: str) -> None:
        with self._lock:
            self.rejected[source, reason] += 1

    def render(self) -> str:
        """The counters as Prometheus exposition text."""
        with self._lock:
            lines = [
                "# HELP journeyman_intake_requests_accepted_total Verified webhook requests.",
                "# TYPE journeyman_intake_requests_accepted_total counter",
                *(
                    f'journeyman_intake_requests_accepted_total{{source="{s}"}} {n}'
                    for s, n in sorted(self.requests_accepted.items())
                ),
                "# HELP journeyman_intake_requests_rejected_total Refused requests by reason.",
                "# TYPE journeyman_intake_requests_rejected_total counter",
                *(
                    f'journeyman_intake_requests_rejected_total{{source="{s}",reason="{r}"}} {n}'
                    for (s, r), n in sorted(self.rejected.items())
                ),
            ]
            for kind, help_text in (
                ("accepted", "Events newly stored in raw.message_events."),
                ("duplicates", "Events already stored or repeated (vendor retries)."),
                ("ignored", "Events of types journeyman does not record."),
                ("invalid", "Events skipped for missing id or timestamp."),
            ):
                name = f"journeyman_intake_events_{kind}_total"
                lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
                lines += [f'{name}{{source="{s}"}} {self.events[s, kind]}' for s in sorted(SOURCES)]
        return "\n".join(lines) + "\n"


def request_url(scope: Mapping[str, Any], public_url: str | None) -> str:
    """The URL the vendor signed: public base URL (or scheme + Host) + raw path + query."""
    raw_path = scope.get("raw_path") or scope["path"].encode()
    path = raw_path.decode("latin-1").split("?", 1)[0]
    query = scope.get("query_string", b"").decode("latin-1")
    if public_url:
        base = public_url.rstrip("/")
    else:
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1")
        if not host and scope.get("server"):
            host = "{}:{}".format(*scope["server"])
        base = f"{scope.get('scheme', 'http')}://{host}"
    return base + path + (f"?{query}" if query else "")


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise Rejected("too_large", f"the body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Rejected("too_large", f"the body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise MalformedPayload("the body is not valid JSON") from None


VerifyAndParse = Callable[[Request, bytes], Awaitable[ParsedEvents]]
"""A vendor's step: check the request's signature (and timestamp) and parse its events."""


class WebhookReceiver:
    """The receiver's state (settings, store, counters, the SendGrid key) and its steps: one
    verify-and-parse step per vendor, then `receive` (read, verify, store, answer)."""

    def __init__(self, settings: IntakeSettings, events: EventStore) -> None:
        self.settings = settings
        self.events = events
        self.metrics = IntakeMetrics()
        self.sendgrid_key = (
            signing.load_sendgrid_public_key(settings.sendgrid_public_key)
            if settings.sendgrid_public_key
            else None
        )

    def routes(self) -> list[Route]:
        """One POST route per vendor, the health check and the metrics."""
        settings = self.settings
        vendors: list[tuple[str, str, VerifyAndParse]] = [
            (settings.sendgrid_path, "sendgrid", self.sendgrid),
            (settings.twilio_path, "twilio", self.twilio),
            (settings.generic_path, "generic", self.generic),
        ]
        return [
            *(
                Route(path, self.endpoint(name, step), methods=["POST"])
                for path, name, step in vendors
            ),
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/metrics", self.metrics_text, methods=["GET"]),
        ]

    # -- one verify-and-parse step per vendor ----------------------------------------------

    async def sendgrid(self, request: Request, body: bytes) -> ParsedEvents:
        """SendGrid's signed Event Webhook (ECDSA over timestamp + body)."""
        if self.sendgrid_key is None:
            raise Rejected("not_configured", f"set {SENDGRID_KEY_ENV} to receive SendGrid events")
        signature = request.headers.get(signing.SENDGRID_SIGNATURE_HEADER)
        timestamp = request.headers.get(signing.SENDGRID_TIMESTAMP_HEADER)
        if not signature or not timestamp:
            raise Rejected("unsigned", "the SendGrid signature or timestamp header is missing")
        if not signing.verify_sendgrid_with_key(self.sendgrid_key, signature, timestamp, body):
            raise Rejected("bad_signature", "the SendGrid signature does not verify")
        self._require_fresh(timestamp)
        return sendgrid_events(_json(body))

    async def twilio(self, request: Request, body: bytes) -> ParsedEvents:
        """Twilio's status callback (HMAC-SHA1 over the URL it called and the form)."""
        settings = self.settings
        token = settings.twilio_auth_token
        if not token:
            raise Rejected("not_configured", f"set {TWILIO_TOKEN_ENV} to receive Twilio callbacks")
        signature = request.headers.get(signing.TWILIO_SIGNATURE_HEADER)
        if not signature:
            raise Rejected("unsigned", "the X-Twilio-Signature header is missing")
        try:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True, errors="strict")
        except UnicodeDecodeError:
            raise Rejected("bad_signature", "the form body cannot be verified") from None
        url = request_url(request.scope, settings.public_url)
        if not signing.verify_twilio(token, url, form, signature):
            hint = "" if settings.public_url else f" (behind a proxy, set {PUBLIC_URL_ENV})"
            raise Rejected("bad_signature", f"the Twilio signature does not verify{hint}")
        query = parse_qs(request.scope.get("query_string", b"").decode("latin-1"))
        return twilio_status_event(form, query, settings.clock())

    async def generic(self, request: Request, body: bytes) -> ParsedEvents:
        """journeyman's own webhook format (HMAC-SHA256 over timestamp + body)."""
        secret = self.settings.webhook_secret
        if not secret:
            raise Rejected("not_configured", f"set {WEBHOOK_SECRET_ENV} to receive webhook events")
        signature = request.headers.get(signing.WEBHOOK_SIGNATURE_HEADER)
        timestamp = request.headers.get(signing.WEBHOOK_TIMESTAMP_HEADER)
        if not signature or not timestamp:
            raise Rejected("unsigned", "the X-Journeyman-Signature or -Timestamp header is missing")
        if not signing.verify_webhook(secret, timestamp, body, signature):
            raise Rejected("bad_signature", "the webhook signature does not verify")
        self._require_fresh(timestamp)
        return generic_events(_json(body))

    def _require_fresh(self, timestamp: str) -> None:
        settings = self.settings
        if not signing.timestamp_is_fresh(timestamp, settings.clock(), settings.max_age_s):
            raise Rejected("stale", f"the timestamp is outside the {settings.max_age_s:g}s window")

    # -- receiving -------------------------------------------------------------------------

    def endpoint(
        self, source: str, verify_and_parse: VerifyAndParse
    ) -> Callable[[Request], Awaitable[Response]]:
        """The route handler of one vendor."""

        async def receive(request: Request) -> Response:
            return await self.receive(source, verify_and_parse, request)

        return receive

    async def receive(
        self, source: str, verify_and_parse: VerifyAndParse, request: Request
    ) -> Response:
        """Read, verify and store one webhook request; answer 2xx only once it is committed."""
        client = request.client.host if request.client else "-"
        try:
            parsed, result = await self._verify_and_store(source, verify_and_parse, request)
        except Rejected as exc:
            return self._rejected(source, client, exc)
        return self._accepted(source, client, parsed, result)

    async def _verify_and_store(
        self, source: str, verify_and_parse: VerifyAndParse, request: Request
    ) -> tuple[ParsedEvents, WriteResult]:
        """The body within the size limit, verified and parsed, then written (off the event
        loop); every refusal is a Rejected."""
        body = await _read_body(request, self.settings.max_body_bytes)
        try:
            parsed = await verify_and_parse(request, body)
        except MalformedPayload as exc:
            raise Rejected("malformed", str(exc)) from None
        try:
            result = await anyio.to_thread.run_sync(self.events.write, parsed.rows)
        except WarehouseError as exc:
            log.error("%s events not stored: %s", source, exc)
            raise Rejected("unavailable", "the warehouse is busy; retry later") from None
        return parsed, result

    def _rejected(self, source: str, client: str, exc: Rejected) -> Response:
        self.metrics.reject(source, exc.reason)
        log.warning("rejected %s webhook from %s: %s (%s)", source, client, exc.reason, exc)
        headers = {"Retry-After": "5"} if exc.status == 503 else None
        return JSONResponse({"error": str(exc), "reason": exc.reason}, exc.status, headers=headers)

    def _accepted(
        self, source: str, client: str, parsed: ParsedEvents, result: WriteResult
    ) -> Response:
        self.metrics.accept(source, parsed, result.stored, result.duplicates)
        log.info(
            "%s webhook from %s: %d stored, %d duplicate, %d ignored, %d invalid",
            source,
            client,
            result.stored,
            result.duplicates,
            parsed.ignored,
            parsed.invalid,
        )
        return JSONResponse(
            {
                "accepted": result.stored,
                "duplicates": result.duplicates,
                "ignored": parsed.ignored,
                "invalid": parsed.invalid,
            }
        )

    # -- health, metrics, start-up ---------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "sources": self.settings.enabled_sources()})

    async def metrics_text(self, request: Request) -> Response:
        return PlainTextResponse(self.metrics.render(), media_type="text/plain; version=0.0.4")

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        settings = self.settings
        log.info(
            "event intake writing to %s; verifying %s; public URL %s; max age %gs",
            masked(settings.warehouse),  # a URL's password never reaches the log
            ", ".join(settings.enabled_sources()) or "nothing (no secrets configured)",
            settings.public_url or "(from the Host header)",
            settings.max_age_s,
        )
        yield


def create_app(settings: IntakeSettings, *, store: EventStore | None = None) -> Starlette:
    """The receiver as an ASGI app writing to settings.warehouse (or the given store)."""
    # the store retries a held file itself, briefly: a webhook answer must not wait minutes
    events = store or EventStore(Warehouse(settings.warehouse, lock_wait_s=0), clock=settings.clock)
    receiver = WebhookReceiver(settings, events)
    app = Starlette(routes=receiver.routes(), lifespan=receiver.lifespan)
    app.state.metrics = receiver.metrics
    app.state.store = events
    return app


def app_from_env() -> Starlette:
    """The app on IntakeSettings.from_env(): what each worker process of `serve` builds."""
    return create_app(IntakeSettings.from_env())


def check_workers(settings: IntakeSettings, workers: int) -> None:
    """Raise IntakeConfigError unless `workers` processes may write settings.warehouse at once:
    a DuckDB file has one writing process, so several workers need PostgreSQL."""
    if workers > 1 and Warehouse(settings.warehouse).backend != "postgresql":
        raise IntakeConfigError(
            f"--workers {workers} needs a PostgreSQL warehouse: a DuckDB file allows one "
            "writing process, so run one worker (it serves concurrent requests with a group "
            "commit) or set JOURNEYMAN_WAREHOUSE to a postgresql+psycopg:// URL."
        )


def serve(
    host: str, port: int, settings: IntakeSettings | None = None, *, workers: int = 1
) -> None:
    """Run the receiver with uvicorn until interrupted (settings default to the environment).

    `workers` > 1 (PostgreSQL only) runs that many processes on one socket; each builds its
    app from the environment, so `settings`, when given, must be what the environment says."""
    import uvicorn

    settings = settings or IntakeSettings.from_env()
    check_workers(settings, workers)
    if not settings.enabled_sources():
        raise IntakeConfigError(
            "No webhook can be verified: set at least one of "
            f"{SENDGRID_KEY_ENV}, {TWILIO_TOKEN_ENV} or {WEBHOOK_SECRET_ENV}."
        )
    if workers > 1 and settings != IntakeSettings.from_env():
        raise IntakeConfigError(
            "with several workers each reads its settings from the environment; set them there"
        )
    app: Starlette | str = create_app(settings) if workers == 1 else f"{__name__}:app_from_env"
    uvicorn.run(
        app,
        host=host,
        port=port,
        workers=workers,
        factory=workers > 1,
        proxy_headers=True,  # trusts X-Forwarded-Proto/-For from FORWARDED_ALLOW_IPS only
        server_header=False,
        log_level="info",
    )
