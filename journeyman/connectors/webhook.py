"""A generic webhook: JSON POST of a batch of messages, signed with HMAC-SHA256.

Headers: `X-Journeyman-Timestamp` (epoch seconds) and `X-Journeyman-Signature:
sha256=<hex>` over `<timestamp>.<raw body>` with the shared secret (`journeyman.signing`,
whose `verify_webhook` is the receiver side), plus `Idempotency-Key`.
Body: `{"messages": [OutboundMessage...]}`, each with its `idempotency_key`. A 2xx answer
accepts the batch; it may list per-record outcomes as `{"results": [{"decision_id",
"status": "accepted" | "rejected", "error"}]}`. No scheduling: records are dispatched when due.
Set `receiver_dedups=True` when the receiver de-duplicates by idempotency key (then re-sends
after a crash are harmless); otherwise crashed in-flight records stay in flight.
"""

from __future__ import annotations

from datetime import datetime

from journeyman.connectors.destination import (
    BatchResult,
    DeliveryStatus,
    MessageBatch,
    RejectedBatchError,
)
from journeyman.connectors.http import HttpDestination, Secret, dumps, loads, require
from journeyman.connectors.pacing import RateLimit
from journeyman.signing import webhook_headers


class WebhookDestination(HttpDestination):
    """POSTs signed JSON batches to a URL of your choice."""

    schedule_window = None

    def __init__(
        self,
        name: str = "webhook",
        *,
        url: str,
        secret: str | Secret,
        max_batch_size: int = 100,
        receiver_dedups: bool = False,
        rate_limit: RateLimit | None = None,
        timeout_s: float | tuple[float, float] = (5.0, 30.0),
    ) -> None:
        self.secret = Secret(secret)
        super().__init__(name, base_url=url, timeout_s=timeout_s, secrets=[self.secret])
        self.url = url
        self.max_batch_size = max_batch_size
        self.vendor_dedup = receiver_dedups
        self.default_rate_limit = rate_limit or RateLimit(50, 50, "journeyman default")

    def check(self) -> None:
        require(self.url, "url", self.name)
        require(self.secret, "the signing secret", self.name, "WEBHOOK_SECRET")
        response = self._post(dumps({"messages": []}))
        self.check_response(response, "the webhook (empty batch)")

    def _post(self, body: bytes, key: str | None = None):
        timestamp = str(int(self.wall_clock()))
        headers = {
            "Content-Type": "application/json",
            **webhook_headers(self.secret.reveal(), timestamp, body),
        }
        if key:
            headers["Idempotency-Key"] = key
        return self.request("POST", "", url=self.url, data=body, headers=headers)

    def send_batch(self, batch: MessageBatch, now: datetime) -> BatchResult:
        messages = [m.to_dict() for m in batch.messages()]
        response = self._post(dumps({"messages": messages}), batch.idempotency_key[0])
        if 200 <= response.status_code < 300:
            result = BatchResult.uniform(len(batch), DeliveryStatus.DELIVERED)
            try:
                listed = loads(response.content or b"{}").get("results") or []
            except (ValueError, AttributeError):
                listed = []
            index = {d: i for i, d in enumerate(batch.decision_id)}
            for item in listed:
                i = index.get(item.get("decision_id"))
                if i is not None and item.get("status") == "rejected":
                    result.statuses[i] = DeliveryStatus.FAILED_PERMANENT
                    result.errors[i] = f"rejected:{item.get('error') or ''}"[:200]
            return result
        self.raise_for_request(response, "webhook")
        raise RejectedBatchError(f"rejected_batch:{response.status_code}")
