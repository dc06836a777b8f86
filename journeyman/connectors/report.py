"""What one sync did: the counts a sync asset puts in its run metadata and checks."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from journeyman.connectors.destination import DeliveryResult, DeliveryStatus


@dataclass
class SyncReport:
    """What one sync did, for run metadata."""

    destination: str
    sent: int = 0
    delivered: int = 0
    failed_retryable: int = 0
    failed_permanent: int = 0
    expired: int = 0
    suppressed: int = 0
    #: records whose outcome this run could not learn (lost responses; crashed runs' records)
    unknown: int = 0
    #: records the ledger holds as unknown after this run (this run's and earlier ones')
    unknown_total: int = 0
    skipped_already_settled: int = 0
    skipped_unknown: int = 0
    deferred: int = 0
    reconciled: int = 0
    lookups: int = 0
    requests: int = 0
    retries: int = 0
    splits: int = 0
    rate_limit_wait_s: float = 0.0
    batch_id: str | None = None
    errors: Counter[str] = field(default_factory=Counter)
    invalid_recipients: list[str] = field(default_factory=list)
    auth_error: str | None = None

    @property
    def failed(self) -> int:
        return self.failed_retryable + self.failed_permanent

    @property
    def skipped(self) -> int:
        return self.skipped_already_settled + self.skipped_unknown

    def tally(self, results: Sequence[DeliveryResult]) -> None:
        self.count([r.status for r in results], [r.error for r in results])

    def count(self, statuses: Sequence[DeliveryStatus], errors: Sequence[str | None]) -> None:
        counts = Counter(statuses)
        self.delivered += counts[DeliveryStatus.DELIVERED]
        self.failed_permanent += counts[DeliveryStatus.FAILED_PERMANENT]
        self.failed_retryable += counts[DeliveryStatus.FAILED_RETRYABLE]
        self.unknown += counts[DeliveryStatus.UNKNOWN]
        self.expired += counts[DeliveryStatus.EXPIRED]
        self.suppressed += counts[DeliveryStatus.SUPPRESSED]
        if len(counts) > 1 or DeliveryStatus.DELIVERED not in counts:
            for error in errors:
                if error:
                    self.errors[error.split(":")[0]] += 1

    def as_metadata(self) -> dict[str, Any]:
        """Plain numbers and dicts for Dagster run metadata."""
        numbers = {
            name: getattr(self, name)
            for name in (
                "sent",
                "delivered",
                "failed",
                "failed_retryable",
                "failed_permanent",
                "expired",
                "suppressed",
                "unknown",
                "unknown_total",
                "skipped",
                "skipped_already_settled",
                "skipped_unknown",
                "deferred",
                "reconciled",
                "lookups",
                "requests",
                "retries",
                "splits",
            )
        }
        return {
            **numbers,
            "rate_limit_wait_s": round(self.rate_limit_wait_s, 3),
            "batch_id": self.batch_id or "",
            "errors": dict(self.errors),
            "invalid_recipients": len(self.invalid_recipients),
        }
