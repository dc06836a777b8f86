"""Sending one request: pacing, retries, and what a refused request means for its records.

A request whose outcome is uncertain (a read timeout, a connection lost after sending) is
never repeated unless the vendor de-duplicates: its records become `unknown`.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from journeyman.connectors.destination import (
    AuthError,
    BatchResult,
    DeliveryStatus,
    Destination,
    DestinationError,
    MessageBatch,
    RejectedBatchError,
    RetryableError,
)
from journeyman.connectors.pacing import RetryPolicy, TokenBucket
from journeyman.connectors.report import SyncReport

log = logging.getLogger("journeyman.connectors.sync")

#: extra requests a rejected request may cost while its bad records are searched for
MAX_SPLIT_REQUESTS = 32


class RequestSender:
    """Delivers one request with rate limiting, retries and bounded splitting; returns its
    result, or the exception that must stop the sync (auth, a destination-level failure)."""

    def __init__(
        self,
        destination: Destination,
        now: datetime,
        retry: RetryPolicy,
        bucket: TokenBucket | None,
        report: SyncReport,
    ) -> None:
        self.destination = destination
        self.now = now
        self.retry = retry
        self.bucket = bucket
        self.report = report
        self.lock = threading.Lock()
        self.auth_failed: AuthError | None = None
        self.stop: DestinationError | None = None

    def deliver(self, batch: MessageBatch) -> BatchResult | BaseException:
        if self.stop is not None:
            return self.stop
        try:
            return self._deliver(batch, [MAX_SPLIT_REQUESTS])
        except DestinationError as exc:  # AuthError included: nothing of this request was sent
            with self.lock:
                if isinstance(exc, AuthError) and self.auth_failed is None:
                    self.auth_failed = exc
                self.stop = self.stop or exc
            return exc

    def _deliver(self, batch: MessageBatch, budget: list[int]) -> BatchResult:
        started = self.retry.clock()
        attempt = 0
        while True:
            self._pace()
            try:
                return self.destination.send_batch(batch, self.now)
            except RejectedBatchError as exc:
                return self._rejected(batch, exc, budget)
            except RetryableError as exc:
                if exc.ambiguous and not self.destination.vendor_dedup:
                    # the vendor may hold it: never re-sent without a lookup (next run)
                    return BatchResult.uniform(
                        len(batch), DeliveryStatus.UNKNOWN, f"outcome_unknown_{exc.code}"
                    )
                delay = self.retry.delay(attempt, exc.wait_s)
                attempt += 1
                elapsed = self.retry.clock() - started
                if attempt >= self.retry.max_attempts or elapsed + delay > self.retry.max_total_s:
                    return BatchResult.uniform(
                        len(batch), DeliveryStatus.FAILED_RETRYABLE, exc.code
                    )
                with self.lock:
                    self.report.retries += 1
                    self.report.errors[f"retried_{exc.code}"] += 1
                if exc.wait_s and self.bucket is not None:
                    self.bucket.pause_until(self.bucket.clock() + min(exc.wait_s, delay))
                log.debug(
                    "sync %s: %s, retry %d in %.2fs",
                    self.destination.name,
                    exc.code,
                    attempt,
                    delay,
                )
                self.retry.sleep(delay)

    def _pace(self) -> None:
        waited = self.bucket.acquire() if self.bucket is not None else 0.0
        with self.lock:
            self.report.requests += 1
            self.report.rate_limit_wait_s += waited

    def _rejected(
        self, batch: MessageBatch, exc: RejectedBatchError, budget: list[int]
    ) -> BatchResult:
        """A request the vendor refused (nothing of it was accepted): fail the records it
        names; search for them by halving only when it names none, within a budget."""
        if not exc.per_record:
            raise DestinationError(
                f"destination {self.destination.name!r}: the vendor rejected the request as a "
                f"whole ({exc.code}); check the destination's settings (nothing was sent)"
            )
        if len(batch) == 1:
            return BatchResult.uniform(1, DeliveryStatus.FAILED_PERMANENT, exc.code)
        if exc.indices:
            bad = sorted(i for i in set(exc.indices) if 0 <= i < len(batch))
            if bad:
                return self._without(batch, bad, exc.code, budget)
        if budget[0] < 2:
            return BatchResult.uniform(
                len(batch), DeliveryStatus.FAILED_RETRYABLE, "rejected_unresolved"
            )
        budget[0] -= 2
        with self.lock:
            self.report.splits += 1
        half = len(batch) // 2
        result = self._deliver(batch.slice(0, half), budget)
        result.extend(self._deliver(batch.slice(half, len(batch)), budget))
        return result

    def _without(
        self, batch: MessageBatch, bad: list[int], code: str, budget: list[int]
    ) -> BatchResult:
        """Fail the named records, send the others again (one request)."""
        result = BatchResult.uniform(len(batch), DeliveryStatus.FAILED_PERMANENT, code)
        good = [i for i in range(len(batch)) if i not in set(bad)]
        if not good:
            return result
        if budget[0] < 1:
            for i in good:
                result.statuses[i] = DeliveryStatus.FAILED_RETRYABLE
                result.errors[i] = "rejected_unresolved"
            return result
        budget[0] -= 1
        again = self._deliver(batch.take(good), budget)
        result.put(good, again)
        return result
