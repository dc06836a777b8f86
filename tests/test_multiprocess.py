"""The daily job under Dagster's default multiprocess executor, as a launched run executes it.

`dg.materialize` and `execute_in_process` run every step in the test's process; a launched run
runs each step in its own process, which loads the definitions itself and claims the
`warehouse` pool slot through the instance (the project's dagster.yaml: one at a time). One
simulated day on a small world, on a persistent instance in a temporary folder.
"""

from __future__ import annotations

import os
from datetime import date

import dagster as dg

from journeyman import settings
from journeyman.orchestration.defs.partitions import WAREHOUSE_POOL
from journeyman.sandbox import SandboxWorld
from journeyman.warehouse import Warehouse

DAY = date(2026, 3, 2)
N = 150


def daily_loop_job():  # noqa: ANN201 - a ReconstructableJob
    """The production job as the code server loads it (pyproject's [tool.dagster] module_name,
    attribute `defs`): every step process rebuilds it from there."""
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    repository = ReconstructableRepository.for_module(
        "journeyman.orchestration.definitions", "defs"
    )
    return repository.get_reconstructable_job("daily_loop")


def test_daily_loop_succeeds_with_the_multiprocess_executor(tmp_path, monkeypatch):
    from journeyman.orchestration.run import project_instance

    path = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv(settings.WAREHOUSE_ENV, str(path))  # inherited by the step processes
    monkeypatch.setenv(settings.SIMULATION_ENV, "1")
    warehouse = Warehouse(path)
    SandboxWorld(warehouse, seed=5).create(n_customers=N, start=DAY)

    with project_instance(tmp_path / "dagster") as instance:
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
        with dg.execute_job(
            daily_loop_job(),
            instance=instance,
            tags={"dagster/partition": DAY.isoformat()},
            # sync_sendgrid and every step before it: the other syncs would only add two more
            # step processes of the same kind (each loads the definitions, ~10 s here)
            op_selection=["*sync_sendgrid"],
        ) as result:
            assert result.success
            assert result.dagster_run.tags.get("dagster/partition") == DAY.isoformat()
            materialized = {
                e.asset_key.to_user_string() for e in result.get_asset_materialization_events()
            }
            step_pids = {e.pid for e in result.all_events if e.is_step_start}
        assert {"marts/customer_features", "decisions", "sync_sendgrid"} <= materialized
        assert step_pids and os.getpid() not in step_pids  # each step in a process of its own
        info = instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL)
        assert info.limit == 1 and info.claimed_slots == []  # every step gave its slot back

    decisions = warehouse.scalar(
        "select count(*) from journeyman.decisions where decision_date = :d", {"d": DAY}
    )
    sends = warehouse.scalar(
        "select count(*) from journeyman.decisions where decision_date = :d "
        "and message_id is not null and channel = 'email'",  # sendgrid's
        {"d": DAY},
    )
    delivered = warehouse.scalar(
        "select count(*) from journeyman.deliveries where status = 'delivered'"
    )
    assert decisions > 0 and sends > 0
    assert delivered == sends
