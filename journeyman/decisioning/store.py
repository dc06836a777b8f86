"""Read customers for deciding and write decisions: the decisioner's warehouse interface."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import date
from typing import Any

import numpy as np
import pyarrow as pa
import sqlalchemy as sa

from journeyman.decisioning.config import AgentConfig, AgentConfigError
from journeyman.decisioning.decide import audience_column, own_contact_column, uses_own_contacts
from journeyman.decisioning.learning import ArmStatistics
from journeyman.warehouse import Warehouse, WarehouseError, append_arrow, stream_arrow

FEATURES_TABLE = "marts.customer_features"
CONTACTS_TABLE = "marts.customer_agent_contacts"
DECISIONS_TABLE = "journeyman.decisions"
LEDGER_TABLE = "journeyman.deliveries"
MESSAGE_TAGS_TABLE = "journeyman.message_tags"


def _audience_select(agents: Sequence[AgentConfig]) -> tuple[str, dict[str, Any]]:
    """One boolean column per agent, from its compiled audience: SQL built by
    decisioning/audience.py, every literal a bind parameter named after the agent."""
    columns: list[str] = []
    params: dict[str, Any] = {}
    for agent in agents:
        sql, values = _audience_sql(agent)
        columns.append(f'coalesce({sql}, false) as "{audience_column(agent)}"')
        params.update(values)
    return ", ".join(columns), params


def _audience_sql(agent: AgentConfig) -> tuple[str, dict[str, Any]]:
    return agent.audience_expression.sql(f"aud_{agent.name}")


def _feature_columns(conn: sa.Connection) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            sa.text(
                "select column_name from information_schema.columns "
                "where table_schema = 'marts' and table_name = 'customer_features' "
                "order by ordinal_position"
            )
        )
    ]


def check_audiences(warehouse: Warehouse, agents: Sequence[AgentConfig]) -> None:
    """Fail with the agent file and field when an audience names a column customer_features
    does not have, or does not type-check on it (e.g. `lower(order_count)`)."""
    with warehouse.connect() as conn:
        columns = _feature_columns(conn)
        if not columns:
            raise WarehouseError(
                f"{FEATURES_TABLE} does not exist in {warehouse.location}: build the dbt project "
                "first (the Dagster job does; by hand: dbt build --project-dir dbt_project)"
            )
        known = {c.lower() for c in columns}
        for agent in agents:
            unknown = sorted(agent.audience_expression.columns - known)
            if unknown:
                raise AgentConfigError(
                    f"{agent.source}: field `audience` uses "
                    f"{', '.join(f'`{c}`' for c in unknown)}, not a column of customer_features. "
                    f"Its columns: {', '.join(columns)}"
                )
            sql, params = _audience_sql(agent)
            try:
                conn.execute(
                    sa.text(f"select coalesce({sql}, false) from {FEATURES_TABLE} limit 0"), params
                )
            except sa.exc.DBAPIError as exc:
                detail = str(exc.orig).splitlines()[0]
                raise AgentConfigError(
                    f"{agent.source}: field `audience` is not a valid condition on "
                    f"customer_features ({detail}). Write a boolean expression over its "
                    f"columns: {', '.join(columns)}"
                ) from None


def stream_customers(
    warehouse: Warehouse, agents: Sequence[AgentConfig], batch_size: int = 100_000
) -> Iterator[pa.Table]:
    """customer_features rows in customer order, each with one audience column per agent (and,
    per agent running a business-as-usual journey, the hours since its own last message)."""
    audiences, params = _audience_select(agents)
    source, contact_params = _features_with_own_contacts(warehouse, agents)
    params.update(contact_params)
    select = f"*, {audiences}" if audiences else "*"
    sql = f"select {select} from {source} order by customer_id"
    with warehouse.connect() as conn:
        for batch in stream_arrow(conn, sql, batch_size, params):
            yield pa.Table.from_batches([batch])


def _features_with_own_contacts(
    warehouse: Warehouse, agents: Sequence[AgentConfig]
) -> tuple[str, dict[str, Any]]:
    """customer_features, joined for every agent with a rule_based policy to that agent's own
    contact history (`marts.customer_agent_contacts`; NULL hours: it never messaged the
    customer). A subquery, so that audiences keep reading the features' bare column names."""
    journeys = [a for a in agents if uses_own_contacts(a)]
    if not journeys:
        return FEATURES_TABLE, {}
    if not warehouse.table_exists("marts", "customer_agent_contacts"):
        raise WarehouseError(
            f"{CONTACTS_TABLE} does not exist in {warehouse.location}: build the dbt project "
            "(dbt build --project-dir dbt_project); rule_based journeys read it"
        )
    columns, joins, params = [], [], {}
    for i, agent in enumerate(journeys):
        columns.append(f'c{i}.hours_since_last_message as "{own_contact_column(agent)}"')
        joins.append(
            f"left join (select customer_id, hours_since_last_message from {CONTACTS_TABLE} "
            f"where agent = :contacts_agent_{i}) as c{i} on c{i}.customer_id = f.customer_id"
        )
        params[f"contacts_agent_{i}"] = agent.name
    source = f"(select f.*, {', '.join(columns)} from {FEATURES_TABLE} as f {' '.join(joins)})"
    return f"{source} as features", params


STATS_TABLE = "marts.arm_statistics_daily"
FEATURES_SNAPSHOT = "journeyman.decision_features"
_ROW_KEYS = ("action_id", "available_on", "channel", "engagement", "ordered")


def load_arm_statistics(
    warehouse: Warehouse,
    agent: str,
    day: date,
    features: Sequence[str],
    signal: str = "outcome",
) -> ArmStatistics:
    """The agent's per-action statistics from rewards available by `day` (dbt model
    `arm_statistics_daily`, one row per agent × action × availability date × engagement ×
    ordered).

    `signal` "outcome" learns from each decision's learning reward, and the statistics carry the
    rows of decisions that led to an order apart (`ArmStatistics.ordered`: a revenue goal's
    hurdle model; absent while some row predates the `ordered` column); "surrogate" from the
    engagement surrogate: every reward replaced by the mean reward of its cell (the action's
    channel and the engagement: not opened, opened, clicked; "send nothing" is a cell of its own)
    over the same rows, so the statistics stay sums and incremental equals from scratch."""
    if not warehouse.table_exists("marts", "arm_statistics_daily"):
        return ArmStatistics.empty(features)
    table = warehouse.read_arrow(
        f"select * from {STATS_TABLE} where agent = :agent and available_on <= :day",
        {"agent": agent, "day": day},
    )
    if table.num_rows == 0:
        return ArmStatistics.empty(features)
    # in one order: the rows are summed again below, and float sums depend on their order
    # (a table built before the engagement or ordered column sorts on the keys it has)
    keys = [c for c in _ROW_KEYS if c in table.column_names]
    table = table.sort_by([(c, "ascending") for c in keys])
    sums = {
        c: table.column(c).to_numpy(zero_copy_only=False).astype(np.float64)
        for c in table.column_names
        if c.startswith(("n", "sum_", "x__", "xr__", "xx__"))
    }
    if signal == "surrogate":
        _replace_rewards_by_cell_means(table, sums, features)
    elif signal != "outcome":
        raise ValueError(f"signal must be outcome or surrogate; got {signal!r}")
    ids, inverse = np.unique(
        table.column("action_id").to_numpy(zero_copy_only=False).astype(str), return_inverse=True
    )
    stats = _summed(ids.tolist(), inverse, sums, features)
    ordered = _ordered_rows(table) if signal == "outcome" else None
    if ordered is None:
        return stats
    return replace(stats, ordered=_summed(ids.tolist(), inverse, sums, features, ordered))


def _ordered_rows(table: pa.Table) -> np.ndarray | None:
    """Which rows hold decisions that led to an order (None: no `ordered` column, or rows built
    before it that do not say)."""
    if "ordered" not in table.column_names or table.column("ordered").null_count:
        return None
    return table.column("ordered").to_numpy(zero_copy_only=False).astype(np.float64) > 0


def _summed(
    ids: list[str],
    inverse: np.ndarray,
    sums: dict[str, np.ndarray],
    features: Sequence[str],
    rows: np.ndarray | None = None,
) -> ArmStatistics:
    """Per-action matrices from the rows' sums (only the `rows` given, else all)."""
    k, d = len(ids), len(features) + 1

    def total(column: str) -> np.ndarray:
        if column not in sums:
            raise LookupError(
                f"{STATS_TABLE} has no column {column}: rebuild it (dbt build --full-refresh "
                "--select arm_statistics_daily) after adding a feature"
            )
        if rows is None:
            return np.bincount(inverse, weights=sums[column], minlength=k)
        return np.bincount(inverse[rows], weights=sums[column][rows], minlength=k)

    xx, xr = np.zeros((k, d, d)), np.zeros((k, d))
    n = total("n")
    xx[:, 0, 0] = n
    xr[:, 0] = total("sum_r")
    for i, fi in enumerate(features, start=1):
        xx[:, 0, i] = xx[:, i, 0] = total(f"x__{fi}")
        xr[:, i] = total(f"xr__{fi}")
        for j, fj in enumerate(features, start=1):
            if j < i:
                continue
            column = f"xx__{fi}__{fj}" if f"xx__{fi}__{fj}" in sums else f"xx__{fj}__{fi}"
            xx[:, i, j] = xx[:, j, i] = total(column)
    return ArmStatistics(list(features), ids, n, xx, xr, total("sum_rr"))


def cell_means(cells: np.ndarray, sum_r: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Per row, the mean reward of its cell: Σ sum_r / Σ n over the rows sharing its cell
    (rows may be single decisions, n = 1, or sums of several)."""
    _, cell = np.unique(cells, return_inverse=True)
    return (np.bincount(cell, weights=sum_r) / np.bincount(cell, weights=n))[cell]


def _replace_rewards_by_cell_means(
    table: pa.Table, sums: dict[str, np.ndarray], features: Sequence[str]
) -> None:
    """Rewrite the reward sums of every row as if each of its decisions had earned its cell's
    mean reward s: Σr = n·s, Σr² = n·s², Σx·r = s·Σx."""
    if "engagement" not in table.column_names:
        raise LookupError(
            f"{STATS_TABLE} has no engagement column: rebuild it (dbt build --full-refresh "
            "--select arm_statistics_daily) to learn from the engagement surrogate"
        )
    channel = table.column("channel").to_numpy(zero_copy_only=False).astype(str)
    engagement = table.column("engagement").cast(pa.string()).fill_null("unknown")
    cells = np.char.add(np.char.add(channel, "|"), engagement.to_numpy(zero_copy_only=False))
    n = sums["n"]
    s = cell_means(cells, sums["sum_r"], n)
    sums["sum_r"], sums["sum_rr"] = n * s, n * s * s
    for f in features:
        if f"x__{f}" in sums:
            sums[f"xr__{f}"] = s * sums[f"x__{f}"]


def write_decisions(
    warehouse: Warehouse,
    day: date,
    agents: Sequence[str],
    decisions: pa.Table,
    features: pa.Table | None = None,
) -> int:
    """Replace the day's decisions for these agents atomically, keeping any decision that a
    destination has already seen (in the ledger): re-running a day never changes what was sent.
    Returns the number of rows written."""
    params = {"day": day, "agents": list(agents)}
    with warehouse.connect() as conn:
        conn.execute(
            sa.text(
                f"delete from {DECISIONS_TABLE} where decision_date = :day and agent in :agents "
                f"and decision_id not in (select decision_id from {LEDGER_TABLE})"
            ).bindparams(sa.bindparam("agents", expanding=True)),
            params,
        )
        kept = {
            r[0]
            for r in conn.execute(
                sa.text(
                    f"select decision_id from {DECISIONS_TABLE} "
                    "where decision_date = :day and agent in :agents"
                ).bindparams(sa.bindparam("agents", expanding=True)),
                params,
            )
        }
        conn.execute(
            sa.text(
                f"delete from {FEATURES_SNAPSHOT} where decision_date = :day and agent in :agents "
                f"and decision_id not in (select decision_id from {DECISIONS_TABLE})"
            ).bindparams(sa.bindparam("agents", expanding=True)),
            params,
        )
        if kept:
            mask = pa.array([d not in kept for d in decisions["decision_id"].to_pylist()])
            decisions = decisions.filter(mask)
            if features is not None:
                keep = pa.array([d not in kept for d in features["decision_id"].to_pylist()])
                features = features.filter(keep)
        append_arrow(conn, DECISIONS_TABLE, decisions)
        if features is not None:
            append_arrow(conn, FEATURES_SNAPSHOT, features)
    return decisions.num_rows


_TAG_ROW = (
    "agent = :agent and message_id = :message_id and tag = :tag and value = :value "
    "and valid_to is null"
)


def write_message_tags(warehouse: Warehouse, agents: Sequence[AgentConfig], day: date) -> int:
    """Record these agents' message tags as the agent files state them on decision day `day` in
    the history journeyman.message_tags (one row per agent, message, tag and value with the
    decision days it held: valid_from, valid_to).

    A tag value no current row holds opens a row from `day`; a current row the files no longer
    state closes at `day` (or is dropped if it opened on `day`: the file changed before the day
    was re-run). A day before an agent's latest change (a row opened or closed) leaves that
    agent's history as the later runs recorded it. Returns the rows opened."""
    table = MESSAGE_TAGS_TABLE
    opened = 0
    with warehouse.connect() as conn:
        for agent in agents:
            key = {"agent": agent.name, "day": day}
            latest = conn.execute(
                sa.text(
                    f"select max(coalesce(valid_to, valid_from)) from {table} where agent = :agent"
                ),
                key,
            ).scalar()
            if latest is not None and day < latest:
                continue
            stated = {
                (message.id, tag, value)
                for message in agent.dimensions.messages
                for tag, value in message.tags.items()
            }
            current = conn.execute(
                sa.text(
                    f"select message_id, tag, value, valid_from from {table} "
                    "where agent = :agent and valid_to is null"
                ),
                key,
            ).all()
            for message_id, tag, value, since in current:
                if (message_id, tag, value) in stated:
                    continue
                row = {**key, "message_id": message_id, "tag": tag, "value": value}
                if since is not None and since >= day:
                    conn.execute(sa.text(f"delete from {table} where {_TAG_ROW}"), row)
                else:
                    sql = f"update {table} set valid_to = :day where {_TAG_ROW}"
                    conn.execute(sa.text(sql), row)
            new = sorted(stated - {(r[0], r[1], r[2]) for r in current})
            if new:
                conn.execute(
                    sa.text(
                        f"insert into {table} (agent, message_id, tag, value, valid_from) "
                        "values (:agent, :message_id, :tag, :value, :day)"
                    ),
                    [{**key, "message_id": m, "tag": t, "value": v} for m, t, v in new],
                )
                opened += len(new)
    return opened
