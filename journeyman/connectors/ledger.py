"""The delivery ledger: one row per (decision, destination) in `journeyman.deliveries`.

A record is marked in flight, with its idempotency key, and committed *before* the call; its
outcome is committed after. Whatever crashes in between, a record is never sent twice: on the
next run in-flight records are reconciled with the destination, not re-sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import pyarrow as pa
import sqlalchemy as sa

from journeyman.connectors.destination import DeliveryResult, DeliveryStatus
from journeyman.warehouse import Warehouse, append_arrow

LEDGER = "journeyman.deliveries"
_SCHEMA = pa.schema(
    [
        ("decision_id", pa.string()),
        ("destination", pa.string()),
        ("status", pa.string()),
        ("idempotency_key", pa.string()),
        ("attempts", pa.int32()),
        ("error", pa.string()),
        ("provider_message_id", pa.string()),
        ("updated_at", pa.timestamp("us")),
        ("delivered_at", pa.timestamp("us")),
    ]
)


def idempotency_key(decision_id: str, destination: str) -> str:
    """The key sent with every attempt of this decision to this destination."""
    return f"{destination}:{decision_id}"


class DeliveryLedger:
    """Reads and writes one destination's rows of the delivery ledger."""

    def __init__(self, warehouse: Warehouse, destination: str) -> None:
        self.warehouse = warehouse
        self.destination = destination

    def statuses(self, decision_ids: Iterable[str] | None = None) -> dict[str, tuple[str, int]]:
        """decision_id → (status, attempts) for this destination."""
        rows = self.warehouse.read_arrow(
            f"select decision_id, status, attempts from {LEDGER} "
            f"where destination = '{_quote(self.destination)}'"
        ).to_pylist()
        wanted = None if decision_ids is None else set(decision_ids)
        return {
            r["decision_id"]: (r["status"], r["attempts"])
            for r in rows
            if wanted is None or r["decision_id"] in wanted
        }

    def in_flight(self) -> list[str]:
        return [d for d, (s, _) in self.statuses().items() if s == DeliveryStatus.IN_FLIGHT]

    def mark_in_flight(
        self, decision_ids: Sequence[str], attempts: dict[str, int], now: datetime
    ) -> None:
        """Commit 'in flight' for a batch before it is sent."""
        self._write(
            [
                {
                    "decision_id": d,
                    "status": DeliveryStatus.IN_FLIGHT.value,
                    "attempts": attempts.get(d, 0) + 1,
                    "error": None,
                    "provider_message_id": None,
                    "delivered_at": None,
                }
                for d in decision_ids
            ],
            now,
        )

    def settle(
        self, results: Sequence[DeliveryResult], attempts: dict[str, int], now: datetime
    ) -> None:
        """Commit each record's outcome after the destination answered."""
        self._write(
            [
                {
                    "decision_id": r.decision_id,
                    "status": r.status.value,
                    "attempts": attempts[r.decision_id],
                    "error": r.error,
                    "provider_message_id": r.provider_message_id,
                    "delivered_at": now if r.status == DeliveryStatus.DELIVERED else None,
                }
                for r in results
            ],
            now,
        )

    def _write(self, rows: list[dict], now: datetime) -> None:
        if not rows:
            return
        for row in rows:
            row["destination"] = self.destination
            row["idempotency_key"] = idempotency_key(row["decision_id"], self.destination)
            row["updated_at"] = now
        table = pa.Table.from_pylist(rows, schema=_SCHEMA)
        delete = sa.text(
            f"delete from {LEDGER} where destination = :destination and decision_id in :ids"
        ).bindparams(sa.bindparam("ids", expanding=True))
        with self.warehouse.connect() as conn:
            conn.execute(
                delete, {"destination": self.destination, "ids": table["decision_id"].to_pylist()}
            )
            append_arrow(conn, LEDGER, table)


def _quote(value: str) -> str:
    return value.replace("'", "''")
