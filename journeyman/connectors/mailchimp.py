"""Mailchimp Transactional (Mandrill) `POST /messages/send`, API key in the body (`key`).

One request carries up to `max_batch_size` recipients sharing a `send_at`; each recipient's
subject and body are merge variables (`*|JM_SUBJECT|*`, `*|JM_BODY|*`) and its decision id is
`recipient_metadata` (echoed in webhooks). `send_at` (`YYYY-MM-DD HH:MM:SS` UTC) schedules a
future send. The answer has one status per recipient: `rejected` / `invalid` are permanent.
A message with a vendor `template_id` goes to `POST /messages/send-template` (`template_name`),
its variables as the recipient's merge variables. No idempotency key and no lookup by metadata:
a record whose outcome is unknown stays unknown.
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
from journeyman.connectors.grouping import send_groups
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

    def payload(
        self, batch: MessageBatch, send_at: str | None, template: str | None = None
    ) -> dict[str, Any]:
        """The request body; with a `template` (name), for `/messages/send-template`."""
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
                        *({"name": k, "content": v} for k, v in sorted((var or {}).items())),
                    ],
                }
                for to, s, b, var in zip(
                    batch.to, batch.subject, batch.body, batch.variables, strict=True
                )
            ],
            "recipient_metadata": [
                {"rcpt": to, "values": {"decision_id": d}}
                for to, d in zip(batch.to, batch.decision_id, strict=True)
            ],
        }
        if self.from_name:
            message["from_name"] = self.from_name
        body: dict[str, Any] = {"key": self.api_key.reveal(), "message": message}
        if template is not None:
            del message["subject"], message["text"]  # the template's own
            body["template_name"] = template
            body["template_content"] = []
        if send_at:
            body["send_at"] = send_at
        return body

    def send_batch(self, batch: MessageBatch, now: datetime) -> BatchResult:
        # one request per (template, send time, distinct recipient addresses): merge vars are
        # keyed by rcpt
        groups: dict[tuple[str | None, str, int], list[int]] = {}
        seen: dict[tuple[str | None, str, str], int] = {}
        for i, (to, at, template) in enumerate(
            zip(batch.to, batch.send_at, batch.template_id, strict=True)
        ):
            key = (template, at, to.lower())
            seen[key] = n = seen.get(key, 0) + 1
            groups.setdefault((template, at, n), []).append(i)
        return send_groups(batch, groups, lambda key, part: self._send(part, key[0], key[1], now))

    def _send(
        self, batch: MessageBatch, template: str | None, at: str, now: datetime
    ) -> BatchResult:
        when = parse_send_at(at)
        send_at = when.strftime("%Y-%m-%d %H:%M:%S") if when > now else None
        path = "/messages/send-template" if template else "/messages/send"
        response = self.request(
            "POST", path, data=dumps(self.payload(batch, send_at, template)), headers=self._headers
        )
        if response.status_code != 200:
            self._raise(response)
        result = BatchResult.uniform(len(batch), DeliveryStatus.FAILED_RETRYABLE)
        by_email = {}
        for item in loads(response.content):
            by_email.setdefault(str(item.get("email", "")).lower(), item)
        for i, to in enumerate(batch.to):
            item = by_email.get(to.lower())
            if item is None:  # accepted request, no word on this recipient: may be sent
                result.statuses[i] = DeliveryStatus.UNKNOWN
                result.errors[i] = "outcome_unknown_missing_in_response"
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
