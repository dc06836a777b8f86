"""Braze: `/users/track` (attribute-driven Canvases) or `/campaigns/trigger/schedule/create`
(API-triggered campaigns, scheduled per send time). Bearer auth; the REST endpoint depends on
the workspace's cluster (e.g. https://rest.iad-01.braze.com, https://rest.fra-01.braze.eu).

- `mode="track"`: one attributes object per decision (≤ 75 per request) writing
  `jm_decision_id`, `jm_message_id`, `jm_subject`, `jm_body`, `jm_send_at`; a Canvas triggered
  on `jm_decision_id` changing sends the message. Writing the same values again changes nothing,
  so re-sending is harmless (vendor de-duplication by state).
- `mode="schedule"`: ≤ 50 recipients per request sharing one `schedule.time`, each with
  `trigger_properties` (decision id, subject, body); due records go through
  `/campaigns/trigger/send` instead. Not idempotent: crashed in-flight records stay in flight.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from journeyman.connectors.destination import (
    BatchResult,
    DeliveryStatus,
    DestinationError,
    MessageBatch,
    RejectedBatchError,
)
from journeyman.connectors.grouping import send_groups
from journeyman.connectors.http import HttpDestination, Secret, dumps, loads, parse_send_at, require
from journeyman.connectors.pacing import RateLimit

TRACK_LIMIT = 75
RECIPIENT_LIMIT = 50


class BrazeDestination(HttpDestination):
    """Braze REST API destination."""

    default_base_url = "https://rest.iad-01.braze.com"

    def __init__(
        self,
        name: str = "braze",
        *,
        api_key: str | Secret,
        mode: str = "track",
        campaign_id: str | None = None,
        base_url: str | None = None,
        timeout_s: float | tuple[float, float] = (5.0, 30.0),
    ) -> None:
        self.api_key = Secret(api_key)
        super().__init__(name, base_url=base_url, timeout_s=timeout_s, secrets=[self.api_key])
        if mode not in ("track", "schedule"):
            raise DestinationError(f"destination {name!r}: mode must be 'track' or 'schedule'")
        self.mode = mode
        self.campaign_id = campaign_id
        if mode == "track":
            self.max_batch_size = TRACK_LIMIT
            self.vendor_dedup = True  # re-writing the same attributes is harmless
            self.schedule_window = (timedelta(0), None)  # the Canvas reads jm_send_at
            self.default_rate_limit = RateLimit(1000, 3000, "Braze: /users/track 3,000 per 3 s")
        else:
            self.max_batch_size = RECIPIENT_LIMIT
            self.schedule_window = (timedelta(0), None)
            self.default_rate_limit = RateLimit(
                250_000 / 3600, 100, "Braze: 250,000 requests per hour (default bucket)"
            )
        self._headers = {"Content-Type": "application/json"}

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key.reveal()}"}

    def check(self) -> None:
        require(self.api_key, "the REST API key", self.name, "BRAZE_API_KEY")
        if self.mode == "schedule":
            require(self.campaign_id, "campaign_id", self.name)
        self.probe("GET", "/campaigns/list", "GET /campaigns/list", params={"page": "0"})

    def send_batch(self, batch: MessageBatch, now: datetime) -> BatchResult:
        if self.mode == "track":
            return self._track(batch)
        # one request per (campaign, send time): a message's template id is its campaign
        groups: dict[tuple[str | None, str], list[int]] = {}
        for i, (at, template) in enumerate(zip(batch.send_at, batch.template_id, strict=True)):
            groups.setdefault((template or self.campaign_id, at), []).append(i)
        return send_groups(
            batch,
            groups,
            lambda key, part: self._schedule(part, parse_send_at(key[1]), now, key[0]),
        )

    def _track(self, batch: MessageBatch) -> BatchResult:
        attributes = [
            {
                "external_id": c,
                "jm_decision_id": d,
                "jm_message_id": m,
                "jm_subject": s,
                "jm_body": b,
                "jm_send_at": at,
                **({"jm_template_id": t} if t else {}),
                **({"jm_variables": v} if v else {}),
            }
            for c, d, m, s, b, at, t, v in zip(
                batch.customer_id,
                batch.decision_id,
                batch.message_id,
                batch.subject,
                batch.body,
                batch.send_at,
                batch.template_id,
                batch.variables,
                strict=True,
            )
        ]
        response = self.request(
            "POST", "/users/track", data=dumps({"attributes": attributes}), headers=self._headers
        )
        self.raise_for_request(response, "braze")
        body = _json(response)
        if response.status_code >= 400 and not body.get("errors"):
            raise RejectedBatchError(f"braze_{response.status_code}:{body.get('message', '')}")
        result = BatchResult.uniform(len(batch), DeliveryStatus.DELIVERED)
        for error in body.get("errors") or []:  # partial failure: per-object errors by index
            i = error.get("index")
            if isinstance(i, int) and 0 <= i < len(batch):
                result.statuses[i] = DeliveryStatus.FAILED_PERMANENT
                result.errors[i] = f"invalid_attributes:{error.get('type', '')}"[:200]
        return result

    def _schedule(
        self, batch: MessageBatch, when: datetime, now: datetime, campaign_id: str | None
    ) -> BatchResult:
        recipients = [
            {
                "external_user_id": c,
                "trigger_properties": {
                    "decision_id": d,
                    "message_id": m,
                    "subject": s or "",
                    "body": b,
                    **(v or {}),
                },
            }
            for c, d, m, s, b, v in zip(
                batch.customer_id,
                batch.decision_id,
                batch.message_id,
                batch.subject,
                batch.body,
                batch.variables,
                strict=True,
            )
        ]
        payload: dict[str, Any] = {"campaign_id": campaign_id, "recipients": recipients}
        if when > now:
            payload["schedule"] = {
                "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "in_local_time": False,
            }
            path = "/campaigns/trigger/schedule/create"
        else:
            path = "/campaigns/trigger/send"
        response = self.request("POST", path, data=dumps(payload), headers=self._headers)
        self.raise_for_request(response, "braze")
        body = _json(response)
        if response.status_code >= 400:
            raise RejectedBatchError(
                f"braze_{response.status_code}:{body.get('message', '')}"[:200]
            )
        provider = body.get("schedule_id") or body.get("dispatch_id")
        return BatchResult.uniform(len(batch), DeliveryStatus.DELIVERED, provider_id=provider)


def _json(response: Any) -> dict[str, Any]:
    try:
        body = loads(response.content or b"{}")
        return body if isinstance(body, dict) else {}
    except ValueError:
        return {}
