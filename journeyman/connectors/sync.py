"""The sync engine: reconcile → filter → dispatch window → mark in flight → send (rate-limited,
retried, split on rejection) → settle → tally.

Shared by every destination (the singer-sdk `Sink` pattern): destination modules add only what
is specific to their API. State (the ledger) is committed before each call and after it
settles, one *ledger chunk* at a time (many requests per commit, so a million records cost a
few dozen warehouse transactions, not thousands).

At most once: a record is committed `in_flight` before its request. A crash leaves it in flight;
the next run asks the destination (`reconcile`) instead of re-sending, and a record the
destination cannot vouch for stays in flight and is reported. A request whose outcome is
unknown (timeout, connection lost after sending) is repeated only when the vendor
de-duplicates (`vendor_dedup`) or after `reconcile` says the vendor does not hold it.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from journeyman.connectors.destination import (
    AuthError,
    BatchResult,
    DeliveryResult,
    DeliveryStatus,
    Destination,
    MessageBatch,
    OutboundMessage,
    RejectedBatchError,
    RetryableError,
)
from journeyman.connectors.ledger import DeliveryLedger
from journeyman.connectors.pacing import RateLimit, RetryPolicy, TokenBucket

log = logging.getLogger(__name__)

FINAL = {
    DeliveryStatus.DELIVERED.value,
    DeliveryStatus.FAILED_PERMANENT.value,
    DeliveryStatus.CANCELLED.value,
}
_ISO = "%Y-%m-%dT%H:%M:%SZ"
#: a result status meaning "outcome unknown: leave the record in flight"
UNKNOWN = DeliveryStatus.IN_FLIGHT

Messages = Iterable[OutboundMessage] | MessageBatch | Any  # Any: pyarrow Table / RecordBatches


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
    deferred: int = 0
    reconciled: int = 0
    unreconciled: int = 0
    left_in_flight: int = 0
    requests: int = 0
    retries: int = 0
    splits: int = 0
    rate_limit_wait_s: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)
    invalid_recipients: list[str] = field(default_factory=list)
    auth_error: str | None = None

    @property
    def failed(self) -> int:
        return self.failed_retryable + self.failed_permanent

    @property
    def skipped(self) -> int:
        return self.skipped_already_settled + self.skipped_in_flight

    def tally(self, results: Sequence[DeliveryResult]) -> None:
        self._count([r.status for r in results], [r.error for r in results])

    def _count(self, statuses: Sequence[DeliveryStatus], errors: Sequence[str | None]) -> None:
        counts = Counter(statuses)
        self.delivered += counts[DeliveryStatus.DELIVERED]
        self.failed_permanent += counts[DeliveryStatus.FAILED_PERMANENT]
        self.failed_retryable += counts[DeliveryStatus.FAILED_RETRYABLE]
        self.left_in_flight += counts[UNKNOWN]
        if len(counts) > 1 or DeliveryStatus.DELIVERED not in counts:
            for error in errors:
                if error:
                    self.errors[error.split(":")[0]] += 1

    def as_metadata(self) -> dict[str, Any]:
        """Plain numbers and dicts for Dagster run metadata."""
        return {
            "sent": self.sent,
            "delivered": self.delivered,
            "failed": self.failed,
            "failed_retryable": self.failed_retryable,
            "failed_permanent": self.failed_permanent,
            "skipped": self.skipped,
            "skipped_already_settled": self.skipped_already_settled,
            "skipped_in_flight": self.skipped_in_flight,
            "deferred": self.deferred,
            "reconciled": self.reconciled,
            "unreconciled": self.unreconciled,
            "left_in_flight": self.left_in_flight,
            "requests": self.requests,
            "retries": self.retries,
            "splits": self.splits,
            "rate_limit_wait_s": round(self.rate_limit_wait_s, 3),
            "errors": dict(self.errors),
            "invalid_recipients": len(self.invalid_recipients),
        }


def reconcile_in_flight(destination: Destination, ledger: DeliveryLedger, now: datetime) -> int:
    """Settle records a crashed run left in flight, as far as the destination can vouch."""
    return _reconcile(destination, ledger, now)[0]


def _reconcile(destination: Destination, ledger: DeliveryLedger, now: datetime) -> tuple[int, int]:
    if destination.reconcile_needs_content:
        return 0, 0  # done as the records reappear in the input
    stuck = ledger.in_flight()
    if not stuck:
        return 0, 0
    verdicts = destination.reconcile(stuck)
    attempts = {d: a for d, (_, a) in ledger.statuses(stuck).items()}
    results = [DeliveryResult(d, s, error=None) for d, s in verdicts.items() if s != UNKNOWN]
    ledger.settle(results, attempts, now)
    left = len(stuck) - len(results)
    if left:
        log.warning(
            "sync %s: %d record(s) left in flight by an earlier run cannot be confirmed with the "
            "destination; they are not re-sent (check them in the vendor's console)",
            destination.name,
            left,
        )
    return len(results), left


def _from_arrow(table: Any, destination: Destination, now: datetime) -> MessageBatch:
    encoded = destination.encode_arrow(table, now)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    return MessageBatch.from_arrow(table, encoded)


def _as_batches(
    messages: Messages, size: int, destination: Destination, now: datetime
) -> Iterable[MessageBatch]:
    """Any accepted input → MessageBatch pieces of at most `size` records."""
    if isinstance(messages, MessageBatch):
        for start in range(0, len(messages), size):
            yield messages.slice(start, start + size)
        return
    if hasattr(messages, "to_batches"):  # pyarrow.Table
        for start in range(0, messages.num_rows, size):
            yield _from_arrow(messages.slice(start, size), destination, now)
        return
    pending: list[OutboundMessage] = []
    for item in messages:
        if hasattr(item, "schema"):  # a pyarrow RecordBatch in a stream
            for start in range(0, item.num_rows, size):
                yield _from_arrow(item.slice(start, size), destination, now)
            continue
        pending.append(item)
        if len(pending) >= size:
            yield MessageBatch.from_messages(pending)
            pending = []
    if pending:
        yield MessageBatch.from_messages(pending)


class _Sender:
    """Delivers one request batch with rate limiting, retries, reconciliation and splitting."""

    def __init__(
        self,
        destination: Destination,
        now: datetime,
        retry: RetryPolicy,
        bucket: TokenBucket | None,
        report: SyncReport,
    ) -> None:
        self.destination = destination
        self.now = now
        self.retry = retry
        self.bucket = bucket
        self.report = report
        self.lock = threading.Lock()
        self.auth_failed: AuthError | None = None

    def deliver(self, batch: MessageBatch) -> BatchResult:
        if self.auth_failed is not None:
            return BatchResult.uniform(len(batch), DeliveryStatus.FAILED_RETRYABLE, "auth_failed")
        started = self.retry.clock()
        attempt = 0
        while True:
            if self.bucket is not None:
                waited = self.bucket.acquire()
                if waited:
                    with self.lock:
                        self.report.rate_limit_wait_s += waited
            with self.lock:
                self.report.requests += 1
            try:
                return self.destination.send_batch(batch, self.now)
            except AuthError as exc:
                with self.lock:
                    if self.auth_failed is None:
                        self.auth_failed = exc
                return BatchResult.uniform(
                    len(batch), DeliveryStatus.FAILED_RETRYABLE, "auth_failed"
                )
            except RejectedBatchError as exc:
                if len(batch) == 1:
                    return BatchResult.uniform(1, DeliveryStatus.FAILED_PERMANENT, exc.code)
                with self.lock:
                    self.report.splits += 1
                half = len(batch) // 2
                result = self.deliver(batch.slice(0, half))
                result.extend(self.deliver(batch.slice(half, len(batch))))
                return result
            except RetryableError as exc:
                if exc.ambiguous and not self.destination.vendor_dedup:
                    settled = self._after_ambiguous(batch, exc)
                    if settled is not None:
                        return settled
                    # reconcile found none of them at the vendor: safe to send again
                delay = self.retry.delay(attempt, exc.wait_s)
                attempt += 1
                elapsed = self.retry.clock() - started
                if attempt >= self.retry.max_attempts or elapsed + delay > self.retry.max_total_s:
                    return BatchResult.uniform(
                        len(batch), DeliveryStatus.FAILED_RETRYABLE, exc.code
                    )
                with self.lock:
                    self.report.retries += 1
                    self.report.errors[f"retried_{exc.code}"] += 1
                if exc.wait_s and self.bucket is not None:
                    self.bucket.pause_until(self.bucket.clock() + min(exc.wait_s, delay))
                log.debug(
                    "sync %s: %s, retry %d in %.2fs",
                    self.destination.name,
                    exc.code,
                    attempt,
                    delay,
                )
                self.retry.sleep(delay)

    def _after_ambiguous(self, batch: MessageBatch, exc: RetryableError) -> BatchResult | None:
        """The vendor may hold this batch: ask it (or leave the records in flight)."""
        if not self.destination.can_reconcile:
            return BatchResult.uniform(len(batch), UNKNOWN, f"outcome_unknown_{exc.code}")
        verdicts = self.destination.reconcile_batch(batch)
        held = [verdicts.get(d) == DeliveryStatus.DELIVERED for d in batch.decision_id]
        if not any(held):
            return None
        if all(held):
            return BatchResult.uniform(len(batch), DeliveryStatus.DELIVERED)
        # some arrived, some did not: settle the arrived, re-send the rest now
        rest = [i for i, h in enumerate(held) if not h]
        again = self.deliver(batch.take(rest))
        out = BatchResult.uniform(len(batch), DeliveryStatus.DELIVERED)
        for j, i in enumerate(rest):
            out.statuses[i] = again.statuses[j]
            out.errors[i] = again.errors[j]
            out.provider_ids[i] = again.provider_ids[j]
        return out


def sync(
    destination: Destination,
    ledger: DeliveryLedger,
    messages: Messages,
    now: datetime,
    *,
    rejected: Sequence[DeliveryResult] = (),
    on_batch: Callable[[int], None] | None = None,
    dispatch_lead: timedelta = timedelta(minutes=5),
    retry: RetryPolicy | None = None,
    rate_limit: RateLimit | None = None,
    bucket: TokenBucket | None = None,
    ledger_chunk: int | None = None,
    concurrency: int = 1,
) -> SyncReport:
    """Deliver every message not yet settled with this destination, at most once each.

    - `messages`: OutboundMessage objects, a MessageBatch, a pyarrow Table, or a stream of
      pyarrow RecordBatches with the OutboundMessage columns (`send_at` as
      `YYYY-MM-DDTHH:MM:SSZ` text).
    - `now`: the run's clock (naive UTC); stamped on ledger rows and used for dispatch: a record
      is sent when `send_at <= now + dispatch_lead`, or earlier when the destination can
      schedule it (`Destination.can_schedule`); otherwise it is deferred (left pending, not
      written to the ledger) for a later dispatch run.
    - `rejected`: records that failed before sending (e.g. a template error); recorded as given.
    - `retry` / `rate_limit` / `bucket`: backoff policy and request pacing (defaults: a
      RetryPolicy() and the destination's vendor-documented `default_rate_limit`).
    - `ledger_chunk`: records per ledger commit (default 50 requests' worth, at least 1000).
    - `concurrency`: parallel requests within a chunk (threads; each has its own session).

    Raises AuthError (once, after settling what it knows) when the vendor rejects the
    credentials; records not sent because of it are failed_retryable, none delivered.
    """
    with ledger.held():
        return _sync(
            destination,
            ledger,
            messages,
            now,
            rejected,
            on_batch,
            dispatch_lead,
            retry,
            rate_limit,
            bucket,
            ledger_chunk,
            concurrency,
        )


def _sync(
    destination: Destination,
    ledger: DeliveryLedger,
    messages: Messages,
    now: datetime,
    rejected: Sequence[DeliveryResult],
    on_batch: Callable[[int], None] | None,
    dispatch_lead: timedelta,
    retry: RetryPolicy | None,
    rate_limit: RateLimit | None,
    bucket: TokenBucket | None,
    ledger_chunk: int | None,
    concurrency: int,
) -> SyncReport:
    report = SyncReport(destination=destination.name)
    retry = retry or RetryPolicy()
    if bucket is None:
        limit = rate_limit or destination.default_rate_limit
        bucket = TokenBucket(limit, clock=retry.clock, sleep=retry.sleep) if limit else None
    report.reconciled, report.unreconciled = _reconcile(destination, ledger, now)
    known = ledger.statuses()
    attempts: dict[str, int] = {d: a for d, (_, a) in known.items()}
    status_of = {d: s for d, (s, _) in known.items()}

    if rejected:
        fresh = [r for r in rejected if status_of.get(r.decision_id) not in FINAL]
        for r in fresh:
            attempts[r.decision_id] = attempts.get(r.decision_id, 0) + 1
        ledger.settle(fresh, attempts, now)
        report.tally(fresh)

    size = destination.max_batch_size
    chunk = ledger_chunk or max(1000, 50 * size)
    due_by = (now + dispatch_lead).strftime(_ISO)
    window = destination.schedule_window
    low = (now + window[0]).strftime(_ISO) if window else None
    high = (now + window[1]).strftime(_ISO) if window and window[1] is not None else None
    sender = _Sender(destination, now, retry, bucket, report)
    pool = ThreadPoolExecutor(concurrency) if concurrency > 1 else None
    # with a pool, ledger commits run on their own thread: this one filters and encodes the
    # next chunk meanwhile (a commit mostly waits for the disk)
    writer = (
        ThreadPoolExecutor(1, thread_name_prefix="ledger")
        if pool is not None and not destination.reconcile_needs_content
        else None
    )
    job: Future[_Chunk | None] | None = None
    pending: _Chunk | None = None

    def advance(
        pending: _Chunk | None, todo: MessageBatch, counts: list[int], tracked: bool = True
    ) -> _Chunk | None:
        """Settle the previous chunk and mark this one in flight in one transaction, then
        start this chunk's requests (none once the vendor refused the credentials)."""
        if pending is not None:
            _collect(pending)  # HTTP outside the transaction
        with ledger.transaction():
            if pending is not None:
                _finish_chunk(pending, destination, ledger, now, status_of, report, on_batch)
            if sender.auth_failed is not None:
                return None
            ledger.mark_in_flight_bulk(_ids(todo), counts, now, send_at=_send_ats(todo))
        started = _start_chunk(todo, counts, sender, pool, size)
        started.tracked = tracked
        return started

    # Arrow tables without repeated decision ids are filtered column-wise: records the
    # ledger does not know yet need no per-record Python (the dispatch window is one compare)
    unique = hasattr(messages, "to_batches") and _unique_ids(messages)
    known_ids = pa.array(list(status_of), pa.string()) if unique and status_of else None
    try:
        for piece in _as_batches(messages, chunk, destination, now):
            if unique:
                fresh = _fresh_due(piece, known_ids, due_by, low, high)
                if fresh is not None:
                    keep_mask, n_keep = fresh
                    report.deferred += len(piece) - n_keep
                    if not n_keep:
                        continue
                    todo = piece if n_keep == len(piece) else piece.filter(keep_mask)
                    counts = [1] * n_keep  # first attempts: the ledger has none of them
                    pending, job, stop = _dispatch(
                        todo, counts, pending, job, writer, advance, sender, tracked=False
                    )
                    if stop:
                        break
                    continue
            keep: list[int] = []
            stuck: list[int] = []
            for i, (d, send_at) in enumerate(zip(piece.decision_id, piece.send_at, strict=True)):
                status = status_of.get(d)
                if status is not None:
                    if status in FINAL:
                        report.skipped_already_settled += 1
                        continue
                    if status == DeliveryStatus.IN_FLIGHT.value:
                        if destination.reconcile_needs_content:
                            stuck.append(i)
                        else:
                            report.skipped_in_flight += 1
                        continue
                if send_at <= due_by or (
                    low is not None and send_at >= low and (high is None or send_at <= high)
                ):
                    keep.append(i)
                else:
                    report.deferred += 1
            if stuck:
                keep.extend(
                    _reconcile_content(
                        destination, ledger, piece, stuck, now, attempts, status_of, report
                    )
                )
                keep.sort()
            if not keep:
                continue
            todo = piece if len(keep) == len(piece) else piece.take(keep)
            counts = _claim(todo, attempts, status_of)  # this run's view, before any commit
            pending, job, stop = _dispatch(todo, counts, pending, job, writer, advance, sender)
            if stop:
                break
        if job is not None:
            pending = job.result()
            job = None
        if pending is not None:
            _finish_chunk(pending, destination, ledger, now, status_of, report, on_batch)
            pending = None
    finally:
        if writer is not None:
            writer.shutdown()
        if pool is not None:
            pool.shutdown()
    log.info(
        "sync %s: %d sent, %d delivered, %d failed (%d retryable, %d permanent), %d deferred, "
        "%d skipped, %d retries",
        destination.name,
        report.sent,
        report.delivered,
        report.failed,
        report.failed_retryable,
        report.failed_permanent,
        report.deferred,
        report.skipped,
        report.retries,
    )
    if sender.auth_failed is not None:
        report.auth_error = str(sender.auth_failed)
        raise sender.auth_failed
    return report


def _reconcile_content(
    destination: Destination,
    ledger: DeliveryLedger,
    piece: MessageBatch,
    stuck: list[int],
    now: datetime,
    attempts: dict[str, int],
    status_of: dict[str, str],
    report: SyncReport,
) -> list[int]:
    """Settle in-flight records by vendor lookup; return the indices that may be sent again."""
    batch = piece.take(stuck)
    verdicts = destination.reconcile_batch(batch)
    held = [
        DeliveryResult(d, DeliveryStatus.DELIVERED)
        for d in batch.decision_id
        if verdicts.get(d) == DeliveryStatus.DELIVERED
    ]
    ledger.settle(held, attempts, now)
    for r in held:
        status_of[r.decision_id] = r.status.value
    report.reconciled += len(held)
    again = [
        i for i in stuck if verdicts.get(piece.decision_id[i]) == DeliveryStatus.FAILED_RETRYABLE
    ]
    report.reconciled += len(again)
    report.unreconciled += len(stuck) - len(held) - len(again)
    report.skipped_in_flight += len(stuck) - len(held) - len(again)
    return again


@dataclass
class _Chunk:
    todo: MessageBatch
    counts: list[int]
    pieces: list[MessageBatch]
    results: Any
    sender: _Sender
    done: list[BatchResult] | None = None
    tracked: bool = True  # kept in the run's status_of (per-record path)


def _ids(batch: MessageBatch) -> Any:
    """Decision ids as Arrow (no Python list) when the batch is Arrow-backed."""
    source = batch.arrow
    return batch.decision_id if source is None else source.column("decision_id")


def _send_ats(batch: MessageBatch) -> Any:
    source = batch.arrow
    return batch.send_at if source is None else source.column("send_at")


def _unique_ids(table: Any) -> bool:
    """Whether a pyarrow Table's decision ids are all different (one hash pass)."""
    ids = table.column("decision_id")
    if ids.null_count:
        return False
    if len(ids) > 1 and pc.all(pc.less(ids.slice(0, len(ids) - 1), ids.slice(1))).as_py():
        return True  # strictly increasing (sorted input): no repeats, no hashing
    return pc.count_distinct(ids).as_py() == table.num_rows


def _fresh_due(
    piece: MessageBatch,
    known_ids: Any,
    due_by: str,
    low: str | None,
    high: str | None,
) -> tuple[Any, int] | None:
    """Column-wise filter of an Arrow piece none of whose records the ledger knows: (mask of
    the records to send now, how many); None when some are known (the per-record path)."""
    source = piece.arrow
    if source is None:
        return None
    ids = source.column("decision_id")
    if known_ids is not None and pc.any(pc.is_in(ids, value_set=known_ids)).as_py():
        return None
    send_at = source.column("send_at")
    if send_at.null_count:
        return None
    due = pc.less_equal(send_at, due_by)
    if low is not None:
        ahead = pc.greater_equal(send_at, low)
        if high is not None:
            ahead = pc.and_(ahead, pc.less_equal(send_at, high))
        due = pc.or_(due, ahead)
    return due, pc.sum(due).as_py() or 0


def _dispatch(
    todo: MessageBatch,
    counts: list[int],
    pending: _Chunk | None,
    job: Future[_Chunk | None] | None,
    writer: ThreadPoolExecutor | None,
    advance: Callable[..., _Chunk | None],
    sender: _Sender,
    *,
    tracked: bool = True,
) -> tuple[_Chunk | None, Future[_Chunk | None] | None, bool]:
    """Hand a chunk on: the previous chunk's outcomes and this chunk's in-flight mark are
    committed together (one transaction) before this chunk's requests start. With a pool, the
    commit runs on the ledger thread while this one prepares the next chunk (at most one
    commit ahead). Returns (pending, job, stop)."""
    if writer is not None:
        if job is not None:
            pending = job.result()  # errors surface here
            job = None
        if sender.auth_failed is not None:
            return pending, None, True
        return None, writer.submit(advance, pending, todo, counts, tracked), False
    pending = advance(pending, todo, counts, tracked)
    return pending, None, sender.auth_failed is not None or pending is None


def _claim(todo: MessageBatch, attempts: dict[str, int], status_of: dict[str, str]) -> list[int]:
    """This run's view of a chunk about to be marked in flight: attempt numbers, status."""
    ids = todo.decision_id
    counts = [attempts.get(d, 0) + 1 for d in ids]
    attempts.update(zip(ids, counts, strict=True))
    status_of.update(dict.fromkeys(ids, DeliveryStatus.IN_FLIGHT.value))
    return counts


def _start_chunk(
    todo: MessageBatch,
    counts: list[int],
    sender: _Sender,
    pool: ThreadPoolExecutor | None,
    size: int,
) -> _Chunk:
    """Start the chunk's requests (in the pool), or leave them to `_finish_chunk`."""
    pieces = [todo.slice(s, s + size) for s in range(0, len(todo), size)]
    if pool is not None:
        results: Any = [pool.submit(sender.deliver, p) for p in pieces]
    else:
        results = None  # sent when finished (no overlap without a pool)
    return _Chunk(todo, counts, pieces, results, sender)


def _collect(chunk: _Chunk) -> list[BatchResult]:
    """The chunk's request outcomes: waited for (pool) or sent now (sequential), once."""
    if chunk.done is None:
        if chunk.results is None:
            chunk.done = [chunk.sender.deliver(p) for p in chunk.pieces]
        else:
            chunk.done = [f.result() for f in chunk.results]
    return chunk.done


def _finish_chunk(
    chunk: _Chunk,
    destination: Destination,
    ledger: DeliveryLedger,
    now: datetime,
    status_of: dict[str, str],
    report: SyncReport,
    on_batch: Callable[[int], None] | None,
) -> None:
    todo, counts, pieces = chunk.todo, chunk.counts, chunk.pieces
    results = _collect(chunk)
    outcome = BatchResult([], [], [])
    for piece, result in zip(pieces, results, strict=True):
        if len(result) != len(piece):
            raise RuntimeError(
                f"destination {destination.name} returned {len(result)} results "
                f"for {len(piece)} records"
            )
        outcome.extend(result)
        if on_batch:
            on_batch(len(piece))
    report.sent += len(todo)
    report._count(outcome.statuses, outcome.errors)
    all_delivered = outcome.statuses.count(DeliveryStatus.DELIVERED) == len(todo)
    if not all_delivered:
        for d, s, e in zip(todo.decision_id, outcome.statuses, outcome.errors, strict=True):
            if (
                s == DeliveryStatus.FAILED_PERMANENT
                and e
                and e.startswith(("unregistered", "invalid"))
            ):
                report.invalid_recipients.append(d)
    # UNKNOWN outcomes stay in flight
    ledger.settle_bulk(_ids(todo), outcome, counts, now, batch_id=destination.send_group())
    if not chunk.tracked:  # records this run's view never held (column-wise path)
        return
    ids = todo.decision_id
    if all_delivered:
        status_of.update(dict.fromkeys(ids, DeliveryStatus.DELIVERED.value))
    else:
        for d, s in zip(ids, outcome.statuses, strict=True):
            status_of[d] = s.value
