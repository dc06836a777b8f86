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
- **Auxiliary failures are the destination's.** A failing set-up call (`prepare`: batch id,
  token) or a request the vendor rejects as a whole for the destination's settings stops the sync
  with one clear error; records not sent are released (as if never tried), none marked failed.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from journeyman.connectors.destination import (
    FINAL_STATUSES,
    AuthError,
    BatchResult,
    DeliveryResult,
    DeliveryStatus,
    Destination,
    DestinationError,
    Lookup,
    LookupUnavailable,
    MessageBatch,
    OutboundMessage,
    RejectedBatchError,
    RetryableError,
)
from journeyman.connectors.ledger import DeliveryLedger
from journeyman.connectors.pacing import RateLimit, RetryPolicy, TokenBucket

log = logging.getLogger(__name__)

FINAL = frozenset(s.value for s in FINAL_STATUSES)
UNSETTLED = frozenset({DeliveryStatus.IN_FLIGHT.value, DeliveryStatus.UNKNOWN.value})
_ISO = "%Y-%m-%dT%H:%M:%SZ"
#: extra requests a rejected request may cost while its bad records are searched for
MAX_SPLIT_REQUESTS = 32

Messages = Iterable[OutboundMessage] | MessageBatch | Any  # Any: pyarrow Table / RecordBatches


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
        self.sender = _Sender(destination, now, retry, bucket, self.report)
        self.lookups = _Lookups(destination, now, retry, options.lookup_budget_s, self.report)
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
            self.load_state()
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

    def load_state(self) -> None:
        """This destination's ledger as the run starts: statuses, attempts, stuck records."""
        for d, (status, attempts) in self.ledger.statuses().items():
            self.status_of[d] = status
            self.attempts[d] = attempts
        stuck = self.ledger.stuck()
        for d, status, at in zip(
            stuck.column("decision_id").to_pylist(),
            stuck.column("status").to_pylist(),
            stuck.column("attempted_at").to_pylist(),
            strict=True,
        ):
            self.stuck[d] = (status, at)

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
        """Mark one wave (≤ concurrency requests) in flight, send it, settle it."""
        size = self.destination.max_batch_size
        requests = [todo.slice(s, s + size) for s in range(0, len(todo), size)]
        ids = todo.decision_id if tracked else None
        counts = [self.attempts.get(d, 0) + 1 for d in ids] if ids is not None else [1] * len(todo)
        with self.ledger.transaction():  # one commit: the last wave's outcomes, this wave's mark
            self.flush()
            self.ledger.mark_in_flight_bulk(
                _column(todo, "decision_id"),
                counts,
                self.now,
                send_at=_column(todo, "send_at"),
                send_until=_column(todo, "send_until"),
                batch_id=self.report.batch_id,
            )
        if ids is not None:
            self.attempts.update(zip(ids, counts, strict=True))
        if pool is not None and len(requests) > 1:
            outcomes = list(pool.map(self.sender.deliver, requests))
        else:
            outcomes = [self.sender.deliver(r) for r in requests]
        self.pending = (todo, requests, outcomes, counts, tracked)
        if any(isinstance(o, BaseException) for o in outcomes):
            self.flush()  # a stopping error: settle and release now

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
        r.unknown_total = sum(1 for s in self.status_of.values() if s in UNSETTLED)
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


class _Sender:
    """Delivers one request with rate limiting, retries and bounded splitting; returns its
    result, or the exception that must stop the sync (auth, a destination-level failure)."""

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
        self.stop: DestinationError | None = None

    def deliver(self, batch: MessageBatch) -> BatchResult | BaseException:
        if self.stop is not None:
            return self.stop
        try:
            return self._deliver(batch, [MAX_SPLIT_REQUESTS])
        except DestinationError as exc:  # AuthError included: nothing of this request was sent
            with self.lock:
                if isinstance(exc, AuthError) and self.auth_failed is None:
                    self.auth_failed = exc
                self.stop = self.stop or exc
            return exc

    def _deliver(self, batch: MessageBatch, budget: list[int]) -> BatchResult:
        started = self.retry.clock()
        attempt = 0
        while True:
            self._pace()
            try:
                return self.destination.send_batch(batch, self.now)
            except RejectedBatchError as exc:
                return self._rejected(batch, exc, budget)
            except RetryableError as exc:
                if exc.ambiguous and not self.destination.vendor_dedup:
                    # the vendor may hold it: never re-sent without a lookup (next run)
                    return BatchResult.uniform(
                        len(batch), DeliveryStatus.UNKNOWN, f"outcome_unknown_{exc.code}"
                    )
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

    def _pace(self) -> None:
        waited = self.bucket.acquire() if self.bucket is not None else 0.0
        with self.lock:
            self.report.requests += 1
            self.report.rate_limit_wait_s += waited

    def _rejected(
        self, batch: MessageBatch, exc: RejectedBatchError, budget: list[int]
    ) -> BatchResult:
        """A request the vendor refused (nothing of it was accepted): fail the records it
        names; search for them by halving only when it names none, within a budget."""
        if not exc.per_record:
            raise DestinationError(
                f"destination {self.destination.name!r}: the vendor rejected the request as a "
                f"whole ({exc.code}); check the destination's settings (nothing was sent)"
            )
        if len(batch) == 1:
            return BatchResult.uniform(1, DeliveryStatus.FAILED_PERMANENT, exc.code)
        if exc.indices:
            bad = sorted(i for i in set(exc.indices) if 0 <= i < len(batch))
            if bad:
                return self._without(batch, bad, exc.code, budget)
        if budget[0] < 2:
            return BatchResult.uniform(
                len(batch), DeliveryStatus.FAILED_RETRYABLE, "rejected_unresolved"
            )
        budget[0] -= 2
        with self.lock:
            self.report.splits += 1
        half = len(batch) // 2
        result = self._deliver(batch.slice(0, half), budget)
        result.extend(self._deliver(batch.slice(half, len(batch)), budget))
        return result

    def _without(
        self, batch: MessageBatch, bad: list[int], code: str, budget: list[int]
    ) -> BatchResult:
        """Fail the named records, send the others again (one request)."""
        result = BatchResult.uniform(len(batch), DeliveryStatus.FAILED_PERMANENT, code)
        good = [i for i in range(len(batch)) if i not in set(bad)]
        if not good:
            return result
        if budget[0] < 1:
            for i in good:
                result.statuses[i] = DeliveryStatus.FAILED_RETRYABLE
                result.errors[i] = "rejected_unresolved"
            return result
        budget[0] -= 1
        again = self._deliver(batch.take(good), budget)
        for j, i in enumerate(good):
            result.statuses[i] = again.statuses[j]
            result.errors[i] = again.errors[j]
            result.provider_ids[i] = again.provider_ids[j]
        return result


class _Lookups:
    """Vendor lookups of uncertain records: paced to the vendor's documented limit, within a
    time budget per run, trusting an "absent" only after the vendor's indexing lag."""

    def __init__(
        self,
        destination: Destination,
        now: datetime,
        retry: RetryPolicy,
        budget_s: float,
        report: SyncReport,
    ) -> None:
        self.destination = destination
        self.now = now
        self.clock = retry.clock
        self.sleep = retry.sleep
        self.deadline = retry.clock() + budget_s
        self.report = report
        limit = destination.lookup_rate_limit
        self.bucket = TokenBucket(limit, clock=retry.clock, sleep=retry.sleep) if limit else None
        self.reason: str | None = None  # why the last records stayed unknown
        self.closed = not destination.can_lookup

    def ask(
        self, batch: MessageBatch, attempted_at: Callable[[str], datetime | None]
    ) -> dict[str, Lookup]:
        """Verdicts for the records that could be looked up; the others are left out."""
        if self.closed:
            self.reason = self.reason or "outcome_unknown_no_lookup"
            return {}
        out: dict[str, Lookup] = {}
        for i in range(len(batch)):
            d = batch.decision_id[i]
            at = attempted_at(d)
            if at is not None and at + self.destination.lookup_lag > self.now:
                self.reason = "outcome_unknown_lookup_lag"
                continue  # too young for the vendor's index: an "absent" would mean nothing
            verdict = self._one(batch.slice(i, i + 1))
            if verdict is None:
                break
            out.update(verdict)
        return out

    def _one(self, record: MessageBatch) -> dict[str, Lookup] | None:
        """One paced lookup; None once lookups must stop for this run."""
        for _ in range(3):  # a throttled or failing lookup is tried at most three times
            if self.bucket is not None:
                self.bucket.acquire()
            if self.clock() > self.deadline:
                return self._stop("outcome_unknown_lookup_budget")
            self.report.lookups += 1
            try:
                return self.destination.lookup(record)
            except (LookupUnavailable, AuthError) as exc:
                log.warning("sync %s: lookups stop for this run: %s", self.destination.name, exc)
                return self._stop("outcome_unknown_lookup_unavailable")
            except RetryableError as exc:
                wait = exc.wait_s if exc.wait_s is not None else 1.0
                self.reason = f"outcome_unknown_lookup_{exc.code}"
                if self.clock() + wait > self.deadline:
                    return self._stop(self.reason)
                self.sleep(wait)
        return self._stop(self.reason or "outcome_unknown_lookup_failed")

    def _stop(self, reason: str) -> None:
        self.reason = reason
        self.closed = True
        return None


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


def _columnar(messages: Messages, status_of: dict[str, str]) -> Any | None:
    """The ledger's known ids as Arrow when `messages` is an Arrow table whose decision ids
    are all different (the column-wise path applies); else None."""
    if not hasattr(messages, "to_batches"):
        return None
    ids = messages.column("decision_id")
    if ids.null_count:
        return None
    sorted_ = len(ids) > 1 and pc.all(pc.less(ids.slice(0, len(ids) - 1), ids.slice(1))).as_py()
    if not sorted_ and pc.count_distinct(ids).as_py() != messages.num_rows:
        return None
    return pa.array(list(status_of), pa.string())


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
