"""Bad rows are excluded, never fatal: a real `dbt build` on a fresh DuckDB file whose raw tables
hold absurd amounts, future dates, orphan orders and events of unknown decisions.

Staging drops each such row with a reason code (listed in marts.dq_excluded_rows, counted in
marts.dq_exclusion_counts), the build succeeds and every customer's features stay finite. Only
whole-day problems (no orders loaded, or every order excluded) stop the run.
"""

from __future__ import annotations

import json
import math
import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest
from test_dbt_project import Build, feature_columns, run_dbt

from journeyman import settings
from journeyman.decisioning.config import load_agents
from journeyman.decisioning.daily import decide_day
from journeyman.decisioning.features import discover_features
from journeyman.tables import ensure_journeyman_tables, ensure_raw_tables
from journeyman.warehouse import Warehouse

RUN_DATE = "2024-03-01"  # as-of instant 2024-03-01 00:00 UTC
LOADED = "2024-02-29 02:00:00"

# fmt: off  (fixture tables read best one row per line)

# customer_id, email, phone, push_token, time_zone, country, signup_at, _loaded_at
CUSTOMERS = [
    (
        "n1",
        "n1@example.com",
        "+14155550101",
        None,
        "America/New_York",
        "US",
        "2023-01-01 00:00:00",
        LOADED,
    ),
    ("n2", "n2@example.com", None, None, "Europe/Berlin", "DE", "2023-06-01 00:00:00", LOADED),
    ("n3", "n3@example.com", None, "tok3", "UTC", "GB", "2024-01-15 00:00:00", LOADED),
    ("big", "big@example.com", None, None, "UTC", "US", "2023-01-01 00:00:00", LOADED),
    ("huge", "huge@example.com", None, None, "UTC", "US", "2023-01-01 00:00:00", LOADED),
]

# order_id, customer_id, ordered_at, amount, discount_amount, category, _loaded_at
ORDERS = [
    ("o1", "n1", "2024-01-10 10:00:00", 40.0, None, "apparel", LOADED),
    ("o2", "n1", "2024-02-10 10:00:00", 60.0, 6.0, "home", LOADED),
    ("o3", "n2", "2024-02-20 12:00:00", 25.0, None, "beauty", LOADED),
    ("o4", "big", "2024-02-01 09:00:00", 80.0, None, "sports", LOADED),
    ("o5", "huge", "2024-02-02 09:00:00", 30.0, None, "electronics", LOADED),
    # two finite amounts whose sum is infinite
    ("o_1e308_a", "big", "2024-02-03 09:00:00", 1e308, None, "home", LOADED),
    ("o_1e308_b", "big", "2024-02-04 09:00:00", 1e308, None, "home", LOADED),
    # the largest double: finite, >= 0, would be an average order value of 6e307
    ("o_max_double", "huge", "2024-02-05 09:00:00", 1.797e308, None, "home", LOADED),
    ("o_big_discount", "n2", "2024-02-06 09:00:00", 10.0, 1e9, "home", LOADED),
    # dated years after both its load and the as-of instant
    ("o_future", "n1", "2030-01-01 00:00:00", 50.0, None, "home", LOADED),
    # a backfill's normal case: placed (and loaded) after the as-of instant, not yet visible
    ("o_after_as_of", "n1", "2024-03-10 10:00:00", 70.0, None, "home", "2024-03-11 02:00:00"),
    # a customer raw.customers has never had
    ("o_orphan", "nobody", "2024-02-07 09:00:00", 20.0, None, "home", LOADED),
]

# customer_id, channel, status, recorded_at, _loaded_at
CONSENTS = [
    ("n1", "email", "opted_in", "2023-01-01 00:00:00", LOADED),
    ("n2", "email", "opted_in", "2023-06-01 00:00:00", LOADED),
    ("n3", "push", "opted_in", "2024-01-15 00:00:00", LOADED),
    ("big", "email", "opted_in", "2023-01-01 00:00:00", LOADED),
    ("huge", "email", "opted_in", "2023-01-01 00:00:00", LOADED),
    ("n2", "email", "opted_out", "2031-05-05 00:00:00", LOADED),  # future-dated
]

DECISION = "winback-20240220-n1"

# decision_id, agent, decision_date, customer_id, policy, policy_version, experiment_group,
# action_id, message_id, channel, local_hour, send_at, propensity, exclusion_reason,
# goal_metric, attribution_window_days, created_at
DECISIONS = [
    (
        DECISION,
        "winback",
        "2024-02-20",
        "n1",
        "thompson",
        "v1",
        "treatment",
        "a_email",
        "m1",
        "email",
        10,
        "2024-02-20 15:00:00",
        0.5,
        None,
        "conversion",
        3,
        "2024-02-20 00:00:00",
    ),
]

# event_id, decision_id, customer_id, channel, event_type, occurred_at, _loaded_at
EVENTS = [
    ("e1", DECISION, "n1", "email", "delivered", "2024-02-20 15:00:05", LOADED),
    ("e2", DECISION, "n1", "email", "open", "2024-02-20 19:00:00", LOADED),
    # the brand's own newsletter: known through its `delivered` event
    ("e3", "cmp-9", "n2", "email", "delivered", "2024-02-21 09:00:00", LOADED),
    ("e4", "cmp-9", "n2", "email", "click", "2024-02-21 12:00:00", LOADED),
    # a click on a message nobody sent
    ("e_unknown", "no-such-decision", "n3", "email", "click", "2024-02-22 12:00:00", LOADED),
    # an unsubscribe is the customer's word, whatever message it names: kept
    ("e_unsub", "no-such-decision", "n3", "email", "unsubscribe", "2024-02-22 12:05:00", LOADED),
    ("e_future", DECISION, "n1", "email", "click", "2029-12-31 23:00:00", LOADED),
]
# fmt: on

EXPECTED_EXCLUSIONS = {
    ("raw.orders", "o_1e308_a", "amount_above_max"),
    ("raw.orders", "o_1e308_b", "amount_above_max"),
    ("raw.orders", "o_max_double", "amount_above_max"),
    ("raw.orders", "o_big_discount", "discount_above_max"),
    ("raw.orders", "o_future", "future_ordered_at"),
    ("raw.orders", "o_orphan", "unknown_customer"),
    ("raw.consents", "n2|email|2031-05-05 00:00:00", "future_recorded_at"),
    ("raw.message_events", "e_unknown", "unknown_decision"),
    ("raw.message_events", "e_future", "future_occurred_at"),
}


def load_bad_rows(path: Path, orders: list[tuple] = ORDERS) -> None:
    """The source tables as journeyman creates them, filled with the rows above."""
    warehouse = Warehouse(path)
    ensure_raw_tables(warehouse)
    ensure_journeyman_tables(warehouse)
    with duckdb.connect(str(path)) as conn:
        conn.executemany("insert into raw.customers values (?, ?, ?, ?, ?, ?, ?, ?)", CUSTOMERS)
        if orders:
            conn.executemany("insert into raw.orders values (?, ?, ?, ?, ?, ?, ?)", orders)
        conn.executemany("insert into raw.consents values (?, ?, ?, ?, ?)", CONSENTS)
        conn.executemany("insert into raw.message_events values (?, ?, ?, ?, ?, ?, ?)", EVENTS)
        conn.executemany(
            "insert into journeyman.decisions (decision_id, agent, decision_date, customer_id, "
            "policy, policy_version, experiment_group, action_id, message_id, channel, "
            "local_hour, send_at, propensity, exclusion_reason, goal_metric, "
            "attribution_window_days, created_at) values "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            DECISIONS,
        )


def dbt_build(workdir: Path, orders: list[tuple] = ORDERS) -> Build:
    warehouse = workdir / "warehouse.duckdb"
    load_bad_rows(warehouse, orders)
    result = run_dbt(
        [
            "build",
            "--vars",
            json.dumps({"run_date": RUN_DATE}),
            "--exclude-resource-type",
            "unit_test",
        ],
        warehouse,
        workdir,
    )
    return Build(warehouse=warehouse, target=workdir / "target", result=result)


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    return dbt_build(tmp_path_factory.mktemp("bad_rows"))


def test_build_succeeds_despite_bad_rows(build: Build) -> None:
    assert build.result.returncode == 0, build.result.stdout[-5000:] + build.result.stderr
    results = json.loads((build.target / "run_results.json").read_text())["results"]
    assert {r["status"] for r in results} <= {"success", "pass", "no-op"}


def test_bad_rows_are_listed_with_reason_codes(build: Build) -> None:
    rows = build.rows(
        "select source_table, row_key, reason_code, action from marts.dq_excluded_rows"
    )
    assert {(r["source_table"], r["row_key"], r["reason_code"]) for r in rows} == (
        EXPECTED_EXCLUSIONS
    )
    assert {r["action"] for r in rows} == {"row_excluded"}
    counts = {
        (r["source_table"], r["reason_code"]): r["row_count"]
        for r in build.rows("select * from marts.dq_exclusion_counts")
    }
    assert counts[("raw.orders", "amount_above_max")] == 3
    assert counts[("raw.orders", "unknown_customer")] == 1
    assert counts[("raw.orders", "future_ordered_at")] == 1
    assert counts[("raw.message_events", "unknown_decision")] == 1
    assert sum(counts.values()) == len(EXPECTED_EXCLUSIONS)


def test_excluded_rows_are_out_of_staging_and_the_rest_is_in(build: Build) -> None:
    orders = {r["order_id"] for r in build.rows("select order_id from staging.stg_raw__orders")}
    assert orders == {"o1", "o2", "o3", "o4", "o5", "o_after_as_of"}
    events = {
        r["event_id"] for r in build.rows("select event_id from staging.stg_raw__message_events")
    }
    assert events == {"e1", "e2", "e3", "e4", "e_unsub"}


def test_every_customer_has_finite_features(build: Build) -> None:
    manifest = json.loads((build.target / "manifest.json").read_text())
    marked = feature_columns(manifest)
    assert {"total_revenue", "avg_order_value", "ipi_mean_days"} <= marked
    by_id = {r["customer_id"]: r for r in build.rows("select * from marts.customer_features")}
    assert set(by_id) == {"n1", "n2", "n3", "big", "huge"}
    for customer, row in by_id.items():
        for column in marked:
            value = row[column]
            assert value is not None and math.isfinite(value), (customer, column, value)
    # only the plausible orders count; o_after_as_of is not visible as of 2024-03-01
    assert (by_id["big"]["order_count"], by_id["big"]["total_revenue"]) == (1, 80.0)
    assert by_id["huge"]["avg_order_value"] == pytest.approx(30.0)
    assert by_id["n1"]["order_count"] == 2
    assert by_id["n1"]["total_revenue"] == pytest.approx(100.0)
    # n2's future-dated opt-out is ignored; n3's unsubscribe (unknown message) still counts
    assert by_id["n2"]["consent_email"] is True
    assert by_id["n3"]["unsubscribed_email"] is True


def test_the_decisioner_decides_for_every_customer(build: Build, tmp_path: Path) -> None:
    """What the decisions asset runs, on a copy of the built warehouse: no customer is lost."""
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(build.warehouse, copy)
    warehouse = Warehouse(copy)
    agents = load_agents(settings.agents_dir())
    features = discover_features(build.target / "manifest.json")
    summary = decide_day(warehouse, agents, features, date.fromisoformat(RUN_DATE))
    assert summary.decisions == {agent.name: 5 for agent in agents}
    decided = warehouse.rows(
        "select agent, customer_id, exclusion_reason from journeyman.decisions "
        f"where decision_date = '{RUN_DATE}'"
    )
    assert {c for _, c, _ in decided} <= {"n1", "n2", "n3", "big", "huge"}
    # customers outside an agent's audience are counted, not stored
    assert "not_eligible" not in {r for _, _, r in decided}
    for agent in agents:
        stored = sum(1 for a, _, _ in decided if a == agent.name)
        assert stored + summary.exclusions[(agent.name, "not_eligible")] == 5
    assert summary.written == len(decided)
    assert sum(summary.sends.values()) > 0


def test_no_orders_loaded_stops_the_run_naming_the_table(tmp_path: Path) -> None:
    failed = dbt_build(tmp_path, orders=[])
    assert failed.result.returncode != 0
    assert "Failure in test raw_orders_not_empty" in failed.result.stdout, failed.result.stdout[
        -5000:
    ]


def test_every_order_excluded_stops_the_run_naming_the_table(tmp_path: Path) -> None:
    in_cents = [(*row[:3], row[3] * 1e7, *row[4:]) for row in ORDERS]  # all above the maximum
    failed = dbt_build(tmp_path, orders=in_cents)
    assert failed.result.returncode != 0
    assert "Failure in test raw_orders_not_all_excluded" in failed.result.stdout, (
        failed.result.stdout[-5000:]
    )
