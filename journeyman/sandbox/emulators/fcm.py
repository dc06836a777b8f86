"""FCM HTTP v1: `messages:send` (validated against Google's discovery document) and the OAuth2
token endpoint a service account signs in at."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from journeyman.sandbox.emulators.base import Route, Spec, VendorEmulator, bearer
from journeyman.sandbox.emulators.server import Delivery, Fault, Request, Response

FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_FCM_TARGETS = ("token", "topic", "condition", "fid")
_FCM_RESERVED = ("from", "message_type")
_FCM_RESERVED_PREFIXES = ("google.", "gcm.notification.")


class FcmEmulator(VendorEmulator):
    """`POST /v1/projects/{id}/messages:send` and the OAuth2 token endpoint `POST /token`.

    Request bodies are validated against Google's own schema (`SendMessageRequest` of the FCM
    discovery document, converted to JSON Schema) plus the documented limits it does not encode
    (`_fcm_limits`); without the shared spec folder, the documented limits only."""

    vendor = "fcm"
    SPEC = "fcm_v1_discovery.json"
    ROUTES = (
        Route("POST", "/token", "_token", auth=False),
        Route(
            "POST",
            "/v1/projects/{project_id}/messages:send",
            "_send",
            spec=Spec("discovery", SPEC, "SendMessageRequest"),
        ),
    )

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

    # -- what differs from the base --------------------------------------------------------------

    @staticmethod
    def error(
        status: int,
        name: str,
        message: str,
        details: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """Google's error body."""
        error: dict[str, Any] = {"code": status, "status": name, "message": message}
        if details is not None:
            error["details"] = details
        return Response(status, {"error": error}, headers)

    def authenticate(self, request: Request) -> bool:
        return self.tokens.get(bearer(request), 0) >= time.time()

    def unauthorized(self) -> Response:
        return self.error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")

    def fault_response(self, fault: Fault) -> Response:
        if fault.kind == "429":
            details = [{"@type": FCM_ERROR, "errorCode": "QUOTA_EXCEEDED"}]
            headers = self.rate_headers(fault)
            return self.error(429, "RESOURCE_EXHAUSTED", "Quota exceeded", details, headers)
        if fault.kind in ("500", "503"):
            status = "INTERNAL" if fault.kind == "500" else "UNAVAILABLE"
            return self.error(int(fault.kind), status, status)
        return super().fault_response(fault)

    def not_found(self, request: Request) -> Response:
        return self.error(404, "NOT_FOUND", "not found")

    def request_errors(self, route: Route, request: Request, payload: Any) -> list[str]:
        """The 4 KiB limit and the `message` object always; the schema and documented limits
        when validating, and whenever the request is already known to be bad."""
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
            if payload is not None:
                errors += [
                    e
                    for e in self.spec_errors(route, payload)
                    if not e.startswith("(root): 'message'")
                ]
            errors += _fcm_limits(message)
        return errors

    def rejected(self, errors: list[str]) -> Response:
        details = [{"errorCode": "INVALID_ARGUMENT"}]
        return self.error(400, "INVALID_ARGUMENT", "; ".join(errors), details)

    # -- routes ------------------------------------------------------------------------------

    def _send(self, request: Request) -> Response:
        message = request.json()["message"]
        if message.get("token") in self.invalid_recipients:
            details = [{"@type": FCM_ERROR, "errorCode": "UNREGISTERED"}]
            return self.error(404, "NOT_FOUND", "Requested entity was not found.", details)
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
