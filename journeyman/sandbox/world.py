"""The sandbox world: a seeded customer population living in the warehouse, one day at a time.

`create` draws the population (see population), two years of order history (see purchases) and
writes raw.customers / raw.consents / raw.orders as an ETL tool would, plus the ground truth in
schema `sandbox`; `create_from_history` writes a world of real purchase histories instead (see
cdnow_world). `simulate_day` loads into raw.* everything that happens on one UTC day:
organic orders, events and orders that earlier messages scheduled for that day, and the
responses to the messages delivered that day (see responses). Responses that fall on later days
wait in `sandbox.pending_events`. All randomness of a day derives from (seed, day), so running
days in separate processes gives the same tables; a day already simulated is not simulated again.

Within a day, messages are answered from the state at the start of the day (before that day's
organic orders); state changes (orders, opt-outs, hard bounces, coupons) apply at the end.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar, Protocol

import numpy as np
import pyarrow as pa
import sqlalchemy as sa

from journeyman.connectors.destination import OutboundMessage
from journeyman.decisioning.hashing import hash64
from journeyman.sandbox import creative
from journeyman.sandbox.attention import click_delay_seconds, seen_delay_hours
from journeyman.sandbox.campaigns import campaign_history
from journeyman.sandbox.cdnow import Transactions
from journeyman.sandbox.feed import (
    RAW_SCHEMAS,
    customers_table,
    day_time,
    events_table,
    initial_consents_table,
    loaded_at,
    numbered,
    orders_table,
    with_resent_events,
)
from journeyman.sandbox.population import CHANNELS, Traits, channel_codes, draw_population
from journeyman.sandbox.purchases import (
    buy_probability,
    cycle_rate,
    discounts,
    draw_history,
    history_order_times,
    history_promotions,
    order_amounts,
    order_categories,
    order_seconds,
)
from journeyman.sandbox.randomness import Draws, KeyedStream, day_number, stream
from journeyman.sandbox.regions import local_clock_hours, local_hours, utc_offsets_hours
from journeyman.sandbox.responses import Actions, Response, draw_delays, respond
from journeyman.sandbox.state import SANDBOX_DDL, CustomerState
from journeyman.sandbox.truth import GroundTruth, Reward
from journeyman.tables import ensure_raw_tables
from journeyman.warehouse import Warehouse, append_arrow, read_arrow

FATIGUE_DAYS = 7
COUPON_DAYS = 7
PENDING_SCHEMA = pa.schema(
    [
        ("kind", pa.string()),
        ("id", pa.string()),
        ("decision_id", pa.string()),
        ("customer_id", pa.string()),
        ("channel", pa.string()),
        ("event_type", pa.string()),
        ("occurred_at", pa.timestamp("us")),
        ("amount", pa.float64()),
        ("discount_amount", pa.float64()),
        ("category", pa.string()),
        ("due_day", pa.int32()),
    ]
)


class EventReporter(Protocol):
    """Who carries the day's message events to the warehouse the way a vendor would."""

    def report(self, events: pa.Table) -> pa.Table:
        """Send the events a vendor reports by webhook; return the rest (loaded directly)."""
        ...


class SandboxError(RuntimeError):
    """The sandbox world cannot do what was asked; the message says why and what to do."""


@dataclass(frozen=True)
class DaySummary:
    """What one simulated day loaded into the raw tables."""

    day: date
    organic_orders: int = 0
    attributed_orders: int = 0  # orders caused by messages, loaded today (any send day)
    revenue: float = 0.0  # all orders loaded today
    messages: int = 0  # delivered messages with send_at on this day, processed now
    ignored: int = 0  # other days' send_at, unknown customer or channel, repeated decision_id
    suppressed: int = 0  # opted out / never consented: the ESP dropped them
    events: dict[str, int] = field(default_factory=dict)  # unique message events by type
    opt_outs: int = 0  # raw.consents opted_out rows written (unsubscribes and complaints)
    pending: int = 0  # responses waiting for later days after this one
    replayed: bool = False  # the day had been simulated already: nothing was written

    def to_json(self) -> str:
        data = asdict(self)
        data["day"] = self.day.isoformat()
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DaySummary:
        data = json.loads(text)
        data["day"] = date.fromisoformat(data["day"])
        return cls(**data)


@dataclass
class _Loads:
    """Raw rows and state changes gathered for one day."""

    orders: list[pa.Table] = field(default_factory=list)
    events: list[pa.Table] = field(default_factory=list)
    consents: list[pa.Table] = field(default_factory=list)
    pending: list[pa.Table] = field(default_factory=list)
    sends: list[pa.Table] = field(default_factory=list)
    ordered_idx: list[np.ndarray] = field(default_factory=list)


def _timestamps(values: Sequence[str]) -> np.ndarray:
    """ISO 8601 UTC strings (`…Z` or `+00:00`) → naive UTC datetime64[us]; NaT if unparseable."""
    try:
        parsed = pa.array(list(values), pa.string()).cast(pa.timestamp("us", tz="UTC"))
        return parsed.cast(pa.timestamp("us")).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    out = np.full(len(values), np.datetime64("NaT", "us"))
    for j, v in enumerate(values):
        try:
            dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
        except (ValueError, AttributeError):
            continue
        if dt.tzinfo is not None:
            dt = dt.astimezone(UTC).replace(tzinfo=None)
        out[j] = np.datetime64(dt, "us")
    return out


def _synthetic_history(
    seed: int, rng: np.random.Generator, traits: Traits, start: date
) -> tuple[pa.Table, CustomerState]:
    """The synthetic population's orders before `start` (raw.orders rows, drawn from `rng`,
    the world's "history" stream) and the customers' state at `start`."""
    idx, times, alive, last_day, n_orders = draw_history(rng, traits, day_number(start))
    times = history_order_times(stream(seed, "history-hours"), traits, idx, times)
    order = np.lexsort((idx, times))
    idx, times = idx[order], times[order]
    ordered_at = day_time(times)
    full_price = order_amounts(rng, traits, idx)
    pay = history_promotions(stream(seed, "history-promotions"), traits, idx)
    paid = np.round(full_price * pay, 2)
    history = orders_table(
        numbered("ord-h", np.arange(1, len(idx) + 1), 8),
        traits.customer_id[idx],
        ordered_at,
        paid,
        discounts(paid, pay),
        order_categories(rng, traits, idx),
        ordered_at.astype("datetime64[D]") + np.timedelta64(26, "h"),
    )
    state = CustomerState(
        customer_id=traits.customer_id,
        alive=alive,
        last_order_day=last_day,
        n_orders=n_orders,
        consent=traits.consent0.copy(),
        hard_bounced=np.zeros((traits.n, 3), dtype=bool),
        coupon_pay=np.ones(traits.n),
        coupon_until=np.full(traits.n, -1, dtype=np.int32),
    )
    return history, state


class SandboxWorld:
    """A deterministic synthetic customer world kept in a warehouse (schema `sandbox` + raw.*)."""

    _traits_cache: ClassVar[dict[tuple[str, int, int, date], Traits]] = {}

    def __init__(self, warehouse: Warehouse, seed: int = 1) -> None:
        self.warehouse = warehouse
        self.seed = int(seed)

    # -- setup ---------------------------------------------------------------------------

    def create(self, n_customers: int = 5000, start: date = date(2026, 1, 1)) -> None:
        """Write the population, its order and campaign history before `start` and the truth.

        A no-op if this world already exists with the same seed, size and start; a SandboxError
        if the warehouse holds another world or raw customers from elsewhere.
        """
        if n_customers < 1:
            raise SandboxError("n_customers must be at least 1")
        existing = self._existing_world()
        if existing is not None:
            if existing == (self.seed, n_customers, start):
                return
            raise self._another_world(existing)
        traits = draw_population(self.seed, n_customers, start)
        rng = stream(self.seed, "history")
        signup_at = day_time(traits.signup_day + rng.random(n_customers) * 0.999)
        history, state = _synthetic_history(self.seed, rng, traits, start)
        raw = {
            "raw.customers": customers_table(rng, traits, signup_at),
            "raw.consents": initial_consents_table(traits, signup_at),
            "raw.orders": history,
        }
        self._write_world(raw, traits, state, start)

    def create_from_history(
        self, transactions: Transactions, start: date = date(2026, 1, 1)
    ) -> None:
        """Write a world whose customers and orders are real ones (a CDNOW-format file's, see
        cdnow_world), shifted so that the last order falls on the day before `start`; their
        latent traits continue each customer's purchase pattern. SandboxError if the warehouse
        already holds a world or raw customers."""
        from journeyman.sandbox.cdnow_world import HistoryError, history_world

        existing = self._existing_world()
        if existing is not None:
            raise self._another_world(existing)
        try:
            raw, traits, state = history_world(transactions, self.seed, start)
        except HistoryError as exc:
            raise SandboxError(str(exc)) from None
        self._write_world(raw, traits, state, start)

    def _existing_world(self) -> tuple[int, int, date] | None:
        """(seed, n_customers, start) of the world this warehouse holds, None if it holds none;
        SandboxError if raw.customers holds rows the sandbox did not write."""
        ensure_raw_tables(self.warehouse)
        self.warehouse.execute(SANDBOX_DDL)
        existing = self.warehouse.rows("select seed, n_customers, start from sandbox.world")
        if existing:
            seed, n, first = existing[0]
            return seed, n, first
        if self.warehouse.scalar("select count(*) from raw.customers"):
            raise SandboxError(
                f"raw.customers in {self.warehouse.location} already holds rows that the sandbox "
                "did not write; use a fresh warehouse file for the sandbox world."
            )
        return None

    def _another_world(self, existing: tuple[int, int, date]) -> SandboxError:
        seed, n, first = existing
        return SandboxError(
            f"{self.warehouse.location} already holds a sandbox world (seed={seed}, "
            f"n_customers={n}, start={first}); use a fresh warehouse file for another world."
        )

    def _write_world(
        self, raw: Mapping[str, pa.Table], traits: Traits, state: CustomerState, start: date
    ) -> None:
        """The brand's past campaigns (they set the state's hard bounces), then the raw rows
        (customers, consents, orders), the campaigns' events, the traits, the state and the
        world's row, in one transaction."""
        campaign_events, state.hard_bounced = campaign_history(self.seed, traits, state, start)
        with self.warehouse.connect() as conn:
            for name in ("raw.customers", "raw.consents", "raw.orders"):
                append_arrow(conn, name, raw[name])
            append_arrow(conn, "raw.message_events", campaign_events)
            append_arrow(conn, "sandbox.customer_traits", traits.to_arrow())
            append_arrow(conn, "sandbox.customer_state", state.to_arrow())
            conn.execute(
                sa.text("insert into sandbox.world values (:seed, :n, :start, null)"),
                {"seed": self.seed, "n": traits.n, "start": start},
            )
        self._traits_cache[self._cache_key(traits.n, start)] = traits

    # -- reading the world ---------------------------------------------------------------

    def _world(self) -> tuple[int, date, date | None]:
        if not self.warehouse.table_exists("sandbox", "world"):
            raise SandboxError("No sandbox world here yet: call SandboxWorld.create(...) first.")
        rows = self.warehouse.rows("select seed, n_customers, start, last_day from sandbox.world")
        if not rows:
            raise SandboxError("No sandbox world here yet: call SandboxWorld.create(...) first.")
        seed, n, start, last = rows[0]
        if seed != self.seed:
            raise SandboxError(f"This warehouse holds the world of seed {seed}, not {self.seed}.")
        return int(n), start, last

    def _cache_key(self, n: int, start: date) -> tuple[str, int, int, date]:
        return (str(self.warehouse.location), self.seed, n, start)

    def _traits(self, conn: sa.Connection, n: int, start: date) -> Traits:
        key = self._cache_key(n, start)
        if key not in self._traits_cache:
            table = read_arrow(conn, "select * from sandbox.customer_traits order by customer_id")
            self._traits_cache[key] = Traits.from_arrow(table)
        return self._traits_cache[key]

    @staticmethod
    def _state(conn: sa.Connection) -> CustomerState:
        table = read_arrow(conn, "select * from sandbox.customer_state order by customer_id")
        return CustomerState.from_arrow(table)

    @staticmethod
    def _fatigue(conn: sa.Connection, traits: Traits, today: int) -> np.ndarray:
        table = read_arrow(
            conn,
            "select customer_id, cast(count(*) as integer) as k from sandbox.sends where delivered "
            f"and send_day between {today - FATIGUE_DAYS} and {today - 1} group by customer_id",
        )
        k = np.zeros(traits.n, dtype=np.int64)
        if table.num_rows:
            pos = traits.index_of(table.column("customer_id").to_numpy(zero_copy_only=False))
            k[pos[pos >= 0]] = table.column("k").to_numpy()[pos >= 0]
        return k

    @property
    def n_customers(self) -> int:
        return self._world()[0]

    @property
    def start(self) -> date:
        return self._world()[1]

    @property
    def last_day(self) -> date | None:
        """The last simulated day (None before the first)."""
        return self._world()[2]

    @property
    def next_day(self) -> date:
        """The first day not yet simulated."""
        _, start, last = self._world()
        return start if last is None else last + timedelta(days=1)

    @property
    def truth(self) -> GroundTruth:
        """The ground truth as of the start of the next day to simulate."""
        n, start, last = self._world()
        day = start if last is None else last + timedelta(days=1)
        with self.warehouse.connect() as conn:
            traits = self._traits(conn, n, start)
            state = self._state(conn)
            fatigue = self._fatigue(conn, traits, day_number(day))
        return GroundTruth(traits, state, fatigue, day)

    def expected_reward(
        self,
        customer_ids: Sequence[str] | np.ndarray,
        channel: str | None | Sequence[str | None] | np.ndarray,
        local_hour: int | Sequence[int] | np.ndarray = 10,
        tags: Mapping[str, str | Sequence[str] | np.ndarray] | None = None,
        *,
        window_days: int = 7,
    ) -> Reward:
        """GroundTruth.expected_reward for the next day to simulate (see truth)."""
        return self.truth.expected_reward(
            customer_ids, channel, local_hour, tags, window_days=window_days
        )

    def summaries(self) -> list[DaySummary]:
        """The summaries of every simulated day, in order."""
        rows = self.warehouse.rows("select summary from sandbox.days order by day")
        return [DaySummary.from_json(r[0]) for r in rows]

    # -- simulation ----------------------------------------------------------------------

    def simulate_day(
        self,
        day: date,
        delivered: Sequence[OutboundMessage] = (),
        *,
        reporter: EventReporter | None = None,
    ) -> DaySummary:
        """Load everything that happens on UTC `day` into raw.*; see the module docstring.

        Days skipped since the last simulated one are simulated first without messages. A day
        already simulated is not touched again: its stored summary is returned (replayed=True).
        With a `reporter` (the sandbox's vendors), the day's message events — those released
        from earlier days included — are first handed to it; the events it returns, and only
        those, are loaded into raw.message_events directly. Its webhooks carry the world's
        event ids, so a day retried after a failure sends nothing twice.
        """
        n, start, last = self._world()
        if day < start:
            raise SandboxError(f"{day} is before the world's start {start}; history is fixed.")
        if last is not None and day <= last:
            text = self.warehouse.scalar(
                "select summary from sandbox.days where day = :d", {"d": day}
            )
            summary = DaySummary.from_json(text)
            return DaySummary(**{**asdict(summary), "replayed": True})
        current = start if last is None else last + timedelta(days=1)
        while current < day:
            self._simulate(current, (), n, start, reporter)
            current += timedelta(days=1)
        return self._simulate(day, delivered, n, start, reporter)

    def _simulate(
        self,
        day: date,
        delivered: Sequence[OutboundMessage],
        n: int,
        start: date,
        reporter: EventReporter | None = None,
    ) -> DaySummary:
        today = day_number(day)
        loaded = loaded_at(day)
        with self.warehouse.connect() as conn:
            traits = self._traits(conn, n, start)
            state = self._state(conn)
            fatigue = self._fatigue(conn, traits, today)
            due = read_arrow(
                conn,
                f"select * from sandbox.pending_events where due_day <= {today} order by kind, id",
            )
            loads = _Loads()
            counts: dict[str, Any] = {"day": day}
            old_consent = state.consent.copy()
            new_state = CustomerState(**{k: v.copy() for k, v in vars(state).items()})

            counts["organic_orders"] = self._organic(day, traits, state, loads, loaded)
            counts["attributed_orders"] = self._release_pending(
                due, traits, new_state, loads, loaded
            )
            counts.update(
                self._respond(day, delivered, traits, state, new_state, fatigue, loads, loaded)
            )
            counts["attributed_orders"] += counts.pop("attributed_now", 0)
            ordered = (
                np.concatenate(loads.ordered_idx)
                if loads.ordered_idx
                else np.zeros(0, dtype=np.int64)
            )
            self._after_orders(day, traits, new_state, ordered)

            opted_out = np.argwhere(old_consent & ~new_state.consent)
            orders, unique_events, pending = _day_tables(loads)
            events = with_resent_events(stream(self.seed, "resent", day), unique_events)
            types = unique_events.column("event_type").to_numpy(zero_copy_only=False)
            kinds, freq = np.unique(types, return_counts=True)
            summary = DaySummary(
                **counts,
                revenue=round(float(np.sum(orders.column("amount").to_numpy())), 2),
                events={str(k): int(v) for k, v in zip(kinds, freq, strict=True)},
                opt_outs=len(opted_out),
                pending=0,
            )
            if reporter is not None:  # before anything of the day is written: retry-safe
                events = reporter.report(events)
            append_arrow(conn, "raw.orders", orders)
            append_arrow(conn, "raw.message_events", events)
            return _write_day_state(conn, day, summary, loads, pending, new_state)

    def _organic(
        self, day: date, traits: Traits, state: CustomerState, loads: _Loads, loaded: datetime
    ) -> int:
        """Organic orders of the day (Erlang-2 hazard of alive customers)."""
        today = day_number(day)
        rng = stream(self.seed, "organic", day)
        u = rng.random(traits.n)
        mu = cycle_rate(traits.purchase_rate, state.n_orders)
        p = np.where(state.alive, buy_probability(mu, today - state.last_order_day, 1.0), 0.0)
        idx = np.flatnonzero(u < p)
        pay = np.where(state.coupon_until[idx] >= today, state.coupon_pay[idx], 1.0)
        rng = KeyedStream(self.seed, "organic-orders", day, idx)  # keyed by customer
        seconds = order_seconds(rng, traits, idx, utc_offsets_hours(day)[traits.region[idx]])
        at = np.datetime64(day, "us") + (seconds * 1_000_000).astype("timedelta64[us]")
        ids = numbered(f"ord-{day:%Y%m%d}-", idx, 7)
        amounts = order_amounts(rng, traits, idx, pay)
        loads.orders.append(
            orders_table(
                ids,
                traits.customer_id[idx],
                at,
                amounts,
                discounts(amounts, pay),
                order_categories(rng, traits, idx),
                loaded,
            )
        )
        loads.ordered_idx.append(idx)
        return len(idx)

    def _release_pending(
        self,
        due: pa.Table,
        traits: Traits,
        new_state: CustomerState,
        loads: _Loads,
        loaded: datetime,
    ) -> int:
        """Move responses scheduled for today from sandbox.pending_events into raw.*."""
        if due.num_rows == 0:
            return 0
        kind = due.column("kind").to_numpy(zero_copy_only=False)
        load = pa.array(np.full(due.num_rows, np.datetime64(loaded, "us")), pa.timestamp("us"))
        orders = due.filter(pa.array(kind == "order"))
        if orders.num_rows:
            loads.orders.append(
                pa.table(
                    {
                        "order_id": orders.column("id"),
                        "customer_id": orders.column("customer_id"),
                        "ordered_at": orders.column("occurred_at"),
                        "amount": orders.column("amount"),
                        "discount_amount": orders.column("discount_amount"),
                        "category": orders.column("category"),
                        "_loaded_at": load[: orders.num_rows],
                    },
                    schema=RAW_SCHEMAS["orders"],
                )
            )
            ids = orders.column("customer_id").to_numpy(zero_copy_only=False)
            loads.ordered_idx.append(traits.index_of(ids))
        events = due.filter(pa.array(kind == "event"))
        if events.num_rows:
            loads.events.append(
                pa.table(
                    {
                        "event_id": events.column("id"),
                        "decision_id": events.column("decision_id"),
                        "customer_id": events.column("customer_id"),
                        "channel": events.column("channel"),
                        "event_type": events.column("event_type"),
                        "occurred_at": events.column("occurred_at"),
                        "_loaded_at": load[: events.num_rows],
                    },
                    schema=RAW_SCHEMAS["message_events"],
                )
            )
            types = events.column("event_type").to_numpy(zero_copy_only=False)
            quits = events.filter(pa.array(np.isin(types, ["unsubscribe", "complaint"])))
            self._opt_out(
                quits.column("customer_id").to_numpy(zero_copy_only=False),
                quits.column("channel").to_numpy(zero_copy_only=False),
                quits.column("occurred_at").to_numpy(),
                traits,
                new_state,
                loads,
                loaded,
            )
        return orders.num_rows

    @staticmethod
    def _opt_out(
        customer_ids: np.ndarray,
        channels: np.ndarray,
        at: np.ndarray,
        traits: Traits,
        new_state: CustomerState,
        loads: _Loads,
        loaded: datetime,
    ) -> None:
        """Unsubscribes and complaints: opt the channel out and sync a raw.consents row."""
        if len(customer_ids) == 0:
            return
        idx = traits.index_of(customer_ids)
        ch = channel_codes(channels)
        keep = new_state.consent[idx, ch]
        # one row per (customer, channel): the first quit of the day
        order = np.lexsort((at, ch, idx))
        idx, ch, at, keep = idx[order], ch[order], at[order], keep[order]
        first = np.ones(len(idx), dtype=bool)
        first[1:] = (idx[1:] != idx[:-1]) | (ch[1:] != ch[:-1])
        keep &= first
        new_state.consent[idx[keep], ch[keep]] = False
        loads.consents.append(
            pa.table(
                {
                    "customer_id": traits.customer_id[idx[keep]],
                    "channel": np.array(CHANNELS)[ch[keep]],
                    "status": np.full(int(keep.sum()), "opted_out"),
                    "recorded_at": at[keep].astype("datetime64[us]"),
                    "_loaded_at": np.full(int(keep.sum()), np.datetime64(loaded, "us")),
                },
                schema=RAW_SCHEMAS["consents"],
            )
        )

    def _after_orders(
        self, day: date, traits: Traits, new_state: CustomerState, ordered: np.ndarray
    ) -> None:
        """Everyone who ordered today: cycle restarts, then BG/NBD dropout is drawn."""
        u = stream(self.seed, "dropout", day).random(traits.n)
        who = np.unique(ordered[ordered >= 0])
        np.add.at(new_state.n_orders, ordered[ordered >= 0], 1)
        new_state.last_order_day[who] = day_number(day)
        new_state.alive[who] = u[who] >= traits.dropout[who]

    def _respond(
        self,
        day: date,
        delivered: Sequence[OutboundMessage],
        traits: Traits,
        state: CustomerState,
        new_state: CustomerState,
        fatigue: np.ndarray,
        loads: _Loads,
        loaded: datetime,
    ) -> dict[str, int]:
        """Draw every response to the messages delivered today; schedule the later ones."""
        total = len(delivered)
        sends = _todays_sends(day, delivered, traits) if total else None
        if sends is None:
            return {"messages": 0, "ignored": total, "suppressed": 0}
        actions = _actions(day, traits, sends)
        today = day_number(day)
        resp = respond(traits, state, actions, fatigue[sends.idx] + _sent_earlier(sends), today)
        # keyed by message: a message sent in two configurations meets the same luck in both;
        # drawn in this order: outcomes, times, then the orders' amounts / categories
        keys = hash64(sends.decision, "message")
        rng = KeyedStream(self.seed, "responses", day, keys)
        outcome = _outcomes(rng, resp, sends.channel)
        attention = KeyedStream(self.seed, "attention", day, keys)
        times = _response_times(rng, attention, day, traits, sends, outcome)
        amounts = order_amounts(rng, traits, sends.idx, resp.pay)
        affine = order_categories(rng, traits, sends.idx)
        category = np.where(actions.category == creative.ANY_CATEGORY, affine, actions.category)

        self._load_events(day, sends, outcome, times, traits, new_state, loads, loaded)
        order = (amounts, discounts(amounts, resp.pay), category)
        attributed_now = self._load_orders(
            day, sends, outcome.conv, times.order, order, loads, loaded
        )
        _record_sends(today, sends, outcome, resp.pay, new_state, loads)
        return {
            "messages": sends.n,
            "ignored": total - sends.n,
            "suppressed": int(resp.suppressed.sum()),
            "attributed_now": attributed_now,
        }

    def _load_events(
        self,
        day: date,
        sends: _Sends,
        outcome: _Outcomes,
        times: _Times,
        traits: Traits,
        new_state: CustomerState,
        loads: _Loads,
        loaded: datetime,
    ) -> None:
        """Today's message events into raw.message_events, later ones into pending; today's
        unsubscribes and complaints opt the channel out."""
        day_end = np.datetime64(day + timedelta(days=1), "us")
        for kind, mask, at in _events(sends.channel, outcome, times):
            now, later = mask & (at < day_end), mask & (at >= day_end)
            loads.events.append(
                events_table(
                    sends.decision[now],
                    sends.decision[now],
                    sends.customer[now],
                    sends.channel_name[now],
                    kind,
                    at[now],
                    loaded,
                )
            )
            if later.any():
                loads.pending.append(
                    self._pending(
                        "event",
                        np.char.add(np.char.add("evt-", sends.decision[later]), "-" + kind),
                        sends.decision[later],
                        sends.customer[later],
                        sends.channel_name[later],
                        kind,
                        at[later],
                        None,
                        None,
                    )
                )
        quit_now = (outcome.unsub | outcome.complaint) & (times.quit < day_end)
        self._opt_out(
            sends.customer[quit_now],
            sends.channel_name[quit_now],
            times.quit[quit_now],
            traits,
            new_state,
            loads,
            loaded,
        )

    def _load_orders(
        self,
        day: date,
        sends: _Sends,
        conv: np.ndarray,
        at: np.ndarray,
        order: tuple[np.ndarray, np.ndarray, np.ndarray],
        loads: _Loads,
        loaded: datetime,
    ) -> int:
        """The conversions' orders: today's into raw.orders, later ones into pending. `order`:
        (amount paid, money off, category code) per message. Returns how many are today's."""
        amounts, money_off, category = order
        order_ids = numbered(f"ord-{day:%Y%m%d}-m", np.arange(sends.n), 7)
        day_end = np.datetime64(day + timedelta(days=1), "us")
        now, later = conv & (at < day_end), conv & (at >= day_end)
        loads.orders.append(
            orders_table(
                order_ids[now],
                sends.customer[now],
                at[now],
                amounts[now],
                money_off[now],
                category[now],
                loaded,
            )
        )
        loads.ordered_idx.append(sends.idx[now])
        if later.any():
            loads.pending.append(
                self._pending(
                    "order",
                    order_ids[later],
                    sends.decision[later],
                    sends.customer[later],
                    sends.channel_name[later],
                    None,
                    at[later],
                    (amounts[later], money_off[later]),
                    np.array(creative.CATEGORIES)[category[later]],
                )
            )
        return int(now.sum())

    @staticmethod
    def _pending(
        kind: str,
        ids: np.ndarray,
        decision: np.ndarray,
        customer: np.ndarray,
        channel: np.ndarray,
        event_type: str | None,
        at: np.ndarray,
        amount: tuple[np.ndarray, np.ndarray] | None,
        category: np.ndarray | None,
    ) -> pa.Table:
        """Responses due on later days; `amount` is an order's (paid, money off)."""
        n = len(ids)
        due = (at.astype("datetime64[D]") - np.datetime64("1970-01-01", "D")).astype(np.int32)
        return pa.table(
            {
                "kind": np.full(n, kind),
                "id": ids,
                "decision_id": decision,
                "customer_id": customer,
                "channel": channel,
                "event_type": pa.nulls(n, pa.string())
                if event_type is None
                else np.full(n, event_type),
                "occurred_at": at.astype("datetime64[us]"),
                "amount": pa.nulls(n, pa.float64()) if amount is None else amount[0],
                "discount_amount": pa.nulls(n, pa.float64()) if amount is None else amount[1],
                "category": pa.nulls(n, pa.string()) if category is None else category,
                "due_day": due,
            },
            schema=PENDING_SCHEMA,
        )


# -- answering the day's messages (SandboxWorld._respond), step by step ------------------------

EMAIL, SMS, PUSH = (CHANNELS.index(name) for name in ("email", "sms", "push"))
HOUR = np.timedelta64(3_600_000_000, "us")


@dataclass(frozen=True)
class _Sends:
    """The messages the world answers today: the first copy of each decision, sent today, to a
    known customer on a known channel (`channel`: its code, EMAIL / SMS / PUSH)."""

    decision: np.ndarray
    send_at: np.ndarray
    idx: np.ndarray
    channel: np.ndarray
    tags: list[Mapping[str, str]]
    customer: np.ndarray
    channel_name: np.ndarray

    @property
    def n(self) -> int:
        return len(self.decision)


@dataclass(frozen=True)
class _Outcomes:
    """What each message came to (boolean masks)."""

    hard: np.ndarray  # hard bounce
    soft: np.ndarray  # soft bounce
    got: np.ndarray  # delivered
    seen: np.ndarray
    click: np.ndarray
    conv: np.ndarray  # an order follows
    unsub: np.ndarray
    complaint: np.ndarray  # e-mail only


@dataclass(frozen=True)
class _Times:
    """When each message's events (would) happen, naive UTC datetime64[us]."""

    delivered: np.ndarray
    seen: np.ndarray
    click: np.ndarray
    quit: np.ndarray  # unsubscribe; a complaint comes 30 s later
    order: np.ndarray


def _todays_sends(day: date, delivered: Sequence[OutboundMessage], traits: Traits) -> _Sends | None:
    """The delivered messages the world answers (None when there are none)."""
    total = len(delivered)
    decision = np.array([m.decision_id for m in delivered], dtype=str)
    send_at = _timestamps([m.send_at for m in delivered])
    in_day = (send_at >= np.datetime64(day, "us")) & (
        send_at < np.datetime64(day + timedelta(days=1), "us")
    )
    idx = traits.index_of(np.array([m.customer_id for m in delivered], dtype=str))
    ch = channel_codes(np.array([m.channel for m in delivered], dtype=str))
    order = np.argsort(decision, kind="stable")
    first = np.ones(total, dtype=bool)
    first[1:] = decision[order][1:] != decision[order][:-1]
    sel = order[first & in_day[order] & (idx[order] >= 0) & (ch[order] >= 0)]
    if len(sel) == 0:
        return None
    return _Sends(
        decision=decision[sel],
        send_at=send_at[sel],
        idx=idx[sel],
        channel=ch[sel],
        tags=[delivered[j].tags for j in sel],
        customer=traits.customer_id[idx[sel]],
        channel_name=np.array(CHANNELS)[ch[sel]],
    )


def _actions(day: date, traits: Traits, sends: _Sends) -> Actions:
    """What each message is: channel, local hour and creative tags."""
    tags = sends.tags
    return Actions(
        idx=sends.idx,
        channel=sends.channel,
        local_hour=local_hours(traits.region[sends.idx].astype(np.int64), sends.send_at, day),
        category=creative.category_codes(t.get("category") for t in tags),
        offer=creative.offer_codes(t.get("offer") for t in tags),
        tone=creative.tone_codes(t.get("tone") for t in tags),
        value_prop=creative.value_prop_codes(t.get("value_prop") for t in tags),
    )


def _sent_earlier(sends: _Sends) -> np.ndarray:
    """Per message, how many of today's messages its customer got before it (they add to
    fatigue)."""
    m = sends.n
    by_customer = np.lexsort((sends.decision, sends.send_at, sends.idx))
    sorted_idx = sends.idx[by_customer]
    starts = np.r_[0, np.flatnonzero(sorted_idx[1:] != sorted_idx[:-1]) + 1]
    run_start = np.repeat(starts, np.diff(np.r_[starts, m]))
    rank = np.zeros(m, dtype=np.int64)
    rank[by_customer] = np.arange(m) - run_start
    return rank


def _outcomes(rng: Draws, resp: Response, channel: np.ndarray) -> _Outcomes:
    """Draw what each message came to: one uniform per message for each of soft bounce, seen,
    click, conversion, unsubscribe and complaint (a seventh row is drawn and unused: it keeps
    the stream's later draws where they always were)."""
    soft_u, seen_u, click_u, conv_u, unsub_u, complaint_u, _unused = rng.random((7, len(channel)))
    hard = resp.hard_bounce
    soft = ~resp.suppressed & ~hard & (soft_u < resp.soft_bounce)
    got = ~resp.suppressed & ~hard & ~soft
    seen = got & (seen_u < resp.seen)
    click = seen & (click_u < resp.click)
    conv = seen & (conv_u < np.where(click, resp.conv_click, resp.conv_seen))
    unsub = got & (unsub_u < resp.unsubscribe)
    complaint = got & (channel == EMAIL) & (complaint_u < resp.complaint)
    return _Outcomes(hard, soft, got, seen, click, conv, unsub, complaint)


def _response_times(
    rng: Draws,
    attention: Draws,
    day: date,
    traits: Traits,
    sends: _Sends,
    outcome: _Outcomes,
) -> _Times:
    """Draw when each message is delivered (2-60 s after its send), seen and clicked, and how
    many days after the click (else after being seen) its order comes."""
    m = sends.n
    t_delivered = sends.send_at + (rng.uniform(2, 60, m) * 1e6).astype("timedelta64[us]")
    local = local_clock_hours(traits.region[sends.idx].astype(np.int64), t_delivered, day)
    seen_h = seen_delay_hours(rng, attention, traits, sends.idx, sends.channel, local)
    t_seen = t_delivered + (seen_h * 3.6e9).astype("timedelta64[us]")
    t_click = t_seen + (click_delay_seconds(rng, m) * 1e6).astype("timedelta64[us]")
    delay_days = draw_delays(rng, m)
    return _Times(
        delivered=t_delivered,
        seen=t_seen,
        click=t_click,
        quit=np.where(outcome.seen, t_seen, t_delivered + 2 * HOUR) + np.timedelta64(45, "s"),
        order=np.where(outcome.click, t_click, t_seen)
        + (delay_days * 86_400e6).astype("timedelta64[us]"),
    )


def _events(
    channel: np.ndarray, outcome: _Outcomes, times: _Times
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(event type, which messages, when) of every event the messages bring. A push "open" is
    the tap (a click); SMS has no opens (links are counted as clicks); push has no clicks."""
    push = channel == PUSH
    o, t = outcome, times
    return [
        ("delivered", o.got, t.delivered),
        ("bounce", o.hard | o.soft, t.delivered),
        (
            "open",
            np.where(push, o.click, o.seen & (channel == EMAIL)),
            np.where(push, t.click, t.seen),
        ),
        ("click", o.click & ~push, t.click),
        ("unsubscribe", o.unsub, t.quit),
        ("complaint", o.complaint, t.quit + np.timedelta64(30, "s")),
    ]


def _record_sends(
    today: int,
    sends: _Sends,
    outcome: _Outcomes,
    pay: np.ndarray,
    new_state: CustomerState,
    loads: _Loads,
) -> None:
    """The sends into sandbox.sends; hard bounces and the coupons of seen offers into the state."""
    hard, seen = outcome.hard, outcome.seen
    new_state.hard_bounced[sends.idx[hard], sends.channel[hard]] = True
    loads.sends.append(
        pa.table(
            {
                "decision_id": sends.decision,
                "customer_id": sends.customer,
                "channel": sends.channel_name,
                "send_at": sends.send_at.astype("datetime64[us]"),
                "send_day": np.full(sends.n, today, np.int32),
                "delivered": outcome.got,
            }
        )
    )
    idx = sends.idx
    coupon = seen & (pay < 1.0)
    active = new_state.coupon_until[idx] >= today
    best = np.where(active, np.minimum(new_state.coupon_pay[idx], pay), pay)
    new_state.coupon_pay[idx[coupon]] = best[coupon]
    new_state.coupon_until[idx[coupon]] = today + COUPON_DAYS


def _day_tables(loads: _Loads) -> tuple[pa.Table, pa.Table, pa.Table]:
    """The day's orders, message events (each once) and pending events, as single tables."""
    orders = (
        pa.concat_tables(loads.orders, promote_options="none")
        if loads.orders
        else RAW_SCHEMAS["orders"].empty_table()
    )
    events = (
        pa.concat_tables(loads.events)
        if loads.events
        else RAW_SCHEMAS["message_events"].empty_table()
    )
    pending = pa.concat_tables(loads.pending) if loads.pending else PENDING_SCHEMA.empty_table()
    return orders, events, pending


def _write_day_state(
    conn: sa.Connection,
    day: date,
    summary: DaySummary,
    loads: _Loads,
    pending: pa.Table,
    new_state: CustomerState,
) -> DaySummary:
    """Consents, pending events, sends, the customers' state and the day's summary: the rest of
    the day's writes, in the same transaction as its orders and events."""
    today = day_number(day)
    for table in loads.consents:
        append_arrow(conn, "raw.consents", table)
    conn.execute(sa.text(f"delete from sandbox.pending_events where due_day <= {today}"))
    append_arrow(conn, "sandbox.pending_events", pending)
    for table in loads.sends:
        append_arrow(conn, "sandbox.sends", table)
    n_pending = conn.execute(sa.text("select count(*) from sandbox.pending_events")).fetchall()
    summary = DaySummary(**{**asdict(summary), "pending": int(n_pending[0][0] or 0)})
    conn.execute(sa.text("delete from sandbox.customer_state"))
    append_arrow(conn, "sandbox.customer_state", new_state.to_arrow())
    conn.execute(
        sa.text("insert into sandbox.days values (:d, :s)"),
        {"d": day, "s": summary.to_json()},
    )
    conn.execute(sa.text("update sandbox.world set last_day = :d"), {"d": day})
    return summary
