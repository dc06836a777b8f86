"""Mailchimp Transactional (Mandrill) `POST /messages/send`, API key in the body (`key`).

One request carries up to `max_batch_size` recipients sharing a `send_at`; each recipient's
subject and body are merge variables (`*|JM_SUBJECT|*`, `*|JM_BODY|*`) and its decision id is
`recipient_metadata` (echoed in webhooks). `send_at` (`YYYY-MM-DD HH:MM:SS` UTC) schedules a
future send. The answer has one status per recipient: `rejected` / `invalid` are permanent.
No idempotency key and no lookup by metadata: crashed in-flight records stay in flight.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from journeyman.connectors.destination import (
    AuthError,
    BatchResult,
    DeliveryStatus,
    MessageBatch,
    RejectedBatchError,
    RetryableError,
)
from journeyman.connectors.http import HttpDestination, Secret, dumps, loads, parse_send_at, require
from journeyman.connectors.pacing import RateLimit


class MailchimpTransactionalDestination(HttpDestination):
    """E-mail through Mailchimp Transactional."""

    default_base_url = "https://mandrillapp.com/api/1.0"
    max_batch_size = 500
    schedule_window = (timedelta(0), None)
    default_rate_limit = RateLimit(
        50, 50, "Mailchimp Transactional publishes no fixed limit (adaptive 429s); conservative"
    )

    def __init__(
        self,
        name: str = "mailchimp",
        *,
        api_key: str | Secret,
        from_email: str,
        from_name: str | None = None,
        base_url: str | None = None,
        timeout_s: float | tuple[float, float] = (5.0, 30.0),
    ) -> None:
        self.api_key = Secret(api_key)
        super().__init__(name, base_url=base_url, timeout_s=timeout_s, secrets=[self.api_key])
        self.from_email = from_email
        self.from_name = from_name
        self._headers = {"Content-Type": "application/json"}

    def check(self) -> None:
        require(self.api_key, "the API key", self.name, "MAILCHIMP_TRANSACTIONAL_KEY")
        require(self.from_email, "from_email", self.name)
        response = self.request(
            "POST", "/users/ping", data=dumps({"key": self.api_key.reveal()}), headers=self._headers
        )
        if response.status_code != 200:
            self._raise(response)

    def payload(self, batch: MessageBatch, send_at: str | None) -> dict[str, Any]:
        message: dict[str, Any] = {
            "from_email": self.from_email,
            "subject": "*|JM_SUBJECT|*",
            "text": "*|JM_BODY|*",
            "to": [{"email": to, "type": "to"} for to in batch.to],
            "preserve_recipients": False,
            "merge": True,
            "merge_language": "mailchimp",
            "merge_vars": [
                {
                    "rcpt": to,
                    "vars": [
                        {"name": "JM_SUBJECT", "content": s or ""},
                        {"name": "JM_BODY", "content": b},
                    ],
                }
                for to, s, b in zip(batch.to, batch.subject, batch.body, strict=True)
            ],
            "recipient_metadata": [
                {"rcpt": to, "values": {"decision_id": d}}
                for to, d in zip(batch.to, batch.decision_id, strict=True)
            ],
        }
        if self.from_name:
            message["from_name"] = self.from_name
        body: dict[str, Any] = {"key": self.api_key.reveal(), "message": message}
        if send_at:
            body["send_at"] = send_at
        return body

    def send_batch(self, batch: MessageBatch, now: datetime) -> BatchResult:
        # one request per (send time, distinct recipient addresses): merge vars are keyed by rcpt
        result = BatchResult([None] * len(batch), [None] * len(batch), [None] * len(batch))
        groups: dict[tuple[str, int], list[int]] = {}
        seen: dict[tuple[str, str], int] = {}
        for i, (to, at) in enumerate(zip(batch.to, batch.send_at, strict=True)):
            n = seen.get((at, to.lower()), 0)
            seen[(at, to.lower())] = n + 1
            groups.setdefault((at, n), []).append(i)
        for (at, _), indices in groups.items():
            when = parse_send_at(at)
            send_at = when.strftime("%Y-%m-%d %H:%M:%S") if when > now else None
            part = batch.take(indices)
            response = self.request(
                "POST",
                "/messages/send",
                data=dumps(self.payload(part, send_at)),
                headers=self._headers,
            )
            if response.status_code != 200:
                self._raise(response)
            by_email = {}
            for item in loads(response.content):
                by_email.setdefault(str(item.get("email", "")).lower(), item)
            for i in indices:
                item = by_email.get(batch.to[i].lower())
                if item is None:
                    result.statuses[i] = DeliveryStatus.FAILED_RETRYABLE
                    result.errors[i] = "missing_in_response"
                    continue
                status = item.get("status")
                if status in ("sent", "queued", "scheduled"):
                    result.statuses[i] = DeliveryStatus.DELIVERED
                    result.provider_ids[i] = item.get("_id")
                else:
                    result.statuses[i] = DeliveryStatus.FAILED_PERMANENT
                    result.errors[i] = f"{status}:{item.get('reject_reason') or ''}"
        return result

    def _raise(self, response: Any) -> None:
        try:
            body = loads(response.content)
        except ValueError:
            body = {}
        name = body.get("name", "") if isinstance(body, dict) else ""
        if response.status_code == 401 or name == "Invalid_Key":
            raise AuthError(
                f"destination {self.name!r}: Mailchimp Transactional rejected the API key "
                "(Invalid_Key); check MAILCHIMP_TRANSACTIONAL_KEY"
            )
        self.raise_for_request(response, "mailchimp")
        if name == "ValidationError":
            raise RejectedBatchError(
                f"invalid_request:{self.redact(body.get('message', ''))[:120]}"
            )
        raise RetryableError(f"mailchimp_{response.status_code}_{name or 'error'}")
