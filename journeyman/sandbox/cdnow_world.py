"""A sandbox world whose customers and orders are real: CDNOW-format purchase histories.

The customers and their orders are the file's, loaded through `cdnow.build_tables` (ids
`cdnow-…`, synthetic and clearly labelled contact details, time zones and consents), shifted
by whole days so that the last order falls on the day before the world's start. The latent
traits are drawn as for the synthetic population (engagement, channel preferences, hours,
category affinities, price sensitivity; deliverability at the population's rates), except
what the history tells:

- purchases continue each customer's real pattern. BG/NBD (decisioning/repurchase.py) is fitted
  on the histories in days: x = order days after the first, t_x = last − first order day,
  T = start − first order day. Whether a customer is still alive is drawn with the model's
  P(alive | x, t_x, T); given that draw, λ's posterior is Gamma(r + x, α + T) if alive and
  Gamma(r + x, α + t_x) if the customer dropped out after the last order, and the purchase
  rate is its mean. The sandbox's gaps are Erlang-2 with mean 1/λ, so the mean gap is the
  posterior mean's. The dropout probability is p's posterior mean: a / (a + b + x) if alive,
  (a + 1) / (a + b + x) if dropped out;
- the state at the start: n_orders and the last order day (UTC) from the history;
- the median order value is the customer's own median positive amount (the median of all
  customers' medians for one whose orders were all free).
- region, signup day, reachability and first consents are those of the loaded raw rows; no
  contact detail is malformed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from journeyman.decisioning.repurchase import (
    BgNbdParams,
    RepurchaseDataError,
    fit_bgnbd,
    probability_alive,
)
from journeyman.sandbox.cdnow import Transactions, build_tables
from journeyman.sandbox.population import (
    CHANNELS,
    UNDELIVERABLE,
    Traits,
    channel_codes,
    draw_population,
)
from journeyman.sandbox.randomness import day_number, stream
from journeyman.sandbox.regions import TIME_ZONES
from journeyman.sandbox.state import CustomerState

CONTACT_COLUMNS = ("email", "phone", "push_token")  # raw.customers' column per channel


class HistoryError(ValueError):
    """The histories cannot make a world; the message says why and what to do."""


@dataclass(frozen=True)
class Histories:
    """What the real orders say, per customer (arrays in customer_id order)."""

    n_orders: np.ndarray  # orders (lines of the file)
    first_day: np.ndarray  # day numbers (UTC) of the first and last order
    last_day: np.ndarray
    repeat_days: np.ndarray  # BG/NBD's x: order days after the first one
    median_amount: np.ndarray  # of the positive amounts; NaN if every order was free


def first_customers(tx: Transactions, n: int) -> Transactions:
    """The lines of the first `n` customer numbers of the file (in number order; all of them
    when the file has fewer), in file order."""
    chosen = np.unique(tx.customer)[:n]
    keep = np.isin(tx.customer, chosen)
    return replace(tx, customer=tx.customer[keep], day=tx.day[keep], amount=tx.amount[keep])


def _days(timestamps: pa.ChunkedArray) -> np.ndarray:
    """Day numbers (UTC) of naive UTC timestamps."""
    days = timestamps.to_numpy().astype("datetime64[D]")
    return (days - np.datetime64("1970-01-01", "D")).astype(np.int64)


def _group_medians(pos: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Median of `values` per position 0 … n-1 (NaN for a position without values)."""
    order = np.lexsort((values, pos))
    pos, values = pos[order], values[order]
    count = np.bincount(pos, minlength=n)
    start = np.r_[0, np.cumsum(count)[:-1]]
    has = count > 0
    low = values[(start + (count - 1) // 2)[has]]
    high = values[(start + count // 2)[has]]
    out = np.full(n, np.nan)
    out[has] = (low + high) / 2
    return out


def histories(ids: np.ndarray, orders: pa.Table) -> Histories:
    """Summarise the raw.orders rows of customers `ids` (sorted)."""
    n = len(ids)
    pos = np.searchsorted(ids, orders.column("customer_id").to_numpy(zero_copy_only=False))
    day = _days(orders.column("ordered_at"))
    first = np.full(n, np.iinfo(np.int64).max)
    last = np.full(n, np.iinfo(np.int64).min)
    np.minimum.at(first, pos, day)
    np.maximum.at(last, pos, day)
    pairs = np.unique(np.stack([pos, day]), axis=1)
    amount = orders.column("amount").to_numpy()
    paid = amount > 0
    return Histories(
        n_orders=np.bincount(pos, minlength=n).astype(np.int32),
        first_day=first,
        last_day=last,
        repeat_days=np.bincount(pairs[0], minlength=n) - 1,
        median_amount=_group_medians(pos[paid], amount[paid], n),
    )


def fit_histories(h: Histories, start: date) -> tuple[BgNbdParams, np.ndarray, np.ndarray]:
    """BG/NBD fitted on the histories in days, observed up to `start`: (parameters, t_x, T)."""
    recency = (h.last_day - h.first_day).astype(float)
    age = (day_number(start) - h.first_day).astype(float)
    try:
        params = fit_bgnbd(h.repeat_days, recency, age)
    except RepurchaseDataError as exc:
        raise HistoryError(
            f"the purchase model cannot be fitted on these histories: {exc}"
        ) from None
    return params, recency, age


def purchase_traits(
    seed: int, h: Histories, start: date
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(alive, purchase rate λ per day, dropout probability) continuing each history; see the
    module docstring."""
    params, recency, age = fit_histories(h, start)
    x = h.repeat_days.astype(float)
    p_alive = probability_alive(params, x, recency, age)
    alive = stream(seed, "cdnow-alive").random(len(x)) < p_alive
    rate = (params.r + x) / (params.alpha + np.where(alive, age, recency))
    a, b = params.a, params.b
    dropout = np.where(alive, a, a + 1) / (a + b + x)
    return alive, rate, dropout


def _contact_traits(
    customers: pa.Table, consents: pa.Table
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(region, reachable, first consent) per customer, as the loaded raw rows have them."""
    ids = customers.column("customer_id").to_numpy(zero_copy_only=False)
    zone = {name: j for j, name in enumerate(TIME_ZONES)}
    region = np.array([zone[z] for z in customers.column("time_zone").to_pylist()], np.int16)
    reachable = np.column_stack(
        [customers.column(c).is_valid().to_numpy(zero_copy_only=False) for c in CONTACT_COLUMNS]
    )
    consent = np.zeros((len(ids), len(CHANNELS)), dtype=bool)
    opted = consents.filter(pc.equal(consents.column("status"), "opted_in"))
    who = np.searchsorted(ids, opted.column("customer_id").to_numpy(zero_copy_only=False))
    channel = channel_codes(opted.column("channel").to_numpy(zero_copy_only=False))
    consent[who, channel] = True
    return region, reachable, consent


def history_traits(
    seed: int, customers: pa.Table, consents: pa.Table, h: Histories, start: date
) -> tuple[Traits, np.ndarray]:
    """The customers' latent traits (sorted by customer_id, as `customers` must be) and
    whether each is alive at `start`."""
    n = customers.num_rows
    drawn = draw_population(seed, n, start)
    region, reachable, consent0 = _contact_traits(customers, consents)
    undeliverable = stream(seed, "cdnow-deliverable").random((n, len(CHANNELS))) < UNDELIVERABLE
    alive, rate, dropout = purchase_traits(seed, h, start)
    own = h.median_amount
    traits = replace(
        drawn,
        customer_id=customers.column("customer_id").to_numpy(zero_copy_only=False).astype(str),
        region=region,
        signup_day=_days(customers.column("signup_at")).astype(np.int32),
        defect=np.zeros(n, dtype=np.int8),
        reachable=reachable,
        deliverable=reachable & ~undeliverable,
        consent0=consent0,
        purchase_rate=rate,
        dropout=dropout,
        order_at_signup=np.ones(n, dtype=bool),
        value_median=np.where(np.isnan(own), np.nanmedian(own), own),
    )
    return traits, alive


def history_world(
    tx: Transactions, seed: int, start: date
) -> tuple[dict[str, pa.Table], Traits, CustomerState]:
    """The raw rows (customers, consents, orders), traits and state at `start` of a world made
    of the histories in `tx`."""
    loaded = datetime.combine(start, time(0))  # one load, just before the first day
    tables = build_tables(tx, seed=seed, shift_to=start, loaded=loaded)
    customers = tables.customers.sort_by("customer_id")  # ids of ≥ 6 digits sort apart
    ids = customers.column("customer_id").to_numpy(zero_copy_only=False).astype(str)
    h = histories(ids, tables.orders)
    if h.median_amount[~np.isnan(h.median_amount)].size == 0:
        raise HistoryError("every order in these histories is free (dollar_value 0)")
    traits, alive = history_traits(seed, customers, tables.consents, h, start)
    state = CustomerState(
        customer_id=traits.customer_id,
        alive=alive,
        last_order_day=h.last_day.astype(np.int32),
        n_orders=h.n_orders,
        consent=traits.consent0.copy(),
        hard_bounced=np.zeros((traits.n, len(CHANNELS)), dtype=bool),
        coupon_pay=np.ones(traits.n),
        coupon_until=np.full(traits.n, -1, dtype=np.int32),
    )
    raw = {
        "raw.customers": customers,
        "raw.consents": tables.consents,
        "raw.orders": tables.orders,
    }
    return raw, traits, state
