"""dbt models as Dagster assets, built as of the partition's logical date."""

from __future__ import annotations

import json

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from journeyman.orchestration.defs.partitions import WAREHOUSE_POOL, daily
from journeyman.orchestration.defs.resources import WarehouseResource
from journeyman.orchestration.project import dbt_project, ensure_manifest
from journeyman.tables import ensure_journeyman_tables


@dbt_assets(
    manifest=ensure_manifest(),
    project=dbt_project,
    partitions_def=daily,
    pool=WAREHOUSE_POOL,
)
def warehouse_models(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
):
    """Staging → intermediate → marts, with data tests and unit tests, as of run_date."""
    ensure_journeyman_tables(warehouse.open())
    run_vars = json.dumps({"run_date": context.partition_key})
    yield from dbt.cli(["build", "--vars", run_vars], context=context).stream()
