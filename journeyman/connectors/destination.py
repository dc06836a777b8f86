"""The destination interface every connector implements, and its public payload types."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import pyarrow as pa

from journeyman.connectors.pacing import RateLimit


class DeliveryStatus(StrEnum):
    """Where one record stands with one destination (the ledger's `status`)."""

    #: its request is on the wire: marked just before it is sent, settled just after
    IN_FLIGHT = "in_flight"
    #: the vendor may or may not hold it (a lost response, a crash): never sent again until a
    #: lookup shows the vendor does not hold it, or an operator resolves it
    UNKNOWN = "unknown"
    DELIVERED = "delivered"
    FAILED_RETRYABLE = "failed_retryable"
    FAILED_PERMANENT = "failed_permanent"
    #: accepted for a scheduled send, then cancelled at the vendor before it went out
    CANCELLED = "cancelled"
    #: its send window closed before it could be sent (never sent late)
    EXPIRED = "expired"
    #: consent withdrawn or an unsubscribe after deciding: not sent
    SUPPRESSED = "suppressed"


#: statuses after which a record is never sent again
FINAL_STATUSES = frozenset(
    {
        DeliveryStatus.DELIVERED,
        DeliveryStatus.FAILED_PERMANENT,
        DeliveryStatus.CANCELLED,
        DeliveryStatus.EXPIRED,
        DeliveryStatus.SUPPRESSED,
    }
)


class Lookup(StrEnum):
    """What a vendor lookup says about one record sent earlier."""

    HELD = "held"  # the vendor has it: delivered
    ABSENT = "absent"  # a definitive answer that the vendor does not have it
    UNKNOWN = "unknown"  # no definitive answer (failed, throttled, not indexed yet)


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
    #: the latest instant it may still be sent (same format as send_at); None = no limit
    send_until: str | None = None
    #: the vendor's own template (SendGrid dynamic template, Mailchimp template, Braze
    #: campaign, Klaviyo metric) instead of `body`; `variables` fill it
    template_id: str | None = None
    variables: dict[str, str] = field(default_factory=dict)

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
_MAPS = frozenset({"tags", "variables"})


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
                values = [{} if name in _MAPS else None] * n
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
            if name in _MAPS:
                values = [dict(t) if t else {} for t in values]
        else:
            values = [{} if name in _MAPS else None] * source.num_rows
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
            rows = pa.array(list(indices), pa.int64())  # typed: an empty list is no null array
            return MessageBatch._over(self._source.take(rows), encoded)
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
    return values.take(pa.array(list(indices), pa.int64()))


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

    def put(self, indices: Sequence[int], other: BatchResult) -> None:
        """Take `other`'s outcomes for the records at `indices` (a sub-request's answer)."""
        for j, i in enumerate(indices):
            self.statuses[i] = other.statuses[j]
            self.errors[i] = other.errors[j]
            self.provider_ids[i] = other.provider_ids[j]

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
    """The vendor refused the whole request as invalid (a 4xx validation error): nothing of
    it was accepted.

    `per_record`: the rejection is about some records' content (a bad address, an oversize
    body), not the destination's settings; `indices` names those records when the vendor says
    which (positions in the batch). The engine fails the named records and sends the rest;
    a per-record rejection naming none is searched by halving, within a budget; a rejection
    that is not per record stops the sync (the settings are wrong, retrying cannot help).
    """

    def __init__(self, code: str, *, per_record: bool = True, indices: Sequence[int] = ()) -> None:
        super().__init__(code)
        self.code = code
        self.per_record = per_record
        self.indices = list(indices)


class LookupUnavailable(DestinationError):
    """The vendor's lookup cannot be used (not enabled on the account, no permission): records
    whose outcome is unknown stay unknown."""


class Destination(abc.ABC):
    """A place decisions are delivered to: validate configuration, then send batches.

    A destination implements `check` and `send_batch` (the one send path) and, when the vendor
    can say what it holds, `lookup` (the one reconcile path). What it can do is declared in the
    capability attributes below (on the class; the few that depend on settings are set per
    instance in `__init__`), which the sync engine reads; nothing else is optional.

    Scheduling: a destination that can hold a message until its `send_at` declares the lead
    times it accepts in `schedule_window` (min, max ahead of now; max None = unbounded).
    Records due within the sync's dispatch lead are sent now; records the vendor can schedule
    are sent ahead; the rest are deferred (left pending) for a later dispatch run.
    """

    name: str
    max_batch_size: int = 1000
    schedule_window: tuple[timedelta, timedelta | None] | None = None
    default_rate_limit: RateLimit | None = None
    #: requests in flight at once in a sync (threads). Each wave of that many requests costs
    #: one ledger commit, so a vendor taking one message per request wants more of them;
    #: `concurrency` in destinations.yml overrides it
    default_concurrency: int = 2
    #: re-sending a record is harmless because the vendor de-duplicates it (by our id)
    vendor_dedup: bool = False
    #: `lookup` can say whether the vendor holds a record sent earlier
    can_lookup: bool = False
    #: the lookup needs the message (recipient, body), not only its decision id: records whose
    #: outcome is unknown are looked up as they reappear in the run's input
    lookup_needs_content: bool = False
    #: how long after a send the vendor's lookup can be trusted to show it (indexing lag): an
    #: "absent" answer about a younger attempt is not evidence
    lookup_lag: timedelta = timedelta(0)
    #: the vendor's documented pace for lookups (None: no limit)
    lookup_rate_limit: RateLimit | None = None
    #: `cancel_group` can withdraw a run's scheduled sends at the vendor
    can_cancel: bool = False
    #: how long before a scheduled send the vendor can still guarantee a cancellation
    cancel_cutoff: timedelta = timedelta(0)

    def can_schedule(self, send_at: datetime, now: datetime) -> bool:
        """Whether the vendor can hold a message due at `send_at` (both naive UTC) from `now`."""
        if self.schedule_window is None:
            return False
        low, high = self.schedule_window
        lead = send_at - now
        return lead >= low and (high is None or lead <= high)

    def prepare(self, now: datetime) -> None:  # noqa: B027 - optional hook
        """Auxiliary set-up once per sync run, before any record is marked (e.g. SendGrid's
        batch id); raise DestinationError: the sync then stops with nothing marked failed."""

    def send_group(self) -> str | None:
        """The vendor's id grouping this run's sends (SendGrid's `batch_id`), recorded on every
        record it covers so they can be cancelled together; None when the vendor has none."""
        return None

    def cancel_group(self, group_id: str) -> None:
        """Ask the vendor to cancel the scheduled sends of one group (`send_group`) that are not
        yet due; raise DestinationError when it cannot. The default cannot."""
        raise DestinationError(
            f"destination {self.name!r} ({type(self).__name__}) cannot cancel scheduled sends"
        )

    def encode_arrow(self, table: Any, now: datetime) -> Any | None:
        """Optionally pre-encode each record's payload fragment column-wise (a pyarrow string
        array, one per row of `table`), for destinations whose hot path is JSON building.
        The default encodes nothing."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections (HTTP sessions)."""

    @abc.abstractmethod
    def check(self) -> None:
        """Validate configuration and credentials without sending; raise DestinationError."""

    @abc.abstractmethod
    def send_batch(self, batch: MessageBatch, now: datetime) -> BatchResult:
        """Deliver one batch (≤ max_batch_size) at the run's clock `now`: one result per record.

        Raises RetryableError (`ambiguous` when the vendor may have acted), RejectedBatchError
        (the request was invalid as a whole) or AuthError for whole-request failures.
        """

    def lookup(self, batch: MessageBatch) -> dict[str, Lookup]:
        """What the vendor holds of these records sent earlier (only when `can_lookup`).

        Records missing from the answer are unknown. Raise RetryableError when throttled
        (the engine waits or stops looking) and LookupUnavailable when the lookup cannot be
        used at all. The default knows nothing.
        """
        return {}

    def send(self, messages: Sequence[OutboundMessage]) -> list[DeliveryResult]:
        """Send without the engine (no ledger, no retries): whole-request failures become
        results (an ambiguous one `unknown`)."""
        batch = MessageBatch.from_messages(messages)
        try:
            result = self.send_batch(batch, utc_now())
        except RetryableError as exc:
            status = DeliveryStatus.UNKNOWN if exc.ambiguous else DeliveryStatus.FAILED_RETRYABLE
            result = BatchResult.uniform(len(batch), status, exc.code)
        except RejectedBatchError as exc:
            result = BatchResult.uniform(len(batch), DeliveryStatus.FAILED_PERMANENT, exc.code)
        if len(result) != len(batch):
            raise RuntimeError(
                f"destination {self.name} returned {len(result)} results for {len(batch)} records"
            )
        return [
            DeliveryResult(d, st, e, p)
            for d, st, e, p in zip(
                batch.decision_id, result.statuses, result.errors, result.provider_ids, strict=True
            )
        ]


def utc_now() -> datetime:
    """The wall clock as naive UTC (the ledger's convention)."""
    return datetime.now(UTC).replace(tzinfo=None)
