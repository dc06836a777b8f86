"""The destination interface every connector implements, and its public payload types."""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class DeliveryStatus(StrEnum):
    """Where one record stands with one destination (the ledger's `status`)."""

    IN_FLIGHT = "in_flight"
    DELIVERED = "delivered"
    FAILED_RETRYABLE = "failed_retryable"
    FAILED_PERMANENT = "failed_permanent"


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One rendered message for one customer, as handed to a destination.

    `send_at` is ISO 8601 UTC (`2026-11-24T14:00:00Z`); `tags` describe the creative (offer type,
    tone, value proposition, product category) and travel with it.
    """

    decision_id: str
    idempotency_key: str
    agent: str
    customer_id: str
    channel: str
    message_id: str
    to: str
    subject: str | None
    body: str
    send_at: str
    tags: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OutboundMessage:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What the destination said about one record."""

    decision_id: str
    status: DeliveryStatus
    error: str | None = None
    provider_message_id: str | None = None


class DestinationError(RuntimeError):
    """The destination cannot be used at all (bad configuration or credentials)."""


class Destination(abc.ABC):
    """A place decisions are delivered to: validate configuration, then send batches."""

    name: str
    max_batch_size: int = 1000

    @abc.abstractmethod
    def check(self) -> None:
        """Validate configuration and credentials without sending; raise DestinationError."""

    @abc.abstractmethod
    def send(self, batch: Sequence[OutboundMessage]) -> list[DeliveryResult]:
        """Deliver one batch (≤ max_batch_size); return exactly one result per record."""

    def reconcile(self, decision_ids: Iterable[str]) -> dict[str, DeliveryStatus]:
        """Settle records a crashed run left in flight, by asking the destination what it holds.

        Returns a status for each id the destination can vouch for; ids it cannot are left in
        flight (never blindly re-sent). The default vouches for none.
        """
        return {}
