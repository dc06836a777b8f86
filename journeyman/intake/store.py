"""Deduplicate verified events by event id and append them to raw.message_events, once each.

DuckDB (one writing process per file): the receiver's process is the only intake writer, so
it deduplicates against what raw.message_events holds for the days around the events (a
vendor's retry horizon; staging drops a copy from further apart), and holds the file for short
group commits only. PostgreSQL: any number of intake processes write at once; the database
deduplicates, on the primary key of `journeyman.intake_event_ids` (`INSERT … ON CONFLICT DO
NOTHING`), in the transaction that appends the events.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyarrow as pa
import sqlalchemy as sa

from journeyman.intake.events import MessageEvent, utc_naive
from journeyman.tables import RAW_TABLES_DDL, arrow_schema
from journeyman.warehouse import Warehouse, WarehouseError, append_arrow, split_statements

TABLE = "raw.message_events"
SCHEMA = arrow_schema(TABLE)
#: PostgreSQL: the event ids the intake has stored, its unique key (raw.message_events has
#: none: an ETL tool may load duplicates there, which staging drops)
KEYS = "journeyman.intake_event_ids"
_LOOKUP_CHUNK = 1000
#: DuckDB: how far apart (occurred_at) two copies of an event may lie and still be caught here
DEDUP_HORIZON = timedelta(days=4)
#: pg_advisory_xact_lock key serialising the intake's DDL between worker processes
_DDL_LOCK = 0x6A6D_696E_7461_6B65  # "jmintake"
#: group commit pause (s) that leaves a DuckDB file free between the intake's commits
DUCKDB_COMMIT_INTERVAL_S = 0.25

_KEYS_DDL = (
    "create schema if not exists journeyman",
    f"create table if not exists {KEYS} (event_id varchar primary key, loaded_at timestamp)",
)
# on first creation: what the raw table already holds counts as stored (an upgrade)
_SEED_KEYS = (
    f"insert into {KEYS} (event_id, loaded_at) select event_id, max(_loaded_at) from {TABLE} "
    "where event_id is not null group by event_id on conflict (event_id) do nothing"
)
_COLUMNS = ("event_id", "decision_id", "customer_id", "channel", "event_type", "occurred_at")
_PG_APPEND = f"""
with incoming as (
    select * from unnest(
        cast(:event_id as varchar[]), cast(:decision_id as varchar[]),
        cast(:customer_id as varchar[]), cast(:channel as varchar[]),
        cast(:event_type as varchar[]), cast(:occurred_at as timestamp[])
    ) as v({", ".join(_COLUMNS)})
), claimed as (
    insert into {KEYS} (event_id, loaded_at)
    select event_id, :loaded_at from incoming order by event_id
    on conflict (event_id) do nothing
    returning event_id
)
insert into {TABLE} ({", ".join(_COLUMNS)}, _loaded_at)
select {", ".join(f"i.{c}" for c in _COLUMNS)}, :loaded_at
from incoming i join claimed c on c.event_id = i.event_id
returning event_id
"""


def _message_events_ddl() -> list[str]:
    """The raw schema and raw.message_events statements from the shared raw DDL."""
    return [
        s for s in split_statements(RAW_TABLES_DDL) if s.startswith("create schema") or TABLE in s
    ]


@dataclass(frozen=True)
class WriteResult:
    """What one request's events came to: newly stored vs already present (or repeated)."""

    stored: int
    duplicates: int


class _Pending:
    __slots__ = ("rows", "result", "error")

    def __init__(self, rows: Sequence[MessageEvent]) -> None:
        self.rows = rows
        self.result: WriteResult | None = None
        self.error: BaseException | None = None


class EventStore:
    """Appends events to raw.message_events exactly once per event id, with group commit.

    Each call blocks until its events are committed. Calls arriving while a commit runs are
    committed together in the next transaction (one short connection per transaction).
    DuckDB: commits are at least `commit_interval_s` apart (default 0.25 s), so under a webhook
    storm the intake leaves the file free between them for the daily job's steps (other
    processes: one writer at a time), and a file held by another process is retried for
    `lock_retry_s` before WarehouseError. PostgreSQL: no pause (default 0); concurrent writers,
    in this process or others, are deduplicated by the database's unique key.
    """

    def __init__(
        self,
        warehouse: Warehouse,
        *,
        clock: Callable[[], float] = time.time,
        lock_retry_s: float = 2.0,
        commit_interval_s: float | None = None,
    ) -> None:
        self.warehouse = warehouse
        self.clock = clock
        self.lock_retry_s = lock_retry_s
        self.postgres = warehouse.backend == "postgresql"
        if commit_interval_s is None:
            commit_interval_s = 0.0 if self.postgres else DUCKDB_COMMIT_INTERVAL_S
        self.commit_interval_s = commit_interval_s
        self._last_commit = float("-inf")  # monotonic end of the last commit
        self._commit_lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._table_ready = False

    def write(self, rows: Sequence[MessageEvent]) -> WriteResult:
        """Store the rows not yet in the warehouse; return counts once they are committed."""
        if not rows:
            return WriteResult(0, 0)
        mine = _Pending(rows)
        with self._queue_lock:
            self._queue.append(mine)
        with self._commit_lock:
            if mine.result is None and mine.error is None:
                # yield the file between commits; posts arriving meanwhile join this commit
                pause = self._last_commit + self.commit_interval_s - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                try:
                    results = self._commit_with_retry(batch)
                    self._last_commit = time.monotonic()
                except BaseException as exc:  # every waiter learns of the failure
                    for pending in batch:
                        pending.error = exc
                else:
                    for pending, result in zip(batch, results, strict=True):
                        pending.result = result
        if mine.error is not None:
            raise mine.error
        assert mine.result is not None
        return mine.result

    def _commit_with_retry(self, batch: list[_Pending]) -> list[WriteResult]:
        deadline = time.monotonic() + self.lock_retry_s
        delay = 0.05
        while True:
            try:
                return self._commit(batch)
            except WarehouseError:  # DuckDB: another process holds the file; PG: server gone
                if time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    def _commit(self, batch: list[_Pending]) -> list[WriteResult]:
        seen: set[str] = set()
        fresh: list[list[MessageEvent]] = []
        for pending in batch:
            unique = []
            for row in pending.rows:
                if row.event_id not in seen:
                    seen.add(row.event_id)
                    unique.append(row)
            fresh.append(unique)
        new_rows = [r for rows in fresh for r in rows]
        loaded_at = utc_naive(self.clock())
        store = self._store_postgres if self.postgres else self._store_duckdb
        stored = store(new_rows, loaded_at)
        self._table_ready = True
        results = []
        for pending, rows in zip(batch, fresh, strict=True):
            count = sum(1 for r in rows if r.event_id in stored)
            results.append(WriteResult(stored=count, duplicates=len(pending.rows) - count))
        return results

    def _store_duckdb(self, rows: list[MessageEvent], loaded_at: datetime) -> set[str]:
        """Append the rows whose ids raw.message_events lacks (this process is its only
        intake writer); the ids appended."""
        with self.warehouse.connect() as conn:
            if not self._table_ready:
                for statement in _message_events_ddl():
                    conn.execute(sa.text(statement))
            existing = _existing_ids(conn, rows)
            new_rows = [r for r in rows if r.event_id not in existing]
            append_arrow(conn, TABLE, _to_arrow(new_rows, loaded_at))
        return {r.event_id for r in new_rows}

    def _store_postgres(self, rows: list[MessageEvent], loaded_at: datetime) -> set[str]:
        """Claim the rows' ids in the key table and append the rows it claimed, in one
        statement and transaction; the ids appended. A concurrent writer of the same id
        waits for this transaction, then finds the key taken (or free, if it rolled back)."""
        params = {c: [getattr(r, c) for r in rows] for c in _COLUMNS}
        try:
            with self.warehouse.connect() as conn:
                if not self._table_ready:
                    _create_postgres_tables(conn)
                result = conn.execute(sa.text(_PG_APPEND), {**params, "loaded_at": loaded_at})
                return set(result.scalars())
        except sa.exc.OperationalError as exc:  # connection lost, deadlock, shutdown: retry
            raise WarehouseError(
                f"the PostgreSQL warehouse did not store the events ({type(exc.orig).__name__})"
            ) from None


def _create_postgres_tables(conn: sa.Connection) -> None:
    """raw.message_events and the key table, once, whichever worker process comes first."""
    conn.execute(sa.text("select pg_advisory_xact_lock(:key)"), {"key": _DDL_LOCK})
    for statement in _message_events_ddl():
        conn.execute(sa.text(statement))
    created = conn.execute(sa.text("select to_regclass(:name) is null"), {"name": KEYS}).scalar()
    for statement in _KEYS_DDL:
        conn.execute(sa.text(statement))
    if created:
        conn.execute(sa.text(_SEED_KEYS))


def _existing_ids(conn: sa.Connection, rows: Sequence[MessageEvent]) -> set[str]:
    """The rows' event ids already present in raw.message_events, among the events that
    occurred within DEDUP_HORIZON of theirs: a vendor re-delivers an event within its retry
    horizon (SendGrid 72 h), and the bound lets DuckDB's zone maps skip the older history, so
    a lookup costs the recent days, not the whole table. A copy from further apart is stored
    and left to staging (`duplicate_event_id`)."""
    ids = sorted({r.event_id for r in rows})
    if not ids:
        return set()
    since = min(r.occurred_at for r in rows) - DEDUP_HORIZON
    until = max(r.occurred_at for r in rows) + DEDUP_HORIZON
    query = sa.text(
        f"select distinct event_id from {TABLE} where occurred_at between :since and :until "
        "and event_id in :ids"
    ).bindparams(sa.bindparam("ids", expanding=True))
    found: set[str] = set()
    for start in range(0, len(ids), _LOOKUP_CHUNK):
        chunk = {"ids": ids[start : start + _LOOKUP_CHUNK], "since": since, "until": until}
        found.update(conn.execute(query, chunk).scalars())
    return found


def _to_arrow(rows: list[MessageEvent], loaded_at: object) -> pa.Table:
    return pa.table(
        {
            "event_id": [r.event_id for r in rows],
            "decision_id": [r.decision_id for r in rows],
            "customer_id": [r.customer_id for r in rows],
            "channel": [r.channel for r in rows],
            "event_type": [r.event_type for r in rows],
            "occurred_at": [r.occurred_at for r in rows],
            "_loaded_at": [loaded_at] * len(rows),
        },
        schema=SCHEMA,
    )
