"""Health checks: asset checks that say when an agent hurts its goal, stops exploring, decides
for far fewer customers than usual, or learns from stale outcome data.

Each check is attached to the asset whose data it judges, so its status shows on that node of
the lineage graph and it runs in the same daily partition right after the asset is built:

- `uplift_not_negative_<agent>` and `exploration_not_collapsed_<agent>`: on the dbt marts
  `agent_uplift` and `agent_exploration_daily` (WARN: the policy's behaviour, not a broken run);
- `decision_volume_stable`: on `decisions` (ERROR);
- `message_events_fresh` / `orders_fresh`: on the staging models of `raw.message_events` and
  `raw.orders`, the first assets of the daily job that read them (ERROR). The raw tables are
  source assets outside `daily_loop`, so checks on them would never run with it.

Thresholds are module constants, and each check's run config (the launchpad) can override them
for a run. They are the data team's monitoring settings, the same for every agent. None of the
checks blocks the run: deliveries still go out, and the check result raises the alert.

Every check passes with a description starting "not enough data" when the warehouse is empty
or on the first days (no mart, no history), and it never fails the run.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import dagster as dg

from journeyman import settings
from journeyman.decisioning.config import load_agents
from journeyman.orchestration.defs.dbt import warehouse_models
from journeyman.orchestration.defs.partitions import WAREHOUSE_POOL, daily
from journeyman.warehouse import Warehouse

UPLIFT_MODEL = "agent_uplift"
EXPLORATION_MODEL = "agent_exploration_daily"
#: an agent's latest day of treatment decisions below this normalized entropy has stopped exploring
MIN_NORMALIZED_ENTROPY = 0.2
#: fewer treatment decisions in a day than this say nothing about exploration
MIN_EXPLORATION_DECISIONS = 20
#: the day's decision rows may fall this share below the mean of the previous days
MAX_VOLUME_DROP = 0.5
VOLUME_HISTORY_DAYS = 7
#: the newest outcome event may be this old at the reference instant (`reference_instant`)
MAX_EVENT_AGE_HOURS = 48.0
#: a gap means something only where the table's usual rate (over the days before its newest
#: event) expects at least this many events in it: P(no event | Poisson 3) ≈ 5 %
MIN_EXPECTED_EVENTS = 3.0
RATE_DAYS = 28


@dataclass(frozen=True)
class Source:
    """A raw table whose newest event time is checked, on the staging model that reads it."""

    model: str
    check: str
    table: str
    column: str
    #: events are expected only after journeyman delivered messages (message events answer
    #: sends; orders come whatever journeyman does)
    after_sends: bool


FRESHNESS_SOURCES = (
    Source(
        "stg_raw__message_events", "message_events_fresh", "raw.message_events", "occurred_at", True
    ),
    Source("stg_raw__orders", "orders_fresh", "raw.orders", "ordered_at", False),
)
NOT_ENOUGH_DATA = "not enough data"
WARN = dg.AssetCheckSeverity.WARN  # the policy's behaviour, not a broken pipeline


class ExplorationConfig(dg.Config):
    min_normalized_entropy: float = MIN_NORMALIZED_ENTROPY
    min_decisions: int = MIN_EXPLORATION_DECISIONS


class VolumeConfig(dg.Config):
    max_drop: float = MAX_VOLUME_DROP
    history_days: int = VOLUME_HISTORY_DAYS


class FreshnessConfig(dg.Config):
    max_age_hours: float = MAX_EVENT_AGE_HOURS
    min_expected_events: float = MIN_EXPECTED_EVENTS


# --- helpers ------------------------------------------------------------------------------------


def _warehouse(context: dg.AssetCheckExecutionContext) -> Warehouse | None:
    """The warehouse, or None when its file does not exist yet (nothing was ever built)."""
    warehouse = Warehouse(context.resources.warehouse.path)
    return warehouse if warehouse.exists() else None


def _rows(
    wh: Warehouse | None, table: str, sql: str, params: dict[str, Any] | None = None
) -> list[dict[str, Any]] | None:
    """The query's rows, or None when the warehouse or `table` (schema.name) does not exist."""
    schema, name = table.split(".")
    if wh is None or not wh.table_exists(schema, name):
        return None
    return wh.read_arrow(sql, params).to_pylist()


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (values formatted for reading: floats to 4 significant digits)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _not_enough(
    check: dg.AssetCheckKey,
    why: str,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
    **metadata: Any,
) -> dg.AssetCheckResult:
    """A pass that says the data cannot tell yet, and why."""
    return dg.AssetCheckResult(
        check_name=check.name,
        asset_key=check.asset_key,
        passed=True,
        severity=severity,
        description=f"{NOT_ENOUGH_DATA}: {why}",
        metadata=metadata,
    )


def partition_day(context: dg.AssetCheckExecutionContext) -> date:
    """The day the check judges: its run's partition, else (a check run alone) the latest one."""
    key = context.partition_key if context.has_partition_key else daily.get_last_partition_key()
    return date.fromisoformat(key)


def model_key(name: str) -> dg.AssetKey | None:
    """The asset key dagster-dbt gives the dbt model `name` (None: no such model)."""
    return next((k for k in warehouse_models.keys if k.path[-1] == name), None)


# --- uplift -------------------------------------------------------------------------------------

UPLIFT_SQL = """
select agent, metric, comparison_group, treatment_customers, treatment_mean,
       comparison_customers, comparison_mean, absolute_difference, absolute_low, absolute_high
from marts.agent_uplift
where is_goal_metric
order by agent, comparison_group
"""
UPLIFT_COLUMNS = (
    "comparison group",
    "treatment customers",
    "treatment mean",
    "comparison customers",
    "comparison mean",
    "difference",
    "95 % interval",
)


def uplift_result(
    check: dg.AssetCheckKey, agent: str, rows: list[dict[str, Any]] | None
) -> dg.AssetCheckResult:
    """Fails (WARN) when the goal metric's 95 % interval against any comparison group lies
    entirely below 0: the agent's policy does measurably worse than that group."""
    rows = [r for r in rows or [] if r["agent"] == agent and r["absolute_high"] is not None]
    if not rows:
        why = f"no comparison of `{agent}`'s treatment group yet"
        return _not_enough(check, why, WARN)
    worse = [r for r in rows if r["absolute_high"] < 0]
    table = md_table(
        UPLIFT_COLUMNS,
        [
            (
                r["comparison_group"],
                r["treatment_customers"],
                r["treatment_mean"],
                r["comparison_customers"],
                r["comparison_mean"],
                r["absolute_difference"],
                f"[{_fmt(r['absolute_low'])}, {_fmt(r['absolute_high'])}]",
            )
            for r in rows
        ],
    )
    lowest = min(rows, key=lambda r: r["absolute_high"])
    description = None
    if worse:
        groups = ", ".join(r["comparison_group"] for r in worse)
        description = f"`{agent}` does significantly worse on {rows[0]['metric']} than {groups}"
    return dg.AssetCheckResult(
        check_name=check.name,
        asset_key=check.asset_key,
        passed=not worse,
        severity=WARN,
        description=description,
        metadata={
            "goal_metric": dg.MetadataValue.text(rows[0]["metric"]),
            "comparisons": dg.MetadataValue.md(table),
            "lowest_absolute_high": dg.MetadataValue.float(float(lowest["absolute_high"])),
            "lowest_against": dg.MetadataValue.text(lowest["comparison_group"]),
        },
    )


def uplift_checks(key: dg.AssetKey, agents: Sequence[str]) -> dg.AssetChecksDefinition:
    """One check per agent on the uplift mart."""
    specs = {
        a: dg.AssetCheckSpec(
            f"uplift_not_negative_{a}",
            asset=key,
            description=f"`{a}`'s treatment group is not significantly worse on its goal metric "
            "than any comparison group (upper end of the 95 % interval of the difference ≥ 0).",
        )
        for a in agents
    }

    @dg.multi_asset_check(
        specs=list(specs.values()),
        name="agent_uplift_health",
        pool=WAREHOUSE_POOL,
        required_resource_keys={"warehouse"},
    )
    def _checks(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
        rows = _rows(_warehouse(context), "marts.agent_uplift", UPLIFT_SQL)
        for agent, spec in specs.items():
            yield uplift_result(spec.key, agent, rows)

    return _checks


# --- exploration --------------------------------------------------------------------------------

EXPLORATION_SQL = """
select agent, decision_date, decisions, distinct_actions, normalized_entropy
from marts.agent_exploration_daily
where decision_date < :as_of
order by agent, decision_date desc
"""


def exploration_result(
    check: dg.AssetCheckKey,
    agent: str,
    rows: list[dict[str, Any]] | None,
    config: ExplorationConfig,
) -> dg.AssetCheckResult:
    """Fails (WARN) when the agent's latest day of treatment decisions has a normalized entropy
    below the threshold: its policy nearly always picks the same action."""
    rows = [r for r in rows or [] if r["agent"] == agent][:7]  # newest first
    if not rows:
        return _not_enough(check, f"no treatment decisions of `{agent}` yet", WARN)
    latest = rows[0]
    trend = md_table(
        ["day", "decisions", "distinct actions", "normalized entropy"],
        [
            (r["decision_date"], r["decisions"], r["distinct_actions"], r["normalized_entropy"])
            for r in rows
        ],
    )
    metadata = {
        "day": dg.MetadataValue.text(str(latest["decision_date"])),
        "last_days": dg.MetadataValue.md(trend),
    }
    entropy = latest["normalized_entropy"]
    if entropy is None or latest["decisions"] < config.min_decisions:
        why = f"{latest['decisions']} decision(s), {latest['distinct_actions']} action(s) on "
        return _not_enough(check, why + str(latest["decision_date"]), WARN, **metadata)
    passed = entropy >= config.min_normalized_entropy
    return dg.AssetCheckResult(
        check_name=check.name,
        asset_key=check.asset_key,
        passed=passed,
        severity=WARN,
        description=None
        if passed
        else f"`{agent}` explores little: normalized entropy {entropy:.3f} on "
        f"{latest['decision_date']} (threshold {config.min_normalized_entropy})",
        metadata={
            **metadata,
            "normalized_entropy": dg.MetadataValue.float(float(entropy)),
            "threshold": dg.MetadataValue.float(config.min_normalized_entropy),
            "decisions": dg.MetadataValue.int(int(latest["decisions"])),
        },
    )


def exploration_checks(key: dg.AssetKey, agents: Sequence[str]) -> dg.AssetChecksDefinition:
    """One check per agent on the daily exploration mart."""
    specs = {
        a: dg.AssetCheckSpec(
            f"exploration_not_collapsed_{a}",
            asset=key,
            description=f"`{a}`'s policy still spreads its choices: the normalized entropy of "
            f"its latest day's treatment actions is at least {MIN_NORMALIZED_ENTROPY}.",
        )
        for a in agents
    }

    @dg.multi_asset_check(
        specs=list(specs.values()),
        name="agent_exploration_health",
        pool=WAREHOUSE_POOL,
        required_resource_keys={"warehouse"},
    )
    def _checks(
        context: dg.AssetCheckExecutionContext, config: ExplorationConfig
    ) -> Iterator[dg.AssetCheckResult]:
        as_of = partition_day(context)
        sql, table = EXPLORATION_SQL, "marts.agent_exploration_daily"
        rows = _rows(_warehouse(context), table, sql, {"as_of": as_of})
        for agent, spec in specs.items():
            yield exploration_result(spec.key, agent, rows, config)

    return _checks


# --- decision volume ----------------------------------------------------------------------------

VOLUME_SQL = """
select agent, decision_date, count(*) as n
from journeyman.decisions
where decision_date between :first and :day
group by agent, decision_date
"""


def volume_result(
    check: dg.AssetCheckKey, day: date, rows: list[dict[str, Any]] | None, config: VolumeConfig
) -> dg.AssetCheckResult:
    """Fails when an agent's decision rows today fell more than `max_drop` below the mean of its
    previous days that have decisions (a day the loop did not run is not a day of 0 rows)."""
    counts: dict[str, dict[date, int]] = {}
    for r in rows or []:
        counts.setdefault(r["agent"], {})[r["decision_date"]] = r["n"]
    table, dropped = [], []
    for agent, by_day in sorted(counts.items()):
        history = [n for d, n in by_day.items() if d < day]
        if not history:
            continue
        mean = sum(history) / len(history)
        today = by_day.get(day, 0)
        change = today / mean - 1
        table.append((agent, today, mean, len(history), f"{change:+.1%}"))
        if -change > config.max_drop:
            dropped.append(agent)
    if not table:
        return _not_enough(check, f"no decisions before {day} to compare with")
    return dg.AssetCheckResult(
        check_name=check.name,
        asset_key=check.asset_key,
        passed=not dropped,
        description=f"decision rows dropped by more than {config.max_drop:.0%} for "
        f"{', '.join(dropped)}"
        if dropped
        else None,
        metadata={
            "volume": dg.MetadataValue.md(
                md_table(["agent", "today", "mean of previous days", "days", "change"], table)
            ),
            "max_drop": dg.MetadataValue.float(config.max_drop),
        },
    )


VOLUME_CHECK = dg.AssetCheckKey(dg.AssetKey("decisions"), "decision_volume_stable")


@dg.asset_check(
    asset=VOLUME_CHECK.asset_key,
    name=VOLUME_CHECK.name,
    pool=WAREHOUSE_POOL,
    required_resource_keys={"warehouse"},
    description=f"No agent's decision rows for the day fell more than {MAX_VOLUME_DROP:.0%} "
    f"below the mean of its previous {VOLUME_HISTORY_DAYS} days (e.g. customer_features "
    "shrank after a partial load).",
)
def decision_volume_stable(
    context: dg.AssetCheckExecutionContext, config: VolumeConfig
) -> dg.AssetCheckResult:
    day = partition_day(context)
    params = {"first": day - timedelta(days=config.history_days), "day": day}
    rows = _rows(_warehouse(context), "journeyman.decisions", VOLUME_SQL, params)
    return volume_result(VOLUME_CHECK, day, rows, config)


# --- freshness ----------------------------------------------------------------------------------


def reference_instant(day: date, now: datetime | None = None) -> datetime:
    """The instant the newest outcome event is measured against, for partition `day` (naive UTC).

    A simulation runs day D before its world lives D, as production runs at 00:10 on D: its
    "now" is D 00:00. Otherwise the wall clock, capped at the end of D, so a backfill of an old
    day measures freshness as it was then."""
    start = datetime.combine(day, time())
    if settings.simulation():
        return start
    now = now or datetime.now(UTC).replace(tzinfo=None)
    return min(now, start + timedelta(days=1))


SENDS_SQL = """
select count(*) as n from journeyman.deliveries
where status = 'delivered' and send_at > :since and send_at <= :reference
"""


def freshness_result(
    check: dg.AssetCheckKey,
    table: str,
    row: dict[str, Any] | None,
    reference: datetime,
    config: FreshnessConfig,
    sends: int | None = None,
) -> dg.AssetCheckResult:
    """Fails when the newest event of `table` at or before `reference` (`row`: newest,
    newest_loaded, and `before`, the events in the RATE_DAYS up to the newest) is older than
    `max_age_hours`: the ETL or the event intake stopped. A gap is no evidence where the usual
    rate expects fewer than `min_expected_events` in it, or (`sends` 0) journeyman delivered no
    message then: the check passes, saying why."""
    if row is None or row["newest"] is None:
        return _not_enough(check, f"{table} holds no event before {reference:%Y-%m-%d %H:%M}")
    age = (reference - row["newest"]).total_seconds() / 3600
    expected = row["before"] / (RATE_DAYS * 24) * config.max_age_hours
    metadata = _freshness_metadata(row, reference, age, expected, config, sends)
    if age > config.max_age_hours and (sends == 0 or expected < config.min_expected_events):
        why = (
            f"journeyman delivered no message in the {config.max_age_hours:g} h before "
            f"{reference:%Y-%m-%d %H:%M}"
            if sends == 0
            else f"at its usual rate {table} expects {expected:.1f} events in "
            f"{config.max_age_hours:g} h"
        )
        return _not_enough(check, f"{why}: a gap is no evidence", **metadata)
    passed = age <= config.max_age_hours
    return dg.AssetCheckResult(
        check_name=check.name,
        asset_key=check.asset_key,
        passed=passed,
        description=None
        if passed
        else f"no event in {table} for {age:.0f} h (threshold {config.max_age_hours:g} h; "
        f"{expected:.0f} expected at its usual rate)",
        metadata=metadata,
    )


def _freshness_metadata(
    row: dict[str, Any],
    reference: datetime,
    age: float,
    expected: float,
    config: FreshnessConfig,
    sends: int | None,
) -> dict[str, Any]:
    loaded = row["newest_loaded"]
    metadata = {
        "newest_event": dg.MetadataValue.text(f"{row['newest']:%Y-%m-%d %H:%M:%S}"),
        "newest_loaded_at": dg.MetadataValue.text(f"{loaded:%Y-%m-%d %H:%M:%S}" if loaded else "–"),
        "reference": dg.MetadataValue.text(f"{reference:%Y-%m-%d %H:%M:%S}"),
        "age_hours": dg.MetadataValue.float(round(age, 2)),
        "max_age_hours": dg.MetadataValue.float(config.max_age_hours),
        "expected_events_in_window": dg.MetadataValue.float(round(expected, 2)),
    }
    if sends is not None:
        metadata["messages_delivered_in_window"] = dg.MetadataValue.int(sends)
    return metadata


def freshness_check(key: dg.AssetKey, source: Source) -> dg.AssetChecksDefinition:
    """A check on staging model `key` that the newest event of `source` is recent enough."""
    check = dg.AssetCheckKey(key, source.check)
    table, column = source.table, source.column
    newest_sql = (
        f"select max({column}) as newest, max(_loaded_at) as newest_loaded "
        f"from {table} where {column} <= :reference"
    )
    before_sql = (
        f"select count(*) as n from {table} where {column} > :since and {column} <= :newest"
    )

    @dg.asset_check(
        asset=key,
        name=source.check,
        pool=WAREHOUSE_POOL,
        required_resource_keys={"warehouse"},
        description=f"{table} has an event within {MAX_EVENT_AGE_HOURS:g} h of the run's "
        "reference instant (the day's start in a simulation, else now, capped at the day's end)"
        + (", when journeyman delivered messages in that time" if source.after_sends else "")
        + " and its usual rate makes a gap that long unlikely.",
    )
    def _check(
        context: dg.AssetCheckExecutionContext, config: FreshnessConfig
    ) -> dg.AssetCheckResult:
        reference = reference_instant(partition_day(context))
        wh = _warehouse(context)
        rows = _rows(wh, table, newest_sql, {"reference": reference})
        row = rows[0] if rows and rows[0]["newest"] is not None else None
        if row is not None:
            since = row["newest"] - timedelta(days=RATE_DAYS)
            params = {"since": since, "newest": row["newest"]}
            row["before"] = _rows(wh, table, before_sql, params)[0]["n"]
        sends = None
        if source.after_sends:
            since = reference - timedelta(hours=config.max_age_hours)
            params = {"since": since, "reference": reference}
            counted = _rows(wh, "journeyman.deliveries", SENDS_SQL, params)
            sends = counted[0]["n"] if counted else 0
        return freshness_result(check, table, row, reference, config, sends)

    return _check


# --- definitions --------------------------------------------------------------------------------


def health_checks(agents: Sequence[str]) -> list[dg.AssetChecksDefinition]:
    """The checks whose assets exist: a mart the dbt project does not define gets none."""
    checks = [decision_volume_stable]
    for model, build in ((UPLIFT_MODEL, uplift_checks), (EXPLORATION_MODEL, exploration_checks)):
        key = model_key(model)
        if key is not None and agents:
            checks.append(build(key, agents))
    for source in FRESHNESS_SOURCES:
        key = model_key(source.model)
        if key is not None:
            checks.append(freshness_check(key, source))
    return checks


@dg.definitions
def health() -> dg.Definitions:
    agents = sorted(a.name for a in load_agents(settings.agents_dir()))
    return dg.Definitions(asset_checks=health_checks(agents))
