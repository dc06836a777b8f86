"""The synthetic customer population: latent traits drawn once per world (the ground truth).

Each customer has
- a region (IANA time zone + country) and a signup day in the two years before `start`;
- reachability per channel (has an e-mail / phone / push token), deliverability (a small share of
  addresses are dead or malformed) and an initial consent per channel (e-mail high, SMS low, push
  in between);
- `engagement` (Beta: most people rarely open, a few open everything) and a lognormal preference
  per channel (mean 1) — the channel a customer answers best differs from person to person;
- a preferred local hour from three chronotypes (morning ≈ 8h, midday ≈ 12h30, evening ≈ 19h30)
  and a width: sends near it are read more;
- category affinity over CATEGORIES (Dirichlet, sparse: one or two categories dominate);
- a BG/NBD-like purchase process: a purchase rate (Gamma across customers), a dropout probability
  after each purchase (Beta), whether they bought at signup;
- a median order value (lognormal) and a price sensitivity (how much discounts move them).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date

import numpy as np
import pyarrow as pa

from journeyman.sandbox.creative import CATEGORIES
from journeyman.sandbox.randomness import day_number, stream
from journeyman.sandbox.regions import SHARES

CHANNELS: tuple[str, ...] = ("email", "sms", "push")

REACHABLE = np.array([0.96, 0.65, 0.35])  # has an e-mail / phone / push token
CONSENT_RATE = np.array([0.90, 0.42, 0.62])  # opt-in rate among the reachable
UNDELIVERABLE = np.array([0.004, 0.006, 0.03])  # well-formed but dead address / stale token
DEFECT_RATE = 0.005  # per defect kind: malformed e-mail, malformed phone, unknown time zone
DEFECTS: tuple[str, ...] = ("none", "malformed_email", "malformed_phone", "unknown_time_zone")
HISTORY_DAYS = 730
CHRONOTYPES = ((0.35, 8.0, 1.0), (0.25, 12.5, 1.0), (0.40, 19.5, 1.2))  # share, mean hour, sd
PURCHASE_RATE_SHAPE, PURCHASE_RATE_MEAN_PER_YEAR = 0.8, 0.45
DROPOUT_BETA = (1.2, 3.0)
ORDER_AT_SIGNUP = 0.55
VALUE_MEDIAN, VALUE_SIGMA = 85.0, 0.45


def channel_codes(names: np.ndarray) -> np.ndarray:
    """Channel names → 0 email, 1 sms, 2 push, -1 for anything else."""
    names = np.asarray(names, dtype=object)
    codes = np.full(len(names), -1, dtype=np.int64)
    for j, channel in enumerate(CHANNELS):
        codes[names == channel] = j
    return codes


def customer_ids(n: int) -> np.ndarray:
    """`c000001` … (zero-padded to at least six digits; sorted order equals index order)."""
    width = max(6, len(str(n)))
    return np.array([f"c{i:0{width}d}" for i in range(1, n + 1)])


@dataclass
class Traits:
    """Latent traits of every customer, arrays indexed by customer position (0 … n-1)."""

    customer_id: np.ndarray
    region: np.ndarray
    signup_day: np.ndarray
    defect: np.ndarray
    reachable: np.ndarray  # (n, 3) bool
    deliverable: np.ndarray  # (n, 3) bool
    consent0: np.ndarray  # (n, 3) bool
    engagement: np.ndarray
    channel_pref: np.ndarray  # (n, 3)
    pref_hour: np.ndarray
    hour_width: np.ndarray
    affinity: np.ndarray  # (n, 5), rows sum to 1
    purchase_rate: np.ndarray  # λ, purchases per day while alive
    dropout: np.ndarray
    order_at_signup: np.ndarray
    value_median: np.ndarray
    price_sensitivity: np.ndarray

    @property
    def n(self) -> int:
        return len(self.customer_id)

    def index_of(self, ids: np.ndarray) -> np.ndarray:
        """Positions of customer ids (-1 where unknown)."""
        ids = np.asarray(ids, dtype=str)
        pos = np.searchsorted(self.customer_id, ids)
        pos = np.clip(pos, 0, self.n - 1)
        return np.where(self.customer_id[pos] == ids, pos, -1)

    def to_arrow(self) -> pa.Table:
        """Flat columns for `sandbox.customer_traits`."""
        cols: dict[str, np.ndarray] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value.ndim == 2:
                names = CATEGORIES if f.name == "affinity" else CHANNELS
                for j, suffix in enumerate(names):
                    cols[f"{f.name}_{suffix}"] = value[:, j]
            else:
                cols[f.name] = value
        return pa.table(cols)

    @classmethod
    def from_arrow(cls, table: pa.Table) -> Traits:
        """Inverse of to_arrow (rows must be in customer order)."""
        data = {name: table.column(name).to_numpy() for name in table.column_names}
        kwargs: dict[str, np.ndarray] = {}
        for f in fields(cls):
            if f.name in data:
                kwargs[f.name] = data[f.name]
            else:
                names = CATEGORIES if f.name == "affinity" else CHANNELS
                kwargs[f.name] = np.column_stack([data[f"{f.name}_{s}"] for s in names])
        kwargs["customer_id"] = kwargs["customer_id"].astype(str)
        return cls(**kwargs)


def draw_population(seed: int, n: int, start: date) -> Traits:
    """Draw the latent traits of n customers (deterministic in seed, n, start)."""
    rng = stream(seed, "population")
    region = rng.choice(len(SHARES), size=n, p=SHARES).astype(np.int16)
    signup_day = day_number(start) - rng.integers(1, HISTORY_DAYS + 1, size=n)
    defect = np.zeros(n, dtype=np.int8)
    u = rng.random(n)
    for k in range(1, len(DEFECTS)):
        defect[(u >= (k - 1) * DEFECT_RATE) & (u < k * DEFECT_RATE)] = k

    reachable = rng.random((n, 3)) < REACHABLE
    reachable[defect == 1, 0] = True
    reachable[defect == 2, 1] = True
    deliverable = reachable & (rng.random((n, 3)) >= UNDELIVERABLE)
    deliverable[defect == 1, 0] = False
    deliverable[defect == 2, 1] = False
    consent0 = reachable & (rng.random((n, 3)) < CONSENT_RATE)

    engagement = rng.beta(0.55, 1.7, size=n)
    sigma = 0.6
    channel_pref = np.exp(rng.normal(-(sigma**2) / 2, sigma, size=(n, 3)))

    shares = np.array([c[0] for c in CHRONOTYPES])
    kind = rng.choice(len(CHRONOTYPES), size=n, p=shares)
    means = np.array([c[1] for c in CHRONOTYPES])[kind]
    sds = np.array([c[2] for c in CHRONOTYPES])[kind]
    pref_hour = np.mod(rng.normal(means, sds), 24.0)
    hour_width = rng.uniform(1.5, 4.0, size=n)

    affinity = rng.dirichlet(np.full(len(CATEGORIES), 0.45), size=n)

    rate_per_year = rng.gamma(
        PURCHASE_RATE_SHAPE, PURCHASE_RATE_MEAN_PER_YEAR / PURCHASE_RATE_SHAPE, size=n
    )
    purchase_rate = np.clip(rate_per_year, 0.02, 24.0) / 365.0
    dropout = rng.beta(*DROPOUT_BETA, size=n)
    order_at_signup = rng.random(n) < ORDER_AT_SIGNUP
    value_median = np.exp(rng.normal(np.log(VALUE_MEDIAN), VALUE_SIGMA, size=n))
    price_sensitivity = np.exp(rng.normal(-0.5 * 0.9**2, 0.9, size=n))

    return Traits(
        customer_id=customer_ids(n),
        region=region,
        signup_day=signup_day.astype(np.int32),
        defect=defect,
        reachable=reachable,
        deliverable=deliverable,
        consent0=consent0,
        engagement=engagement,
        channel_pref=channel_pref,
        pref_hour=pref_hour,
        hour_width=hour_width,
        affinity=affinity,
        purchase_rate=purchase_rate,
        dropout=dropout,
        order_at_signup=order_at_signup,
        value_median=value_median,
        price_sensitivity=price_sensitivity,
    )
