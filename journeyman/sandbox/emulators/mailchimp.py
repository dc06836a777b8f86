"""Mailchimp Transactional (Mandrill): `messages/send`, `messages/send-template` (validated
against its OpenAPI document) and `users/ping`, the API key in the JSON body."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from journeyman.sandbox.emulators.base import Route, Spec, VendorEmulator
from journeyman.sandbox.emulators.server import Delivery, Fault, Request, Response

SPEC = "mailchimp_transactional_messages_send.json"
PREFIX = "/api/1.0"
SEND_TEMPLATE = f"{PREFIX}/messages/send-template"
SEND_SPEC = Spec("openapi", SPEC, "/messages/send")  # send-template: send's body + a template


class MailchimpEmulator(VendorEmulator):
    """`POST /api/1.0/messages/send`, `/messages/send-template` and `/api/1.0/users/ping` (key
    in the JSON body)."""

    vendor = "mailchimp"
    SPEC = SPEC
    PREFIX = PREFIX
    ROUTES = (
        Route(None, f"{PREFIX}/users/ping", "_ping"),
        Route(None, f"{PREFIX}/messages/send", "_send", "json", SEND_SPEC),
        Route(None, SEND_TEMPLATE, "_send", "json", SEND_SPEC),
    )

    def __init__(self, *, api_key: str = "md-emulator-key", **kw: Any) -> None:
        #: (template_name, merge vars) of every recipient sent with a template
        self.templates: list[tuple[str, dict[str, str]]] = []
        super().__init__(**kw)
        self.api_key = api_key

    # -- what differs from the base --------------------------------------------------------------

    @staticmethod
    def error(
        status: int, name: str, message: str, code: int = -1, headers: dict[str, str] | None = None
    ) -> Response:
        """Mailchimp Transactional's error body."""
        body = {"status": "error", "code": code, "name": name, "message": message}
        return Response(status, body, headers)

    def authenticate(self, request: Request) -> bool:
        try:
            payload = request.json()
        except ValueError:
            return False
        return isinstance(payload, dict) and payload.get("key") == self.api_key

    def unauthorized(self) -> Response:
        return self.error(401, "Invalid_Key", "Invalid API key")

    def fault_response(self, fault: Fault) -> Response:
        if fault.kind == "429":
            return self.error(
                429, "Too_Many_Requests", "Too many requests", -1, self.rate_headers(fault)
            )
        if fault.kind in ("500", "503"):
            return self.error(int(fault.kind), "GeneralError", "try again")
        return super().fault_response(fault)

    def not_found(self, request: Request) -> Response:
        return self.error(404, "Unknown_Method", "not found")

    def spec_instance(self, route: Route, payload: Any) -> Any:
        """send-template takes send's body plus the template (the spec has send only)."""
        return {k: v for k, v in payload.items() if k not in ("template_name", "template_content")}

    def limits(self, route: Route, payload: Any) -> list[str]:
        """send-template's template; send_at as `YYYY-MM-DD HH:MM:SS`."""
        errors = []
        template = payload.get("template_name")
        if route.path == SEND_TEMPLATE and not (
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
        return errors

    def rejected(self, errors: list[str]) -> Response:
        return self.error(500, "ValidationError", "; ".join(errors)[:300], code=-2)

    # -- routes ------------------------------------------------------------------------------

    def _ping(self, request: Request) -> Response:
        return Response(200, b'"PONG!"')

    def _send(self, request: Request) -> Response:
        payload = request.json()
        template = payload.get("template_name") if request.path == SEND_TEMPLATE else None
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
