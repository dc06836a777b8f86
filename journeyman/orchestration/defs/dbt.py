"""dbt models as Dagster assets, built as of the partition's logical date."""

import json
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from journeyman import settings
from journeyman.orchestration.defs.partitions import ONE_DAY_PER_RUN, WAREHOUSE_POOL, daily
from journeyman.orchestration.defs.resources import WarehouseResource
from journeyman.orchestration.project import dbt_project, manifest_or_fail


@dbt_assets(
    manifest=manifest_or_fail(),
    project=dbt_project,
    partitions_def=daily,
    backfill_policy=ONE_DAY_PER_RUN,
    pool=WAREHOUSE_POOL,
)
def warehouse_models(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
):
    """Staging → intermediate → marts with their data tests, as of run_date.

    The tables they read exist by now (journeyman_tables). dbt's unit tests check the SQL, not
    the data: they run in CI (`dbt build`), not every day.
    """
    run_vars = json.dumps({"run_date": context.partition_key})
    args = ["build", "--vars", run_vars, "--exclude-resource-type", "unit_test"]
    # One target folder reused by every run (the warehouse pool runs one build at a time);
    # dagster-dbt's default, a new folder per invocation, grows by megabytes every day.
    target = Path(dbt_project.project_dir) / "target" / "daily_build"
    # dagster-dbt hands its process's environment to dbt: the profile's variables for this
    # run's warehouse go there, at run time (never at import)
    settings.export_dbt_environment(warehouse.path)
    yield from dbt.cli(args, context=context, target_path=target).stream()
