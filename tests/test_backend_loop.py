"""Three days of the whole Dagster loop (dbt build, decide, deliver to the file destination, the
sandbox world answering) on a PostgreSQL database, and on a DuckDB file with the same seed as
the reference: both make the same decisions and deliveries. Without the PostgreSQL test server
the module skips (the DuckDB loop alone is test_orchestration's).

Allowed differences: none in what is decided (group, action, message, channel, hour, send time,
exclusion reason); propensities equal to 1e-9 (they come from learning statistics that each
warehouse sums in its own order, so the last bits may differ).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from backends import SKIP_REASON, backend_params, new_warehouse, rows, server_url
from insights_world import write_agents

from journeyman import settings
from journeyman.sandbox import SandboxWorld, read_outbox
from journeyman.warehouse import Warehouse

pytestmark = [pytest.mark.postgres, pytest.mark.skipif(server_url() is None, reason=SKIP_REASON)]

START = date(2026, 3, 2)
DAYS = 3
CUSTOMERS = 300
SEED = 7
DECISION_COLUMNS = (
    "decision_id, agent, decision_date, customer_id, policy, experiment_group, action_id, "
    "message_id, channel, local_hour, subject_variant, send_at, send_until, exclusion_reason"
)


@dataclass(frozen=True)
class Loop:
    """The warehouse after the loop, and what each day's run did."""

    backend: str
    location: str
    runs: list[dg.ExecuteInProcessResult]

    def rows(self, sql: str) -> list[dict[str, Any]]:
        return rows(self.location, sql)


def _point_at(mp: pytest.MonkeyPatch, location: str, root: Path) -> None:
    """Point journeyman's settings (and the dbt profile's variables) at this warehouse."""
    mp.setenv(settings.WAREHOUSE_ENV, location)
    mp.setenv(settings.AGENTS_ENV, str(write_agents(root / "agents")))
    mp.setenv(settings.SIMULATION_ENV, "1")
    for name in settings.DBT_POSTGRES_ENV.values():
        mp.delenv(name, raising=False)
    for name, value in settings.dbt_environment(location).items():
        mp.setenv(name, value)
    # the local data folder (the file outbox, the instance) in this test's folder, not in
    # .journeyman under the working directory as for a server warehouse
    mp.setattr(settings, "data_dir", lambda: root)


def run_loop(backend: str, root: Path, location: str) -> Loop:
    mp = pytest.MonkeyPatch()
    _point_at(mp, location, root)
    try:
        from journeyman.orchestration.definitions import defs as load

        defs = load()
        assets = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)]
        world = SandboxWorld(Warehouse(location), seed=SEED)
        world.create(n_customers=CUSTOMERS, start=START)
        runs = []
        for i in range(DAYS):
            day = START + timedelta(days=i)
            runs.append(
                dg.materialize(
                    assets,
                    partition_key=day.isoformat(),
                    resources=dict(defs.resources),
                    raise_on_error=False,
                )
            )
            sent = [m for m in read_outbox(root / "outbox") if m.send_at.startswith(str(day))]
            world.simulate_day(day, sent)
    finally:
        mp.undo()
    return Loop(backend, location, runs)


@pytest.fixture(scope="module")
def loops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Loop]]:
    """The loop of a backend, run once per module (the comparison reuses it)."""
    done: dict[str, Loop] = {}
    with ExitStack() as stack:

        def get(backend: str) -> Loop:
            if backend not in done:
                root = tmp_path_factory.mktemp(f"loop_{backend}")
                location = stack.enter_context(new_warehouse(backend, root, "loop"))
                done[backend] = run_loop(backend, root, location)
            return done[backend]

        yield get


@pytest.fixture(params=backend_params())
def loop(request: pytest.FixtureRequest, loops: Callable[[str], Loop]) -> Loop:
    return loops(request.param)


def test_every_day_of_the_loop_succeeds(loop: Loop) -> None:
    for run in loop.runs:
        failed = [e.message for e in run.all_events if e.is_failure]
        assert run.success, failed[:3]
    days = loop.rows(
        "select decision_date, count(*) as n, count(message_id) as sends "
        "from journeyman.decisions group by decision_date order by decision_date"
    )
    assert [d["decision_date"] for d in days] == [START + timedelta(days=i) for i in range(DAYS)]
    assert all(d["sends"] > 0 for d in days)
    delivered = loop.rows(
        "select count(*) as n from journeyman.deliveries where status = 'delivered'"
    )
    assert delivered[0]["n"] > 0
    # the world answered: outcomes reached the raw tables and the learning marts
    events = loop.rows("select count(*) as n from raw.message_events where decision_id like '%-%'")
    assert events[0]["n"] > 0
    statistics = loop.rows("select count(*) as n from marts.arm_statistics_daily")
    assert statistics[0]["n"] > 0


def _decisions(loop: Loop) -> dict[str, dict[str, Any]]:
    found = loop.rows(f"select {DECISION_COLUMNS}, propensity from journeyman.decisions")
    return {r["decision_id"]: r for r in found}


def test_duckdb_and_postgres_make_the_same_decisions(loops: Callable[[str], Loop]) -> None:
    loop, duckdb_loop = loops("postgres"), loops("duckdb")
    ours, reference = _decisions(loop), _decisions(duckdb_loop)
    assert ours.keys() == reference.keys() and len(ours) > DAYS * CUSTOMERS
    for decision_id, row in ours.items():
        expected = reference[decision_id]
        propensity, wanted = row.pop("propensity"), expected.pop("propensity")
        assert row == expected, decision_id
        assert (propensity is None) == (wanted is None), decision_id
        if propensity is not None:
            assert propensity == pytest.approx(wanted, rel=1e-9, abs=1e-12), decision_id
    ledger = "select decision_id, destination, status from journeyman.deliveries"
    assert sorted(map(str, loop.rows(ledger))) == sorted(map(str, duckdb_loop.rows(ledger)))
    orders = "select count(*) as n, sum(amount) as revenue from raw.orders"
    got, want = loop.rows(orders)[0], duckdb_loop.rows(orders)[0]
    assert got["n"] == want["n"] and got["revenue"] == pytest.approx(want["revenue"])
