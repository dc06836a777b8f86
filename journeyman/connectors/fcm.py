"""Firebase Cloud Messaging HTTP v1 (`POST /v1/projects/{id}/messages:send`): push.

OAuth2 access token from a service-account key through the JWT-bearer grant (RS256, the token
URL configurable; cached until shortly before it expires). One device token per request, a
4096-byte payload limit (larger → permanent failure, never sent), no scheduling field: records
are dispatched when due. `UNREGISTERED` → permanent failure, the token reported invalid.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import jwt

from journeyman.connectors.destination import (
    AuthError,
    BatchResult,
    DeliveryStatus,
    DestinationError,
    MessageBatch,
    RetryableError,
)
from journeyman.connectors.http import HttpDestination, Secret, dumps, loads
from journeyman.connectors.pacing import RateLimit

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
DEFAULT_TOKEN_URL = "https://oauth2.googleapis.com/token"
MAX_PAYLOAD_BYTES = 4096
PERMANENT = {
    "UNREGISTERED": "unregistered_token",
    "INVALID_ARGUMENT": "invalid_argument",
    "SENDER_ID_MISMATCH": "sender_id_mismatch",
}


class FcmDestination(HttpDestination):
    """Push notifications through FCM HTTP v1."""

    default_base_url = "https://fcm.googleapis.com"
    max_batch_size = 1
    #: FCM v1 has no batch endpoint (one device per request) and no concurrency limit of its own
    default_concurrency = 16
    schedule_window = None
    default_rate_limit = RateLimit(10_000, 10_000, "FCM: 600,000 messages per minute per project")

    def __init__(
        self,
        name: str = "fcm",
        *,
        service_account_json: str | Mapping[str, Any] | Secret,
        project_id: str | None = None,
        token_url: str | None = None,
        base_url: str | None = None,
        timeout_s: float | tuple[float, float] = (5.0, 30.0),
        clock: Any = time.time,
    ) -> None:
        raw = service_account_json
        if isinstance(raw, Secret):
            raw = raw.reveal()
        try:
            key = dict(raw) if isinstance(raw, Mapping) else json.loads(raw or "{}")
        except ValueError:
            raise DestinationError(
                f"destination {name!r}: the service-account key is not valid JSON "
                "(FCM_SERVICE_ACCOUNT_JSON must hold the key file's contents)"
            ) from None
        self._private_key = Secret(key.get("private_key", ""))
        super().__init__(
            name, base_url=base_url, timeout_s=timeout_s, secrets=[self._private_key], clock=clock
        )
        self.client_email = key.get("client_email", "")
        self.private_key_id = key.get("private_key_id")
        self.project_id = project_id or key.get("project_id", "")
        self.token_url = token_url or key.get("token_uri") or DEFAULT_TOKEN_URL
        self._token: Secret | None = None
        self._token_expires = 0.0
        self._token_lock = threading.Lock()

    def access_token(self, *, refresh: bool = False) -> str:
        """A cached OAuth2 access token (JWT-bearer grant)."""
        with self._token_lock:
            now = self.wall_clock()
            if self._token is not None and not refresh and now < self._token_expires - 60:
                return self._token.reveal()
            claims = {
                "iss": self.client_email,
                "scope": SCOPE,
                "aud": self.token_url,
                "iat": int(now),
                "exp": int(now) + 3600,
            }
            headers = {"kid": self.private_key_id} if self.private_key_id else None
            try:
                assertion = jwt.encode(
                    claims, self._private_key.reveal(), algorithm="RS256", headers=headers
                )
            except (ValueError, TypeError, jwt.PyJWTError):
                raise DestinationError(
                    f"destination {self.name!r}: the service-account private key cannot sign "
                    "(is it the PEM RSA key from the key file?)"
                ) from None
            try:
                response = self.request(
                    "POST",
                    "",
                    url=self.token_url,
                    authenticate=False,
                    data={
                        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                        "assertion": assertion,
                    },
                )
            except RetryableError as exc:  # nothing was sent: the destination's failure
                raise DestinationError(
                    f"destination {self.name!r}: cannot reach the token endpoint ({exc.code})"
                ) from None
            if response.status_code in (400, 401, 403):
                raise AuthError(
                    f"destination {self.name!r}: the token endpoint rejected the service-account "
                    f"key (HTTP {response.status_code}); check FCM_SERVICE_ACCOUNT_JSON"
                )
            if response.status_code != 200:
                raise DestinationError(
                    f"destination {self.name!r}: the token endpoint answered HTTP "
                    f"{response.status_code}; no push was sent"
                )
            body = loads(response.content)
            token = Secret(body["access_token"])
            self._secrets.append(token)
            self._token = token
            self._token_expires = now + float(body.get("expires_in", 3600))
            return token.reveal()

    def auth_headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.access_token()}",
            "Content-Type": "application/json",
        }

    def check(self) -> None:
        for value, what in (
            (self.client_email, "client_email"),
            (self.project_id, "project_id"),
            (self._private_key, "private_key"),
        ):
            if not value:
                raise DestinationError(
                    f"destination {self.name!r}: the service-account key has no {what} "
                    "(FCM_SERVICE_ACCOUNT_JSON)"
                )
        try:
            self.access_token(refresh=True)
        except RetryableError as exc:
            raise DestinationError(
                f"destination {self.name!r}: cannot reach the token endpoint ({exc.code})"
            ) from None

    def prepare(self, now: datetime) -> None:
        """An access token before anything is marked: a failing token endpoint stops the sync."""
        self.access_token()

    def payload(self, batch: MessageBatch, i: int) -> bytes:
        message = {
            "token": batch.to[i],
            "notification": {"title": batch.subject[i] or "", "body": batch.body[i]},
            "data": {
                "decision_id": batch.decision_id[i],
                "agent": batch.agent[i],
                "message_id": batch.message_id[i],
            },
        }
        return dumps({"message": message})

    def send_batch(self, batch: MessageBatch, now: datetime) -> BatchResult:
        result = BatchResult([], [], [])
        path = f"/v1/projects/{self.project_id}/messages:send"
        for i in range(len(batch)):
            body = self.payload(batch, i)
            if len(body) > MAX_PAYLOAD_BYTES:
                result.extend(BatchResult([DeliveryStatus.FAILED_PERMANENT], ["payload_too_large"]))
                continue
            response = self.request("POST", path, data=body)
            if response.status_code == 401:  # the cached token may have expired early
                self.access_token(refresh=True)
                response = self.request("POST", path, data=body)
            if response.status_code == 200:
                name = loads(response.content).get("name")
                result.extend(BatchResult([DeliveryStatus.DELIVERED], [None], [name]))
                continue
            status, code = _fcm_error(response)
            if code in PERMANENT or status in PERMANENT:
                reason = PERMANENT.get(code) or PERMANENT[status]
                result.extend(BatchResult([DeliveryStatus.FAILED_PERMANENT], [reason]))
                continue
            self.raise_for_request(response, "fcm")
            result.extend(
                BatchResult(
                    [DeliveryStatus.FAILED_PERMANENT], [f"fcm_{status or response.status_code}"]
                )
            )
        return result


def _fcm_error(response: Any) -> tuple[str, str]:
    """(status, errorCode) from FCM's error body."""
    try:
        error = loads(response.content).get("error") or {}
    except (ValueError, AttributeError):
        return "", ""
    code = ""
    for detail in error.get("details") or []:
        code = detail.get("errorCode") or code
    return str(error.get("status") or ""), str(code)
