"""The delivery ledger: one row per (decision, destination) in `journeyman.deliveries`.

A record is marked in flight, with its idempotency key, and committed *before* the call; its
outcome is committed after. Whatever crashes in between, a record is never sent twice: on the
next run in-flight records are reconciled with the destination, not re-sent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import sqlalchemy as sa

from journeyman.connectors.destination import BatchResult, DeliveryResult, DeliveryStatus
from journeyman.warehouse import Warehouse, _driver, append_arrow, read_arrow

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
        self._held: sa.Connection | None = None

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Keep one warehouse connection open for a sync run (each write still commits on
        its own); opening and closing a DuckDB file per write costs a checkpoint each time."""
        if self._held is not None:
            yield
            return
        with self.warehouse.connect():
            pass  # surfaces lock / permission problems with the warehouse's clear messages
        conn = self.warehouse.engine().connect()
        self._held = conn
        try:
            yield
        finally:
            self._held = None
            conn.close()

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sa.Connection]:
        if self._held is None:
            with self.warehouse.connect() as conn:
                yield conn
            return
        with self._held.begin():
            yield self._held

    def statuses(self, decision_ids: Iterable[str] | None = None) -> dict[str, tuple[str, int]]:
        """decision_id → (status, attempts) for this destination."""
        with self._connection() as conn:
            table = read_arrow(
                conn,
                f"select decision_id, status, attempts from {LEDGER} "
                f"where destination = '{_quote(self.destination)}'",
            )
        ids = table.column("decision_id").to_pylist()
        pairs = zip(
            table.column("status").to_pylist(), table.column("attempts").to_pylist(), strict=True
        )
        if decision_ids is None:
            return dict(zip(ids, pairs, strict=True))
        wanted = set(decision_ids)
        return {d: p for d, p in zip(ids, pairs, strict=True) if d in wanted}

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

    def mark_in_flight_bulk(
        self, decision_ids: Sequence[str], attempts: Sequence[int], now: datetime
    ) -> None:
        """Commit 'in flight' (with attempt numbers as given) for many records at once."""
        n = len(decision_ids)
        self._write_columns(
            decision_ids,
            pa.array([DeliveryStatus.IN_FLIGHT.value] * n, pa.string()),
            attempts,
            pa.nulls(n, pa.string()),
            pa.nulls(n, pa.string()),
            pa.nulls(n, pa.timestamp("us")),
            now,
            fresh=all(a == 1 for a in attempts),
        )

    def settle_bulk(
        self,
        decision_ids: Sequence[str],
        outcome: BatchResult,
        attempts: Sequence[int],
        now: datetime,
    ) -> None:
        """Commit many outcomes at once; records whose outcome is unknown (in flight) are left
        as they are."""
        statuses = outcome.statuses
        keep = [i for i, s in enumerate(statuses) if s != DeliveryStatus.IN_FLIGHT]
        if len(keep) != len(statuses):
            decision_ids = [decision_ids[i] for i in keep]
            attempts = [attempts[i] for i in keep]
            outcome = BatchResult(
                [statuses[i] for i in keep],
                [outcome.errors[i] for i in keep],
                [outcome.provider_ids[i] for i in keep],
            )
        if not decision_ids:
            return
        n = len(outcome.statuses)
        if outcome.statuses.count(DeliveryStatus.DELIVERED) == n:
            status = pa.array([DeliveryStatus.DELIVERED.value] * n, pa.string())
        else:
            status = pa.array([s.value for s in outcome.statuses], pa.string())
        delivered = pa.compute.if_else(
            pa.compute.equal(status, DeliveryStatus.DELIVERED.value),
            pa.scalar(now, pa.timestamp("us")),
            pa.scalar(None, pa.timestamp("us")),
        )
        self._write_columns(
            decision_ids,
            status,
            attempts,
            pa.array(outcome.errors, pa.string()),
            pa.array(outcome.provider_ids, pa.string()),
            delivered,
            now,
        )

    def _write_columns(
        self,
        decision_ids: Sequence[str],
        status: pa.Array,
        attempts: Sequence[int],
        error: pa.Array,
        provider_message_id: pa.Array,
        delivered_at: pa.Array,
        now: datetime,
        *,
        fresh: bool = False,
    ) -> None:
        n = len(decision_ids)
        if not n:
            return
        ids = pa.array(decision_ids, pa.string())
        prefix = f"{self.destination}:"
        table = pa.Table.from_arrays(
            [
                ids,
                pa.array([self.destination] * n, pa.string()),
                status,
                pa.compute.binary_join_element_wise(prefix, ids, ""),
                pa.array(attempts, pa.int32()),
                error,
                provider_message_id,
                pa.array([now] * n, pa.timestamp("us")),
                delivered_at,
            ],
            schema=_SCHEMA,
        )
        self._replace(table, fresh=fresh)

    def _write(self, rows: list[dict], now: datetime) -> None:
        if not rows:
            return
        for row in rows:
            row["destination"] = self.destination
            row["idempotency_key"] = idempotency_key(row["decision_id"], self.destination)
            row["updated_at"] = now
        self._replace(pa.Table.from_pylist(rows, schema=_SCHEMA))

    def _replace(self, table: pa.Table, *, fresh: bool = False) -> None:
        """Delete this destination's rows for the table's ids and insert the table, in one
        transaction (DuckDB: a registered Arrow view, no per-row SQL)."""
        with self._connection() as conn:
            raw = _driver(conn)
            if raw is not None:
                view = f"_jm_ledger_{id(table)}"
                raw.register(view, table)
                try:
                    if not fresh:  # first attempts have no row yet: nothing to replace
                        raw.execute(
                            f"delete from {LEDGER} where destination = ? and decision_id in "
                            f"(select decision_id from {view})",
                            [self.destination],
                        )
                    cols = ", ".join(_SCHEMA.names)
                    raw.execute(f"insert into {LEDGER} ({cols}) select {cols} from {view}")
                finally:
                    raw.unregister(view)
                return
        delete = sa.text(
            f"delete from {LEDGER} where destination = :destination and decision_id in :ids"
        ).bindparams(sa.bindparam("ids", expanding=True))
        with self._connection() as conn:
            conn.execute(
                delete, {"destination": self.destination, "ids": table["decision_id"].to_pylist()}
            )
            append_arrow(conn, LEDGER, table)


def _quote(value: str) -> str:
    return value.replace("'", "''")
