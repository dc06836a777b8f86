"""The organic purchase process (BG/NBD-like, with a purchase cycle).

While alive, a customer's gaps between orders are Erlang-2 with mean 1/λ (λ = purchase rate), so
the hazard h(t) = μ²t / (1 + μt), μ = 2λ, rises with the days t since the last order: shortly
after an order the customer is unlikely to buy again, near their usual cycle they are ready
(`readiness` = h/μ ∈ [0, 1)). After each order the customer drops out (stops buying organically)
with a per-customer probability (BG/NBD's p). Customers who did not buy at signup are prospects,
with a lower first-purchase rate. Messages can bring dropped-out customers back (see responses).
"""

from __future__ import annotations

import numpy as np

from journeyman.sandbox.population import Traits
from journeyman.sandbox.randomness import Draws, day_of
from journeyman.sandbox.regions import utc_offsets_hours

PROSPECT_FACTOR = 0.35  # first-purchase rate of a prospect relative to λ
AMOUNT_SIGMA = 0.30  # order-to-order spread around the customer's median value
PROMO_CODE_USE = 0.2  # history orders with a promotion code: 1 − exp(−0.2 · price sensitivity)
PROMO_CODE_RATES = np.array([0.10, 0.15, 0.20])  # the brand's past promotion codes
ORDER_AT_PREF_HOUR = 0.6  # share of orders placed around the customer's own preferred hour
#: relative frequency of orders by local clock hour (evening-heavy, quiet at night)
ORDER_HOUR_WEIGHTS = np.array(
    [
        2,
        1,
        0.6,
        0.4,
        0.4,
        0.6,
        1.2,
        2.2,
        3.5,
        4.5,
        5,
        5.3,
        5.8,
        5.5,
        5,
        4.8,
        4.8,
        5.2,
        6,
        6.8,
        7.2,
        6.8,
        5.2,
        3.5,
    ]
)


def cycle_rate(purchase_rate: np.ndarray, n_orders: np.ndarray) -> np.ndarray:
    """μ = 2λ of the Erlang-2 gap (λ lowered for prospects without orders)."""
    lam = np.where(n_orders > 0, purchase_rate, purchase_rate * PROSPECT_FACTOR)
    return 2.0 * lam


def buy_probability(mu: np.ndarray, t: np.ndarray, days: float) -> np.ndarray:
    """P(an alive customer orders within `days`, given t days since the last order)."""
    t = np.maximum(t, 0.0)
    return 1.0 - (1.0 + mu * (t + days)) / (1.0 + mu * t) * np.exp(-mu * days)


def readiness(mu: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Where the customer is in their cycle: 0 just after an order, → 1 when due."""
    x = mu * np.maximum(t, 0.0)
    return x / (1.0 + x)


def lapse(mu: np.ndarray, t: np.ndarray) -> np.ndarray:
    """0 for customers within ~1.5 cycles of their last order, → 1 when long overdue."""
    return np.clip((0.5 * mu * np.maximum(t, 0.0) - 1.5) / 2.0, 0.0, 1.0)


def order_amounts(
    rng: Draws, traits: Traits, idx: np.ndarray, pay: np.ndarray | float = 1.0
) -> np.ndarray:
    """Order values (2 decimals) for customers idx; `pay` is the share paid after discounts."""
    noise = np.exp(rng.normal(-0.5 * AMOUNT_SIGMA**2, AMOUNT_SIGMA, size=len(idx)))
    return np.round(traits.value_median[idx] * noise * pay, 2)


def discounts(amounts: np.ndarray, pay: np.ndarray | float) -> np.ndarray:
    """Money off orders that paid `amounts` at the share `pay` of their full value (2 decimals)."""
    return np.round(amounts * (1.0 / np.asarray(pay, dtype=np.float64) - 1.0), 2)


def history_promotions(rng: np.random.Generator, traits: Traits, idx: np.ndarray) -> np.ndarray:
    """The share paid of each history order: a promotion code (PROMO_CODE_RATES, equally likely)
    is used with probability 1 − exp(−PROMO_CODE_USE · price sensitivity), so bargain hunters'
    orders carry codes more often — the one trace of price sensitivity in the history."""
    used = rng.random(len(idx)) < 1.0 - np.exp(-PROMO_CODE_USE * traits.price_sensitivity[idx])
    rate = rng.choice(PROMO_CODE_RATES, size=len(idx))
    return np.where(used, 1.0 - rate, 1.0)


def order_categories(rng: Draws, traits: Traits, idx: np.ndarray) -> np.ndarray:
    """Category codes drawn from each customer's affinity."""
    cum = np.cumsum(traits.affinity[idx], axis=1)
    u = rng.random(len(idx))[:, None] * cum[:, -1:]
    return np.minimum((u >= cum).sum(axis=1), traits.affinity.shape[1] - 1)


def order_seconds(
    rng: Draws,
    traits: Traits,
    idx: np.ndarray,
    offsets_hours: np.ndarray,
) -> np.ndarray:
    """Seconds after UTC midnight of orders placed on a UTC day, at realistic local hours.

    People shop when they are active: an order falls around the customer's own preferred hour
    (normal, their hour width) with probability ORDER_AT_PREF_HOUR, otherwise at the population's
    hour profile (ORDER_HOUR_WEIGHTS). `offsets_hours`: each order's UTC offset (hours).
    """
    p = ORDER_HOUR_WEIGHTS / ORDER_HOUR_WEIGHTS.sum()
    n = len(idx)
    profile = rng.choice(24, size=n, p=p) + rng.random(n)
    own = traits.pref_hour[idx] + traits.hour_width[idx] * rng.standard_normal(n)
    local_hours = np.where(rng.random(n) < ORDER_AT_PREF_HOUR, own, profile)
    local = np.mod(np.floor(local_hours * 3600).astype(np.int64), 86400)
    utc = local - np.round(np.asarray(offsets_hours) * 3600).astype(np.int64)
    return np.mod(utc, 86400)


def history_order_times(
    rng: np.random.Generator, traits: Traits, idx: np.ndarray, times: np.ndarray
) -> np.ndarray:
    """The history's order times (fractional day numbers) moved to realistic hours of their
    UTC day, with each day's own UTC offsets (daylight saving included)."""
    days = np.floor(times).astype(np.int64)
    unique, inverse = np.unique(days, return_inverse=True)
    offsets = np.stack([utc_offsets_hours(day_of(int(d))) for d in unique])  # (days, regions)
    seconds = order_seconds(rng, traits, idx, offsets[inverse.reshape(-1), traits.region[idx]])
    return days + seconds / 86400.0


def draw_history(
    rng: np.random.Generator, traits: Traits, start_day: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Order history before `start_day` (day number).

    Returns (order customer idx, order time in fractional day numbers, alive, last order day,
    number of orders) — the last three being the state at the start of the simulation.
    """
    n = traits.n
    t = traits.signup_day.astype(np.float64) + rng.random(n) * 0.9
    n_orders = np.zeros(n, dtype=np.int32)
    alive = np.ones(n, dtype=bool)
    order_idx: list[np.ndarray] = []
    order_time: list[np.ndarray] = []

    def record(mask: np.ndarray) -> None:
        order_idx.append(np.flatnonzero(mask))
        order_time.append(t[mask])
        n_orders[mask] += 1
        alive[mask] &= rng.random(int(mask.sum())) >= traits.dropout[mask]

    record(traits.order_at_signup)
    active = alive.copy()
    while active.any():
        mu = cycle_rate(traits.purchase_rate, n_orders)
        gap = rng.gamma(2.0, 1.0 / mu)
        t_next = np.where(active, t + gap, t)
        bought = active & (t_next < start_day)
        t = np.where(bought, t_next, t)
        record(bought)
        active = bought & alive
    idx = np.concatenate(order_idx)
    times = np.concatenate(order_time)
    last = np.full(n, -1.0)
    np.maximum.at(last, idx, times)
    last_day = np.where(n_orders > 0, np.floor(last), traits.signup_day).astype(np.int32)
    return idx, times, alive, last_day, n_orders
