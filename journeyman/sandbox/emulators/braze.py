"""Braze: `/users/track`, API-triggered campaigns (send, schedule), the campaign list.

Braze publishes no machine-readable schema: request bodies are validated against the rules of
its documentation written down as JSON Schema in `braze_schema.json` (one `$defs` entry per
endpoint)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from journeyman.sandbox.emulators.base import Route, Spec, VendorEmulator, bearer
from journeyman.sandbox.emulators.server import Delivery, Fault, Request, Response

SCHEMA = "braze_schema.json"
_TRACKED = ("attributes", "events", "purchases")


def _route(path: str, handler: str, definition: str) -> Route:
    return Route(None, path, handler, "json", Spec("package", SCHEMA, definition))


class BrazeEmulator(VendorEmulator):
    """`/users/track` (≤ 75 attributes), `/campaigns/trigger/schedule/create` and
    `/campaigns/trigger/send` (≤ 50 recipients), `GET /campaigns/list`; `SCHEMAS`: the
    `braze_schema.json` entry of each endpoint."""

    vendor = "braze"
    SCHEMA = SCHEMA
    ROUTES = (
        Route(None, "/campaigns/list", "_campaigns"),
        _route("/users/track", "_track", "users_track"),
        _route("/campaigns/trigger/send", "_trigger", "campaigns_trigger_send"),
        _route(
            "/campaigns/trigger/schedule/create", "_trigger", "campaigns_trigger_schedule_create"
        ),
    )
    SCHEMAS = {r.path: r.spec.name for r in ROUTES if r.spec is not None}

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

    # -- what differs from the base --------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": "50000",
            "X-RateLimit-Remaining": "49999",
            "X-RateLimit-Reset": str(int(time.time()) + 60),
        }

    def error(self, status: int, message: str) -> Response:
        """Braze's error body, with its rate-limit headers."""
        return Response(status, {"message": message}, self._headers())

    def authenticate(self, request: Request) -> bool:
        return bearer(request) == self.api_key

    def unauthorized(self) -> Response:
        return self.error(401, "Invalid API key")

    def fault_response(self, fault: Fault) -> Response:
        if fault.kind == "429":
            headers = {**self._headers(), "X-RateLimit-Remaining": "0"}
            headers.update(self.rate_headers(fault))
            return Response(429, {"message": "Too Many Requests"}, headers)
        return super().fault_response(fault)

    def not_found(self, request: Request) -> Response:
        return self.error(404, "not found")

    def malformed(self, request: Request) -> Response:
        return self.error(400, "Invalid JSON")

    def reject(self, route: Route, errors: list[str]) -> Response:
        self.invalid([f"{route.path} {e}" for e in errors])
        return self.error(400, "; ".join(errors)[:500])

    # -- routes ------------------------------------------------------------------------------

    def _campaigns(self, request: Request) -> Response:
        campaigns = [{"id": self.campaign_id, "name": "journeyman"}]
        return Response(200, {"campaigns": campaigns, "message": "success"}, self._headers())

    def _track(self, request: Request) -> Response:
        payload = request.json()
        if not isinstance(payload, dict):
            return self.error(400, "Invalid JSON object")
        objects = sum(len(payload.get(k) or []) for k in _TRACKED)
        if objects == 0 or any(len(payload.get(k) or []) > 75 for k in _TRACKED):
            self.invalid([f"users/track: {objects} objects (1-75 of each kind per request)"])
            return self.error(400, "Too many objects")
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

    def _trigger(self, request: Request) -> Response:
        payload = request.json()
        if not isinstance(payload, dict):
            return self.error(400, "Invalid JSON object")
        recipients = payload.get("recipients") or []
        problems = _trigger_problems(request.path, payload, self.campaigns)
        if problems:
            self.invalid(problems)
            return self.error(400, "; ".join(problems))
        when = (payload.get("schedule") or {}).get("time")
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


def _trigger_problems(path: str, payload: dict[str, Any], campaigns: set[str]) -> list[str]:
    """What Braze refuses in a trigger request: an unknown campaign, 1-50 recipients, a
    schedule without an ISO 8601 time."""
    recipients = payload.get("recipients") or []
    problems = []
    if payload.get("campaign_id") not in campaigns:
        problems.append("campaign_id: unknown campaign")
    if not 1 <= len(recipients) <= 50:
        problems.append(f"recipients: {len(recipients)} (1-50 per request)")
    if path.endswith("schedule/create"):
        try:
            datetime.fromisoformat(payload.get("schedule")["time"].replace("Z", "+00:00"))
        except (TypeError, KeyError, ValueError, AttributeError):
            problems.append("schedule.time: ISO 8601 required")
    return problems
