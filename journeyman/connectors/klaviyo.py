"""Klaviyo: each decision as an event (metric "Journeyman Decision" by default) that triggers a
flow, through `POST /api/event-bulk-create-jobs` (≤ 1000 events per job) or `POST /api/events`
(one per request), plus `import_profiles` (`POST /api/profile-bulk-import-jobs`).

Headers: `Authorization: Klaviyo-API-Key <key>`, `revision`, JSON:API content type. Klaviyo
de-duplicates events by `unique_id` (= the decision id), so re-sending is harmless: records a
crash left in flight, and ambiguous timeouts, are simply sent again — exactly once at Klaviyo.
The flow itself (not the event) decides when the message goes out: events are dispatched when
due (`send_at` travels as the event's `properties.send_at`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from journeyman.connectors.destination import (
    BatchResult,
    DeliveryStatus,
    DestinationError,
    MessageBatch,
    RejectedBatchError,
)
from journeyman.connectors.http import HttpDestination, Secret, dumps, loads, require
from journeyman.connectors.pacing import RateLimit

DEFAULT_REVISION = "2026-07-15"
JSONAPI = "application/vnd.api+json"


class KlaviyoDestination(HttpDestination):
    """Klaviyo events API (flows triggered by journeyman decisions)."""

    default_base_url = "https://a.klaviyo.com"
    vendor_dedup = True  # events are de-duplicated by unique_id (our decision id)

    def __init__(
        self,
        name: str = "klaviyo",
        *,
        api_key: str | Secret,
        metric_name: str = "Journeyman Decision",
        bulk: bool = True,
        revision: str = DEFAULT_REVISION,
        send_ahead: timedelta = timedelta(0),
        base_url: str | None = None,
        timeout_s: float | tuple[float, float] = (5.0, 30.0),
    ) -> None:
        self.api_key = Secret(api_key)
        super().__init__(name, base_url=base_url, timeout_s=timeout_s, secrets=[self.api_key])
        self.metric_name = metric_name
        self.bulk = bulk
        self.revision = revision
        self.max_batch_size = 1000 if bulk else 1
        if not bulk:  # one event per request: wide waves, as FCM and Twilio
            self.default_concurrency = 16
        # a flow with a time delay can hold events: then send ahead by up to `send_ahead`
        self.schedule_window = (timedelta(0), send_ahead) if send_ahead else None
        self.default_rate_limit = (
            RateLimit(150 / 60, 10, "Klaviyo: bulk create events 10/s burst, 150/min steady")
            if bulk
            else RateLimit(3500 / 60, 350, "Klaviyo: create event 350/s burst, 3500/min steady")
        )

    def auth_headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Klaviyo-API-Key {self.api_key.reveal()}",
            "revision": self.revision,
            "Content-Type": JSONAPI,
            "Accept": JSONAPI,
        }

    def check(self) -> None:
        require(self.api_key, "the private API key", self.name, "KLAVIYO_API_KEY")
        self.probe("GET", "/api/accounts", "GET /api/accounts")

    def _event(self, batch: MessageBatch, i: int) -> dict[str, Any]:
        return {
            "properties": {
                "decision_id": batch.decision_id[i],
                "agent": batch.agent[i],
                "message_id": batch.message_id[i],
                "channel": batch.channel[i],
                "subject": batch.subject[i],
                "body": batch.body[i],
                "send_at": batch.send_at[i],
                **(batch.tags[i] or {}),
                # a vendor template: the flow this metric triggers picks it, filled with these
                **({"template_id": batch.template_id[i]} if batch.template_id[i] else {}),
                **(batch.variables[i] or {}),
            },
            "metric": {"data": {"type": "metric", "attributes": {"name": self.metric_name}}},
            "unique_id": batch.decision_id[i],
        }

    def _profile(self, batch: MessageBatch, i: int) -> dict[str, Any]:
        attributes: dict[str, Any] = {"external_id": batch.customer_id[i]}
        key = "phone_number" if batch.channel[i] == "sms" else "email"
        attributes[key] = batch.to[i]
        return {"type": "profile", "attributes": attributes}

    def payload(self, batch: MessageBatch) -> dict[str, Any]:
        if not self.bulk:
            event = self._event(batch, 0)
            event["profile"] = {"data": self._profile(batch, 0)}
            return {"data": {"type": "event", "attributes": event}}
        entries = [
            {
                "type": "event-bulk-create",
                "attributes": {
                    "profile": {"data": self._profile(batch, i)},
                    "events": {"data": [{"type": "event", "attributes": self._event(batch, i)}]},
                },
            }
            for i in range(len(batch))
        ]
        return {
            "data": {
                "type": "event-bulk-create-job",
                "attributes": {"events-bulk-create": {"data": entries}},
            }
        }

    def send_batch(self, batch: MessageBatch, now: datetime) -> BatchResult:
        path = "/api/event-bulk-create-jobs" if self.bulk else "/api/events"
        response = self.request("POST", path, data=dumps(self.payload(batch)))
        if response.status_code == 202:
            return BatchResult.uniform(len(batch), DeliveryStatus.DELIVERED)
        self.raise_for_request(response, "klaviyo")
        raise RejectedBatchError(f"invalid_request:{response.status_code}:{_detail(response)}")

    def import_profiles(self, profiles: Sequence[Mapping[str, Any]]) -> str | None:
        """Upsert profiles (≤ 10,000 per job) with `POST /api/profile-bulk-import-jobs`; returns
        the job id. Each mapping holds profile attributes (email / phone_number / external_id,
        and `properties`)."""
        if len(profiles) > 10_000:
            raise DestinationError("Klaviyo accepts at most 10,000 profiles per import job")
        body = {
            "data": {
                "type": "profile-bulk-import-job",
                "attributes": {
                    "profiles": {
                        "data": [{"type": "profile", "attributes": dict(p)} for p in profiles]
                    }
                },
            }
        }
        response = self.request("POST", "/api/profile-bulk-import-jobs", data=dumps(body))
        self.raise_for_request(response, "klaviyo")
        if response.status_code != 202:
            raise RejectedBatchError(f"invalid_request:{response.status_code}:{_detail(response)}")
        try:
            return loads(response.content)["data"]["id"]
        except (ValueError, KeyError, TypeError):
            return None


def _detail(response: Any) -> str:
    try:
        errors = loads(response.content).get("errors") or [{}]
        return str(errors[0].get("detail") or errors[0].get("code") or "")[:160]
    except (ValueError, AttributeError):
        return ""
