"""The decisions asset: every agent decides for every customer, as of the partition's date."""

from datetime import date

import dagster as dg

from journeyman.decisioning.daily import decide_day
from journeyman.decisioning.features import discover_features
from journeyman.orchestration.defs.partitions import ONE_DAY_PER_RUN, WAREHOUSE_POOL, daily
from journeyman.orchestration.defs.resources import AgentsResource, WarehouseResource
from journeyman.orchestration.project import dbt_project
from journeyman.orchestration.templates_check import (
    manifest_columns,
    require_valid_templates,
    warehouse_columns,
)

CUSTOMER_FEATURES = dg.AssetKey(["marts", "customer_features"])


@dg.asset(
    partitions_def=daily,
    backfill_policy=ONE_DAY_PER_RUN,
    deps=[CUSTOMER_FEATURES],
    pool=WAREHOUSE_POOL,
    kinds={"python", "duckdb"},
    group_name="decisioning",
)
def decisions(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, agents: AgentsResource
) -> dg.MaterializeResult:
    """journeyman.decisions for the day: one row per agent and customer, with the chosen message,
    channel, UTC send time and propensity, or the reason nothing is sent (and the day's message
    tags in the history journeyman.message_tags)."""
    day = date.fromisoformat(context.partition_key)
    configs = agents.load()
    wh = warehouse.open()
    # a template that cannot render stops the day here, not record by record at send time
    columns = warehouse_columns(wh) or manifest_columns(dbt_project.manifest_path)
    require_valid_templates(configs, columns)
    features = discover_features(dbt_project.manifest_path)
    summary = decide_day(wh, configs, features, day)
    exclusions = {f"{a}/{r}": n for (a, r), n in sorted(summary.exclusions.items())}
    context.log.info(
        "decided %d rows for %d agents; %d messages planned",
        sum(summary.decisions.values()),
        len(configs),
        sum(summary.sends.values()),
    )
    return dg.MaterializeResult(
        metadata={
            "decisions": sum(summary.decisions.values()),
            "messages_planned": sum(summary.sends.values()),
            "rows_written": summary.written,
            "per_agent_messages": dict(summary.sends),
            "exclusions": exclusions,
            "features": features,
        }
    )
