"""Vendor webhook payloads → rows of raw.message_events (pure functions, no I/O)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

EVENT_TYPES = frozenset({"delivered", "open", "click", "bounce", "unsubscribe", "complaint"})
MAX_FIELD_CHARS = 256

SENDGRID_EVENT_TYPES: Mapping[str, str] = {
    "delivered": "delivered",
    "open": "open",
    "click": "click",
    "bounce": "bounce",
    "dropped": "bounce",
    "spamreport": "complaint",
    "unsubscribe": "unsubscribe",
    "group_unsubscribe": "unsubscribe",
}
"""SendGrid event → journeyman event type; others (processed, deferred, …) are ignored."""

TWILIO_STATUSES: Mapping[str, str] = {
    "delivered": "delivered",
    "undelivered": "bounce",
    "failed": "bounce",
    "read": "open",
}
"""Twilio MessageStatus → journeyman event type; others (queued, sent, …) are ignored."""


class MalformedPayload(ValueError):
    """A verified request whose body is not the documented shape; the message says what."""


@dataclass(frozen=True, slots=True)
class MessageEvent:
    """One row of raw.message_events before _loaded_at is stamped."""

    event_id: str
    decision_id: str | None
    customer_id: str | None
    channel: str
    event_type: str
    occurred_at: datetime  # naive UTC


@dataclass
class ParsedEvents:
    """The rows a payload yields, plus how many of its events were ignored or invalid."""

    rows: list[MessageEvent] = field(default_factory=list)
    ignored: int = 0
    invalid: int = 0


def utc_naive(epoch_seconds: float) -> datetime:
    """Epoch seconds → naive UTC datetime (the warehouse's timestamp convention)."""
    return datetime.fromtimestamp(epoch_seconds, UTC).replace(tzinfo=None)


def _short_text(value: Any) -> str | None:
    """A non-empty string (ints become text) of at most MAX_FIELD_CHARS, else None."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    return text if 0 < len(text) <= MAX_FIELD_CHARS else None


def sendgrid_events(payload: Any) -> ParsedEvents:
    """SendGrid Event Webhook JSON (an array of events) → rows; bad events are skipped."""
    if not isinstance(payload, list):
        raise MalformedPayload("the SendGrid Event Webhook body must be a JSON array of events")
    parsed = ParsedEvents()
    for event in payload:
        if not isinstance(event, dict):
            parsed.invalid += 1
            continue
        event_type = SENDGRID_EVENT_TYPES.get(str(event.get("event", "")))
        if event_type is None:
            parsed.ignored += 1
            continue
        event_id = _short_text(event.get("sg_event_id"))
        ts = event.get("timestamp")
        if (
            event_id is None
            or isinstance(ts, bool)
            or not isinstance(ts, int | float)
            or not math.isfinite(ts)
            or not 0 <= ts < 1e11
        ):
            parsed.invalid += 1
            continue
        parsed.rows.append(
            MessageEvent(
                event_id=event_id,
                decision_id=_short_text(event.get("decision_id")),
                customer_id=_short_text(event.get("customer_id")),
                channel="email",
                event_type=event_type,
                occurred_at=utc_naive(ts),
            )
        )
    return parsed


def twilio_status_event(
    form: Mapping[str, Sequence[str]], query: Mapping[str, Sequence[str]], received_at: float
) -> ParsedEvents:
    """A Twilio status callback → at most one row, keyed MessageSid:status; others ignored."""

    def first(source: Mapping[str, Sequence[str]], name: str) -> str | None:
        values = source.get(name) or []
        return _short_text(values[0]) if values else None

    status = (first(form, "MessageStatus") or first(form, "SmsStatus") or "").lower()
    sid = first(form, "MessageSid") or first(form, "SmsSid")
    event_type = TWILIO_STATUSES.get(status)
    if sid is None or event_type is None:  # other statuses, or not a message callback at all
        return ParsedEvents(ignored=1)
    done = carrier_done_date(first(form, "RawDlrDoneDate"))
    row = MessageEvent(
        event_id=f"{sid}:{status}",
        decision_id=first(query, "decision_id"),
        customer_id=first(query, "customer_id"),
        channel="sms",
        event_type=event_type,
        occurred_at=done if done is not None else utc_naive(received_at),
    )
    return ParsedEvents(rows=[row])


def carrier_done_date(value: str | None) -> datetime | None:
    """Twilio's `RawDlrDoneDate` (the carrier's delivery-receipt time, `YYMMDDhhmm`, taken as
    UTC) → naive UTC datetime; None when absent or not that shape."""
    if value is None or len(value) != 10 or not value.isdigit():
        return None
    try:
        return datetime.strptime("20" + value, "%Y%m%d%H%M")
    except ValueError:
        return None


def _occurred_at(value: Any) -> datetime:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return utc_naive(value)
    if isinstance(value, str) and len(value) <= 64:
        text = value.strip()
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        return moment
    raise ValueError("occurred_at must be ISO 8601 or epoch seconds")


def generic_events(payload: Any) -> ParsedEvents:
    """journeyman's webhook JSON ``{"events": [...]}`` → rows; any invalid event fails all."""
    if not isinstance(payload, dict) or not isinstance(payload.get("events"), list):
        raise MalformedPayload('the body must be a JSON object {"events": [...]}')
    parsed = ParsedEvents()
    for index, event in enumerate(payload["events"]):
        if not isinstance(event, dict):
            raise MalformedPayload(f"events[{index}] is not an object")
        event_id = _short_text(event.get("event_id"))
        channel = _short_text(event.get("channel"))
        event_type = _short_text(event.get("event_type"))
        if event_id is None or channel is None:
            raise MalformedPayload(f"events[{index}] needs a non-empty event_id and channel")
        if event_type is None or event_type.lower() not in EVENT_TYPES:
            raise MalformedPayload(
                f"events[{index}].event_type must be one of {', '.join(sorted(EVENT_TYPES))}"
            )
        try:
            occurred_at = _occurred_at(event.get("occurred_at"))
        except (ValueError, OverflowError, OSError):
            raise MalformedPayload(
                f"events[{index}].occurred_at must be ISO 8601 (UTC) or epoch seconds"
            ) from None
        parsed.rows.append(
            MessageEvent(
                event_id=event_id,
                decision_id=_short_text(event.get("decision_id")),
                customer_id=_short_text(event.get("customer_id")),
                channel=channel.lower(),
                event_type=event_type.lower(),
                occurred_at=occurred_at,
            )
        )
    return parsed
