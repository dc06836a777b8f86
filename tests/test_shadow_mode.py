"""A shadow agent decides and logs, and changes nothing else: the same world run with and
without one gives the live agents the same decisions, the customers the same features and the
learning the same statistics; its decisions (with propensities) land in the shadow outbox only.
Real DuckDB, dbt and Dagster over two simulated days."""

from __future__ import annotations

import json
import math
import shutil
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
import yaml

from journeyman import settings
from journeyman.sandbox import SandboxWorld, read_outbox
from journeyman.warehouse import Warehouse

START = date(2026, 3, 2)
SHADOW_AGENT = "aa_shadow_winback"  # decides first: its plans must not reach later agents


def _agents(folder: Path, shadow: bool) -> Path:
    folder.mkdir(parents=True)
    for source in sorted(settings.AGENTS_DIR.glob("*.yml")):
        shutil.copy(source, folder / source.name)
    if shadow:
        data = yaml.safe_load((settings.AGENTS_DIR / "winback.yml").read_text())
        data.update(name=SHADOW_AGENT, salt="shadow-v1", mode="shadow")
        (folder / f"{SHADOW_AGENT}.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    return folder


def _run(root: Path, shadow: bool) -> Warehouse:
    mp = pytest.MonkeyPatch()
    path = root / "warehouse.duckdb"
    mp.setenv(settings.WAREHOUSE_ENV, str(path))
    mp.setenv(settings.AGENTS_ENV, str(_agents(root / "agents", shadow)))
    mp.setenv(settings.SIMULATION_ENV, "1")
    mp.setenv("JOURNEYMAN_DESTINATIONS", str(root / "destinations.yml"))
    (root / "destinations.yml").write_text(
        "".join(f"{name}:\n  kind: file\n" for name in ("sendgrid", "twilio", "fcm"))
    )
    try:
        from journeyman.orchestration.definitions import defs

        loaded = defs()
        assets = [a for a in loaded.assets if isinstance(a, dg.AssetsDefinition)]
        warehouse = Warehouse(path)
        world = SandboxWorld(warehouse, seed=9)
        world.create(n_customers=400, start=START)
        for i in range(2):
            day = START + timedelta(days=i)
            result = dg.materialize(
                assets, partition_key=day.isoformat(), resources=dict(loaded.resources)
            )
            assert result.success
            sent = [m for m in read_outbox(root / "outbox") if m.send_at.startswith(str(day))]
            world.simulate_day(day, sent)
        # the last day's features and statistics, as the next decisions would read them
        last = START + timedelta(days=2)
        dbt = [a for a in assets if not {k.path[-1] for k in a.keys} & {"decisions"}]
        dbt = [a for a in dbt if not any(k.path[-1].startswith("sync_") for k in a.keys)]
        assert dg.materialize(
            dbt, partition_key=last.isoformat(), resources=dict(loaded.resources)
        ).success
        return warehouse
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return {
        shadow: (_run(tmp_path_factory.mktemp(f"shadow_{shadow}"), shadow), shadow)
        for shadow in (False, True)
    }


def _table(warehouse: Warehouse, sql: str) -> list[tuple]:
    return sorted(tuple(r) for r in warehouse.rows(sql))


def _same(left: list[tuple], right: list[tuple]) -> bool:
    """Equal rows, floats to 1e-9 (DuckDB's parallel sums are not bit-reproducible)."""
    if len(left) != len(right):
        return False
    for a, b in zip(left, right, strict=True):
        for x, y in zip(a, b, strict=True):
            if isinstance(x, float) and isinstance(y, float):
                if not math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12):
                    return False
            elif x != y:
                return False
    return True


def test_live_decisions_features_and_statistics_are_unchanged_by_a_shadow_agent(runs):
    plain, with_shadow = runs[False][0], runs[True][0]
    live = (
        "select decision_id, policy, experiment_group, action_id, send_at, send_until, "
        f"propensity, exclusion_reason from journeyman.decisions where agent != '{SHADOW_AGENT}'"
    )
    assert _table(with_shadow, live) == _table(plain, live)
    features = "select * from marts.customer_features"
    assert _same(_table(with_shadow, features), _table(plain, features))
    stats = f"select * from marts.arm_statistics_daily where agent != '{SHADOW_AGENT}'"
    assert _same(_table(with_shadow, stats), _table(plain, stats))
    # the shadow agent's own statistics hold only its holdout (nothing sent there either):
    # none of its shadow messages is learned from as if delivered
    actions = with_shadow.rows(
        f"select distinct action_id from marts.arm_statistics_daily where agent = '{SHADOW_AGENT}'"
    )
    assert {a for (a,) in actions} <= {"no_send"}


def test_shadow_decisions_are_logged_with_propensities_and_never_sent(runs):
    warehouse = runs[True][0]
    rows = warehouse.rows(
        "select decision_id, experiment_group, propensity, message_id from journeyman.decisions "
        f"where agent = '{SHADOW_AGENT}' and exclusion_reason is null"
    )
    shadow = {r[0] for r in rows if r[1] == "shadow"}
    assert shadow and {r[1] for r in rows} == {"shadow"}
    assert all(r[2] is not None and 0 < r[2] <= 1 for r in rows)
    outbox = warehouse.path.parent / "outbox"
    logged = {
        json.loads(line)["decision_id"]
        for f in (outbox / "shadow").glob("*.jsonl")
        for line in f.read_text().splitlines()
        if line
    }
    planned = {r[0] for r in rows if r[3] is not None}
    assert planned and planned <= logged  # every shadow message is in the shadow outbox
    sent_anywhere = {m.decision_id for m in read_outbox(outbox)}
    assert not sent_anywhere & shadow  # and never in a destination customers receive
    counted = warehouse.scalar(
        f"select count(*) from intermediate.int_messages_sent where agent = '{SHADOW_AGENT}'"
    )
    assert counted == 0


def test_a_shadow_policy_shadows_only_its_share_of_the_audience():
    from journeyman.decisioning.assignment import assign
    from journeyman.decisioning.config import AgentConfig

    data = yaml.safe_load((settings.AGENTS_DIR / "winback.yml").read_text())
    data["baselines"] = [
        {**b, "mode": "shadow"} if b["name"] == "rule_based" else b for b in data["baselines"]
    ]
    agent = AgentConfig.model_validate(data)
    shadow_index = 1 + [b.name for b in agent.baselines].index("rule_based")
    ids = np.array([f"c{i:06d}" for i in range(5000)])
    result = assign(agent, ids)
    served = result.policy_index == shadow_index
    assert served.any()
    assert set(result.group[served & (result.group != "holdout")]) == {"shadow"}
    # the other shares keep their own groups (the agent's policy, the random control, holdout)
    assert set(result.group[~served]) <= {"treatment", "holdout", "random_control"}
