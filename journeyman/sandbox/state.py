"""The world's mutable state per customer, and the `sandbox` schema that keeps it between runs.

Python processes are stateless: everything the world needs to continue lives in the warehouse.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pyarrow as pa

from journeyman.sandbox.population import CHANNELS

SANDBOX_DDL = """
create schema if not exists sandbox;
create table if not exists sandbox.world (
    seed bigint, n_customers integer, start date, last_day date
);
create table if not exists sandbox.customer_traits (
    customer_id varchar, region smallint, signup_day integer, defect smallint,
    reachable_email boolean, reachable_sms boolean, reachable_push boolean,
    deliverable_email boolean, deliverable_sms boolean, deliverable_push boolean,
    consent0_email boolean, consent0_sms boolean, consent0_push boolean,
    engagement double precision, channel_pref_email double precision,
    channel_pref_sms double precision, channel_pref_push double precision,
    pref_hour double precision, hour_width double precision,
    affinity_apparel double precision, affinity_beauty double precision,
    affinity_electronics double precision, affinity_home double precision,
    affinity_sports double precision, purchase_rate double precision, dropout double precision,
    order_at_signup boolean, value_median double precision, price_sensitivity double precision
);
create table if not exists sandbox.customer_state (
    customer_id varchar, alive boolean, last_order_day integer, n_orders integer,
    consent_email boolean, consent_sms boolean, consent_push boolean,
    hard_bounced_email boolean, hard_bounced_sms boolean, hard_bounced_push boolean,
    coupon_pay double precision, coupon_until integer
);
create table if not exists sandbox.sends (
    decision_id varchar, customer_id varchar, channel varchar, send_at timestamp,
    send_day integer, delivered boolean
);
create table if not exists sandbox.pending_events (
    kind varchar, id varchar, decision_id varchar, customer_id varchar, channel varchar,
    event_type varchar, occurred_at timestamp, amount double precision,
    discount_amount double precision, category varchar, due_day integer
);
create table if not exists sandbox.days (
    day date, summary varchar
);
"""


@dataclass
class CustomerState:
    """What changes as days pass, arrays indexed by customer position."""

    customer_id: np.ndarray
    alive: np.ndarray
    last_order_day: np.ndarray
    n_orders: np.ndarray
    consent: np.ndarray  # (n, 3) currently opted in
    hard_bounced: np.ndarray  # (n, 3)
    coupon_pay: np.ndarray  # share paid with the best open coupon (1.0 = none)
    coupon_until: np.ndarray  # last day number the coupon is valid

    def to_arrow(self) -> pa.Table:
        """Flat columns for `sandbox.customer_state`."""
        cols: dict[str, np.ndarray] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value.ndim == 2:
                for j, ch in enumerate(CHANNELS):
                    cols[f"{f.name}_{ch}"] = value[:, j]
            else:
                cols[f.name] = value
        return pa.table(cols)

    @classmethod
    def from_arrow(cls, table: pa.Table) -> CustomerState:
        """Inverse of to_arrow (rows in customer order)."""
        data = {name: table.column(name).to_numpy() for name in table.column_names}
        kwargs = {}
        for f in fields(cls):
            if f.name in data:
                kwargs[f.name] = data[f.name]
            else:
                kwargs[f.name] = np.column_stack([data[f"{f.name}_{c}"] for c in CHANNELS])
        kwargs["customer_id"] = kwargs["customer_id"].astype(str)
        return cls(**kwargs)
