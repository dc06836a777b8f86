"""The decisions asset: every agent decides for every customer, as of the partition's date."""

import math
from collections import defaultdict
from datetime import date

import dagster as dg

from journeyman.decisioning.daily import DaySummary, decide_day
from journeyman.decisioning.features import discover_features
from journeyman.orchestration.defs.health import md_table
from journeyman.orchestration.defs.partitions import ONE_DAY_PER_RUN, WAREHOUSE_POOL, daily
from journeyman.orchestration.defs.resources import AgentsResource, WarehouseResource
from journeyman.orchestration.project import dbt_project
from journeyman.orchestration.templates_check import (
    manifest_columns,
    require_valid_templates,
    warehouse_columns,
)
from journeyman.warehouse import Warehouse

#: what decide_day reads: the features, the agents' own contact histories and the learning
#: statistics dbt built as of the day, and the journeyman tables whose rows for the day it
#: replaces (keeping decisions the ledger holds)
READS = [
    dg.AssetKey(["marts", "customer_features"]),
    dg.AssetKey(["marts", "customer_agent_contacts"]),
    dg.AssetKey(["marts", "arm_statistics_daily"]),
    *(dg.AssetKey(["journeyman", t]) for t in ("decisions", "deliveries", "message_tags")),
    dg.AssetKey(["journeyman", "decision_features"]),
]
HOLDOUT = "holdout"
TOP_ACTIONS = 5
#: the day's acted decisions per agent and action: all groups, and the learning policy's
ACTIONS_SQL = """
select agent, action_id, count(*) as decisions,
       sum(case when experiment_group = 'treatment' then 1 else 0 end) as treatment
from journeyman.decisions
where decision_date = :day and exclusion_reason is null and action_id is not null
group by agent, action_id
"""


def normalized_entropy(counts: list[int], offered: int) -> float | None:
    """Shannon entropy of the choices' shares ÷ ln(actions offered); None below 2 actions or
    without choices. 0: always the same action; 1: uniform over the actions offered."""
    total = sum(counts)
    if offered < 2 or total == 0:
        return None
    entropy = -sum(n / total * math.log(n / total) for n in counts if n)
    return entropy / math.log(offered)


def agent_figures(wh: Warehouse, day: date, summary: DaySummary) -> dict[str, str]:
    """Per agent, a Markdown table of the day's key figures and of its policy's top actions.

    Actions offered: those any group of the agent chose that day (the random control spreads
    over all allowed actions); shares and entropy are over the treatment group's choices."""
    actions: dict[str, list[dict]] = defaultdict(list)
    for row in wh.read_arrow(ACTIONS_SQL, {"day": day}).to_pylist():
        actions[row["agent"]].append(row)
    out = {}
    for agent in sorted(summary.decisions):
        chosen = sorted(actions[agent], key=lambda r: (-r["treatment"], r["action_id"]))
        treated = sum(r["treatment"] for r in chosen)
        entropy = normalized_entropy([r["treatment"] for r in chosen], len(chosen))
        excluded = {r: n for (a, r), n in sorted(summary.exclusions.items()) if a == agent}
        figures = [
            ("decisions", summary.decisions[agent]),
            ("messages planned", summary.sends[agent]),
            ("held out", excluded.pop(HOLDOUT, 0)),
            *((f"excluded: {reason}", n) for reason, n in excluded.items()),
            ("treatment decisions acted on", treated),
            ("actions offered", len(chosen)),
            ("normalized entropy (treatment)", entropy),
        ]
        top = [
            (f"`{r['action_id']}`", r["treatment"], f"{r['treatment'] / treated:.1%}")
            for r in chosen[:TOP_ACTIONS]
            if r["treatment"]
        ]
        out[agent] = (
            md_table(["figure", "value"], figures)
            + "\n\n"
            + md_table(["top action (treatment)", "decisions", "share"], top)
        )
    return out


@dg.asset(
    partitions_def=daily,
    backfill_policy=ONE_DAY_PER_RUN,
    deps=READS,
    pool=WAREHOUSE_POOL,
    kinds={"python", "duckdb"},
    group_name="decisioning",
)
def decisions(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, agents: AgentsResource
) -> dg.MaterializeResult:
    """journeyman.decisions for the day: one row per agent and customer in its audience, with the
    chosen message, channel, UTC send time and propensity, or the reason nothing is sent (and
    the day's message tags in the history journeyman.message_tags). Customers outside an
    agent's audience are counted (`excluded: not_eligible`), not stored."""
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
        "decided %d customer-agent pairs for %d agents (%d rows stored); %d messages planned",
        sum(summary.decisions.values()),
        len(configs),
        summary.written,
        sum(summary.sends.values()),
    )
    tables = agent_figures(wh, day, summary)
    return dg.MaterializeResult(
        metadata={
            "decisions": dg.MetadataValue.int(sum(summary.decisions.values())),
            "messages_planned": dg.MetadataValue.int(sum(summary.sends.values())),
            "rows_written": dg.MetadataValue.int(summary.written),
            "per_agent_messages": dict(summary.sends),
            "exclusions": exclusions,
            "features": features,
            **{f"agent_{a}": dg.MetadataValue.md(t) for a, t in tables.items()},
        }
    )
