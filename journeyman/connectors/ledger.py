"""The delivery ledger: one row per (decision, destination) in `journeyman.deliveries`.

A record is marked in flight, with its idempotency key, and committed *before* the call; its
outcome is committed after. Whatever crashes in between, a record is never sent twice: on the
next run in-flight records are reconciled with the destination, not re-sent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

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
        ("send_at", pa.timestamp("us")),
        ("batch_id", pa.string()),
        ("attempted_at", pa.timestamp("us")),
        ("send_until", pa.timestamp("us")),
    ]
)
#: columns a settle writes over a row marked in flight (the rest stay as marked)
_SETTLED = (
    "status",
    "attempts",
    "error",
    "provider_message_id",
    "updated_at",
    "delivered_at",
)
#: what a settle changes when every record was delivered (a mark in flight nulled the error)
_DELIVERED = tuple(c for c in _SETTLED if c != "error")
#: columns a new attempt resets
_MARKED = (
    "status",
    "attempts",
    "error",
    "provider_message_id",
    "updated_at",
    "delivered_at",
    "send_at",
    "batch_id",
    "attempted_at",
    "send_until",
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
        self._tx: sa.Connection | None = None

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Keep one warehouse connection open for a sync run (each write still commits on
        its own); opening and closing a DuckDB file per write costs a checkpoint each time."""
        if self._held is not None:
            yield
            return
        conn = self.warehouse.open()  # waits out a short lock; clear errors otherwise
        self._held = conn
        try:
            yield
        finally:
            self._held = None
            conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Commit every write made inside as one transaction (one commit, one WAL sync)."""
        if self._tx is not None:
            yield
            return
        with self._connection() as conn:
            self._tx = conn
            try:
                yield
            finally:
                self._tx = None

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sa.Connection]:
        if self._tx is not None:
            yield self._tx
            return
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

    def scheduled(self, now: datetime) -> dict[str, int]:
        """batch_id → records of that batch the vendor accepted or may hold (unknown), due
        after `now`."""
        with self._connection() as conn:
            rows = conn.execute(
                sa.text(
                    f"select batch_id, count(*) from {LEDGER} where destination = :destination "
                    "and status in ('delivered', 'unknown', 'in_flight') and batch_id is not null "
                    "and send_at > :now "
                    "group by batch_id order by batch_id"
                ),
                {"destination": self.destination, "now": now},
            )
            return {r[0]: int(r[1]) for r in rows}

    def mark_cancelled(self, batch_id: str, now: datetime, *, after: datetime) -> tuple[int, int]:
        """Records of a cancelled batch due after `after` become 'cancelled' (never delivered);
        returns (cancelled, uncertain: due between now and `after`, left as delivered)."""
        params = {"destination": self.destination, "batch": batch_id, "now": now, "after": after}
        where = (
            "destination = :destination and batch_id = :batch "
            "and status in ('delivered', 'unknown', 'in_flight') and send_at > :after"
        )
        with self._connection() as conn:
            cancelled = conn.execute(
                sa.text(f"select count(*) from {LEDGER} where {where}"), params
            ).scalar()
            conn.execute(
                sa.text(
                    f"update {LEDGER} set status = 'cancelled', delivered_at = null, "
                    f"error = 'cancelled_at_vendor', updated_at = :now where {where}"
                ),
                params,
            )
            uncertain = conn.execute(
                sa.text(
                    f"select count(*) from {LEDGER} where destination = :destination "
                    "and batch_id = :batch and status in ('delivered', 'unknown', 'in_flight') "
                    "and send_at > :now and send_at <= :after"
                ),
                params,
            ).scalar()
        return int(cancelled or 0), int(uncertain or 0)

    def settle(
        self, results: Sequence[DeliveryResult], attempts: dict[str, int], now: datetime
    ) -> None:
        """Commit each record's outcome (rows present are updated, others inserted)."""
        if not results:
            return
        ids = [r.decision_id for r in results]
        status = pa.array([r.status.value for r in results], pa.string())
        self._write(
            self._table(
                ids,
                status,
                [attempts.get(d, 0) for d in ids],
                pa.array([r.error for r in results], pa.string()),
                pa.array([r.provider_message_id for r in results], pa.string()),
                _delivered_at(status, now),
                now,
            ),
            update=_SETTLED,
            existing=False,
        )

    def mark_in_flight_bulk(
        self,
        decision_ids: Sequence[str] | pa.Array,
        attempts: Sequence[int],
        now: datetime,
        *,
        send_at: Sequence[str] | pa.Array | None = None,
        send_until: Sequence[str | None] | pa.Array | None = None,
        batch_id: str | None = None,
        fresh: bool | None = None,
    ) -> None:
        """Commit 'in flight' (with attempt numbers as given) for the records of requests about
        to leave; `send_at` / `send_until` (`YYYY-MM-DDTHH:MM:SSZ`) are when each is due and
        the latest it may go; `batch_id` the vendor's group id the request carries."""
        n = len(decision_ids)
        if not n:
            return
        if fresh is None:
            fresh = all(a == 1 for a in attempts)
        self._write(
            self._table(
                decision_ids,
                pa.repeat(pa.scalar(DeliveryStatus.IN_FLIGHT.value, pa.string()), n),
                attempts,
                pa.nulls(n, pa.string()),
                pa.nulls(n, pa.string()),
                pa.nulls(n, pa.timestamp("us")),
                now,
                send_at=send_at,
                send_until=send_until,
                batch_id=batch_id,
                attempted=True,
            ),
            update=_MARKED,
            existing=False,
            fresh=fresh,
        )

    def settle_bulk(
        self,
        decision_ids: Sequence[str] | pa.Array,
        outcome: BatchResult,
        attempts: Sequence[int],
        now: datetime,
    ) -> None:
        """Commit many outcomes of records marked in flight (one UPDATE)."""
        statuses = outcome.statuses
        n = len(statuses)
        if not n:
            return
        if statuses.count(DeliveryStatus.DELIVERED) == n:
            status = pa.repeat(pa.scalar(DeliveryStatus.DELIVERED.value, pa.string()), n)
            errors = pa.nulls(n, pa.string())
        else:
            status = pa.array([s.value for s in statuses], pa.string())
            errors = pa.array(outcome.errors, pa.string())
        table = self._table(
            decision_ids,
            status,
            attempts,
            errors,
            pa.array(outcome.provider_ids, pa.string()),
            _delivered_at(status, now),
            now,
            keys=False,  # an UPDATE of rows that have theirs
        )
        # all delivered (the hot path): the error stays NULL as marked in flight
        update = _DELIVERED if errors.null_count == n else _SETTLED
        self._write(table, update=update, existing=True)

    def release(self, decision_ids: Sequence[str], attempts: Sequence[int], now: datetime) -> None:
        """Undo the in-flight mark of records whose request never left (the sync stopped
        first): a first attempt leaves no row, a retry is pending again as before."""
        if not decision_ids:
            return
        first = [d for d, a in zip(decision_ids, attempts, strict=True) if a <= 1]
        again = [
            {"destination": self.destination, "id": d, "attempts": a - 1, "now": now}
            for d, a in zip(decision_ids, attempts, strict=True)
            if a > 1
        ]
        with self._connection() as conn:
            if first:
                conn.execute(
                    sa.text(
                        f"delete from {LEDGER} where destination = :destination "
                        "and status = 'in_flight' and decision_id in :ids"
                    ).bindparams(sa.bindparam("ids", expanding=True)),
                    {"destination": self.destination, "ids": first},
                )
            if again:
                conn.execute(
                    sa.text(
                        f"update {LEDGER} set status = 'failed_retryable', attempts = :attempts, "
                        "error = 'not_sent_sync_stopped', updated_at = :now "
                        "where destination = :destination and decision_id = :id "
                        "and status = 'in_flight'"
                    ),
                    again,
                )

    def stuck(self) -> pa.Table:
        """Records whose outcome is not known (in flight from an earlier run, or unknown):
        decision_id, status, attempts, attempted_at, send_until, in decision order."""
        with self._connection() as conn:
            return read_arrow(
                conn,
                "select decision_id, status, attempts, coalesce(attempted_at, updated_at) "
                f"as attempted_at, send_until from {LEDGER} where destination = :destination "
                "and status in ('in_flight', 'unknown') order by decision_id",
                {"destination": self.destination},
            )

    def records(
        self, status: str | None = None, before: datetime | None = None
    ) -> list[dict[str, Any]]:
        """This destination's ledger rows (optionally one status, attempted before a time)."""
        where = "destination = :destination"
        params: dict[str, Any] = {"destination": self.destination}
        if status is not None:
            where += " and status = :status"
            params["status"] = status
        if before is not None:
            where += " and coalesce(attempted_at, updated_at) < :before"
            params["before"] = before
        with self._connection() as conn:
            return read_arrow(
                conn, f"select * from {LEDGER} where {where} order by decision_id", params
            ).to_pylist()

    def resolve(
        self, decision_ids: Sequence[str], status: DeliveryStatus, note: str, now: datetime
    ) -> int:
        """An operator settles unknown records (`journeyman deliveries resolve`): the status,
        and an audit note in `error`. Only rows still unknown or in flight change."""
        if not decision_ids:
            return 0
        params = {
            "destination": self.destination,
            "ids": list(decision_ids),
            "status": status.value,
            "note": note,
            "now": now,
            "delivered": now if status == DeliveryStatus.DELIVERED else None,
        }
        where = (
            "destination = :destination and status in ('in_flight', 'unknown') "
            "and decision_id in :ids"
        )
        with self._connection() as conn:
            count = conn.execute(
                sa.text(f"select count(*) from {LEDGER} where {where}").bindparams(
                    sa.bindparam("ids", expanding=True)
                ),
                params,
            ).scalar()
            conn.execute(
                sa.text(
                    f"update {LEDGER} set status = :status, error = :note, updated_at = :now, "
                    f"delivered_at = :delivered where {where}"
                ).bindparams(sa.bindparam("ids", expanding=True)),
                params,
            )
        return int(count or 0)

    def _table(
        self,
        decision_ids: Sequence[str] | pa.Array,
        status: pa.Array,
        attempts: Sequence[int],
        error: pa.Array,
        provider_message_id: pa.Array,
        delivered_at: pa.Array,
        now: datetime,
        *,
        send_at: Sequence[str] | pa.Array | None = None,
        send_until: Sequence[str | None] | pa.Array | None = None,
        batch_id: str | None = None,
        attempted: bool = False,
        keys: bool = True,
    ) -> pa.Table:
        n = len(decision_ids)
        ids = _arrow(decision_ids)
        if ids.type != pa.string():
            ids = ids.cast(pa.string())
        due, until = _instants(send_at, n), _instants(send_until, n)
        stamp = pa.repeat(pa.scalar(now, pa.timestamp("us")), n)
        return pa.Table.from_arrays(
            [
                ids,
                pa.repeat(pa.scalar(self.destination, pa.string()), n),
                status,
                pa.compute.binary_join_element_wise(f"{self.destination}:", ids, "")
                if keys
                else pa.nulls(n, pa.string()),
                pa.array(attempts, pa.int32()),
                error,
                provider_message_id,
                stamp,
                delivered_at,
                due,
                pa.repeat(pa.scalar(batch_id, pa.string()), n),
                stamp if attempted else pa.nulls(n, pa.timestamp("us")),
                until,
            ],
            schema=_SCHEMA,
        )

    def _write(
        self,
        table: pa.Table,
        *,
        update: Sequence[str],
        existing: bool,
        fresh: bool = False,
    ) -> None:
        """Write the table's rows in one transaction: rows this destination already has get
        the `update` columns; the others are inserted. `existing`: every row is known to be
        present (update only); `fresh`: none is (insert only). DuckDB: one registered Arrow
        view, set-based SQL, no per-row statements."""
        if not table.num_rows:
            return
        cols = ", ".join(_SCHEMA.names)
        # the rows' id range: decision ids arrive sorted, so the zone maps skip the rest of a
        # growing ledger (an update costs the batch, not the table)
        bounds = pa.compute.min_max(table.column("decision_id"))
        span = [self.destination, bounds["min"].as_py(), bounds["max"].as_py()]
        within = "l.destination = ? and l.decision_id between ? and ?"
        with self._connection() as conn:
            raw = _driver(conn)
            if raw is not None:
                view = f"_jm_ledger_{id(table)}"
                raw.register(view, table)
                try:
                    if not fresh:
                        sets = ", ".join(f"{c} = v.{c}" for c in update)
                        raw.execute(
                            f"update {LEDGER} as l set {sets} from {view} as v "
                            f"where {within} and l.decision_id = v.decision_id",
                            span,
                        )
                    if fresh:
                        raw.execute(f"insert into {LEDGER} ({cols}) select {cols} from {view}")
                    elif not existing:
                        raw.execute(
                            f"insert into {LEDGER} ({cols}) select {cols} from {view} v "
                            f"where not exists (select 1 from {LEDGER} l where "
                            f"{within} and l.decision_id = v.decision_id)",
                            span,
                        )
                finally:
                    raw.unregister(view)
                return
            rows = table.to_pylist()
            present: set[str] = set()
            if not fresh:
                present = {
                    r[0]
                    for r in conn.execute(
                        sa.text(
                            f"select decision_id from {LEDGER} "
                            "where destination = :destination and decision_id in :ids"
                        ).bindparams(sa.bindparam("ids", expanding=True)),
                        {"destination": self.destination, "ids": [r["decision_id"] for r in rows]},
                    )
                }
            if present:
                sets = ", ".join(f"{c} = :{c}" for c in update)
                conn.execute(
                    sa.text(
                        f"update {LEDGER} set {sets} "
                        "where destination = :destination and decision_id = :decision_id"
                    ),
                    [r for r in rows if r["decision_id"] in present],
                )
            missing = [r for r in rows if r["decision_id"] not in present]
            if missing:
                append_arrow(conn, LEDGER, pa.Table.from_pylist(missing, schema=_SCHEMA))


def _arrow(values: Any, type: pa.DataType | None = None) -> pa.Array:
    """A list, Array or ChunkedArray as one Arrow Array."""
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    if isinstance(values, pa.Array):
        return values
    return pa.array(values, type)


def _instants(values: Sequence[str | None] | pa.Array | None, n: int) -> pa.Array:
    """`YYYY-MM-DDTHH:MM:SSZ` text (or None) → timestamps."""
    if values is None:
        return pa.nulls(n, pa.timestamp("us"))
    text = _arrow(values, pa.string())
    if text.type != pa.string():
        text = text.cast(pa.string())  # an all-null column arrives typed null
    return pa.compute.strptime(text, format="%Y-%m-%dT%H:%M:%SZ", unit="us")


def _delivered_at(status: pa.Array, now: datetime) -> pa.Array:
    return pa.compute.if_else(
        pa.compute.equal(status, DeliveryStatus.DELIVERED.value),
        pa.scalar(now, pa.timestamp("us")),
        pa.scalar(None, pa.timestamp("us")),
    )


def _quote(value: str) -> str:
    return value.replace("'", "''")
