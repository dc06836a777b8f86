"""The destination interface every connector implements, and its public payload types."""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from journeyman.connectors.pacing import RateLimit


class DeliveryStatus(StrEnum):
    """Where one record stands with one destination (the ledger's `status`)."""

    IN_FLIGHT = "in_flight"
    DELIVERED = "delivered"
    FAILED_RETRYABLE = "failed_retryable"
    FAILED_PERMANENT = "failed_permanent"
    #: accepted for a scheduled send, then cancelled at the vendor before it went out
    CANCELLED = "cancelled"


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


MESSAGE_FIELDS = tuple(OutboundMessage.__dataclass_fields__)
_FIELD_SET = frozenset(MESSAGE_FIELDS)


class MessageBatch:
    """Messages as a struct of arrays (one list per OutboundMessage field): the sync engine's
    unit of work, cheap to slice and to build from Arrow without one object per record.

    Built from Arrow (`from_arrow`), a batch keeps the Arrow table and turns a column into a
    Python list only when something reads it, so a destination that sends pre-encoded
    fragments never pays for the columns it does not use."""

    __slots__ = (*MESSAGE_FIELDS, "encoded", "_source")

    def __init__(self, encoded: Any = None, **columns: list[Any]) -> None:
        #: optional per-record payload fragments a destination pre-encoded column-wise
        #: (`Destination.encode_arrow`: a list of str or a pyarrow string Array), kept in step
        #: through slice / take
        self.encoded = encoded
        self._source = None
        n = len(columns["decision_id"])
        for name in MESSAGE_FIELDS:
            values = columns.get(name)
            if values is None:
                values = [{} if name == "tags" else None] * n
            elif len(values) != n:
                raise ValueError(f"column {name} has {len(values)} values, expected {n}")
            setattr(self, name, values)

    def __getattr__(self, name: str) -> Any:
        # only reached for a column not materialized yet (an unset slot) of an Arrow batch
        if name not in _FIELD_SET:
            raise AttributeError(name)
        source = object.__getattribute__(self, "_source")
        if source is None:
            raise AttributeError(name)
        if name in source.schema.names:
            values = source.column(name).to_pylist()
            if name == "tags":
                values = [dict(t) if t else {} for t in values]
        else:
            values = [{} if name == "tags" else None] * source.num_rows
        setattr(self, name, values)
        return values

    def __len__(self) -> int:
        if self._source is not None:
            return self._source.num_rows
        return len(self.decision_id)

    @classmethod
    def _over(cls, source: Any, encoded: Any) -> MessageBatch:
        batch = cls.__new__(cls)
        batch.encoded = encoded
        batch._source = source
        return batch

    @classmethod
    def from_messages(cls, messages: Sequence[OutboundMessage]) -> MessageBatch:
        return cls(**{f: [getattr(m, f) for m in messages] for f in MESSAGE_FIELDS})

    @classmethod
    def from_arrow(cls, table: Any, encoded: Any = None) -> MessageBatch:
        """From a pyarrow Table / RecordBatch with (a superset of) the message columns; the
        columns become Python lists lazily, on first use."""
        if "decision_id" not in table.schema.names:
            raise ValueError("column decision_id is missing")
        return cls._over(table, encoded)

    @property
    def arrow(self) -> Any | None:
        """The Arrow table behind this batch (None when built from Python lists)."""
        return self._source

    def filter(self, mask: Any) -> MessageBatch:
        """The records where `mask` (a pyarrow boolean array) is true (Arrow batches)."""
        if hasattr(mask, "combine_chunks"):
            mask = mask.combine_chunks()
        if self._source is None or isinstance(self.encoded, list):
            return self.take([i for i, keep in enumerate(mask.to_pylist()) if keep])
        encoded = None if self.encoded is None else self.encoded.filter(mask)
        return MessageBatch._over(self._source.filter(mask), encoded)

    def take(self, indices: Sequence[int]) -> MessageBatch:
        encoded = None if self.encoded is None else _take(self.encoded, indices)
        if self._source is not None:
            return MessageBatch._over(self._source.take(list(indices)), encoded)
        return MessageBatch(
            encoded, **{f: [getattr(self, f)[i] for i in indices] for f in MESSAGE_FIELDS}
        )

    def slice(self, start: int, stop: int) -> MessageBatch:
        encoded = None if self.encoded is None else _slice(self.encoded, start, stop)
        if self._source is not None:
            stop = min(stop, self._source.num_rows)
            return MessageBatch._over(self._source.slice(start, max(0, stop - start)), encoded)
        return MessageBatch(encoded, **{f: getattr(self, f)[start:stop] for f in MESSAGE_FIELDS})

    def messages(self) -> list[OutboundMessage]:
        cols = [getattr(self, f) for f in MESSAGE_FIELDS]
        return [OutboundMessage(*row) for row in zip(*cols, strict=True)]


def _take(values: Any, indices: Sequence[int]) -> Any:
    if isinstance(values, list):
        return [values[i] for i in indices]
    return values.take(list(indices))


def _slice(values: Any, start: int, stop: int) -> Any:
    if isinstance(values, list):
        return values[start:stop]
    stop = min(stop, len(values))
    return values.slice(start, max(0, stop - start))


class BatchResult:
    """Per-record outcome of one request, as parallel lists (no object per record)."""

    __slots__ = ("statuses", "errors", "provider_ids")

    def __init__(
        self,
        statuses: list[DeliveryStatus],
        errors: list[str | None] | None = None,
        provider_ids: list[str | None] | None = None,
    ) -> None:
        self.statuses = statuses
        self.errors = errors if errors is not None else [None] * len(statuses)
        self.provider_ids = provider_ids if provider_ids is not None else [None] * len(statuses)

    def __len__(self) -> int:
        return len(self.statuses)

    @classmethod
    def uniform(
        cls,
        n: int,
        status: DeliveryStatus,
        error: str | None = None,
        provider_id: str | None = None,
    ) -> BatchResult:
        return cls([status] * n, [error] * n, [provider_id] * n)

    @classmethod
    def from_results(cls, results: Sequence[DeliveryResult]) -> BatchResult:
        return cls(
            [r.status for r in results],
            [r.error for r in results],
            [r.provider_message_id for r in results],
        )

    def extend(self, other: BatchResult) -> None:
        self.statuses.extend(other.statuses)
        self.errors.extend(other.errors)
        self.provider_ids.extend(other.provider_ids)


class DestinationError(RuntimeError):
    """The destination cannot be used at all (bad configuration or credentials)."""


class AuthError(DestinationError):
    """The vendor rejected the credentials (401/403): nothing more can be sent this run."""


class RetryableError(RuntimeError):
    """The request failed as a whole and may be retried.

    `code` is a short error code for the ledger; `wait_s` the vendor-named wait (Retry-After,
    X-RateLimit-Reset) if any; `ambiguous` is True when the vendor may have acted on the
    request (timeout or connection lost after sending) — such a request is only repeated when
    the destination de-duplicates or can say what it holds (reconcile).
    """

    def __init__(self, code: str, *, wait_s: float | None = None, ambiguous: bool = False) -> None:
        super().__init__(code)
        self.code = code
        self.wait_s = wait_s
        self.ambiguous = ambiguous


class RejectedBatchError(RuntimeError):
    """The vendor rejected the whole request as invalid (a 4xx validation error).

    On a multi-record request the engine splits it to find the bad records; on one record
    it is that record's permanent failure.
    """

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class Destination(abc.ABC):
    """A place decisions are delivered to: validate configuration, then send batches.

    Scheduling: a destination that can hold a message until its `send_at` declares the lead
    times it accepts in `schedule_window` (min, max ahead of now; max None = unbounded).
    Records due within the sync's dispatch lead are sent now; records the vendor can schedule
    are sent ahead; the rest are deferred (left pending) for a later dispatch run.
    """

    name: str
    max_batch_size: int = 1000
    schedule_window: tuple[timedelta, timedelta | None] | None = None
    default_rate_limit: RateLimit | None = None
    #: True when re-sending a record is harmless because the vendor de-duplicates it.
    vendor_dedup: bool = False
    #: True when `reconcile` can ask the vendor what it holds (so ambiguous sends are checked).
    can_reconcile: bool = False
    #: True when the vendor lookup needs the message (recipient, body), not just its id: the
    #: engine then reconciles in-flight records as they reappear in the run's input.
    reconcile_needs_content: bool = False

    def can_schedule(self, send_at: datetime, now: datetime) -> bool:
        """Whether the vendor can hold a message due at `send_at` (both naive UTC) from `now`."""
        if self.schedule_window is None:
            return False
        low, high = self.schedule_window
        lead = send_at - now
        return lead >= low and (high is None or lead <= high)

    #: how long before a scheduled send the vendor can still guarantee a cancellation
    cancel_cutoff: timedelta = timedelta(0)

    def cancel_group(self, group_id: str) -> None:
        """Ask the vendor to cancel the scheduled sends of one group (`send_group`) that are not
        yet due; raise DestinationError when it cannot. The default cannot."""
        raise DestinationError(
            f"destination {self.name!r} ({type(self).__name__}) cannot cancel scheduled sends"
        )

    def send_group(self) -> str | None:
        """The vendor's id grouping this run's sends (SendGrid's `batch_id`), recorded in the
        ledger so they can be cancelled together; None when the vendor has none."""
        return None

    def encode_arrow(self, table: Any, now: datetime) -> Any | None:
        """Optionally pre-encode each record's payload fragment column-wise (a pyarrow string
        array, one per row of `table`), for destinations whose hot path is JSON building.
        The default encodes nothing."""
        return None

    def send_batch(self, batch: MessageBatch, now: datetime) -> BatchResult:
        """Deliver one batch (≤ max_batch_size) at the run's clock `now`.

        Raises RetryableError / RejectedBatchError / AuthError for whole-request failures;
        the default delegates to `send`.
        """
        results = self.send(batch.messages())
        if len(results) != len(batch):
            raise RuntimeError(
                f"destination {self.name} returned {len(results)} results for {len(batch)} records"
            )
        return BatchResult.from_results(results)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections (HTTP sessions)."""

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

    def reconcile_batch(self, batch: MessageBatch) -> dict[str, DeliveryStatus]:
        """`reconcile` for records whose messages are at hand (vendor lookups by content)."""
        return self.reconcile(batch.decision_id)
