"""The health checks (orchestration/defs/health.py) run by Dagster on real DuckDB warehouses:
each passes on healthy data, fails on the fabricated problem, and says "not enough data" on an
empty warehouse or a first day."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import dagster as dg
import pytest

from journeyman import settings
from journeyman.decisioning.config import load_agents
from journeyman.orchestration.defs import health
from journeyman.orchestration.defs.partitions import daily
from journeyman.orchestration.defs.resources import WarehouseResource
from journeyman.tables import ensure_journeyman_tables, ensure_raw_tables
from journeyman.warehouse import Warehouse

DAY = date(2026, 3, 10)
AGENTS = ["cross_sell", "recurring_purchase", "winback"]
UPLIFT = dg.AssetKey(["marts", "agent_uplift"])
EXPLORATION = dg.AssetKey(["marts", "agent_exploration_daily"])
MESSAGE_EVENTS, ORDERS = health.FRESHNESS_SOURCES
STAGING = {s.check: dg.AssetKey(["staging", s.model]) for s in health.FRESHNESS_SOURCES}


def _stub(key: dg.AssetKey) -> dg.AssetsDefinition:
    @dg.asset(key=key, partitions_def=daily)
    def _upstream() -> None:
        """Stands for the asset the checks judge: the test wrote its data into the warehouse."""

    return _upstream


def _evaluate(
    path, checks: list[dg.AssetChecksDefinition], day: date = DAY
) -> dict[str, dg.AssetCheckEvaluation]:
    """Run `checks` for partition `day` against the warehouse at `path`; check name → result."""
    keys = {k.asset_key for c in checks for k in c.check_keys}
    result = dg.materialize(
        [*(_stub(k) for k in keys), *checks],
        partition_key=day.isoformat(),
        resources={"warehouse": WarehouseResource(path=str(path))},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def _all_checks() -> list[dg.AssetChecksDefinition]:
    return [
        health.uplift_checks(UPLIFT, AGENTS),
        health.exploration_checks(EXPLORATION, AGENTS),
        health.decision_volume_stable,
        *(health.freshness_check(STAGING[s.check], s) for s in health.FRESHNESS_SOURCES),
    ]


@pytest.fixture()
def simulated(monkeypatch):
    """Partition D's reference instant is D 00:00 (a simulated day), whatever the wall clock."""
    monkeypatch.setenv(settings.SIMULATION_ENV, "1")


@pytest.fixture()
def warehouse(tmp_path) -> Warehouse:
    wh = Warehouse(tmp_path / "warehouse.duckdb")
    ensure_raw_tables(wh)
    ensure_journeyman_tables(wh)
    return wh


def _text(evaluation: dg.AssetCheckEvaluation, key: str) -> str:
    return str(evaluation.metadata[key].value)


# --- an empty warehouse, a first day ------------------------------------------------------------


@pytest.mark.parametrize("state", ["no file", "empty tables"])
def test_every_check_passes_with_not_enough_data_on_an_empty_warehouse(tmp_path, simulated, state):
    path = tmp_path / "warehouse.duckdb"
    if state == "empty tables":
        ensure_raw_tables(Warehouse(path))
        ensure_journeyman_tables(Warehouse(path))
    results = _evaluate(path, _all_checks())
    assert len(results) == 2 * len(AGENTS) + 3
    for name, result in results.items():
        assert result.passed, name
        assert result.description.startswith(health.NOT_ENOUGH_DATA), (name, result.description)
        policy = name.startswith(("uplift", "exploration"))  # the policy's behaviour: warnings
        assert result.severity == (
            dg.AssetCheckSeverity.WARN if policy else dg.AssetCheckSeverity.ERROR
        )
    assert path.exists() == (state == "empty tables")  # a check never creates the warehouse


# --- uplift -------------------------------------------------------------------------------------


def _uplift_rows(wh: Warehouse, rows: list[tuple]) -> None:
    """marts.agent_uplift (the contract's columns the check reads), goal metric rows plus a
    non-goal metric that is significantly negative and must be ignored."""
    wh.execute(
        "create schema if not exists marts; create table marts.agent_uplift (agent varchar, "
        "metric varchar, is_goal_metric boolean, comparison_group varchar, "
        "treatment_customers integer, treatment_mean double, comparison_customers integer, "
        "comparison_mean double, absolute_difference double, absolute_low double, "
        "absolute_high double)"
    )
    for agent, group, low, high in rows:
        wh.execute(
            "insert into marts.agent_uplift values (:a, 'conversions', true, :g, 400, 0.1, "
            "200, 0.12, :d, :low, :high), (:a, 'unsubscribes', false, :g, 400, 0.2, 200, 0.1, "
            "0.1, 0.05, 0.15)",
            {"a": agent, "g": group, "d": (low + high) / 2, "low": low, "high": high},
        )


def test_uplift_fails_as_a_warning_when_the_goal_metric_is_significantly_worse(warehouse):
    _uplift_rows(
        warehouse,
        [
            ("winback", "holdout", -0.09, -0.01),  # worse than the holdout
            ("winback", "business_as_usual", -0.02, 0.05),
            ("cross_sell", "holdout", -0.03, 0.04),  # not significant
        ],
    )
    results = _evaluate(warehouse.path, [health.uplift_checks(UPLIFT, AGENTS)])

    winback = results["uplift_not_negative_winback"]
    assert not winback.passed and winback.severity == dg.AssetCheckSeverity.WARN
    assert "holdout" in winback.description and "business_as_usual" not in winback.description
    assert winback.metadata["lowest_absolute_high"].value == pytest.approx(-0.01)
    assert _text(winback, "lowest_against") == "holdout"
    assert _text(winback, "goal_metric") == "conversions"
    table = _text(winback, "comparisons")
    assert "| holdout | 400 | 0.1 | 200 | 0.12 | -0.05 | [-0.09, -0.01] |" in table
    assert results["uplift_not_negative_cross_sell"].passed
    recurring = results["uplift_not_negative_recurring_purchase"]
    assert recurring.passed and recurring.description.startswith(health.NOT_ENOUGH_DATA)


# --- exploration --------------------------------------------------------------------------------


def _exploration_rows(wh: Warehouse, rows: list[tuple]) -> None:
    wh.execute(
        "create schema if not exists marts; create table marts.agent_exploration_daily ("
        "agent varchar, decision_date date, decisions integer, distinct_actions integer, "
        "action_entropy double, normalized_entropy double)"
    )
    for agent, day, decisions, actions, entropy in rows:
        wh.execute(
            "insert into marts.agent_exploration_daily values (:a, :d, :n, :k, null, :e)",
            {"a": agent, "d": day, "n": decisions, "k": actions, "e": entropy},
        )


def test_exploration_fails_when_the_latest_day_collapsed(warehouse):
    before, latest = DAY - timedelta(days=2), DAY - timedelta(days=1)
    _exploration_rows(
        warehouse,
        [
            ("winback", before, 300, 20, 0.8),
            ("winback", latest, 300, 3, 0.1),  # nearly always the same action
            ("winback", DAY, 300, 20, 0.9),  # not before the run date: ignored
            ("cross_sell", before, 200, 2, 0.05),
            ("cross_sell", latest, 200, 15, 0.7),  # recovered
            ("recurring_purchase", latest, 5, 1, 0.0),  # too few decisions to tell
        ],
    )
    results = _evaluate(warehouse.path, [health.exploration_checks(EXPLORATION, AGENTS)])

    winback = results["exploration_not_collapsed_winback"]
    assert not winback.passed and winback.severity == dg.AssetCheckSeverity.WARN
    assert winback.metadata["normalized_entropy"].value == pytest.approx(0.1)
    assert winback.metadata["threshold"].value == health.MIN_NORMALIZED_ENTROPY
    assert _text(winback, "day") == str(latest)
    assert str(before) in _text(winback, "last_days") and str(DAY) not in _text(
        winback, "last_days"
    )
    assert results["exploration_not_collapsed_cross_sell"].passed
    recurring = results["exploration_not_collapsed_recurring_purchase"]
    assert recurring.passed and recurring.description.startswith(health.NOT_ENOUGH_DATA)


# --- decision volume ----------------------------------------------------------------------------


def _decisions(wh: Warehouse, agent: str, day: date, n: int) -> None:
    """`n` decision rows of `agent` on `day` in the real journeyman.decisions table."""
    wh.execute(
        "insert into journeyman.decisions (decision_id, agent, decision_date, customer_id, "
        "policy, policy_version, experiment_group, goal_metric, attribution_window_days, "
        "created_at) select :a || '-' || strftime(:d, '%Y%m%d') || '-' || i, :a, :d, "
        "'c' || i, 'uniform', 'v1', 'treatment', 'conversion', 7, :d from range(:n) t(i)",
        {"a": agent, "d": day, "n": n},
    )


def test_decision_volume_fails_when_a_day_drops_by_more_than_half(warehouse):
    for back, n in ((3, 100), (2, 110), (1, 90)):
        _decisions(warehouse, "winback", DAY - timedelta(days=back), n)
        _decisions(warehouse, "cross_sell", DAY - timedelta(days=back), 50)
    _decisions(warehouse, "winback", DAY - timedelta(days=9), 5000)  # outside the 7 days
    _decisions(warehouse, "winback", DAY, 40)  # -60 %
    _decisions(warehouse, "cross_sell", DAY, 45)  # -10 %
    _decisions(warehouse, "recurring_purchase", DAY, 10)  # a new agent: no history

    failed = _evaluate(warehouse.path, [health.decision_volume_stable])["decision_volume_stable"]
    assert not failed.passed and failed.severity == dg.AssetCheckSeverity.ERROR
    assert "winback" in failed.description and "cross_sell" not in failed.description
    table = _text(failed, "volume")
    assert "| winback | 40 | 100 | 3 | -60.0% |" in table
    assert "| cross_sell | 45 | 50 | 3 | -10.0% |" in table and "recurring_purchase" not in table

    _decisions(warehouse, "winback", DAY, 30)  # 70 rows: -30 %
    passed = _evaluate(warehouse.path, [health.decision_volume_stable])["decision_volume_stable"]
    assert passed.passed and "| winback | 70 | 100 | 3 | -30.0% |" in _text(passed, "volume")


def test_decision_volume_on_the_first_day_is_not_enough_data(warehouse):
    _decisions(warehouse, "winback", DAY, 100)
    first = _evaluate(warehouse.path, [health.decision_volume_stable])["decision_volume_stable"]
    assert first.passed and first.description.startswith(health.NOT_ENOUGH_DATA)


# --- freshness ----------------------------------------------------------------------------------


def _events(wh: Warehouse, newest: datetime, n: int = 1, every_hours: int = 2) -> None:
    """`n` message events, the newest at `newest`, one every `every_hours` before it."""
    wh.execute(
        "insert into raw.message_events select 'e' || i, 'd1', 'c1', 'email', 'open', "
        ":at - to_hours(i * :every), :at - to_hours(i * :every) + interval 2 hour "
        "from range(:n) t(i)",
        {"at": newest, "n": n, "every": every_hours},
    )


def _orders(wh: Warehouse, newest: datetime, n: int = 1, every_hours: int = 2) -> None:
    wh.execute(
        "insert into raw.orders select 'o' || i, 'c1', :at - to_hours(i * :every), 20.0, null, "
        "'home', :at - to_hours(i * :every) from range(:n) t(i)",
        {"at": newest, "n": n, "every": every_hours},
    )


def _delivered(wh: Warehouse, send_at: datetime) -> None:
    wh.execute(
        "insert into journeyman.deliveries (decision_id, destination, status, idempotency_key, "
        "attempts, updated_at, send_at) values ('d-' || :at, 'sendgrid', 'delivered', 'k', 1, "
        ":at, :at)",
        {"at": send_at},
    )


def _freshness(wh: Warehouse) -> dict[str, dg.AssetCheckEvaluation]:
    checks = [health.freshness_check(STAGING[s.check], s) for s in health.FRESHNESS_SOURCES]
    return _evaluate(wh.path, checks)


def test_fresh_events_and_orders_pass(warehouse, simulated):
    midnight = datetime.combine(DAY, datetime.min.time())
    _events(warehouse, midnight - timedelta(hours=10), n=100)
    _events(warehouse, midnight + timedelta(hours=5))  # after the reference: not seen yet
    _orders(warehouse, midnight - timedelta(hours=30), n=100)
    results = _freshness(warehouse)

    events = results[MESSAGE_EVENTS.check]
    assert events.passed and events.metadata["age_hours"].value == 10.0
    assert _text(events, "reference") == f"{DAY} 00:00:00"
    assert _text(events, "newest_loaded_at") == f"{DAY - timedelta(days=1)} 16:00:00"
    # 100 events in the 28 days before the newest: 100 / 672 h × 48 h
    assert events.metadata["expected_events_in_window"].value == pytest.approx(7.14, abs=0.01)
    assert results[ORDERS.check].passed
    assert results[ORDERS.check].metadata["age_hours"].value == 30.0


def test_stale_events_fail_only_when_messages_went_out(warehouse, simulated):
    midnight = datetime.combine(DAY, datetime.min.time())
    _events(warehouse, midnight - timedelta(hours=100), n=100)
    _orders(warehouse, midnight - timedelta(hours=49), n=100)

    quiet = _freshness(warehouse)  # nothing delivered in the last 48 h: no event expected
    assert quiet[MESSAGE_EVENTS.check].passed
    assert "delivered no message" in quiet[MESSAGE_EVENTS.check].description
    orders = quiet[ORDERS.check]
    assert not orders.passed and orders.severity == dg.AssetCheckSeverity.ERROR
    assert "raw.orders for 49 h" in orders.description

    _delivered(warehouse, midnight - timedelta(hours=20))  # sent, and no event came back
    events = _freshness(warehouse)[MESSAGE_EVENTS.check]
    assert not events.passed and "raw.message_events for 100 h" in events.description
    assert events.metadata["messages_delivered_in_window"].value == 1


def test_a_gap_in_a_sparse_table_is_no_evidence(warehouse, simulated):
    midnight = datetime.combine(DAY, datetime.min.time())
    _orders(warehouse, midnight - timedelta(hours=60), n=20, every_hours=24)  # ~1 a day
    orders = _freshness(warehouse)[ORDERS.check]
    assert orders.passed and orders.description.startswith(health.NOT_ENOUGH_DATA)
    assert "expects 1.4 events in 48 h" in orders.description  # 20 / 672 h × 48 h


def test_the_reference_instant_is_the_day_start_in_a_simulation_else_now_capped(monkeypatch):
    midnight = datetime.combine(DAY, datetime.min.time())
    monkeypatch.setenv(settings.SIMULATION_ENV, "1")
    assert health.reference_instant(DAY) == midnight
    monkeypatch.delenv(settings.SIMULATION_ENV)
    noon = midnight + timedelta(hours=12)
    assert health.reference_instant(DAY, now=noon) == noon
    later = midnight + timedelta(days=30)  # a backfill of an old day: as of that day's end
    assert health.reference_instant(DAY, now=later) == midnight + timedelta(days=1)


# --- wiring -------------------------------------------------------------------------------------


def test_the_checks_run_with_the_daily_job_on_the_assets_they_judge(monkeypatch, tmp_path):
    monkeypatch.setenv(settings.WAREHOUSE_ENV, str(tmp_path / "warehouse.duckdb"))
    from journeyman.orchestration.definitions import defs

    job = defs().resolve_job_def("daily_loop")
    checks = {k.name: k.asset_key for k in job.asset_layer.asset_graph.asset_check_keys}
    assert checks["decision_volume_stable"] == dg.AssetKey("decisions")
    assert checks["message_events_fresh"] == health.model_key("stg_raw__message_events")
    assert checks["orders_fresh"] == health.model_key("stg_raw__orders")
    agents = {a.name for a in load_agents(settings.agents_dir())}
    for model, prefix in (
        (health.UPLIFT_MODEL, "uplift_not_negative_"),
        (health.EXPLORATION_MODEL, "exploration_not_collapsed_"),
    ):
        key = health.model_key(model)
        named = {n.removeprefix(prefix): k for n, k in checks.items() if n.startswith(prefix)}
        assert named == ({a: key for a in agents} if key is not None else {})


def test_normalized_entropy_spans_one_action_to_uniform():
    from journeyman.orchestration.defs.decisions import normalized_entropy

    assert normalized_entropy([10], 4) == 0.0
    assert normalized_entropy([5, 5, 5, 5], 4) == pytest.approx(1.0)
    assert 0 < normalized_entropy([7, 1, 1, 1], 4) < 1
    assert normalized_entropy([3], 1) is None and normalized_entropy([], 3) is None
