"""dbt models as Dagster assets, built as of the partition's logical date, in two steps around
the repurchase model: everything else first, then customer_features and what reads it (whose
features include the model's predictions of the day, repurchase.py)."""

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from journeyman import settings
from journeyman.orchestration.defs.partitions import ONE_DAY_PER_RUN, WAREHOUSE_POOL, daily
from journeyman.orchestration.defs.resources import WarehouseResource
from journeyman.orchestration.project import dbt_project, manifest_or_fail

#: the models built after the repurchase model: its staging view and customer_features onwards
AFTER_REPURCHASE = "stg_journeyman__repurchase_predictions customer_features+"


def _build(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
) -> Iterator[Any]:
    """`dbt build` of the step's models with their data tests, as of run_date.

    dbt's unit tests check the SQL, not the data: they run in CI (`dbt build`), not every day.
    """
    args = ["build", "--exclude-resource-type", "unit_test"]
    target = _target_folder(context, warehouse)
    # dagster-dbt hands its process's environment to dbt: the profile's variables for this
    # run's warehouse go there, at run time (never at import)
    settings.export_dbt_environment(warehouse.path)
    # the partition's date through the environment, not --vars: new vars every day would make
    # dbt re-parse the whole project on every build (macros/as_of.sql)
    os.environ[settings.RUN_DATE_ENV] = context.partition_key
    yield from dbt.cli(args, context=context, target_path=target).stream()


def _target_folder(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> Path:
    """dbt's target folder for this step and warehouse, in the Dagster instance's storage, reused
    by every run: dbt's partial parsing carries over from day to day (dagster-dbt's default, a
    new folder per invocation, also grows by megabytes a day), and builds of two warehouses (two
    projects on one machine, two test workers) never write each other's results. The warehouse
    pool runs one build of a warehouse at a time."""
    key = hashlib.sha256(warehouse.path.encode()).hexdigest()[:16]
    storage = Path(context.instance.storage_directory())
    return storage / "dbt" / key / f"daily_{context.op_def.name}"


_DAILY = {
    "manifest": manifest_or_fail(),
    "project": dbt_project,
    "partitions_def": daily,
    "backfill_policy": ONE_DAY_PER_RUN,
    "pool": WAREHOUSE_POOL,
}


@dbt_assets(exclude=AFTER_REPURCHASE, **_DAILY)
def warehouse_models(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
):
    """Staging → intermediate → marts except customer_features and what reads it. The tables
    they read exist by now (journeyman_tables)."""
    yield from _build(context, dbt, warehouse)


@dbt_assets(select=AFTER_REPURCHASE, **_DAILY)
def feature_models(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
):
    """customer_features (with the day's repurchase predictions) and the models that read it."""
    yield from _build(context, dbt, warehouse)
