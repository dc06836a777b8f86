"""The sync engine: validate → batch → mark in flight → send → settle → tally.

Shared by every destination (the singer-sdk `Sink` pattern): destination modules add only what is
specific to their API. State (the ledger) is committed before each call and after it settles.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from journeyman.connectors.destination import (
    DeliveryResult,
    DeliveryStatus,
    Destination,
    OutboundMessage,
)
from journeyman.connectors.ledger import DeliveryLedger

log = logging.getLogger(__name__)

FINAL = {DeliveryStatus.DELIVERED.value, DeliveryStatus.FAILED_PERMANENT.value}


@dataclass
class SyncReport:
    """What one sync did, for run metadata."""

    destination: str
    sent: int = 0
    delivered: int = 0
    failed_retryable: int = 0
    failed_permanent: int = 0
    skipped_already_settled: int = 0
    skipped_in_flight: int = 0
    reconciled: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    def tally(self, results: Sequence[DeliveryResult]) -> None:
        for r in results:
            if r.status == DeliveryStatus.DELIVERED:
                self.delivered += 1
            elif r.status == DeliveryStatus.FAILED_PERMANENT:
                self.failed_permanent += 1
            else:
                self.failed_retryable += 1
            if r.error:
                self.errors[r.error.split(":")[0]] += 1


def reconcile_in_flight(destination: Destination, ledger: DeliveryLedger, now: datetime) -> int:
    """Settle records a crashed run left in flight, as far as the destination can vouch."""
    stuck = ledger.in_flight()
    if not stuck:
        return 0
    verdicts = destination.reconcile(stuck)
    attempts = {d: a for d, (_, a) in ledger.statuses(stuck).items()}
    results = [DeliveryResult(d, s, error=None) for d, s in verdicts.items()]
    ledger.settle(results, attempts, now)
    return len(results)


def sync(
    destination: Destination,
    ledger: DeliveryLedger,
    messages: Iterable[OutboundMessage],
    now: datetime,
    *,
    rejected: Sequence[DeliveryResult] = (),
    on_batch: Callable[[int], None] | None = None,
) -> SyncReport:
    """Deliver every message not yet settled with this destination, at most once each.

    `rejected` are records that failed before sending (e.g. a template error); they are
    recorded in the ledger as given. `now` is the run's clock, stamped on ledger rows.
    """
    report = SyncReport(destination=destination.name)
    report.reconciled = reconcile_in_flight(destination, ledger, now)
    known = ledger.statuses()
    todo: list[OutboundMessage] = []
    for message in messages:
        status = known.get(message.decision_id, (None, 0))[0]
        if status in FINAL:
            report.skipped_already_settled += 1
        elif status == DeliveryStatus.IN_FLIGHT.value:
            report.skipped_in_flight += 1
        else:
            todo.append(message)
    attempts = {d: a for d, (_, a) in known.items()}
    if rejected:
        fresh = [r for r in rejected if known.get(r.decision_id, (None,))[0] not in FINAL]
        for r in fresh:
            attempts[r.decision_id] = attempts.get(r.decision_id, 0) + 1
        ledger.settle(fresh, attempts, now)
        report.tally(fresh)
    size = destination.max_batch_size
    for start in range(0, len(todo), size):
        batch = todo[start : start + size]
        ids = [m.decision_id for m in batch]
        ledger.mark_in_flight(ids, attempts, now)
        for d in ids:
            attempts[d] = attempts.get(d, 0) + 1
        results = destination.send(batch)
        if len(results) != len(batch):
            raise RuntimeError(
                f"destination {destination.name} returned {len(results)} results "
                f"for {len(batch)} records"
            )
        ledger.settle(results, attempts, now)
        report.sent += len(batch)
        report.tally(results)
        if on_batch:
            on_batch(len(batch))
    log.info(
        "sync %s: %d sent, %d delivered, %d failed",
        destination.name,
        report.sent,
        report.delivered,
        report.failed_retryable + report.failed_permanent,
    )
    return report
