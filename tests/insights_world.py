"""One small sandbox warehouse for the tests of what a marketer reads (performance marts,
report, inspector, off-policy evaluation), built once per test session: the shipped agents with
one-day attribution windows (so that the first days' windows close) plus a shadow copy of
winback, a few simulated days through the real Dagster graph (file delivery), then the marts
built as of the day after."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
import yaml

from journeyman import settings
from journeyman.sandbox import SandboxWorld, read_outbox
from journeyman.warehouse import Warehouse

START = date(2026, 3, 2)
DAYS = 3
AS_OF = START + timedelta(days=DAYS)
CUSTOMERS = 800
SEED = 21
SHADOW_AGENT = "zz_shadow_winback"  # decides last: the live agents' decisions are unchanged


@dataclass(frozen=True)
class InsightsWorld:
    """The built warehouse and the agent folder it was decided with."""

    root: Path
    path: Path
    agents: Path

    @property
    def warehouse(self) -> Warehouse:
        return Warehouse(self.path)

    def rows(self, sql: str) -> list[dict[str, Any]]:
        with duckdb.connect(str(self.path), read_only=True) as conn:
            cursor = conn.execute(sql)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def env(self, mp: pytest.MonkeyPatch) -> None:
        """Point journeyman's settings at this world."""
        mp.setenv(settings.WAREHOUSE_ENV, str(self.path))
        mp.setenv(settings.AGENTS_ENV, str(self.agents))


def write_agents(folder: Path) -> Path:
    """The shipped agents with one-day attribution windows, plus a shadow copy of winback."""
    folder.mkdir(parents=True, exist_ok=True)
    for source in sorted(settings.AGENTS_DIR.glob("*.yml")):
        data = yaml.safe_load(source.read_text())
        data["goal"]["attribution_window_days"] = 1
        data["goal"].pop("learning_window_days", None)
        (folder / source.name).write_text(yaml.safe_dump(data, sort_keys=False))
    shadow = yaml.safe_load((folder / "winback.yml").read_text())
    shadow.update(name=SHADOW_AGENT, salt="shadow-v1", mode="shadow")
    (folder / f"{SHADOW_AGENT}.yml").write_text(yaml.safe_dump(shadow, sort_keys=False))
    return folder


def build(root: Path, run_dbt: Any) -> InsightsWorld:  # noqa: ANN401 - test_dbt_project's
    """Simulate the days through the Dagster graph, then build every model as of AS_OF."""
    world = InsightsWorld(root, root / "warehouse.duckdb", write_agents(root / "agents"))
    mp = pytest.MonkeyPatch()
    world.env(mp)
    mp.setenv(settings.SIMULATION_ENV, "1")  # past days, simulated: dispatch is on time
    try:
        from journeyman.orchestration.definitions import defs as load

        defs = load()
        assets = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)]
        sandbox = SandboxWorld(world.warehouse, seed=SEED)
        sandbox.create(n_customers=CUSTOMERS, start=START)
        for i in range(DAYS):
            day = START + timedelta(days=i)
            result = dg.materialize(
                assets, partition_key=day.isoformat(), resources=dict(defs.resources)
            )
            assert result.success
            sent = [m for m in read_outbox(root / "outbox") if m.send_at.startswith(str(day))]
            sandbox.simulate_day(day, sent)
    finally:
        mp.undo()
    as_of = ["--vars", json.dumps({"run_date": AS_OF.isoformat()})]
    built = run_dbt(["build", *as_of], world.path, root)
    assert built.returncode == 0, built.stdout[-3000:]
    return world
