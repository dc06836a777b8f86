"""Cancel scheduled sends a destination still holds (SendGrid batches), and say so in the ledger.

A SendGrid run sends every scheduled message with the run's `batch_id` (the ledger keeps it per
record with its `send_at`). Cancelling asks the vendor to cancel each batch that still holds
messages not yet due, then marks those records `cancelled`: they count as not delivered, and a
later sync never sends them again. Messages due within the vendor's cut-off (SendGrid: 10
minutes) may still go out; they stay `delivered` and are reported as uncertain.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from journeyman.connectors.destination import Destination, DestinationError
from journeyman.connectors.ledger import DeliveryLedger


@dataclass
class CancelReport:
    """What one cancellation did."""

    destination: str
    batches: list[str] = field(default_factory=list)
    cancelled: int = 0
    uncertain: int = 0


def cancel_scheduled(
    destination: Destination,
    ledger: DeliveryLedger,
    now: datetime,
    *,
    batch_ids: Iterable[str] | None = None,
) -> CancelReport:
    """Cancel the destination's scheduled, not-yet-sent batches (all that still hold records,
    or `batch_ids`) at the vendor, then mark their records due after the vendor's cut-off as
    `cancelled` in the ledger. Safe to repeat (a batch already cancelled is accepted)."""
    if not destination.can_cancel:
        raise DestinationError(
            f"destination {destination.name!r} ({type(destination).__name__}) cannot cancel "
            "scheduled sends; only SendGrid batches can be cancelled"
        )
    held = ledger.scheduled(now)
    batches = sorted(held) if batch_ids is None else list(dict.fromkeys(batch_ids))
    report = CancelReport(destination.name)
    after = now + destination.cancel_cutoff
    for batch in batches:
        destination.cancel_group(batch)  # raises before the ledger says anything
        cancelled, uncertain = ledger.mark_cancelled(batch, now, after=after)
        report.batches.append(batch)
        report.cancelled += cancelled
        report.uncertain += uncertain
    return report
