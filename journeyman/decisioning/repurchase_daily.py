"""The repurchase model of the day: fit BG/NBD and gamma-gamma on the customers' purchase
summary as of the run date, and write each customer's predictions back to the warehouse.

dbt computes the summary (`intermediate.int_customer_purchase_summary`, in days); this module
fits, predicts and writes `journeyman.repurchase_predictions` (keyed by customer and run date)
and one row of parameters and diagnostics in `journeyman.repurchase_fits`. `customer_features`
then carries the predictions as features (`repurchase_*`), for policies, audiences and
guardrails. Re-running a day replaces that day's rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date

import numpy as np
import pyarrow as pa
import sqlalchemy as sa

from journeyman.decisioning.repurchase import (
    BgNbdParams,
    GammaGammaParams,
    RepurchaseDataError,
    expected_average_order_value,
    expected_purchases,
    fit_bgnbd,
    fit_gamma_gamma,
    probability_alive,
    probability_purchase_within,
    time_to_next_purchase,
)
from journeyman.tables import arrow_schema
from journeyman.warehouse import Warehouse, append_arrow

SUMMARY_TABLE = "intermediate.int_customer_purchase_summary"
PREDICTIONS_TABLE = "journeyman.repurchase_predictions"
FITS_TABLE = "journeyman.repurchase_fits"
#: fewer repeat customers than this and the day has no fit (the parameters would be noise)
MIN_REPEAT_CUSTOMERS = 20


@dataclass(frozen=True)
class DayFit:
    """What the day's fit found: how many customers, the parameters (None: no fit, `note` says
    why) and how many predictions were written."""

    customers: int
    repeat_customers: int
    bgnbd: BgNbdParams | None
    gamma_gamma: GammaGammaParams | None
    predictions: int
    seconds: float
    note: str = ""


def read_summary(warehouse: Warehouse) -> pa.Table:
    """The purchase summary dbt built for the run date, in customer order."""
    return warehouse.read_arrow(
        f"select customer_id, frequency, recency_days, age_days, repeat_order_value "
        f"from {SUMMARY_TABLE} order by customer_id"
    )


def predictions(
    summary: pa.Table, bgnbd: BgNbdParams, gg: GammaGammaParams | None, day: date
) -> pa.Table:
    """One row per customer of the summary: the model's predictions (times in days)."""
    x = summary.column("frequency").to_numpy().astype(float)
    t_x = summary.column("recency_days").to_numpy().astype(float)
    age = summary.column("age_days").to_numpy().astype(float)
    m = summary.column("repeat_order_value").to_numpy().astype(float)
    # without a spend model (too few repeat customers): the customer's own repeat mean, and the
    # repeat customers' mean for the rest
    own = np.where(x > 0, m, np.nan)
    value = expected_average_order_value(gg, x, m) if gg is not None else own
    fallback = float(np.mean(m[x > 0])) if (x > 0).any() else 0.0
    value = np.where(np.isfinite(value), value, fallback)
    columns = {
        "customer_id": summary.column("customer_id"),
        "run_date": pa.array([day] * summary.num_rows, pa.date32()),
        "probability_alive": probability_alive(bgnbd, x, t_x, age),
        "expected_orders_7d": expected_purchases(bgnbd, 7.0, x, t_x, age),
        "expected_orders_30d": expected_purchases(bgnbd, 30.0, x, t_x, age),
        "probability_order_7d": probability_purchase_within(bgnbd, 7.0, x, t_x, age),
        "median_days_to_next_order": time_to_next_purchase(bgnbd, x, age),
        "expected_order_value": value,
    }
    return pa.table(columns, schema=arrow_schema(PREDICTIONS_TABLE))


def fit_day(summary: pa.Table) -> tuple[BgNbdParams | None, GammaGammaParams | None, str]:
    """BG/NBD and gamma-gamma fitted on the summary, or None and the reason there is no fit."""
    x = summary.column("frequency").to_numpy().astype(float)
    repeat = int((x > 0).sum())
    if repeat < MIN_REPEAT_CUSTOMERS:
        return None, None, f"{repeat} repeat customers (at least {MIN_REPEAT_CUSTOMERS} needed)"
    t_x = summary.column("recency_days").to_numpy().astype(float)
    age = summary.column("age_days").to_numpy().astype(float)
    try:
        bgnbd = fit_bgnbd(x, t_x, age)
    except RepurchaseDataError as exc:  # a summary the model cannot take: no fit, not a failure
        return None, None, f"no BG/NBD fit: {exc}"
    try:
        gg = fit_gamma_gamma(x, summary.column("repeat_order_value").to_numpy().astype(float))
    except RepurchaseDataError as exc:
        return bgnbd, None, f"no gamma-gamma fit: {exc}"
    notes = []
    if bgnbd.fit is not None and not bgnbd.fit.converged:
        # e.g. no customer ever seems to drop out: a → 0, b → ∞ (the NBD limit); the
        # predictions are the last iterate's, and the note says so
        notes.append(f"BG/NBD fit stopped before converging: {bgnbd.fit.message}")
    if gg.q <= 1:
        notes.append("gamma-gamma q ≤ 1 (infinite mean spend): own means used")
    return bgnbd, (gg if gg.q > 1 else None), "; ".join(notes)


def _fit_row(day: date, fit: DayFit) -> pa.Table:
    b, g = fit.bgnbd, fit.gamma_gamma
    info = b.fit if b is not None else None
    row = {
        "run_date": day,
        "customers": fit.customers,
        "repeat_customers": fit.repeat_customers,
        "r": b.r if b else None,
        "alpha": b.alpha if b else None,
        "a": b.a if b else None,
        "b": b.b if b else None,
        "log_likelihood": info.log_likelihood if info else None,
        "converged": info.converged if info else None,
        "gg_p": g.p if g else None,
        "gg_q": g.q if g else None,
        "gg_v": g.v if g else None,
        "fit_seconds": fit.seconds,
        "note": fit.note or None,
    }
    return pa.Table.from_pylist([row], schema=arrow_schema(FITS_TABLE))


def predict_day(warehouse: Warehouse, day: date) -> DayFit:
    """Fit the day's models, then replace the day's predictions and fit row in one transaction."""
    started = time.perf_counter()
    summary = read_summary(warehouse)
    bgnbd, gg, note = fit_day(summary)
    table = predictions(summary, bgnbd, gg, day) if bgnbd is not None else None
    repeat = int(np.sum(summary.column("frequency").to_numpy() > 0))
    n = table.num_rows if table is not None else 0
    fit = DayFit(summary.num_rows, repeat, bgnbd, gg, n, time.perf_counter() - started, note)
    with warehouse.connect() as conn:
        for name in (PREDICTIONS_TABLE, FITS_TABLE):
            conn.execute(sa.text(f"delete from {name} where run_date = :day"), {"day": day})
        if table is not None:
            append_arrow(conn, PREDICTIONS_TABLE, table)
        append_arrow(conn, FITS_TABLE, _fit_row(day, fit))
    return fit
