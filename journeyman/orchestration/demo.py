"""`journeyman demo`: a sandbox world driven day by day through the real Dagster job.

Each simulated day is one partition of `daily_loop` (dbt build → decisions → deliveries) run
in-process, followed by the world living that day (organic orders, responses to the messages
delivered). A final dbt build as of the day after the last one settles the outcome tables.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import dagster as dg

from journeyman.sandbox import SandboxWorld, read_outbox
from journeyman.tables import JOURNEYMAN_SCHEMA
from journeyman.warehouse import Warehouse, WarehouseError

QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


class DemoError(RuntimeError):
    """The demo cannot run; the message says what to do."""


@dataclass(frozen=True)
class DemoOptions:
    customers: int
    days: int
    seed: int
    start: date


def prepare_warehouse(path: Path, outbox: Path) -> Warehouse:
    """Start from an empty demo warehouse; refuse to delete one that is not a sandbox's."""
    warehouse = Warehouse(path)
    if path.exists():
        warehouse.check_writable()  # a locked file fails here, before anything is touched
        is_sandbox = warehouse.table_exists("sandbox", "world")
        has_data = warehouse.table_exists(JOURNEYMAN_SCHEMA, "decisions") or warehouse.table_exists(
            "raw", "customers"
        )
        if has_data and not is_sandbox:
            raise DemoError(
                f"{path} holds a warehouse that the demo did not create; the demo starts from an "
                "empty one. Point JOURNEYMAN_WAREHOUSE at another file to run it."
            )
        path.unlink()
        Path(f"{path}.wal").unlink(missing_ok=True)
    shutil.rmtree(outbox, ignore_errors=True)
    warehouse.check_writable()
    return warehouse


def run_demo(
    options: DemoOptions,
    defs: dg.Definitions,
    warehouse: Warehouse,
    outbox: Path,
    on_step: Callable[[date, str], None] = lambda day, step: None,
) -> None:
    """Create the world and run `options.days` daily cycles through the `daily_loop` job."""
    world = SandboxWorld(warehouse, seed=options.seed)
    on_step(options.start, "creating the sandbox world")
    world.create(n_customers=options.customers, start=options.start)
    job = defs.resolve_job_def("daily_loop")
    days = [options.start + timedelta(days=i) for i in range(options.days)]
    for day in days:
        on_step(day, "dbt build → decisions → deliveries")
        _execute(job, day)
        on_step(day, "customers live the day")
        key = day.isoformat()
        delivered = [m for m in read_outbox(outbox) if m.send_at.startswith(key)]
        world.simulate_day(day, delivered)
    settle = days[-1] + timedelta(days=1)
    on_step(settle, "dbt build (outcomes)")
    dbt_keys = [
        k
        for k in job.asset_layer.executable_asset_keys
        if k.path[-1] != "decisions" and not k.path[-1].startswith("sync_")
    ]
    _execute(job, settle, asset_selection=dbt_keys)


def _execute(job: dg.JobDefinition, day: date, **kwargs) -> None:  # noqa: ANN003
    # dagster-dbt echoes dbt's log to stdout; the demo keeps it and shows it only on failure.
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        result = job.execute_in_process(
            partition_key=day.isoformat(), run_config=QUIET_LOGS, raise_on_error=False, **kwargs
        )
    if not result.success:
        tail = "\n".join(captured.getvalue().splitlines()[-15:])
        raise DemoError(f"day {day}: {_failure(result)}" + (f"\n{tail}" if tail else ""))


def _failure(result: dg.ExecuteInProcessResult) -> str:
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            error = event.step_failure_data.error
            while error.cause is not None and error.cls_name.startswith("Dagster"):
                error = error.cause
            return f"step {event.step_key} failed: {error.message.strip()}"
    return "the run failed"


def summary_rows(warehouse: Warehouse) -> list[dict]:
    """The per agent / policy / group outcome table the demo prints."""
    try:
        return warehouse.read_arrow(
            "select * from marts.agent_group_outcomes order by agent, policy, experiment_group"
        ).to_pylist()
    except Exception as exc:  # the mart is missing only if dbt never ran
        raise WarehouseError(f"cannot read marts.agent_group_outcomes: {exc}") from exc
