"""The daily repurchase model: fitted on dbt's purchase summary in the Dagster loop, written
back per customer and run date, and read by customer_features as features."""

from __future__ import annotations

import json
import shutil
from datetime import date, timedelta

import numpy as np
import pyarrow as pa
import pytest
from insights_world import AS_OF, DAYS, START
from test_dbt_project import run_dbt

from journeyman.decisioning.repurchase import expected_purchases, fit_bgnbd, probability_alive
from journeyman.decisioning.repurchase_daily import MIN_REPEAT_CUSTOMERS, fit_day, predict_day
from journeyman.warehouse import Warehouse


def _dicts(wh: Warehouse, sql: str) -> list[dict]:
    return [dict(r._mapping) for r in wh.rows(sql)]


def test_each_day_of_the_loop_fits_and_predicts_every_customer_with_orders(insights_world):
    wh = Warehouse(insights_world.path, read_only=True)
    fits = _dicts(wh, "select * from journeyman.repurchase_fits order by run_date")
    assert [f["run_date"] for f in fits] == [START + timedelta(days=i) for i in range(DAYS)]
    for fit in fits:
        # the sandbox's customers never drop out, so the fit may stop at the NBD boundary
        assert fit["converged"] == (fit["note"] is None)
        assert min(fit["r"], fit["alpha"], fit["a"], fit["b"], fit["gg_q"] - 1) > 0
        counted = wh.scalar(
            "select count(*) from journeyman.repurchase_predictions where run_date = :d",
            {"d": fit["run_date"]},
        )
        assert counted == fit["customers"] > fit["repeat_customers"] >= MIN_REPEAT_CUSTOMERS


def test_predictions_are_the_fitted_model_applied_to_the_summary(insights_world, tmp_path):
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(insights_world.path, copy)
    wh = Warehouse(copy)
    fit = predict_day(wh, AS_OF)  # the summary dbt built as of AS_OF
    again = predict_day(wh, AS_OF)  # a re-run replaces the day's rows
    assert again.predictions == fit.predictions > 0
    summary = wh.read_arrow(
        "select s.*, p.probability_alive, p.expected_orders_30d "
        "from intermediate.int_customer_purchase_summary s "
        "join journeyman.repurchase_predictions p using (customer_id) "
        "where p.run_date = :d order by customer_id",
        {"d": AS_OF},
    )
    assert summary.num_rows == fit.customers
    x, t_x, age = (
        summary.column(c).to_numpy().astype(float)
        for c in ("frequency", "recency_days", "age_days")
    )
    refit = fit_bgnbd(x, t_x, age)
    assert refit.r == pytest.approx(fit.bgnbd.r, rel=1e-6)
    alive = summary.column("probability_alive").to_numpy()
    np.testing.assert_allclose(alive, probability_alive(refit, x, t_x, age), rtol=1e-6)
    thirty = summary.column("expected_orders_30d").to_numpy()
    np.testing.assert_allclose(thirty, expected_purchases(refit, 30.0, x, t_x, age), rtol=1e-6)
    assert (
        wh.scalar(
            "select count(*) from journeyman.repurchase_fits where run_date = :d", {"d": AS_OF}
        )
        == 1
    )

    built = run_dbt(
        [
            "build",
            "--select",
            "stg_journeyman__repurchase_predictions",
            "customer_features",
            "--vars",
            json.dumps({"run_date": AS_OF.isoformat()}),
        ],
        copy,
        tmp_path,
    )
    assert built.returncode == 0, built.stdout[-3000:]
    features = _dicts(
        wh,
        "select f.customer_id, f.order_count, f.repurchase_p_alive, f.repurchase_days_to_next, "
        "p.probability_alive from marts.customer_features f left join "
        "journeyman.repurchase_predictions p on p.customer_id = f.customer_id "
        f"and p.run_date = date '{AS_OF.isoformat()}'",
    )
    with_orders = [f for f in features if f["order_count"] > 0]
    assert with_orders and all(
        f["repurchase_p_alive"] == f["probability_alive"] for f in with_orders
    )
    without = [f for f in features if f["order_count"] == 0]
    assert all(
        f["repurchase_p_alive"] == 0 and f["repurchase_days_to_next"] == 365 for f in without
    )


def test_too_few_repeat_customers_is_no_fit_with_the_reason():
    summary = pa.table(
        {
            "customer_id": [f"c{i}" for i in range(30)],
            "frequency": [1] * 5 + [0] * 25,
            "recency_days": [10] * 5 + [0] * 25,
            "age_days": [40] * 30,
            "repeat_order_value": [20.0] * 5 + [0.0] * 25,
        }
    )
    bgnbd, gg, note = fit_day(summary)
    assert bgnbd is None and gg is None
    assert note.startswith("5 repeat customers") and str(MIN_REPEAT_CUSTOMERS) in note


def test_a_day_without_a_fit_writes_its_reason_and_no_predictions(tmp_path):
    from journeyman.tables import ensure_journeyman_tables

    wh = Warehouse(tmp_path / "wh.duckdb")
    ensure_journeyman_tables(wh)
    wh.execute(
        "create schema intermediate; create table intermediate.int_customer_purchase_summary as "
        "select 'c1' as customer_id, 0 as frequency, 0 as recency_days, 3 as age_days, "
        "0.0 as repeat_order_value"
    )
    fit = predict_day(wh, date(2026, 3, 2))
    assert fit.bgnbd is None and fit.predictions == 0
    rows = _dicts(wh, "select customers, repeat_customers, r, note from journeyman.repurchase_fits")
    assert rows == [{"customers": 1, "repeat_customers": 0, "r": None, "note": fit.note}]
