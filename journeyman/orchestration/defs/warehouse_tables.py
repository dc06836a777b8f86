"""journeyman's own tables as assets: created and migrated before dbt reads them.

The dbt project reads them as the `journeyman` source; the decisions and sync assets write
their rows. This step owns their shape: it creates what is missing, adds the columns a newer
version declares and one decision_features column per feature, so the dbt build never runs DDL.
"""

import dagster as dg

from journeyman.decisioning.features import discover_features
from journeyman.orchestration.defs.partitions import ONE_DAY_PER_RUN, WAREHOUSE_POOL, daily
from journeyman.orchestration.defs.resources import WarehouseResource
from journeyman.orchestration.project import dbt_project
from journeyman.tables import (
    JOURNEYMAN_SCHEMA,
    declared_columns,
    ensure_feature_columns,
    ensure_journeyman_tables,
    raw_tables_problem,
)
from journeyman.tables import JOURNEYMAN_TABLES_DDL as DDL

ROLES = {
    "decisions": "one row per agent, customer and day: the chosen action or why none",
    "decision_features": "the decision-time feature values of acted and held-out decisions",
    "message_tags": "the tags of every message an agent could send, per day",
    "deliveries": "the delivery ledger: one row per decision handed to a destination",
}
#: tables another asset produces (repurchase.py): created here, materialized there
MODEL_TABLES = {"repurchase_predictions", "repurchase_fits"}
TABLE_KEYS = {
    name: dg.AssetKey([JOURNEYMAN_SCHEMA, name])
    for name in (table.split(".", 1)[1] for table in declared_columns(DDL))
    if name not in MODEL_TABLES
}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            key,
            description=f"journeyman.{name}: {ROLES.get(name, 'a journeyman table')}.",
            group_name="setup",
            kinds={"python", "sql"},
        )
        for name, key in TABLE_KEYS.items()
    ],
    partitions_def=daily,
    backfill_policy=ONE_DAY_PER_RUN,
    pool=WAREHOUSE_POOL,
    can_subset=True,
)
def journeyman_tables(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """Check the raw tables exist, then create or migrate journeyman's own tables (idempotent)."""
    wh = warehouse.open()
    problem = raw_tables_problem(wh)
    if problem:
        raise dg.Failure(problem)
    ensure_journeyman_tables(wh)
    features = discover_features(dbt_project.manifest_path)
    ensure_feature_columns(wh, features)
    context.log.info("journeyman tables ready; %d feature columns", len(features))
    for key in sorted(context.selected_asset_keys):  # one selected: all are made ready anyway
        yield dg.MaterializeResult(asset_key=key)
