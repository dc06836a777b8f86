"""The performance marts (models/marts/performance) on a real sandbox warehouse: a small world run
through the daily Dagster graph for a few days (attribution windows of one day, so some close),
then dbt as of the next day. The marts must agree with each other and with the rows they
summarise; one uplift row is recomputed by hand with numpy / scipy. Treatment and holdout are the
only groups assumed to exist."""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest
from insights_world import AS_OF
from scipy import stats
from test_dbt_project import run_dbt

PERFORMANCE = "path:models/marts/performance"


@dataclass(frozen=True)
class Marts:
    warehouse: Path
    build_seconds: float
    build_output: str
    statuses: dict[str, str]

    def rows(self, sql: str) -> list[dict[str, Any]]:
        with duckdb.connect(str(self.warehouse), read_only=True) as conn:
            cursor = conn.execute(sql)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@pytest.fixture(scope="module")
def marts(insights_world, tmp_path_factory: pytest.TempPathFactory) -> Marts:
    """The session's insights warehouse (tests/insights_world.py), its performance folder
    rebuilt here with its tests so that their statuses can be read."""
    root = tmp_path_factory.mktemp("performance")
    as_of = ["--vars", json.dumps({"run_date": AS_OF.isoformat()})]
    started = time.perf_counter()
    build = run_dbt(["build", "--select", PERFORMANCE, *as_of], insights_world.path, root)
    seconds = time.perf_counter() - started
    results = json.loads((root / "target" / "run_results.json").read_text())["results"]
    return Marts(
        warehouse=insights_world.path,
        build_seconds=seconds,
        build_output=build.stdout,
        statuses={r["unique_id"]: r["status"] for r in results},
    )


def test_performance_models_build_with_their_tests(marts: Marts) -> None:
    assert "Completed successfully" in marts.build_output, marts.build_output[-5000:]
    assert set(marts.statuses.values()) == {"success", "pass"}, marts.statuses
    models = {u.split(".")[-1] for u in marts.statuses if u.startswith("model.")}
    assert {
        "agent_group_members",
        "agent_group_daily",
        "agent_uplift",
        "agent_driver_tree",
        "message_performance",
        "agent_preferences",
        "agent_exploration_daily",
        "delivery_diagnostics",
    } <= models
    assert any(u.startswith("unit_test.") for u in marts.statuses)
    print(f"performance marts built (with tests) in {marts.build_seconds:.1f} s")


def test_daily_running_totals_end_at_the_members_totals(marts: Marts) -> None:
    members = {
        (r["agent"], r["experiment_group"]): r
        for r in marts.rows(
            "select agent, experiment_group, count(*) as customers, sum(sends) as sends, "
            "sum(conversions) as conversions, sum(revenue) as revenue, "
            "sum(unsubscribes) as unsubscribes, sum(complaints) as complaints, "
            "sum(revenue * revenue) as revenue_sq "
            "from marts.agent_group_members group by all"
        )
    }
    assert {g for _, g in members} >= {"treatment", "holdout"}
    daily = marts.rows("select * from marts.agent_group_daily order by agent, day")
    last = {(r["agent"], r["experiment_group"]): r for r in daily}  # ordered by day: the last
    assert set(last) == set(members)
    for key, total in members.items():
        row = last[key]
        assert row["day"] == AS_OF - timedelta(days=1)
        for column in ("customers", "sends", "conversions", "unsubscribes", "complaints"):
            cumulative = "customers" if column == "customers" else f"cumulative_{column}"
            assert row[cumulative] == total[column], (key, column)
        assert row["cumulative_revenue"] == pytest.approx(total["revenue"], rel=1e-9, abs=1e-9)
        # the sparse sum of squares: the last day's interval is that of the members' totals
        n, mean = total["customers"], total["revenue"] / total["customers"]
        if n >= 2:
            sd = math.sqrt(max(total["revenue_sq"] - n * mean * mean, 0) / (n - 1))
            t = stats.t.ppf(0.975, n - 1)
            assert row["revenue_per_customer_high"] - row["revenue_per_customer"] == (
                pytest.approx(t * sd / math.sqrt(n), rel=1e-4, abs=1e-9)
            )
    # every day, from the agent's first audience day, for every group of the agent
    days = defaultdict(set)
    for r in daily:
        days[(r["agent"], r["experiment_group"])].add(r["day"])
    for agent in {a for a, _ in members}:
        spans = {frozenset(d) for (a, _), d in days.items() if a == agent}
        assert len(spans) == 1
        span = sorted(next(iter(spans)))
        assert span[-1] == AS_OF - timedelta(days=1)
        assert len(span) == (span[-1] - span[0]).days + 1


def test_daily_sum_of_squares_matches_a_dense_recount(marts: Marts) -> None:
    """The interval of the mean of members' cumulative revenue on each day, from the sparse
    identity, equals one computed over the members × days grid."""
    grid = marts.rows(
        "with days as (select distinct agent, experiment_group, day from marts.agent_group_daily), "
        "cumulative as ("
        "  select days.agent, days.experiment_group, days.day, m.customer_id, "
        "    coalesce(sum(d.revenue), 0) as revenue "
        "  from days join marts.agent_group_members as m "
        "    on m.agent = days.agent and m.experiment_group = days.experiment_group "
        "    and m.first_decision_date <= days.day "
        "  left join marts.agent_group_member_days as d "
        "    on d.agent = m.agent and d.experiment_group = m.experiment_group "
        "    and d.customer_id = m.customer_id and d.day <= days.day "
        "  group by all) "
        "select agent, experiment_group, day, count(*) as n, stddev_samp(revenue) as sd "
        "from cumulative group by all"
    )
    daily = {
        (r["agent"], r["experiment_group"], r["day"]): r
        for r in marts.rows("select * from marts.agent_group_daily")
    }
    checked = 0
    for g in grid:
        row = daily[(g["agent"], g["experiment_group"], g["day"])]
        assert row["customers"] == g["n"]
        if g["n"] >= 2:
            half = row["revenue_per_customer_high"] - row["revenue_per_customer"]
            t = stats.t.ppf(0.975, g["n"] - 1)
            assert half == pytest.approx(t * g["sd"] / math.sqrt(g["n"]), rel=1e-4, abs=1e-9)
            checked += 1
    assert checked > 0


def test_uplift_treatment_mean_is_the_driver_tree_revenue_per_customer(marts: Marts) -> None:
    tree = {
        (r["agent"], r["experiment_group"]): r
        for r in marts.rows("select * from marts.agent_driver_tree")
    }
    uplift = marts.rows("select * from marts.agent_uplift")
    assert {r["comparison_group"] for r in uplift} >= {"holdout"}
    assert not {r["comparison_group"] for r in uplift} & {"treatment", "shadow"}
    for r in uplift:
        treatment = tree[(r["agent"], "treatment")]
        comparison = tree[(r["agent"], r["comparison_group"])]
        if r["metric"] == "revenue":
            assert r["treatment_mean"] == pytest.approx(treatment["revenue_per_customer"])
            assert r["comparison_mean"] == pytest.approx(comparison["revenue_per_customer"])
        if r["metric"] == "conversions":
            assert r["treatment_mean"] == pytest.approx(treatment["conversions_per_customer"])
        assert r["treatment_customers"] == treatment["customers"]
    for t in tree.values():
        if t["conversions"]:
            assert t["revenue_per_customer"] == pytest.approx(
                t["conversions_per_customer"] * t["revenue_per_conversion"]
            )
        else:
            assert t["revenue_per_conversion"] is None and t["revenue_per_customer"] == 0
    goals = {(r["agent"], r["metric"]) for r in uplift if r["is_goal_metric"]}
    assert {a for a, _ in goals} == {r["agent"] for r in uplift}  # one goal metric per agent
    assert {m for _, m in goals} <= {"revenue", "conversions", "retained"}


def test_one_uplift_row_by_hand(marts: Marts) -> None:
    members = marts.rows(
        "select agent, experiment_group, revenue from marts.agent_group_members "
        "where experiment_group in ('treatment', 'holdout')"
    )
    by_group = defaultdict(list)
    for m in members:
        by_group[(m["agent"], m["experiment_group"])].append(m["revenue"])
    agent = max(
        {a for a, _ in by_group},
        key=lambda a: np.var(by_group.get((a, "treatment"), [0.0])),
    )
    x = np.array(by_group[(agent, "treatment")])
    y = np.array(by_group[(agent, "holdout")])
    (row,) = marts.rows(
        "select * from marts.agent_uplift "
        f"where agent = '{agent}' and comparison_group = 'holdout' and metric = 'revenue'"
    )
    n1, n2 = len(x), len(y)
    v1, v2 = x.var(ddof=1), y.var(ddof=1)
    se = math.sqrt(v1 / n1 + v2 / n2)
    df = (v1 / n1 + v2 / n2) ** 2 / ((v1 / n1) ** 2 / (n1 - 1) + (v2 / n2) ** 2 / (n2 - 1))
    t = stats.t.ppf(0.975, df)
    diff = x.mean() - y.mean()
    assert (row["treatment_customers"], row["comparison_customers"]) == (n1, n2)
    assert row["treatment_mean"] == pytest.approx(x.mean())
    assert row["comparison_mean"] == pytest.approx(y.mean())
    assert row["treatment_sd"] == pytest.approx(math.sqrt(v1))
    assert row["comparison_sd"] == pytest.approx(math.sqrt(v2))
    assert row["degrees_of_freedom"] == pytest.approx(df)
    # t for fractional df is interpolated below 30 df (< 3 % off at 1 < df < 2, far less above)
    tolerance = 1e-6 if df >= 30 else 0.03
    assert row["absolute_low"] == pytest.approx(diff - t * se, rel=tolerance)
    assert row["absolute_high"] == pytest.approx(diff + t * se, rel=tolerance)
    if y.mean() > 0:
        ratio = x.mean() / y.mean()
        rse = abs(ratio) * math.sqrt(v1 / (n1 * x.mean() ** 2) + v2 / (n2 * y.mean() ** 2))
        assert row["relative_difference"] == pytest.approx(ratio - 1)
        assert row["relative_high"] - row["relative_difference"] == pytest.approx(
            t * rse, rel=tolerance
        )
    assert row["is_significant"] == (row["absolute_low"] > 0 or row["absolute_high"] < 0)


def test_preference_shares_sum_to_one(marts: Marts) -> None:
    sums = marts.rows(
        "select agent, decision_date, dimension, segment_type, segment, sum(share) as total, "
        "sum(decisions) as decisions "
        "from marts.agent_preferences group by all"
    )
    assert sums
    assert {r["segment_type"] for r in sums} == {"all", "recency", "frequency", "monetary"}
    for r in sums:
        assert r["total"] == pytest.approx(1.0), r
    # per day, every segmentation splits the same decisions; channel, hour and message the sends
    totals: dict[tuple, dict[tuple, int]] = defaultdict(dict)
    for r in sums:
        key = (r["agent"], r["decision_date"], r["dimension"], r["segment_type"])
        totals[key][r["segment"]] = r["decisions"]
    acted = {
        (r["agent"], r["decision_date"]): (r["decisions"], r["sends"])
        for r in marts.rows(
            "select agent, decision_date, count(*) as decisions, count(message_id) as sends "
            "from staging.stg_journeyman__decisions where experiment_group = 'treatment' "
            f"and exclusion_reason is null and decision_date < '{AS_OF}' group by all"
        )
    }
    for (agent, day, dimension, _), segments in totals.items():
        decisions, sends = acted[(agent, day)]
        assert sum(segments.values()) == (decisions if dimension == "send" else sends)


def test_message_performance_adds_up_to_the_delivered_rewards(marts: Marts) -> None:
    cells = marts.rows(
        "select agent, experiment_group, sum(sends) as sends, sum(conversions) as conversions, "
        "sum(revenue) as revenue from marts.message_performance group by all"
    )
    rewards = {
        (r["agent"], r["experiment_group"]): r
        for r in marts.rows(
            "select agent, experiment_group, count(*) as sends, sum(orders) as conversions, "
            "sum(revenue) as revenue from marts.decision_rewards where was_delivered = 1 "
            "group by all"
        )
    }
    assert sum(c["sends"] for c in cells) > 0
    assert {(c["agent"], c["experiment_group"]) for c in cells} == set(rewards)
    for c in cells:
        r = rewards[(c["agent"], c["experiment_group"])]
        assert (c["sends"], c["conversions"]) == (r["sends"], r["conversions"])
        assert c["revenue"] == pytest.approx(r["revenue"])


def test_intervals_contain_their_estimates(marts: Marts) -> None:
    bounds = [
        ("agent_group_daily", "conversions_per_customer"),
        ("agent_group_daily", "revenue_per_customer"),
        ("message_performance", "conversions_per_send"),
        ("message_performance", "revenue_per_send"),
        ("agent_uplift", "absolute"),
        ("agent_uplift", "relative"),
    ]
    for model, prefix in bounds:
        estimate = f"{prefix}_difference" if model == "agent_uplift" else prefix
        rows = marts.rows(
            f"select {prefix}_low as low, {estimate} as estimate, {prefix}_high as high "
            f"from marts.{model} where {prefix}_low is not null"
        )
        assert rows, (model, prefix)
        for r in rows:
            assert r["low"] <= r["estimate"] + 1e-12 and r["estimate"] <= r["high"] + 1e-12, (
                model,
                r,
            )
    for r in marts.rows("select * from marts.agent_uplift"):
        if r["absolute_low"] is None:
            assert r["is_significant"] is False


def test_exploration_and_delivery_diagnostics_are_consistent(marts: Marts) -> None:
    for r in marts.rows("select * from marts.agent_exploration_daily"):
        assert 1 <= r["distinct_actions"] <= r["decisions"]
        assert r["action_entropy"] <= math.log(r["distinct_actions"]) + 1e-9
        if r["normalized_entropy"] is not None:
            assert 0 <= r["normalized_entropy"] <= 1 + 1e-9
    rows = marts.rows("select * from marts.delivery_diagnostics")
    ledger = {
        (r["agent"], r["decision_date"], r["destination"]): r["rows"]
        for r in marts.rows(
            "select d.agent, d.decision_date, l.destination, count(*) as rows "
            "from staging.stg_journeyman__decisions d "
            "join staging.stg_journeyman__deliveries l using (decision_id) "
            f"where d.decision_date < '{AS_OF}' and d.experiment_group != 'shadow' group by all"
        )
    }
    assert {(r["agent"], r["decision_date"], r["destination"]) for r in rows} - {
        (r["agent"], r["decision_date"], "none") for r in rows
    } == set(ledger)
    days: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        days[(r["agent"], r["decision_date"])].append(r)
        statuses = ("delivered", "failed", "in_flight", "unknown", "expired", "suppressed")
        assert r["attempted"] == sum(r[s] for s in statuses) + r["cancelled"]
        if r["destination"] != "none":
            assert r["attempted"] == ledger[(r["agent"], r["decision_date"], r["destination"])]
    for day_rows in days.values():
        assert len({(r["decisions"], r["messages_planned"]) for r in day_rows}) == 1
        planned = day_rows[0]["messages_planned"]
        # one destination per message here: every planned message is attempted once or not at all
        assert sum(r["attempted"] + r["not_attempted"] for r in day_rows) == planned


def test_a_retention_goal_rewards_an_order_without_an_opt_out(marts: Marts) -> None:
    """recurring_purchase's goal is retention: its reward is `retained` (an order in the window
    and no opt-out), recounted here from the raw orders and events, and `retained` is its goal
    metric in agent_uplift."""
    rewards = marts.rows(
        "select decision_id, customer_id, reference_at, window_end, orders, retained, reward "
        "from marts.decision_rewards where agent = 'recurring_purchase'"
    )
    assert rewards, "the recurring agent has closed windows"
    opt_outs = marts.rows(
        "select customer_id, occurred_at as at from staging.stg_raw__message_events "
        "where event_type = 'unsubscribe' union all select customer_id, recorded_at "
        "from staging.stg_raw__consents where status = 'opted_out'"
    )
    by_customer: dict[str, list] = defaultdict(list)
    for row in opt_outs:
        by_customer[row["customer_id"]].append(row["at"])
    for r in rewards:
        opted_out = any(
            r["reference_at"] < at <= r["window_end"] for at in by_customer[r["customer_id"]]
        )
        assert r["retained"] == int(r["orders"] > 0 and not opted_out), r
        assert r["reward"] == r["retained"], r
    goal = marts.rows(
        "select distinct metric from marts.agent_uplift "
        "where agent = 'recurring_purchase' and is_goal_metric"
    )
    assert goal == [{"metric": "retained"}]
    others = marts.rows(
        "select distinct agent, metric from marts.agent_uplift where is_goal_metric "
        "and agent <> 'recurring_purchase'"
    )
    assert all(r["metric"] in ("revenue", "conversions") for r in others)
