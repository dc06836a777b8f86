"""Klaviyo: events (one or a bulk job), profile bulk import, the account; JSON:API bodies
validated against Klaviyo's OpenAPI documents; events de-duplicated by `unique_id`."""

from __future__ import annotations

from typing import Any

from journeyman.sandbox.emulators.base import Route, Spec, VendorEmulator
from journeyman.sandbox.emulators.server import Delivery, Fault, Request, Response

JSON_API = "application/vnd.api+json"
RATE = {"RateLimit-Limit": "3500", "RateLimit-Remaining": "3499", "RateLimit-Reset": "60"}


def _route(path: str, handler: str, filename: str) -> Route:
    return Route("POST", path, handler, "json", Spec("openapi", filename, path, JSON_API))


class KlaviyoEmulator(VendorEmulator):
    """`POST /api/events`, `/api/event-bulk-create-jobs`, `/api/profile-bulk-import-jobs`,
    `GET /api/accounts`; de-duplicates events by `unique_id` like Klaviyo. `SPECS`: the
    OpenAPI document of each POST endpoint."""

    vendor = "klaviyo"
    ROUTES = (
        Route("GET", "/api/accounts", "_accounts"),
        Route("GET", "/api/accounts/", "_accounts"),
        _route("/api/events", "_event", "klaviyo_create_event.json"),
        _route("/api/event-bulk-create-jobs", "_bulk_events", "klaviyo_bulk_create_events.json"),
        _route(
            "/api/profile-bulk-import-jobs", "_import_profiles", "klaviyo_bulk_import_profiles.json"
        ),
    )
    SPECS = {r.path: r.spec.filename for r in ROUTES if r.spec is not None}

    def __init__(self, *, api_key: str = "pk_emulator", **kw: Any) -> None:
        super().__init__(**kw)
        self.api_key = api_key
        self.unique_ids: set[str] = set()
        self.duplicates_ignored = 0
        self.profiles_imported = 0

    # -- what differs from the base --------------------------------------------------------------

    def _error(self, status: int, code: str, detail: str) -> Response:
        """Klaviyo's JSON:API error body."""
        error = {
            "id": self.next_id(""),
            "status": status,
            "code": code,
            "title": code,
            "detail": detail,
            "source": {"pointer": "/data/"},
        }
        return Response(status, {"errors": [error]}, content_type=JSON_API)

    def authenticate(self, request: Request) -> bool:
        return request.headers.get("Authorization") == f"Klaviyo-API-Key {self.api_key}"

    def unauthorized(self) -> Response:
        return self._error(401, "not_authenticated", "Incorrect authentication credentials.")

    def fault_response(self, fault: Fault) -> Response:
        if fault.kind == "429":
            response = self._error(429, "throttled", "Request was throttled.")
            response.headers["Retry-After"] = str(int(fault.retry_after or 1))
            return response
        return super().fault_response(fault)

    def refuse(self, request: Request, route: Route | None) -> Response | None:
        """Every request names the API revision; bodies are JSON:API."""
        if not request.headers.get("revision"):
            return self._error(400, "invalid", "Missing required header: revision")
        content_type = request.headers.get("Content-Type") or ""
        if route is not None and route.body == "json" and not content_type.startswith(JSON_API):
            return self._error(415, "unsupported_media_type", "use application/vnd.api+json")
        return None

    def not_found(self, request: Request) -> Response:
        return self._error(404, "not_found", "not found")

    def malformed(self, request: Request) -> Response:
        return self._error(400, "invalid", "malformed JSON")

    def rejected(self, errors: list[str]) -> Response:
        return self._error(400, "invalid", "; ".join(errors)[:300])

    # -- routes ------------------------------------------------------------------------------

    def _accounts(self, request: Request) -> Response:
        return Response(200, {"data": [{"type": "account", "id": "emulator"}]}, RATE, JSON_API)

    def _import_profiles(self, request: Request) -> Response:
        n = len(request.json()["data"]["attributes"]["profiles"]["data"])
        with self.lock:
            self.profiles_imported += n
        job = {
            "type": "profile-bulk-import-job",
            "id": self.next_id(""),
            "attributes": {"status": "queued", "total_count": n},
        }
        return Response(202, {"data": job}, RATE, JSON_API)

    def _event(self, request: Request) -> Response:
        attrs = request.json()["data"]["attributes"]
        self._record([(attrs["profile"]["data"], attrs)])
        return Response(202, b"", RATE)

    def _bulk_events(self, request: Request) -> Response:
        entries = request.json()["data"]["attributes"]["events-bulk-create"]["data"]
        if len(entries) > 1000:
            self.invalid(["events-bulk-create: more than 1000 events"])
            return self._error(400, "invalid", "at most 1000 events per job")
        self._record(
            [
                (e["attributes"]["profile"]["data"], ev["attributes"])
                for e in entries
                for ev in e["attributes"]["events"]["data"]
            ]
        )
        job = {
            "type": "event-bulk-create-job",
            "id": self.next_id(""),
            "attributes": {"status": "queued"},
        }
        return Response(202, {"data": job}, RATE, JSON_API)

    def _record(self, pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        """Accept each (profile, event) whose `unique_id` is new (Klaviyo ignores repeats)."""
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
