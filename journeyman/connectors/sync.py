"""The sync engine: one `SyncRun` per destination and run, in named steps:

reconcile → select due → expire → mark in flight → send → settle → tally.

Shared by every destination (the singer-sdk `Sink` pattern): destination modules add only what
is specific to their API. The ledger is the state, and it says the truth at every instant:

- **In flight means on the wire.** Only the records of the requests about to leave are marked
  in flight (at most `concurrency` requests' worth), committed together with the outcomes of the
  previous requests. A crash leaves at most those uncertain; every record not yet sent has no
  mark and is sent by the next run.
- **Unknown is never absent.** A request whose outcome is uncertain (timeout or connection lost
  after sending, a crash) leaves its records `unknown`. They are sent again only on positive
  evidence that the vendor does not hold them: a lookup that answered definitively, after the
  vendor's indexing lag, paced to its documented lookup limit — or because the vendor
  de-duplicates by our id. Nothing turns "could not confirm" into "send again".
- **Send windows.** A record past its `send_until` is `expired`, never sent late.
- **One sender per record.** A run sends only the records its in-flight mark claimed. On
  PostgreSQL runs of one destination may overlap: the ledger claims with a unique key and
  `SELECT … FOR UPDATE SKIP LOCKED`, and a run leaves another live run's in-flight records
  alone (connectors/ledger.py). On DuckDB a run holds the file, so runs follow each other.
- **Auxiliary failures are the destination's.** A failing set-up call (`prepare`: batch id,
  token) or a request the vendor rejects as a whole for the destination's settings stops the sync
  with one clear error; records not sent are released (as if never tried), none marked failed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from journeyman.connectors.destination import (
    FINAL_STATUSES,
    BatchResult,
    DeliveryResult,
    DeliveryStatus,
    Destination,
    Lookup,
    MessageBatch,
    OutboundMessage,
)
from journeyman.connectors.ledger import DeliveryLedger
from journeyman.connectors.lookups import VendorLookups
from journeyman.connectors.pacing import RateLimit, RetryPolicy, TokenBucket
from journeyman.connectors.report import SyncReport
from journeyman.connectors.sender import RequestSender

log = logging.getLogger(__name__)

FINAL = frozenset(s.value for s in FINAL_STATUSES)
UNSETTLED = frozenset({DeliveryStatus.IN_FLIGHT.value, DeliveryStatus.UNKNOWN.value})
_ISO = "%Y-%m-%dT%H:%M:%SZ"

Messages = Iterable[OutboundMessage] | MessageBatch | Any  # Any: pyarrow Table / RecordBatches


@dataclass
class SyncOptions:
    """How a sync paces, retries and decides what is due.

    - `dispatch_lead`: a record is sent when `send_at <= now + dispatch_lead`, or earlier when
      the destination can schedule it; otherwise it is deferred for a later dispatch run.
    - `retry` / `rate_limit` / `bucket`: backoff policy and request pacing (defaults: a
      RetryPolicy() and the destination's vendor-documented `default_rate_limit`).
    - `concurrency`: requests in flight at once (threads, one HTTP session each).
    - `lookup_budget_s`: the most time one run spends on lookups (paced to the vendor's limit);
      records not looked up stay unknown for the next run.
    - `expire`: enforce send windows (a simulation whose clock is not the wall clock turns it
      off: its dispatch is on time by construction).
    """

    dispatch_lead: timedelta = timedelta(minutes=5)
    retry: RetryPolicy | None = None
    rate_limit: RateLimit | None = None
    bucket: TokenBucket | None = None
    concurrency: int = 1
    lookup_budget_s: float = 60.0
    expire: bool = True
    on_batch: Callable[[int], None] | None = None


def sync(
    destination: Destination,
    ledger: DeliveryLedger,
    messages: Messages,
    now: datetime,
    *,
    rejected: Sequence[DeliveryResult] = (),
    **options: Any,
) -> SyncReport:
    """Deliver every message not yet settled with this destination, at most once each.

    `messages`: OutboundMessage objects, a MessageBatch, a pyarrow Table, or a stream of
    pyarrow RecordBatches with the OutboundMessage columns (`send_at` / `send_until` as
    `YYYY-MM-DDTHH:MM:SSZ` text). `now`: the run's clock (naive UTC). `rejected`: records
    settled before sending (a template error, consent withdrawn), recorded as given.
    `options`: the fields of SyncOptions.

    Raises AuthError when the vendor rejects the credentials and DestinationError when the
    destination cannot be used (a set-up call or a whole request rejected for its settings),
    after settling what it knows; records not sent because of it are released, none failed.
    """
    return SyncRun(destination, ledger, now, SyncOptions(**options)).run(messages, rejected)


class SyncRun:
    """One destination's sync: the steps of the module docstring, in order."""

    def __init__(
        self, destination: Destination, ledger: DeliveryLedger, now: datetime, options: SyncOptions
    ) -> None:
        self.destination = destination
        self.ledger = ledger
        self.now = now
        self.options = options
        self.report = SyncReport(destination=destination.name)
        retry = options.retry or RetryPolicy()
        bucket = options.bucket
        if bucket is None:
            limit = options.rate_limit or destination.default_rate_limit
            bucket = TokenBucket(limit, clock=retry.clock, sleep=retry.sleep) if limit else None
        self.sender = RequestSender(destination, now, retry, bucket, self.report)
        self.lookups = VendorLookups(destination, now, retry, options.lookup_budget_s, self.report)
        self.status_of: dict[str, str] = {}
        self.attempts: dict[str, int] = {}
        #: records of earlier attempts whose outcome is not known: id → (status, attempted_at)
        self.stuck: dict[str, tuple[str, datetime | None]] = {}
        self.stopped: BaseException | None = None
        #: the wave sent last, settled with the next wave's mark (one commit between waves)
        self.pending: tuple[Any, ...] | None = None
        #: Arrow input whose ids are unique: pieces the ledger knows nothing of are selected
        #: column-wise and kept out of the per-record maps (Arrow ids, or None)
        self.columnar: Any | None = None

    # -- the run -------------------------------------------------------------------------------

    def run(self, messages: Messages, rejected: Sequence[DeliveryResult]) -> SyncReport:
        with self.ledger.held():
            self.destination.prepare(self.now)  # raises before anything is marked
            self.report.batch_id = self.destination.send_group()
            self.load_state(_input_ids(messages, rejected))
            self.reconcile()
            self.record_rejected(rejected)
            self.columnar = _columnar(messages, self.status_of)
            wave = max(1, self.options.concurrency) * self.destination.max_batch_size
            pool = (
                ThreadPoolExecutor(self.options.concurrency)
                if self.options.concurrency > 1
                else None
            )
            try:
                for piece in _as_batches(messages, wave, self.destination, self.now):
                    todo, fresh = self.select_due(piece)
                    todo = self.expire(todo)
                    if len(todo) and self.stopped is None:
                        self.deliver(todo, pool, tracked=not fresh)
                    if self.stopped is not None:
                        break
            finally:
                if pool is not None:
                    pool.shutdown()
            self.flush()
            self.tally()
        if self.stopped is not None:
            raise self.stopped
        return self.report

    def load_state(self, input_ids: pa.Array | list[str] | None = None) -> None:
        """This destination's ledger as the run starts: stuck records, then the statuses and
        attempts of the records this run may touch (`input_ids`, its input and rejected
        records, with the stuck ones; None: the whole ledger). In-flight records are stuck only
        when no other run of the destination is alive (PostgreSQL): else they may be that run's
        requests on the wire, and are left to it."""
        stuck = self.ledger.stuck()
        stuck_ids = stuck.column("decision_id")
        for d, status, at in zip(
            stuck_ids.to_pylist(),
            stuck.column("status").to_pylist(),
            stuck.column("attempted_at").to_pylist(),
            strict=True,
        ):
            if self.ledger.alone or status != DeliveryStatus.IN_FLIGHT.value:
                self.stuck[d] = (status, at)
        wanted = None
        if input_ids is not None:
            wanted = pa.chunked_array([input_ids, stuck_ids.combine_chunks()], pa.string())
        for d, (status, attempts) in self.ledger.statuses(wanted).items():
            self.status_of[d] = status
            self.attempts[d] = attempts
        self.ledger.share()

    # -- reconcile -----------------------------------------------------------------------------

    def reconcile(self) -> None:
        """Settle what earlier runs left uncertain, as far as the vendor can vouch: by id now,
        by content (recipient, body) as the records reappear in the input."""
        if not self.stuck:
            return
        if self.destination.vendor_dedup:
            for d in self.stuck:  # re-sending is harmless: the vendor de-duplicates
                self.status_of[d] = DeliveryStatus.FAILED_RETRYABLE.value
            self.report.reconciled += len(self.stuck)
            self.stuck.clear()
            return
        if self.destination.lookup_needs_content:
            return
        ids = sorted(self.stuck)
        verdicts = self.lookups.ask(MessageBatch(decision_id=ids), self._attempted_at)
        self._apply(ids, verdicts)

    def _attempted_at(self, decision_id: str) -> datetime | None:
        return self.stuck.get(decision_id, (None, None))[1]

    def _apply(self, ids: Sequence[str], verdicts: dict[str, Lookup]) -> list[str]:
        """Settle looked-up records: held → delivered; absent → may be sent again (returned);
        no answer → unknown (records a crashed run left in flight become unknown)."""
        held, again, unknown = [], [], []
        for d in ids:
            verdict = verdicts.get(d, Lookup.UNKNOWN)
            if verdict == Lookup.HELD:
                held.append(DeliveryResult(d, DeliveryStatus.DELIVERED, "confirmed_by_lookup"))
            elif verdict == Lookup.ABSENT:
                again.append(d)
            elif self.stuck[d][0] == DeliveryStatus.IN_FLIGHT.value:
                reason = self.lookups.reason or "outcome_unknown_crash"
                unknown.append(DeliveryResult(d, DeliveryStatus.UNKNOWN, reason))
        self.ledger.settle(held + unknown, self.attempts, self.now)
        for r in held + unknown:
            self.status_of[r.decision_id] = r.status.value
        for d in again:
            self.status_of[d] = DeliveryStatus.FAILED_RETRYABLE.value
        for d in ids:
            self.stuck.pop(d, None)
        self.report.reconciled += len(held) + len(again)
        return again

    # -- select due, expire --------------------------------------------------------------------

    def record_rejected(self, rejected: Sequence[DeliveryResult]) -> None:
        """Records settled before sending: only those the ledger has not settled or in flight."""
        fresh = [
            r
            for r in rejected
            if self.status_of.get(r.decision_id) not in FINAL | UNSETTLED
            and r.decision_id not in self.stuck
        ]
        for r in fresh:
            self.attempts[r.decision_id] = self.attempts.get(r.decision_id, 0) + (
                0 if r.status == DeliveryStatus.SUPPRESSED else 1
            )
            self.status_of[r.decision_id] = r.status.value
        self.ledger.settle(fresh, self.attempts, self.now)
        self.report.tally(fresh)

    def _due_bounds(self) -> tuple[str, str | None, str | None]:
        """(due by, earliest and latest send time the vendor can hold) as ISO text."""
        due_by = (self.now + self.options.dispatch_lead).strftime(_ISO)
        window = self.destination.schedule_window
        low = (self.now + window[0]).strftime(_ISO) if window else None
        high = (self.now + window[1]).strftime(_ISO) if window and window[1] is not None else None
        return due_by, low, high

    def select_due(self, piece: MessageBatch) -> tuple[MessageBatch, bool]:
        """The records of `piece` to send now: not settled, not uncertain, due (or schedulable
        ahead); uncertain records the vendor can look up by content are looked up here. The
        flag says whether they are all first attempts selected column-wise (no per-record
        state kept for them: the input's ids are unique, the run never meets them again)."""
        fresh = self._select_fresh(piece)
        if fresh is not None:
            return fresh, True
        due_by, low, high = self._due_bounds()
        keep: list[int] = []
        stuck: list[int] = []
        for i, (d, send_at) in enumerate(zip(piece.decision_id, piece.send_at, strict=True)):
            status = self.status_of.get(d)
            if status in FINAL:
                self.report.skipped_already_settled += 1
                continue
            if d in self.stuck:
                stuck.append(i)
                continue
            if status in UNSETTLED:
                self.report.skipped_unknown += 1
                continue
            if send_at <= due_by or (
                low is not None and send_at >= low and (high is None or send_at <= high)
            ):
                keep.append(i)
            else:
                self.report.deferred += 1
        if stuck:
            keep.extend(self._look_up_content(piece, stuck))
            keep.sort()
        return (piece if len(keep) == len(piece) else piece.take(keep)), False

    def _select_fresh(self, piece: MessageBatch) -> MessageBatch | None:
        """Column-wise `select_due` for an Arrow piece none of whose records the ledger knows
        (no per-record Python); None when that does not apply."""
        source = piece.arrow
        if self.columnar is None or source is None or source.column("send_at").null_count:
            return None
        ids = source.column("decision_id")
        if len(self.columnar) and pc.any(pc.is_in(ids, value_set=self.columnar)).as_py():
            return None
        due_by, low, high = self._due_bounds()
        send_at = source.column("send_at")
        due = pc.less_equal(send_at, due_by)
        if low is not None:
            ahead = pc.greater_equal(send_at, low)
            if high is not None:
                ahead = pc.and_(ahead, pc.less_equal(send_at, high))
            due = pc.or_(due, ahead)
        n_due = pc.sum(due).as_py() or 0
        self.report.deferred += len(piece) - n_due
        return piece if n_due == len(piece) else piece.filter(due)

    def _look_up_content(self, piece: MessageBatch, stuck: list[int]) -> list[int]:
        """Uncertain records that reappeared in the input: look them up by content."""
        batch = piece.take(stuck)
        verdicts: dict[str, Lookup] = {}
        if self.destination.can_lookup:
            verdicts = self.lookups.ask(batch, self._attempted_at)
        again = set(self._apply(batch.decision_id, verdicts))
        skipped = len(stuck) - len(again)
        self.report.skipped_unknown += skipped
        return [i for i in stuck if piece.decision_id[i] in again]

    def expire(self, todo: MessageBatch) -> MessageBatch:
        """Records whose send window has closed become `expired`, never sent late."""
        if not len(todo) or not self.options.expire:
            return todo
        now = self.now.strftime(_ISO)
        source = todo.arrow
        if source is not None and "send_until" in source.schema.names:
            until = source.column("send_until")
            if until.null_count == len(until) or not pc.any(pc.less(until, now)).as_py():
                return todo
        late = [i for i, until in enumerate(todo.send_until) if until is not None and until < now]
        if not late:
            return todo
        results = [
            DeliveryResult(todo.decision_id[i], DeliveryStatus.EXPIRED, "send_window_closed")
            for i in late
        ]
        self.ledger.settle(results, self.attempts, self.now)
        for r in results:
            self.status_of[r.decision_id] = r.status.value
        self.report.tally(results)
        closed = set(late)
        return todo.take([i for i in range(len(todo)) if i not in closed])

    # -- mark in flight, send, settle ----------------------------------------------------------

    def deliver(
        self, todo: MessageBatch, pool: ThreadPoolExecutor | None, *, tracked: bool = True
    ) -> None:
        """Mark one wave (≤ concurrency requests) in flight, send it, settle it. Only the
        records the mark claimed are sent (PostgreSQL: another run may hold the others)."""
        ids = todo.decision_id if tracked else None
        counts = [self.attempts.get(d, 0) + 1 for d in ids] if ids is not None else [1] * len(todo)
        with self.ledger.transaction():  # one commit: this wave's mark, the last wave's outcomes
            claimed = self.ledger.mark_in_flight_bulk(
                _column(todo, "decision_id"),
                counts,
                self.now,
                send_at=_column(todo, "send_at"),
                send_until=_column(todo, "send_until"),
                batch_id=self.report.batch_id,
            )
            self.flush()
        if claimed is not None:
            todo, counts = self._claimed(todo, counts, claimed)
            if not len(todo):
                return
            ids = todo.decision_id if tracked else None
        size = self.destination.max_batch_size
        requests = [todo.slice(s, s + size) for s in range(0, len(todo), size)]
        if ids is not None:
            self.attempts.update(zip(ids, counts, strict=True))
        if pool is not None and len(requests) > 1:
            outcomes = list(pool.map(self.sender.deliver, requests))
        else:
            outcomes = [self.sender.deliver(r) for r in requests]
        self.pending = (todo, requests, outcomes, counts, tracked)
        if any(isinstance(o, BaseException) for o in outcomes):
            self.flush()  # a stopping error: settle and release now

    def _claimed(
        self, todo: MessageBatch, counts: list[int], claimed: pa.Array
    ) -> tuple[MessageBatch, list[int]]:
        """The records of `todo` this run claimed; the others are another run's: skipped."""
        ids = _column(todo, "decision_id")
        if not isinstance(ids, pa.Array | pa.ChunkedArray):
            ids = pa.array(ids, pa.string())
        keep = pc.is_in(ids, value_set=claimed).to_pylist()
        indices = [i for i, mine in enumerate(keep) if mine]
        self.report.skipped_already_settled += len(todo) - len(indices)
        return todo.take(indices), [counts[i] for i in indices]

    def flush(self) -> None:
        """Settle the wave sent last, if any."""
        if self.pending is not None:
            pending, self.pending = self.pending, None
            self.settle(*pending)

    def settle(
        self,
        todo: MessageBatch,
        requests: list[MessageBatch],
        outcomes: list[BatchResult | BaseException],
        counts: list[int],
        tracked: bool = True,
    ) -> None:
        """Commit the wave's outcomes; release the records a stopping error kept unsent."""
        outcome = BatchResult([], [], [])
        unsent: list[int] = []
        offset = 0
        for request, result in zip(requests, outcomes, strict=True):
            if isinstance(result, BaseException):
                unsent.extend(range(offset, offset + len(request)))
                self.stopped = self.stopped or result
                result = BatchResult.uniform(len(request), DeliveryStatus.FAILED_RETRYABLE)
            elif len(result) != len(request):
                raise RuntimeError(
                    f"destination {self.destination.name} returned {len(result)} results "
                    f"for {len(request)} records"
                )
            outcome.extend(result)
            offset += len(request)
            if self.options.on_batch:
                self.options.on_batch(len(request))
        if not unsent:
            self._commit(todo, outcome, counts, tracked)
        else:
            closed = set(unsent)
            sent = [i for i in range(len(todo)) if i not in closed]
            if sent:
                part = _take(outcome, sent)
                self._commit(todo.take(sent), part, [counts[i] for i in sent], tracked)
            self.ledger.release(
                [todo.decision_id[i] for i in unsent], [counts[i] for i in unsent], self.now
            )
            for i in unsent:
                d = todo.decision_id[i]
                self.attempts[d] = counts[i] - 1
                self.status_of.pop(d, None)

    def _commit(
        self, todo: MessageBatch, outcome: BatchResult, counts: list[int], tracked: bool
    ) -> None:
        self.ledger.settle_bulk(_column(todo, "decision_id"), outcome, counts, self.now)
        self.report.sent += len(todo)
        self.report.count(outcome.statuses, outcome.errors)
        if outcome.statuses.count(DeliveryStatus.DELIVERED) == len(todo):
            if tracked:
                self.status_of.update(
                    dict.fromkeys(todo.decision_id, DeliveryStatus.DELIVERED.value)
                )
            return
        ids = todo.decision_id
        for d, s, e in zip(ids, outcome.statuses, outcome.errors, strict=True):
            self.status_of[d] = s.value
            if (
                s == DeliveryStatus.FAILED_PERMANENT
                and e
                and e.startswith(("unregistered", "invalid"))
            ):
                self.report.invalid_recipients.append(d)

    # -- tally ---------------------------------------------------------------------------------

    def tally(self) -> None:
        """Count what is left unknown and log one line."""
        r = self.report
        r.unknown_total = self.ledger.unsettled_count()
        if self.sender.auth_failed is not None:
            r.auth_error = str(self.sender.auth_failed)
        log.info(
            "sync %s: %d sent, %d delivered, %d failed (%d retryable, %d permanent), %d expired, "
            "%d unknown (%d in all), %d deferred, %d skipped, %d retries",
            self.destination.name,
            r.sent,
            r.delivered,
            r.failed,
            r.failed_retryable,
            r.failed_permanent,
            r.expired,
            r.unknown,
            r.unknown_total,
            r.deferred,
            r.skipped,
            r.retries,
        )
        if r.unknown_total:
            log.warning(
                "sync %s: %d record(s) have an unknown outcome and are not re-sent until a "
                "lookup shows the vendor does not hold them; `journeyman deliveries list %s "
                "--status unknown` lists them",
                self.destination.name,
                r.unknown_total,
                self.destination.name,
            )


def _as_batches(
    messages: Messages, size: int, destination: Destination, now: datetime
) -> Iterator[MessageBatch]:
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


def _from_arrow(table: Any, destination: Destination, now: datetime) -> MessageBatch:
    encoded = destination.encode_arrow(table, now)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    return MessageBatch.from_arrow(table, encoded)


def _input_ids(messages: Messages, rejected: Sequence[DeliveryResult]) -> pa.Array | None:
    """The decision ids of a run's input and rejected records, or None when the input is a
    stream that cannot be read twice (the run then reads the destination's whole ledger)."""
    refused = pa.array([r.decision_id for r in rejected], pa.string())
    if hasattr(messages, "to_batches"):
        ids = messages.column("decision_id").combine_chunks().cast(pa.string())
    elif isinstance(messages, MessageBatch):
        ids = pa.array(list(messages.decision_id), pa.string())
    elif isinstance(messages, list | tuple) and all(
        isinstance(m, OutboundMessage) for m in messages
    ):
        ids = pa.array([m.decision_id for m in messages], pa.string())
    else:
        return None
    return pa.concat_arrays([ids, refused])


def _columnar(messages: Messages, status_of: dict[str, str]) -> Any | None:
    """The input's ids the ledger knows, as Arrow, when `messages` is an Arrow table whose
    decision ids are all different (the column-wise path applies); else None. Only those: each
    piece is checked against this set, which would otherwise be the destination's whole ledger,
    hashed again for every piece."""
    if not hasattr(messages, "to_batches"):
        return None
    ids = messages.column("decision_id")
    if ids.null_count:
        return None
    sorted_ = len(ids) > 1 and pc.all(pc.less(ids.slice(0, len(ids) - 1), ids.slice(1))).as_py()
    if not sorted_ and pc.count_distinct(ids).as_py() != messages.num_rows:
        return None
    known = pc.is_in(ids, value_set=pa.array(list(status_of), pa.string()))
    return pc.unique(ids.filter(known))


def _column(batch: MessageBatch, name: str) -> Any:
    """A column as Arrow (no Python list) when the batch is Arrow-backed."""
    source = batch.arrow
    if source is not None and name in source.schema.names:
        return source.column(name)
    return getattr(batch, name)


def _take(result: BatchResult, indices: Sequence[int]) -> BatchResult:
    return BatchResult(
        [result.statuses[i] for i in indices],
        [result.errors[i] for i in indices],
        [result.provider_ids[i] for i in indices],
    )
