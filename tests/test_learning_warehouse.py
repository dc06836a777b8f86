"""Learning through the warehouse: rewards → dbt statistics → fitted policy → versioned
decisions, over real daily runs; incremental statistics equal a full rebuild."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
import yaml

from journeyman import settings
from journeyman.decisioning.learning import ArmStatistics
from journeyman.decisioning.store import load_arm_statistics
from journeyman.sandbox import SandboxWorld, read_outbox
from journeyman.warehouse import Warehouse

START = date(2026, 3, 2)
DAYS = 4


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    root = tmp_path_factory.mktemp("learn")
    agents = root / "agents"
    agents.mkdir()
    data = yaml.safe_load((settings.AGENTS_DIR / "winback.yml").read_text())
    data["goal"]["attribution_window_days"] = 1  # rewards known the next day: learning starts fast
    data["goal"].pop("learning_window_days", None)  # the attribution window is the shorter one
    data["audience"] = "has_ordered = 1"
    (agents / "winback.yml").write_text(yaml.safe_dump(data))
    mp = pytest.MonkeyPatch()
    mp.setenv(settings.WAREHOUSE_ENV, str(root / "warehouse.duckdb"))
    mp.setenv(settings.AGENTS_ENV, str(agents))
    mp.setenv(settings.SIMULATION_ENV, "1")  # past days, simulated: dispatch is on time
    try:
        from journeyman.orchestration.definitions import defs as load

        defs = load()
        assets = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)]
        warehouse = Warehouse(root / "warehouse.duckdb")
        world = SandboxWorld(warehouse, seed=11)
        world.create(n_customers=600, start=START)
        for i in range(DAYS):
            day = START + timedelta(days=i)
            result = dg.materialize(
                assets, partition_key=day.isoformat(), resources=dict(defs.resources)
            )
            assert result.success
            sent = [m for m in read_outbox(root / "outbox") if m.send_at.startswith(str(day))]
            world.simulate_day(day, sent)
        yield {"warehouse": warehouse, "root": root}
    finally:
        mp.undo()


def test_policy_version_follows_the_statistics(learned):
    wh = learned["warehouse"]
    versions = wh.rows(
        "select decision_date, min(policy_version), count(distinct policy_version) "
        "from journeyman.decisions where policy = 'linear_ts' group by 1 order by 1"
    )
    assert all(count == 1 for _, _, count in versions)
    assert "#n0-" in versions[0][1]  # day one: nothing learned yet
    assert "#n0-" not in versions[-1][1]  # later: fitted on rewards that became available
    assert len({v for _, v, _ in versions}) >= 2
    rows = wh.scalar("select sum(n) from marts.arm_statistics_daily")
    snapshots = wh.scalar(
        "select count(*) from journeyman.decision_features f join marts.decision_rewards r "
        "using (decision_id)"
    )
    assert rows == snapshots > 0


def test_incremental_statistics_equal_a_full_rebuild(learned):
    wh = learned["warehouse"]
    query = (
        "select * from marts.arm_statistics_daily "
        "order by agent, action_id, available_on, engagement, ordered"
    )
    incremental = wh.read_arrow(query)
    last = START + timedelta(days=DAYS - 1)
    dbt = Path(sys.executable).parent / "dbt"
    out = subprocess.run(
        [
            str(dbt),
            "build",
            "--full-refresh",
            "--select",
            "arm_statistics_daily",
            "--vars",
            json.dumps({"run_date": last.isoformat()}),
            "--project-dir",
            str(settings.DBT_PROJECT_DIR),
            "--profiles-dir",
            str(settings.DBT_PROJECT_DIR),
            "--target-path",
            str(learned["root"] / "target"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-2000:]
    rebuilt = wh.read_arrow(query)
    assert incremental.num_rows > 0
    assert rebuilt.column_names == incremental.column_names
    for name in incremental.column_names:
        # exact sums (macro exact_sum): equal to the last bit, not only to rounding noise
        assert incremental.column(name).to_pylist() == rebuilt.column(name).to_pylist(), name


def test_order_statistics_match_the_decisions(learned):
    """The statistics an agent learning from the outcome loads equal the sums over its
    decisions' learning rewards and decision-time features, with the decisions that led to an
    order apart (what a revenue goal's hurdle learns from)."""
    wh = learned["warehouse"]
    every = [
        f
        for f in wh.read_arrow("select * from journeyman.decision_features limit 0").column_names
        if f not in ("decision_id", "agent", "decision_date")
    ]
    features = every[:4]
    rows = wh.read_arrow(
        "select r.action_id, r.converted, r.learning_reward, "
        + ", ".join(f"f.{c}" for c in every)
        + " from marts.decision_learning_rewards r join journeyman.decision_features f "
        "using (decision_id) where r.experiment_group != 'shadow'"
    ).to_pydict()
    x = np.column_stack([np.array(rows[c], dtype=np.float64) for c in every])
    keep = ~np.isnan(x).any(axis=1)  # the model counts decisions with every feature known
    action = np.array([a or "no_send" for a in rows["action_id"]])
    ordered = np.array(rows["converted"]) == 1
    assert ordered[keep].sum() > 0, "the test needs orders in closed windows"
    direct = ArmStatistics.from_observations(
        features,
        x[keep][:, :4],
        action[keep],
        np.array(rows["learning_reward"], dtype=np.float64)[keep],
        ordered=ordered[keep],
    )
    later = START + timedelta(days=DAYS + 30)
    loaded = load_arm_statistics(wh, "winback", later, features)
    assert loaded.ordered is not None and loaded.action_ids == direct.action_ids
    # the warehouse's sums take every term to 9 decimal places (macro exact_sum)
    tolerance = 1e-9 * len(action)
    for got, want in ((loaded, direct), (loaded.order_values(), direct.order_values())):
        for name in ("n", "xx", "xr", "rr"):
            assert getattr(got, name) == pytest.approx(getattr(want, name), rel=1e-9, abs=tolerance)
