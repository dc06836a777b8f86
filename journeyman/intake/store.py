"""Deduplicate verified events by event id and append them to raw.message_events, once each."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pyarrow as pa
import sqlalchemy as sa

from journeyman.intake.events import MessageEvent, utc_naive
from journeyman.tables import RAW_TABLES_DDL, arrow_schema
from journeyman.warehouse import Warehouse, WarehouseError, append_arrow, split_statements

TABLE = "raw.message_events"
SCHEMA = arrow_schema(TABLE)
_LOOKUP_CHUNK = 1000


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

    Each call blocks until its events are committed. Calls arriving while a commit runs, or
    within `commit_interval_s` of the last one, are committed together in the next transaction
    (one short connection per transaction): under a webhook storm the intake holds the
    warehouse file for a few short commits a second and leaves it free in between, so the
    daily job's steps (other processes: DuckDB allows one writer at a time) get their turn.
    """

    def __init__(
        self,
        warehouse: Warehouse,
        *,
        clock: Callable[[], float] = time.time,
        lock_retry_s: float = 2.0,
        commit_interval_s: float = 0.25,
    ) -> None:
        self.warehouse = warehouse
        self.clock = clock
        self.lock_retry_s = lock_retry_s
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
            except WarehouseError:  # another process holds the file: wait for it
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
        with self.warehouse.connect() as conn:
            if not self._table_ready:
                for statement in _message_events_ddl():
                    conn.execute(sa.text(statement))
            existing = _existing_ids(conn, sorted(seen))
            new_rows = [r for rows in fresh for r in rows if r.event_id not in existing]
            append_arrow(conn, TABLE, _to_arrow(new_rows, utc_naive(self.clock())))
        self._table_ready = True
        results = []
        for pending, rows in zip(batch, fresh, strict=True):
            stored = sum(1 for r in rows if r.event_id not in existing)
            results.append(WriteResult(stored=stored, duplicates=len(pending.rows) - stored))
        return results


def _existing_ids(conn: sa.Connection, ids: list[str]) -> set[str]:
    """The ids among `ids` already present in raw.message_events."""
    query = sa.text(f"select distinct event_id from {TABLE} where event_id in :ids").bindparams(
        sa.bindparam("ids", expanding=True)
    )
    found: set[str] = set()
    for start in range(0, len(ids), _LOOKUP_CHUNK):
        found.update(conn.execute(query, {"ids": ids[start : start + _LOOKUP_CHUNK]}).scalars())
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
