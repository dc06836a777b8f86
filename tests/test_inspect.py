"""`journeyman inspect`: one customer's decisions explained and replayed, on a real sandbox run
(DuckDB, dbt and the Dagster job over two days; one customer's consent withdrawn after the
first). The recomputed probability of a logged action must equal its logged propensity."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta

import dagster as dg
import pytest
import yaml
from click.testing import CliRunner
from test_orchestration import _assets, _defs

from journeyman import settings
from journeyman.decisioning.config import load_agents
from journeyman.decisioning.inspection import TOLERANCE, inspect_customer
from journeyman.orchestration.cli import main
from journeyman.sandbox import SandboxWorld, read_outbox
from journeyman.warehouse import Warehouse

START = date(2026, 3, 2)
DAYS = 2
LAST = START + timedelta(days=DAYS - 1)
N = 1500


def _withdraw_consent(warehouse: Warehouse, day: date) -> str:
    """Opt out, on every channel, a long-lapsed win-back treatment customer the policy decided
    for on `day` (as the ETL would load it): the next days must exclude them with no_consent."""
    customer = warehouse.scalar(
        "select d.customer_id from journeyman.decisions d "
        "join marts.customer_features f using (customer_id) "
        "where d.agent = 'winback' and d.decision_date = :day and d.experiment_group = "
        "'treatment' and d.exclusion_reason is null and f.days_since_last_order >= 60 "
        "order by d.customer_id limit 1",
        {"day": day},
    )
    at = datetime.combine(day, time(23))
    warehouse.execute(
        "insert into raw.consents values "
        + ", ".join(f"(:c, '{ch}', 'opted_out', :at, :at)" for ch in ("email", "sms", "push")),
        {"c": customer, "at": at},
    )
    return customer


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Two days of the whole asset graph on a small sandbox world; shared below."""
    root = tmp_path_factory.mktemp("inspect")
    path = root / "warehouse.duckdb"
    mp = pytest.MonkeyPatch()
    mp.setenv(settings.WAREHOUSE_ENV, str(path))
    mp.setenv(settings.SIMULATION_ENV, "1")  # past days, simulated: dispatch is on time
    try:
        defs = _defs()
        warehouse = Warehouse(path)
        world = SandboxWorld(warehouse, seed=7)
        world.create(n_customers=N, start=START)
        withdrawn = ""
        for i in range(DAYS):
            day = START + timedelta(days=i)
            result = dg.materialize(
                _assets(defs), partition_key=day.isoformat(), resources=dict(defs.resources)
            )
            assert result.success
            sent = [m for m in read_outbox(root / "outbox") if m.send_at.startswith(str(day))]
            world.simulate_day(day, sent)
            if i == 0:
                withdrawn = _withdraw_consent(warehouse, day)
        yield {"root": root, "path": path, "warehouse": warehouse, "withdrawn": withdrawn}
    finally:
        mp.undo()


def _cli(path, *args: str, agents=None):  # noqa: ANN001, ANN202 - test helper
    env = {settings.WAREHOUSE_ENV: str(path), "COLUMNS": "200"}
    if agents is not None:
        env[settings.AGENTS_ENV] = str(agents)
    return CliRunner().invoke(main, ["inspect", *args], env=env)


def _json(path, *args: str, agents=None) -> dict:  # noqa: ANN001 - test helper
    result = _cli(path, *args, "--json", agents=agents)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.splitlines()[-1])


def _decision(timeline: dict, agent: str, day: date) -> dict:
    [view] = [a for a in timeline["agents"] if a["agent"] == agent]
    [decision] = [d for d in view["decisions"] if d["decision_date"] == day.isoformat()]
    return decision


def test_a_guardrail_block_is_explained_with_its_rule_and_setting(run):
    customer = run["withdrawn"]
    timeline = _json(run["path"], customer, "--agent", "winback", "--days", "2")
    assert [a["agent"] for a in timeline["agents"]] == ["winback"]
    blocked = _decision(timeline, "winback", START + timedelta(days=1))
    assert blocked["outcome"] == "excluded" and blocked["exclusion_reason"] == "no_consent"
    assert "no consent" in blocked["explanation"]
    assert "now: email no, sms no, push no" in blocked["explanation"]
    assert blocked["recomputed"] is None and blocked["deliveries"] == []

    # a cap or gap the real run met, explained with the agent's setting
    customer, reason = run["warehouse"].rows(
        "select customer_id, exclusion_reason from journeyman.decisions where agent = 'winback' "
        "and decision_date = :day and exclusion_reason in ('min_gap', 'cap_reached') "
        "order by exclusion_reason desc, customer_id limit 1",
        {"day": LAST},
    )[0]
    text = _cli(run["path"], customer, "--agent", "winback", "--days", "1")
    assert text.exit_code == 0, text.output
    setting = "min_gap_hours 48" if reason == "min_gap" else "max_"
    assert f"{reason}: " in text.stdout and setting in text.stdout
    assert "last message was planned for" in text.stdout or reason == "cap_reached"


def test_a_day_outside_the_audience_is_explained_though_no_row_is_stored(run):
    warehouse = run["warehouse"]
    stored = warehouse.scalar(
        "select count(*) from journeyman.decisions where exclusion_reason = 'not_eligible'"
    )
    assert stored == 0
    customer = warehouse.scalar(
        "select customer_id from marts.customer_features where customer_id not in ("
        "select customer_id from journeyman.decisions where agent = 'winback' "
        "and decision_date = :day) order by customer_id limit 1",
        {"day": LAST},
    )
    assert customer is not None
    decision = _decision(_json(run["path"], customer, "--agent", "winback"), "winback", LAST)
    assert decision["outcome"] == "excluded" and decision["exclusion_reason"] == "not_eligible"
    assert "not in the agent's audience" in decision["explanation"]
    assert decision["decision_id"].endswith("(not stored)") and decision["deliveries"] == []


def test_the_recomputed_probability_of_a_linear_ts_decision_is_its_propensity(run):
    customer, action, propensity, version = run["warehouse"].rows(
        "select customer_id, action_id, propensity, policy_version from journeyman.decisions "
        "where agent = 'winback' and decision_date = :day and experiment_group = 'treatment' "
        "and policy = 'linear_ts' and message_id is not null and propensity < 1 "
        "order by customer_id limit 1",
        {"day": LAST},
    )[0]
    assert "#n0-" not in version  # the policy learned from the first days' rewards
    timeline = _json(run["path"], customer, "--agent", "winback", "--days", "1")
    decision = _decision(timeline, "winback", LAST)
    assert decision["outcome"] == "sent" and decision["action_id"] == action
    recomputed = decision["recomputed"]
    assert recomputed["policy_version"] == version
    assert abs(recomputed["probability"] - propensity) <= TOLERANCE
    assert recomputed["matches"] and recomputed["note"] is None
    assert recomputed["recomputed_action"] == action  # the same draw chooses the same action
    alternatives = recomputed["alternatives"]
    assert 1 < len(alternatives) <= 5
    probabilities = [a["probability"] for a in alternatives]
    assert probabilities == sorted(probabilities, reverse=True)
    assert all(a["score"] is not None for a in alternatives)
    logged = [a for a in alternatives if a["logged"]]
    assert not logged or logged[0]["action_id"] == action
    assert decision["send_at_local"] and decision["policy_version"] == version


def test_deliveries_events_and_orders_follow_a_sent_message(run):
    warehouse = run["warehouse"]
    customer, agent, day, decision_id, send_at, window = warehouse.rows(
        "select d.customer_id, d.agent, d.decision_date, d.decision_id, d.send_at, "
        "d.attribution_window_days from journeyman.decisions d "
        "join journeyman.deliveries l on l.decision_id = d.decision_id and l.status = 'delivered' "
        "join raw.message_events e on e.decision_id = d.decision_id and e.event_type = 'open' "
        "where d.message_id is not null "
        "order by d.experiment_group = 'treatment', d.decision_date desc, d.customer_id limit 1"
    )[0]
    # the customer's orders as the ETL loads them: one inside the attribution window, one
    # before the send and one after the window
    orders = {
        "inspect-inside": send_at + timedelta(hours=1),
        "inspect-before": send_at - timedelta(hours=1),
        "inspect-after": send_at + timedelta(days=window, hours=1),
    }
    for order_id, at in orders.items():
        warehouse.execute(
            "insert into raw.orders values (:o, :c, :at, 42.5, null, 'home', :at)",
            {"o": order_id, "c": customer, "at": at},
        )
    days = str((LAST - day).days + 1)
    timeline = _json(run["path"], customer, "--agent", agent, "--days", days)
    decision = _decision(timeline, agent, day)
    assert decision["decision_id"] == decision_id and decision["outcome"] == "sent"
    [delivery] = decision["deliveries"]
    assert delivery["status"] == "delivered" and delivery["attempts"] >= 1
    assert "open" in [e["event_type"] for e in decision["events"]]
    shown = {o["order_id"]: o for o in decision["orders"]}
    assert shown["inspect-inside"]["amount"] == 42.5
    assert "inspect-before" not in shown and "inspect-after" not in shown

    text = _cli(run["path"], customer, "--agent", agent, "--days", days)
    assert text.exit_code == 0, text.output
    assert f"customer {customer}" in text.stdout and "delivered" in text.stdout
    assert "events: " in text.stdout and "inspect-inside (42.50, home)" in text.stdout


def test_a_changed_agent_file_is_noted_when_the_replay_differs(run, tmp_path):
    customer, version = run["warehouse"].rows(
        "select customer_id, policy_version from journeyman.decisions where agent = 'winback' "
        "and decision_date = :day and experiment_group = 'treatment' and propensity < 1 "
        "order by customer_id limit 1",
        {"day": LAST},
    )[0]
    agents = tmp_path / "agents"
    agents.mkdir()
    data = yaml.safe_load((settings.AGENTS_DIR / "winback.yml").read_text())
    data["policy"]["params"]["exploration"] = 1.0
    (agents / "winback.yml").write_text(yaml.safe_dump(data))
    timeline = inspect_customer(
        Warehouse(run["path"], read_only=True),
        load_agents(agents),
        customer,
        agent="winback",
        days=1,
    )
    [view] = timeline.agents
    recomputed = view.decisions[0].recomputed
    assert recomputed is not None and recomputed.policy_version != version
    assert "changed since" in recomputed.note


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["c999999"], "customer c999999 has no decisions and is not in marts.customer_features"),
        (["c000001", "--agent", "nope"], "known agents: cross_sell, recurring_purchase, winback"),
        (["c000001", "--days", "0"], "--days must be at least 1; got 0"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_status_2(run, args, message):
    result = _cli(run["path"], *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_an_empty_or_missing_warehouse_says_to_run_the_demo_first(tmp_path):
    empty = tmp_path / "empty.duckdb"
    Warehouse(empty).execute("create schema raw")
    for path in (empty, tmp_path / "missing.duckdb"):
        result = _cli(path, "c000001")
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
        assert "run `journeyman demo` or the daily job first" in result.stderr
    assert not (tmp_path / "missing.duckdb").exists()
