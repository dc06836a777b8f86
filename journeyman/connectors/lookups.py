"""Vendor lookups of records whose outcome is unknown: paced to the vendor's documented limit,
within a time budget per run, and trusting an "absent" only after the vendor's indexing lag."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from journeyman.connectors.destination import (
    AuthError,
    Destination,
    Lookup,
    LookupUnavailable,
    MessageBatch,
    RetryableError,
)
from journeyman.connectors.pacing import RetryPolicy, TokenBucket
from journeyman.connectors.report import SyncReport

log = logging.getLogger("journeyman.connectors.sync")


class VendorLookups:
    """Vendor lookups of uncertain records: paced to the vendor's documented limit, within a
    time budget per run, trusting an "absent" only after the vendor's indexing lag."""

    def __init__(
        self,
        destination: Destination,
        now: datetime,
        retry: RetryPolicy,
        budget_s: float,
        report: SyncReport,
    ) -> None:
        self.destination = destination
        self.now = now
        self.clock = retry.clock
        self.sleep = retry.sleep
        self.deadline = retry.clock() + budget_s
        self.report = report
        limit = destination.lookup_rate_limit
        self.bucket = TokenBucket(limit, clock=retry.clock, sleep=retry.sleep) if limit else None
        self.reason: str | None = None  # why the last records stayed unknown
        self.closed = not destination.can_lookup

    def ask(
        self, batch: MessageBatch, attempted_at: Callable[[str], datetime | None]
    ) -> dict[str, Lookup]:
        """Verdicts for the records that could be looked up; the others are left out."""
        if self.closed:
            self.reason = self.reason or "outcome_unknown_no_lookup"
            return {}
        out: dict[str, Lookup] = {}
        for i in range(len(batch)):
            d = batch.decision_id[i]
            at = attempted_at(d)
            if at is not None and at + self.destination.lookup_lag > self.now:
                self.reason = "outcome_unknown_lookup_lag"
                continue  # too young for the vendor's index: an "absent" would mean nothing
            verdict = self._one(batch.slice(i, i + 1))
            if verdict is None:
                break
            out.update(verdict)
        return out

    def _one(self, record: MessageBatch) -> dict[str, Lookup] | None:
        """One paced lookup; None once lookups must stop for this run."""
        for _ in range(3):  # a throttled or failing lookup is tried at most three times
            if self.bucket is not None:
                self.bucket.acquire()
            if self.clock() > self.deadline:
                return self._stop("outcome_unknown_lookup_budget")
            self.report.lookups += 1
            try:
                return self.destination.lookup(record)
            except (LookupUnavailable, AuthError) as exc:
                log.warning("sync %s: lookups stop for this run: %s", self.destination.name, exc)
                return self._stop("outcome_unknown_lookup_unavailable")
            except RetryableError as exc:
                wait = exc.wait_s if exc.wait_s is not None else 1.0
                self.reason = f"outcome_unknown_lookup_{exc.code}"
                if self.clock() + wait > self.deadline:
                    return self._stop(self.reason)
                self.sleep(wait)
        return self._stop(self.reason or "outcome_unknown_lookup_failed")

    def _stop(self, reason: str) -> None:
        self.reason = reason
        self.closed = True
        return None
