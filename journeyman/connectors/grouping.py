"""One batch sent as several requests (one per template, send time, ...), without ever
turning an accepted request's records into a re-send."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence

from journeyman.connectors.destination import (
    BatchResult,
    DeliveryStatus,
    MessageBatch,
    RejectedBatchError,
    RetryableError,
)


def send_groups(
    batch: MessageBatch,
    groups: Mapping[Hashable, Sequence[int]],
    send: Callable[[Hashable, MessageBatch], BatchResult],
) -> BatchResult:
    """Send each group of record positions as its own request. Until one request is accepted a
    failure is the whole batch's (raised, so the engine retries or rejects it as one); after
    that a failing group settles only its own records — `unknown` when the vendor may hold them,
    `failed_retryable` otherwise — and the accepted ones stay accepted."""
    result = BatchResult.uniform(len(batch), DeliveryStatus.FAILED_RETRYABLE)
    accepted = False
    for key, indices in groups.items():
        try:
            part = send(key, batch.take(list(indices)))
        except RetryableError as exc:
            if not accepted:
                raise
            status = DeliveryStatus.UNKNOWN if exc.ambiguous else DeliveryStatus.FAILED_RETRYABLE
            part = BatchResult.uniform(len(indices), status, exc.code)
        except RejectedBatchError as exc:
            if not accepted:
                raise
            status = (
                DeliveryStatus.FAILED_PERMANENT
                if exc.per_record and len(indices) == 1
                else (DeliveryStatus.FAILED_RETRYABLE)
            )
            part = BatchResult.uniform(len(indices), status, exc.code)
        accepted = True
        result.put(indices, part)
    return result
