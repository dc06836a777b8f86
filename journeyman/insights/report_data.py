"""What the report reads: the performance marts (schema `marts`), through `Warehouse`, with bind
parameters. Every query aggregates in the warehouse and returns at most a few thousand rows, so
the report's cost does not grow with the number of decisions behind the marts.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from journeyman.warehouse import Warehouse, read_arrow

MARTS = (
    "agent_group_daily",
    "agent_uplift",
    "agent_driver_tree",
    "message_performance",
    "agent_preferences",
    "agent_exploration_daily",
    "delivery_diagnostics",
)
#: days of agent_preferences pooled for the per-segment preferences
SEGMENT_DAYS = 7
FIRST_STEP = "run dbt build or journeyman demo first"

Rows = list[dict[str, Any]]


class ReportError(ValueError):
    """The report cannot be written; the message says why and what to do."""


@dataclass
class AgentData:
    """Everything the report shows about one agent."""

    agent: str
    first_day: date
    last_day: date
    uplift: Rows
    driver_tree: Rows
    daily: Rows
    last_daily: Rows
    action_shares: Rows
    segments: Rows
    hour_channel: Rows
    messages: Rows
    diagnostics: Rows
    exploration: Rows
    groups: list[str] = field(default_factory=list)


def _query(conn: sa.Connection, sql: str, params: dict[str, Any]) -> Rows:
    """Rows as dicts without the `agent` column (every query is one agent's); exact decimals
    become floats (the marts declare doubles)."""
    rows = read_arrow(conn, sql, params).to_pylist()
    return [
        {k: float(v) if isinstance(v, Decimal) else v for k, v in r.items() if k != "agent"}
        for r in rows
    ]


def check_marts(warehouse: Warehouse) -> None:
    """Raise ReportError unless the warehouse exists and holds every mart the report reads."""
    if not warehouse.exists():
        raise ReportError(f"there is no warehouse at {warehouse.location}; {FIRST_STEP}")
    present = {
        r[0]
        for r in warehouse.rows(
            "select table_name from information_schema.tables where table_schema = 'marts'"
        )
    }
    missing = [f"marts.{m}" for m in MARTS if m not in present]
    if missing:
        raise ReportError(
            f"the warehouse {warehouse.location} has no performance marts yet "
            f"(missing {', '.join(missing)}); {FIRST_STEP}"
        )


def report_agents(
    warehouse: Warehouse, agent: str | None, configured: Collection[str] = ()
) -> list[str]:
    """The agents to report on: `agent`, or every agent with data in the marts."""
    with_data = [
        r[0]
        for r in warehouse.rows("select distinct agent from marts.agent_driver_tree order by 1")
    ]
    if agent is None:
        if not with_data:
            raise ReportError(
                "the marts hold no decisions yet: run the daily loop (journeyman run) for at "
                f"least one day and build the marts again, or {FIRST_STEP}"
            )
        return with_data
    if agent in with_data:
        return [agent]
    decided = set()
    if warehouse.table_exists("journeyman", "decisions"):
        decided = {
            r[0]
            for r in warehouse.rows(
                "select distinct agent from journeyman.decisions where agent = :agent",
                {"agent": agent},
            )
        }
    if agent in decided or agent in configured:
        raise ReportError(
            f"agent {agent!r} has no decisions in the marts yet: its first day of decisions "
            "counts once the marts are built as of the day after it (journeyman run, dbt build)"
        )
    known = ", ".join(with_data) or "none"
    raise ReportError(f"unknown agent {agent!r}; agents with data in the marts: {known}")


#: Student's t 97.5 % quantiles for 1..30 degrees of freedom (as macros/t_quantile.sql)
T_975 = (
    12.7062047362, 4.30265272975, 3.18244630528, 2.7764451052, 2.57058183564,
    2.44691185114, 2.36462425159, 2.3060041352, 2.2621571628, 2.22813885199,
    2.20098516009, 2.17881282967, 2.16036865646, 2.14478668792, 2.13144954556,
    2.11990529922, 2.10981557783, 2.10092204024, 2.09302405441, 2.08596344727,
    2.07961384473, 2.0738730679, 2.06865761042, 2.06389856163, 2.05953855275,
    2.05552943864, 2.05183051648, 2.0484071418, 2.04522964213, 2.0422724563,
)  # fmt: skip


def t_quantile_975(df: float) -> float:
    """The 97.5 % quantile of Student's t, computed as the marts' macro t_quantile_975 does
    (exact table to 30 df, ln t interpolated in 1/df between; Cornish-Fisher from 30 on)."""
    if df >= 30:
        return (
            1.959963984540054
            + 2.372271230298562 / df
            + 2.8224986157396112 / df**2
            + 2.555849679507722 / df**3
            + 1.5895340533938225 / df**4
        )
    if df <= 1:
        return T_975[0]
    d = int(df)
    a, b = math.log(T_975[d - 1]), math.log(T_975[d])
    return math.exp(a + (d + 1) * (1 - d / df) * (b - a))


def with_interval(rows: Rows, name: str, n: str, total: str, squares: str) -> Rows:
    """Add `name`, `name_low`, `name_high` to each row: the mean of a per-unit outcome and its
    95 % t interval from the columns holding n, Σx and Σx² (additive sums, so any margin is
    re-aggregated in SQL first; NULL interval when n < 2, as the marts' mean_interval)."""
    for row in rows:
        count, s, ss = row[n] or 0, float(row[total] or 0), float(row[squares] or 0)
        mean = s / count if count else None
        low = high = None
        if count >= 2:
            variance = max(ss - s * s / count, 0.0) / (count - 1)
            half = t_quantile_975(count - 1) * math.sqrt(variance / count)
            low, high = mean - half, mean + half
        row.update({name: mean, f"{name}_low": low, f"{name}_high": high})
    return rows


SINCE = "(cast(:since as date) is null or {col} >= cast(:since as date))"

DAILY = f"""
select day, experiment_group, customers, cumulative_sends, sends_per_customer,
    conversions_per_customer, conversions_per_customer_low, conversions_per_customer_high,
    revenue_per_customer, revenue_per_customer_low, revenue_per_customer_high,
    unsubscribes_per_customer, complaints_per_customer
from marts.agent_group_daily
where agent = :agent and {SINCE.format(col="day")}
order by day, experiment_group
"""

LAST_DAILY = """
select experiment_group, customers, cumulative_sends, sends_per_customer,
    conversions_per_customer, revenue_per_customer, unsubscribes_per_customer,
    complaints_per_customer
from marts.agent_group_daily
where agent = :agent
    and day = (select max(day) from marts.agent_group_daily where agent = :agent)
order by experiment_group
"""

UPLIFT = """
select * from marts.agent_uplift
where agent = :agent
order by is_goal_metric desc, metric, comparison_group
"""

DRIVER_TREE = """
select * from marts.agent_driver_tree
where agent = :agent
order by experiment_group
"""

ACTION_SHARES = f"""
select decision_date, dimension, option, decisions, share
from marts.agent_preferences
where agent = :agent and segment_type = 'all' and {SINCE.format(col="decision_date")}
order by dimension, decision_date, option
"""

SEGMENTS = f"""
with recent as (
    select * from marts.agent_preferences
    where agent = :agent and segment_type <> 'all'
        and decision_date > (
            select max(decision_date) from marts.agent_preferences where agent = :agent
        ) - {SEGMENT_DAYS}
)
select segment_type, segment, dimension, option, sum(decisions) as decisions,
    cast(sum(decisions) as double precision)
        / sum(sum(decisions)) over (partition by segment_type, segment, dimension) as share
from recent
group by segment_type, segment, dimension, option
order by segment_type, segment, dimension, option
"""

HOUR_CHANNEL = """
with cells as (
    select channel, local_hour, grouping(channel) as all_channels,
        grouping(local_hour) as all_hours,
        sum(sends) as sends, sum(conversions) as conversions,
        sum(conversions_sq) as conversions_sq, sum(revenue) as revenue,
        sum(revenue_sq) as revenue_sq
    from marts.message_performance
    where agent = :agent
    group by grouping sets ((channel, local_hour), (channel), (local_hour), ())
)
select * from cells
order by all_channels, channel, all_hours, local_hour
"""

MESSAGES = """
with messages as (
    select message_id, channel, subject_variant, sum(sends) as sends,
        sum(conversions) as conversions, sum(conversions_sq) as conversions_sq,
        sum(revenue) as revenue, sum(revenue_sq) as revenue_sq
    from marts.message_performance
    where agent = :agent
    group by message_id, channel, subject_variant
)
select * from messages
order by sends desc, message_id, channel, subject_variant
"""

DIAGNOSTICS = f"""
select decision_date, destination, decisions, messages_planned, attempted, delivered, failed,
    in_flight, unknown, expired, suppressed, cancelled, not_attempted
from marts.delivery_diagnostics
where agent = :agent and {SINCE.format(col="decision_date")}
order by decision_date, destination
"""

EXPLORATION = f"""
select decision_date, decisions, distinct_actions, action_entropy, normalized_entropy
from marts.agent_exploration_daily
where agent = :agent and {SINCE.format(col="decision_date")}
order by decision_date
"""


def load_agent(warehouse: Warehouse, agent: str, since: date | None = None) -> AgentData:
    """Read one agent's figures (time series from `since` on) on one short connection."""
    params: dict[str, Any] = {"agent": agent, "since": since.isoformat() if since else None}
    with warehouse.connect() as conn:
        span = conn.execute(
            sa.text("select min(day), max(day) from marts.agent_group_daily where agent = :agent"),
            params,
        ).one()
        if span[0] is None:
            raise ReportError(f"agent {agent!r} has no days in marts.agent_group_daily yet")
        if since is not None and since > span[1]:
            raise ReportError(
                f"--since {since} is after the last day in the marts for {agent!r} ({span[1]})"
            )

        def read(sql: str) -> Rows:
            try:
                return _query(conn, sql, params)
            except sa.exc.DBAPIError as exc:  # marts of an older contract, a changed column
                first = str(exc.orig).splitlines()[0]
                raise ReportError(
                    f"the performance marts do not match this report ({first}); rebuild them "
                    "with dbt build (or journeyman run)"
                ) from exc

        data = AgentData(
            agent=agent,
            first_day=span[0],
            last_day=span[1],
            uplift=read(UPLIFT),
            driver_tree=read(DRIVER_TREE),
            daily=read(DAILY),
            last_daily=read(LAST_DAILY),
            action_shares=read(ACTION_SHARES),
            segments=read(SEGMENTS),
            hour_channel=_per_send(read(HOUR_CHANNEL)),
            messages=_per_send(read(MESSAGES)),
            diagnostics=read(DIAGNOSTICS),
            exploration=read(EXPLORATION),
        )
    data.uplift.sort(key=_uplift_order)
    data.groups = ordered_groups({r["experiment_group"] for r in data.driver_tree})
    return data


METRIC_ORDER = ("revenue", "conversions", "unsubscribes", "complaints")


def _uplift_order(row: dict[str, Any]) -> tuple[bool, int, str, str]:
    """The goal metric first, then revenue, conversions, unsubscribes, complaints."""
    metric = row["metric"]
    rank = METRIC_ORDER.index(metric) if metric in METRIC_ORDER else len(METRIC_ORDER)
    return (not row["is_goal_metric"], rank, metric, row["comparison_group"])


def _per_send(rows: Rows) -> Rows:
    with_interval(rows, "conversions_per_send", "sends", "conversions", "conversions_sq")
    return with_interval(rows, "revenue_per_send", "sends", "revenue", "revenue_sq")


def ordered_groups(groups: Collection[str]) -> list[str]:
    """Treatment first, then the other groups by name, shadow last."""
    rank = {"treatment": 0, "shadow": 2}
    return sorted(groups, key=lambda g: (rank.get(g, 1), g))
