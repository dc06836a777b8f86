"""Shared helpers for the connector tests: messages, a ledger on a real DuckDB file."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from journeyman.connectors.destination import OutboundMessage
from journeyman.connectors.ledger import DeliveryLedger
from journeyman.connectors.pacing import RetryPolicy
from journeyman.sandbox.emulators import spec_available
from journeyman.tables import ensure_journeyman_tables
from journeyman.warehouse import Warehouse

ISO = "%Y-%m-%dT%H:%M:%SZ"


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def make_messages(
    n: int,
    *,
    channel: str = "email",
    send_at: datetime | None = None,
    prefix: str = "winback-20260302",
    to=None,
) -> list[OutboundMessage]:
    when = (send_at or utc_now()).strftime(ISO)
    out = []
    for i in range(n):
        if to is not None:
            address = to(i)
        elif channel == "sms":
            address = f"+1415555{i:04d}"
        elif channel == "push":
            address = f"device-token-{i:05d}"
        else:
            address = f"u{i}@example.com"
        out.append(
            OutboundMessage(
                decision_id=f"{prefix}-c{i:05d}",
                idempotency_key=f"dest:{prefix}-c{i:05d}",
                agent="winback",
                customer_id=f"c{i:05d}",
                channel=channel,
                message_id="ten_off",
                to=address,
                subject="10% off, Ada",
                body=f"Hello customer {i}, come back for 10% off.",
                send_at=when,
                tags={"offer": "discount_10"},
            )
        )
    return out


def make_ledger(tmp_path, destination: str) -> DeliveryLedger:
    wh = Warehouse(tmp_path / "wh.duckdb")
    ensure_journeyman_tables(wh)
    return DeliveryLedger(wh, destination)


def fast_retry(max_attempts: int = 6) -> tuple[RetryPolicy, list[float]]:
    """A retry policy on a fake clock: sleeps are recorded, not slept."""
    slept: list[float] = []
    clock = [0.0]

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    policy = RetryPolicy(
        max_attempts=max_attempts, seed=7, clock=lambda: clock[0], sleep=sleep, max_total_s=300
    )
    return policy, slept


def needs_spec(filename: str):
    return pytest.mark.skipif(
        not spec_available(filename),
        reason=f"vendor OpenAPI document {filename} not found (../shared/api_specs absent): "
        "emulators fall back to documented limits only",
    )
