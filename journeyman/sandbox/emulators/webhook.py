"""A receiver for journeyman's generic webhook: checks the HMAC signature and the timestamp's
freshness, answers per-record results, de-duplicates by idempotency key."""

from __future__ import annotations

import time
from typing import Any

from journeyman.sandbox.emulators.base import Route, VendorEmulator
from journeyman.sandbox.emulators.server import Delivery, Request, Response
from journeyman.signing import (
    WEBHOOK_SIGNATURE_HEADER,
    WEBHOOK_TIMESTAMP_HEADER,
    timestamp_is_fresh,
    verify_webhook,
)


class WebhookEmulator(VendorEmulator):
    """A receiver for the generic webhook: checks the HMAC signature and timestamp."""

    vendor = "webhook"
    ROUTES = (Route(None, "", "_receive", "json", prefix=True),)  # any method, any path

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

    # -- what differs from the base --------------------------------------------------------------

    def authenticate(self, request: Request) -> bool:
        timestamp = request.headers.get(WEBHOOK_TIMESTAMP_HEADER) or ""
        signature = request.headers.get(WEBHOOK_SIGNATURE_HEADER) or ""
        return timestamp_is_fresh(timestamp, time.time(), self.max_age_s) and verify_webhook(
            self.secret, timestamp, request.body, signature
        )

    def auth_failure(self, request: Request) -> Response:
        return Response(401, {"error": "bad signature"})

    def payload(self, request: Request, route: Route) -> Any:
        """The body's `messages`; ValueError without them."""
        try:
            return request.json()["messages"]
        except (KeyError, TypeError) as exc:
            raise ValueError("no messages") from exc

    def malformed(self, request: Request) -> Response:
        self.invalid(["body: {'messages': [...]} required"])
        return Response(400, {"error": "bad body"})

    # -- the one route -----------------------------------------------------------------------

    def _receive(self, request: Request) -> Response:
        results, accepted = [], []
        for m in request.json()["messages"]:
            decision_id = m.get("decision_id")
            if m.get("to") in self.invalid_recipients:
                error = "invalid_recipient"
                results.append({"decision_id": decision_id, "status": "rejected", "error": error})
                continue
            key = m.get("idempotency_key") or ""
            with self.lock:
                duplicate = self.dedup and key in self.keys
                self.keys.add(key)
            results.append({"decision_id": decision_id, "status": "accepted"})
            if not duplicate:
                accepted.append(
                    Delivery(
                        "webhook",
                        decision_id,
                        m.get("to", ""),
                        m.get("subject"),
                        m.get("body"),
                        m.get("send_at"),
                        key,
                    )
                )
        self.accept(accepted)
        return Response(200, {"results": results})
