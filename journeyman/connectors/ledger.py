"""The delivery ledger: one row per (decision, destination) in `journeyman.deliveries`.

A record is marked in flight, with its idempotency key, and committed *before* the call; its
outcome is committed after. Whatever crashes in between, a record is never sent twice: on the
next run in-flight records are reconciled with the destination, not re-sent.

DuckDB allows one writing process, and a sync run holds the file, so runs of a destination
follow each other. On PostgreSQL several runs of one destination may overlap: a record is sent
only by the run that *claims* it — it inserts the record's row (`ON CONFLICT DO NOTHING` on the
unique key (destination, decision_id)) or, for a row that may be sent again, locks it with
`SELECT … FOR UPDATE SKIP LOCKED` while the row still holds what this run read — and a run
reconciles in-flight records only when no other run of the destination is alive (advisory
locks), since those may be on the wire.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from journeyman.connectors.destination import BatchResult, DeliveryResult, DeliveryStatus
from journeyman.warehouse import Warehouse, WarehouseError, _driver, id_relation, read_arrow

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
_MARKED = (*_SETTLED, "send_at", "batch_id", "attempted_at", "send_until")


#: PostgreSQL: the ledger's unique key, created by the ledger when absent
KEY_INDEX = "deliveries_destination_decision_id"
_PG_TYPES = {pa.string(): "varchar", pa.int32(): "integer", pa.timestamp("us"): "timestamp"}
#: what a row may be when this run claims it although another may have written it since
#: this run read the ledger: a definite failure, or exactly the uncertain state it read
_CLAIMABLE = (
    "l.status = 'failed_retryable' or (l.status in ('in_flight', 'unknown') "
    "and l.status = v.expected_status and l.attempts = v.expected_attempts)"
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
        self._pg = warehouse.backend == "postgresql"
        self._keyed = False  # PostgreSQL: the unique key is known to exist
        #: PostgreSQL: (status, attempts) per row as `statuses()` last read them: a write
        #: made on that knowledge applies only to rows still so (None: not read)
        self._seen: dict[str, tuple[str, int]] | None = None
        #: whether no other run of this destination was alive as this one started (always
        #: on DuckDB: a run holds the file); only then are in-flight records another run's
        #: crash rather than requests on the wire
        self.alone = True
        self._exclusive = False

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Keep one warehouse connection open for a sync run (each write still commits on
        its own); opening and closing a DuckDB file per write costs a checkpoint each time.
        PostgreSQL: the connection also announces the run to other runs of the destination
        (a shared advisory lock; exclusive until `share()` when no other run is alive)."""
        if self._held is not None:
            yield
            return
        conn = self.warehouse.open()  # waits out a short lock; clear errors otherwise
        self._held = conn
        try:
            if self._pg:
                self._ensure_key()
                self._announce(conn)
            yield
        finally:
            self._held = None
            self._exclusive = False
            self.alone = True
            conn.close()  # releases the advisory locks

    def _announce(self, conn: sa.Connection) -> None:
        """Take the destination's run lock: exclusive when no other run holds it (`alone`),
        else shared."""
        key = {"key": _run_key(self.destination)}
        with conn.begin():
            free = conn.execute(sa.text("select pg_try_advisory_lock(:key)"), key).scalar()
            self.alone = bool(free)
            if not self.alone:  # waits while a starting run reads its state
                conn.execute(sa.text("select pg_advisory_lock_shared(:key)"), key)
        self._exclusive = self.alone

    def share(self) -> None:
        """The run has read its state: let other runs of the destination start (PostgreSQL;
        they will leave this run's in-flight records alone)."""
        if self._held is None or not self._exclusive:
            return
        key = {"key": _run_key(self.destination)}
        with self._held.begin():
            self._held.execute(sa.text("select pg_advisory_lock_shared(:key)"), key)
            self._held.execute(sa.text("select pg_advisory_unlock(:key)"), key)
        self._exclusive = False

    def _ensure_key(self) -> None:
        """PostgreSQL: create the unique key (destination, decision_id) when the ledger lacks
        it, in a transaction of its own before any write (its lock waits for writers)."""
        if self._keyed:
            return
        exists = "select to_regclass(:name) is not null"
        with self.warehouse.connect() as conn:
            if not conn.execute(sa.text(exists), {"name": LEDGER}).scalar():
                return  # no ledger yet (ensure_journeyman_tables creates it)
            index = {"name": f"journeyman.{KEY_INDEX}"}
            if not conn.execute(sa.text(exists), index).scalar():
                conn.execute(sa.text("select pg_advisory_xact_lock(:key)"), {"key": _DDL_KEY})
                try:
                    conn.execute(
                        sa.text(
                            f"create unique index if not exists {KEY_INDEX} "
                            f"on {LEDGER} (destination, decision_id)"
                        )
                    )
                except sa.exc.IntegrityError:
                    raise WarehouseError(
                        f"{LEDGER} holds more than one row for a decision and destination; "
                        "keep one of each before running syncs on PostgreSQL"
                    ) from None
        self._keyed = True

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
        if self._pg and not self._keyed:
            self._ensure_key()
        if self._held is None:
            with self.warehouse.connect() as conn:
                yield conn
            return
        with self._held.begin():
            yield self._held

    def statuses(
        self, decision_ids: pa.Array | pa.ChunkedArray | Sequence[str] | None = None
    ) -> dict[str, tuple[str, int]]:
        """decision_id → (status, attempts) for this destination: every row, or the rows of
        `decision_ids` only (joined in the warehouse: a run reads what it may touch, not the
        destination's whole history). On PostgreSQL, what a later settle expects to find."""
        sql = f"select decision_id, status, attempts from {LEDGER} where destination = "
        with self._connection() as conn:
            if decision_ids is None:
                table = read_arrow(conn, sql + ":destination", {"destination": self.destination})
            else:
                with id_relation(conn, decision_ids) as (wanted, params):
                    sql += f":destination and decision_id in ({wanted})"
                    table = read_arrow(conn, sql, {**params, "destination": self.destination})
        ids = table.column("decision_id").to_pylist()
        pairs = zip(
            table.column("status").to_pylist(), table.column("attempts").to_pylist(), strict=True
        )
        every = dict(zip(ids, pairs, strict=True))
        if self._pg:
            self._seen = every
        return every

    def unsettled_count(self) -> int:
        """Records of this destination whose outcome is not known (in flight or unknown)."""
        with self._connection() as conn:
            return int(
                conn.execute(
                    sa.text(
                        f"select count(*) from {LEDGER} where destination = :destination "
                        "and status in ('in_flight', 'unknown')"
                    ),
                    {"destination": self.destination},
                ).scalar()
            )

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
        """Commit each record's outcome (rows present are updated, others inserted).
        PostgreSQL: only where the row is still as `statuses()` read it (or still absent):
        another run may have claimed it since."""
        if not results:
            return
        ids = [r.decision_id for r in results]
        status = pa.array([r.status.value for r in results], pa.string())
        table = self._table(
            ids,
            status,
            [attempts.get(d, 0) for d in ids],
            pa.array([r.error for r in results], pa.string()),
            pa.array([r.provider_message_id for r in results], pa.string()),
            _delivered_at(status, now),
            now,
        )
        if self._pg:
            with self._connection() as conn:
                self._pg_settle(conn, table)
            return
        self._write(table, update=_SETTLED, existing=False)

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
    ) -> pa.Array | None:
        """Commit 'in flight' (with attempt numbers as given) for the records of requests about
        to leave; `send_at` / `send_until` (`YYYY-MM-DDTHH:MM:SSZ`) are when each is due and
        the latest it may go; `batch_id` the vendor's group id the request carries; `fresh`:
        none has a row yet, as far as this run knows.

        Returns None when every record was marked, else the ids marked — PostgreSQL: the
        records this run claimed; another run holds, or has settled, the rest."""
        n = len(decision_ids)
        if not n:
            return None
        if fresh is None:
            fresh = all(a == 1 for a in attempts)
        table = self._table(
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
        )
        if self._pg:
            with self._connection() as conn:
                claimed = self._pg_claim(conn, table, fresh=fresh)
            return None if len(claimed) == n else claimed
        self._write(table, update=_MARKED, existing=False, fresh=fresh)
        return None

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
        if self._pg:  # this run's claimed rows: no other run writes them
            with self._connection() as conn:
                _pg_update(conn, self.destination, table, update)
            return
        self._write(table, update=update, existing=True, marked_at=now)

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
                pc.binary_join_element_wise(f"{self.destination}:", ids, "")
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
        marked_at: datetime | None = None,
    ) -> None:
        """DuckDB: write the table's rows in one transaction: rows this destination already
        has get the `update` columns; the others are inserted. `existing`: every row is known
        to be present (update only); `fresh`: none is (insert only); `marked_at`: every row
        was marked in flight at that instant (a settle of this run's wave). One registered
        Arrow view, set-based SQL, no per-row statements."""
        if not table.num_rows:
            return
        cols = ", ".join(_SCHEMA.names)
        sets = ", ".join(f"{c} = v.{c}" for c in update)
        # The rows to update: those of one mark are found by its instant, a plain scan that the
        # zone maps narrow to the newest row groups (DuckDB does not push a join's filter into
        # an UPDATE's scan; an id range would not narrow it either, the zone maps keeping
        # 8-byte string prefixes and every id starting with the agent's name).
        if marked_at is not None:
            target = (
                f"l.rowid in (select rowid from {LEDGER} where destination = ? "
                "and attempted_at = ?)"
            )
            params: list[Any] = [self.destination, marked_at]
        else:
            target, params = "l.destination = ?", [self.destination]
        with self._connection() as conn:
            raw = _driver(conn)
            if raw is None:
                raise WarehouseError(f"the delivery ledger cannot write to {self.warehouse.url}")
            view = f"_jm_ledger_{id(table)}"
            raw.register(view, table)
            try:
                if not fresh:
                    raw.execute(
                        f"update {LEDGER} as l set {sets} from {view} as v "
                        f"where {target} and l.decision_id = v.decision_id",
                        params,
                    )
                if fresh:
                    raw.execute(f"insert into {LEDGER} ({cols}) select {cols} from {view}")
                elif not existing:
                    raw.execute(
                        f"insert into {LEDGER} ({cols}) select {cols} from {view} v "
                        f"where not exists (select 1 from {LEDGER} l where "
                        f"{target} and l.decision_id = v.decision_id)",
                        params,
                    )
            finally:
                raw.unregister(view)

    # -- PostgreSQL: claims and conditional writes (each inserts before it updates, and
    # inserts in decision order, so that overlapping runs wait on each other without a cycle)

    def _pg_claim(self, conn: sa.Connection, table: pa.Table, *, fresh: bool) -> pa.Array:
        """Mark in flight the records no other run has: absent rows are inserted (`ON CONFLICT
        DO NOTHING`); existing rows are claimed when they may be sent again and no other run
        holds them (`FOR UPDATE SKIP LOCKED`). The ids claimed."""
        inserted = _pg_insert(conn, table)
        claimed = set(inserted)
        if not fresh and len(claimed) < table.num_rows:  # rows another run wrote
            ids = table.column("decision_id")
            rest = table.filter(pc.invert(pc.is_in(ids, value_set=pa.array(inserted, pa.string()))))
            claimed.update(self._pg_reclaim(conn, rest))
        keep = pc.is_in(table.column("decision_id"), value_set=pa.array(claimed, pa.string()))
        return table.column("decision_id").filter(keep).combine_chunks()

    def _pg_reclaim(self, conn: sa.Connection, table: pa.Table) -> list[str]:
        """Mark in flight the rows of `table` that failed for certain, or that still hold the
        uncertain state this run read and reconciled, and that no transaction holds."""
        sets = ", ".join(f"{c} = v.{c}" for c in _MARKED)
        result = conn.execute(
            sa.text(
                f"with v as (select * from {_unnest(expected=True)}), "
                f"claimable as (select l.decision_id from {LEDGER} l join v "
                "on v.decision_id = l.decision_id where l.destination = :destination "
                f"and ({_CLAIMABLE}) order by l.decision_id for update of l skip locked) "
                f"update {LEDGER} l set {sets} from v where l.destination = :destination "
                "and l.decision_id = v.decision_id "
                "and l.decision_id in (select decision_id from claimable) "
                "returning l.decision_id"
            ),
            {**self._expected(table), "destination": self.destination},
        )
        return list(result.scalars())

    def _pg_settle(self, conn: sa.Connection, table: pa.Table) -> None:
        """Settle records this run has not claimed: rows absent when read are inserted unless
        another run has written them since; rows read are updated only while unchanged.
        Without a read (`statuses()`), rows present are updated as they are."""
        if self._seen is None:
            _pg_insert(conn, table, update=_SETTLED)
            return
        seen = self._seen
        known = pa.array([d in seen for d in table.column("decision_id").to_pylist()])
        _pg_insert(conn, table.filter(pc.invert(known)))
        present = table.filter(known)
        if not present.num_rows:
            return
        _pg_update(conn, self.destination, present, _SETTLED, self._expected(present))

    def _expected(self, table: pa.Table) -> dict[str, list[Any]]:
        """`_arrays(table)` with the (status, attempts) `statuses()` read for each row (None
        for a row it did not see)."""
        seen = self._seen or {}
        expected = [seen.get(d, (None, None)) for d in table.column("decision_id").to_pylist()]
        return {
            **_arrays(table),
            "expected_status": [s for s, _ in expected],
            "expected_attempts": [a for _, a in expected],
        }


def _run_key(destination: str) -> int:
    """The advisory lock key of a destination's sync runs (a signed 64-bit integer)."""
    digest = hashlib.sha256(f"{LEDGER}:{destination}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


_DDL_KEY = _run_key("")  # serialises creating the unique key


def _unnest(*, expected: bool = False) -> str:
    """`unnest(cast(:v_c as type[]), …) as v(c, …)`: the ledger's columns bound as arrays
    (`_arrays`); `expected`: also `expected_status`, `expected_attempts` (`_expected`)."""
    arrays = [f"cast(:v_{f.name} as {_PG_TYPES[f.type]}[])" for f in _SCHEMA]
    names = list(_SCHEMA.names)
    if expected:
        arrays += ["cast(:expected_status as varchar[])", "cast(:expected_attempts as integer[])"]
        names += ["expected_status", "expected_attempts"]
    return f"unnest({', '.join(arrays)}) as v({', '.join(names)})"


def _arrays(table: pa.Table) -> dict[str, list[Any]]:
    """The table's columns as the array parameters of `_unnest`."""
    return {f"v_{n}": table.column(n).to_pylist() for n in table.column_names}


def _pg_insert(
    conn: sa.Connection, table: pa.Table, *, update: Sequence[str] | None = None
) -> list[str]:
    """Insert the rows in decision order; a row the ledger has is left as it is (or gets the
    `update` columns); the ids inserted (or written)."""
    if not table.num_rows:
        return []
    cols = ", ".join(_SCHEMA.names)
    if update is None:
        conflict = "do nothing"
    else:
        conflict = "do update set " + ", ".join(f"{c} = excluded.{c}" for c in update)
    result = conn.execute(
        sa.text(
            f"insert into {LEDGER} ({cols}) select {cols} from {_unnest()} "
            f"order by decision_id on conflict (destination, decision_id) {conflict} "
            "returning decision_id"
        ),
        _arrays(table),
    )
    return list(result.scalars())


def _pg_update(
    conn: sa.Connection,
    destination: str,
    table: pa.Table,
    update: Sequence[str],
    expected: dict[str, list[Any]] | None = None,
) -> None:
    """Write the `update` columns of rows this run claimed, or, given `expected` (the arrays of
    `_expected`), of rows still holding the status and attempts this run read."""
    if not table.num_rows:
        return
    sets = ", ".join(f"{c} = v.{c}" for c in update)
    guard = ""
    if expected is not None:
        guard = " and l.status = v.expected_status and l.attempts = v.expected_attempts"
    conn.execute(
        sa.text(
            f"update {LEDGER} l set {sets} from {_unnest(expected=expected is not None)} "
            f"where l.destination = :destination and l.decision_id = v.decision_id{guard}"
        ),
        {**(expected if expected is not None else _arrays(table)), "destination": destination},
    )


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
    return pc.strptime(text, format="%Y-%m-%dT%H:%M:%SZ", unit="us")


def _delivered_at(status: pa.Array, now: datetime) -> pa.Array:
    return pc.if_else(
        pc.equal(status, DeliveryStatus.DELIVERED.value),
        pa.scalar(now, pa.timestamp("us")),
        pa.scalar(None, pa.timestamp("us")),
    )
