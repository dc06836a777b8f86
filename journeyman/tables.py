"""DDL of the tables that arrive from outside dbt: the raw sources an ETL tool loads, and the
tables journeyman itself writes (decisions, delivery ledger). dbt declares both as sources.

All timestamps are UTC, stored as TIMESTAMP without time zone. The DDL is standard SQL that
DuckDB and PostgreSQL both run (`double precision`, `bytea`, `varchar`, `timestamp`, `date`,
`integer`).
"""

from __future__ import annotations

import re

import pyarrow as pa

from journeyman.settings import WAREHOUSE_ENV
from journeyman.warehouse import Warehouse

#: journeyman.decisions.experiment_group values whose decisions are delivered (holdout and
#: shadow are not): the agent's policy, and the baselines' groups
SENT_GROUPS = ("treatment", "business_as_usual", "random_control", "challenger")

RAW_SCHEMA = "raw"
JOURNEYMAN_SCHEMA = "journeyman"

RAW_TABLES_DDL = """
create schema if not exists raw;
create table if not exists raw.customers (
    customer_id varchar,          -- may arrive NULL: excluded in staging
    email varchar,
    phone varchar,                -- E.164, e.g. +14155550123
    push_token varchar,
    time_zone varchar,            -- IANA name, e.g. Europe/Berlin
    country varchar,              -- ISO 3166-1 alpha-2
    signup_at timestamp,
    _loaded_at timestamp
);
create table if not exists raw.orders (
    order_id varchar,
    customer_id varchar,
    ordered_at timestamp,
    amount double precision,      -- what the customer paid, after discounts
    discount_amount double precision, -- money off the order (codes, coupons); optional, NULL = 0
    category varchar,
    _loaded_at timestamp
);
create table if not exists raw.consents (
    customer_id varchar,
    channel varchar,              -- email | sms | push
    status varchar,               -- opted_in | opted_out
    recorded_at timestamp,
    _loaded_at timestamp
);
create table if not exists raw.message_events (
    event_id varchar,             -- the vendor's event id; duplicates are dropped in staging
    decision_id varchar,
    customer_id varchar,
    channel varchar,
    event_type varchar,           -- delivered | open | click | bounce | unsubscribe | complaint
    occurred_at timestamp,
    _loaded_at timestamp
);
"""

JOURNEYMAN_TABLES_DDL = """
create schema if not exists journeyman;
create table if not exists journeyman.decisions (
    decision_id varchar not null,     -- deterministic: <agent>-<yyyymmdd>-<customer_id>
    agent varchar not null,
    decision_date date not null,      -- the run's logical date (daily partition key)
    customer_id varchar not null,
    policy varchar not null,
    policy_version varchar not null,
    experiment_group varchar not null, -- treatment | holdout | business_as_usual |
                                       -- random_control | challenger | shadow
    action_id varchar,                -- NULL when excluded
    message_id varchar,               -- NULL for "send nothing" and exclusions
    channel varchar,
    local_hour integer,
    subject_variant integer,          -- 0-based index into the message's subject lines
    send_at timestamp,                -- UTC; NULL when nothing is sent
    send_until timestamp,             -- UTC; the latest it may still be sent (send window)
    propensity double precision,      -- P(policy chose this action | allowed set)
    exclusion_reason varchar,         -- NULL when the policy acted; else why no message
    goal_metric varchar not null,     -- conversion | revenue | retention
    attribution_window_days integer not null,
    learning_window_days integer,     -- outcome window of the learning reward (NULL: attribution)
    -- reward lost per unsubscribe / complaint (learning)
    penalty_unsubscribe double precision default 0 not null,
    penalty_complaint double precision default 0 not null,
    created_at timestamp not null,
    allowed_actions bytea             -- the actions the guardrails allowed (decisioning/actions.py
                                      -- pack_allowed); NULL when the policy did not choose
);
-- Decision-time feature values of every acted or held-out decision (what learning regresses on).
-- One double precision column per feature column of marts.customer_features; added as features
-- appear.
create table if not exists journeyman.decision_features (
    decision_id varchar not null,
    agent varchar not null,
    decision_date date not null
);
-- The history of every agent message's tags (offer, tone, value_prop, category, ...) as the
-- agent files stated them on each decision day (type 2): what dbt reads for responses per kind
-- of message, each decision with the tags its message had that day.
create table if not exists journeyman.message_tags (
    agent varchar not null,
    message_id varchar not null,
    tag varchar not null,
    value varchar not null,
    valid_from date,              -- first decision day the file stated it (NULL: before history)
    valid_to date                 -- first decision day it no longer did; NULL while current
);
create table if not exists journeyman.deliveries (
    decision_id varchar not null,
    destination varchar not null,
    status varchar not null,  -- in_flight|unknown|delivered|failed_retryable|failed_permanent|
                              -- cancelled|expired|suppressed (docs/connectors.md)
    idempotency_key varchar not null,
    attempts integer not null,
    error varchar,
    provider_message_id varchar,
    updated_at timestamp not null,
    delivered_at timestamp,
    send_at timestamp,                -- UTC; when the vendor is to deliver it (scheduled sends)
    batch_id varchar,                 -- the vendor's group id for the send (SendGrid batch_id)
    attempted_at timestamp,           -- when the latest attempt's request left (lookup lag)
    send_until timestamp              -- UTC; the latest it may still be sent (send window)
);
-- The repurchase model's predictions per customer with orders and run date (BG/NBD and
-- gamma-gamma, fitted that day on intermediate.int_customer_purchase_summary; times in days).
create table if not exists journeyman.repurchase_predictions (
    customer_id varchar not null,
    run_date date not null,
    probability_alive double precision not null,
    expected_orders_7d double precision not null,
    expected_orders_30d double precision not null,
    probability_order_7d double precision not null,
    median_days_to_next_order double precision not null,
    expected_order_value double precision not null
);
-- One row per run date: the fitted parameters and how the fits went (or why there was none).
create table if not exists journeyman.repurchase_fits (
    run_date date not null,
    customers integer not null,
    repeat_customers integer not null,
    r double precision,
    alpha double precision,
    a double precision,
    b double precision,
    log_likelihood double precision,
    converged boolean,
    gg_p double precision,
    gg_q double precision,
    gg_v double precision,
    fit_seconds double precision not null,
    note varchar
);
"""


def ensure_raw_tables(warehouse: Warehouse) -> None:
    """Create the raw source tables if absent (what an ETL tool's first load would do)."""
    warehouse.execute(RAW_TABLES_DDL)


def declared_columns(ddl: str) -> dict[str, list[tuple[str, str]]]:
    """table → [(column, type)] as declared in a DDL script of `create table` statements (the
    type as written, e.g. `double precision`, without defaults and constraints)."""
    tables: dict[str, list[tuple[str, str]]] = {}
    for match in re.finditer(r"create table if not exists (\S+) \((.*?)\n\);", ddl, re.S):
        columns = []
        for line in match.group(2).splitlines():
            found = re.match(r"\s+(\w+) (\w+(?: precision)?)", line)
            if found:
                columns.append((found.group(1), found.group(2)))
        tables[match.group(1)] = columns
    return tables


def ensure_journeyman_tables(warehouse: Warehouse) -> None:
    """Create journeyman's own tables if absent and add columns a newer version declares
    (nullable), so upgrading keeps an existing warehouse working; safe to call on every run."""
    warehouse.execute(JOURNEYMAN_TABLES_DDL)
    present: dict[str, set[str]] = {}
    for table, column in warehouse.rows(
        "select table_name, column_name from information_schema.columns "
        "where table_schema = 'journeyman'"
    ):
        present.setdefault(f"journeyman.{table}", set()).add(column)
    missing = [
        f'alter table {table} add column "{name}" {kind}'
        for table, columns in declared_columns(JOURNEYMAN_TABLES_DDL).items()
        for name, kind in columns
        if name not in present.get(table, set())
    ]
    _add_columns(warehouse, missing)


def _add_columns(warehouse: Warehouse, statements: list[str]) -> None:
    """Each `alter table … add column` in a transaction of its own: DuckDB holds a new column's
    NULLs for every row in memory until the commit (230 MB per column of a 25-million-row
    table), so one transaction of many would need several times its memory limit."""
    for statement in statements:
        warehouse.execute(statement)


RAW_TABLES = ("customers", "orders", "consents", "message_events")


def missing_raw_tables(warehouse: Warehouse) -> list[str]:
    """The raw source tables that are not loaded yet (dbt cannot build without them)."""
    return [f"{RAW_SCHEMA}.{t}" for t in RAW_TABLES if not warehouse.table_exists(RAW_SCHEMA, t)]


def raw_tables_problem(warehouse: Warehouse) -> str | None:
    """One line naming the raw tables the warehouse lacks and what to do, or None (no
    password: the location is masked)."""
    missing = missing_raw_tables(warehouse)
    if not missing:
        return None
    return (
        f"the warehouse {warehouse.location} ({WAREHOUSE_ENV}) has no {', '.join(missing)}: "
        "load your source data with your ETL tool (schema in journeyman/tables.py), run "
        f"`journeyman demo` for a sandbox world, or point {WAREHOUSE_ENV} at the warehouse "
        "that has them"
    )


def ensure_feature_columns(warehouse: Warehouse, features: list[str]) -> None:
    """Add a double precision column to journeyman.decision_features for each feature not
    there yet."""
    present = {
        r[0]
        for r in warehouse.rows(
            "select column_name from information_schema.columns "
            "where table_schema = 'journeyman' and table_name = 'decision_features'"
        )
    }
    _add_columns(
        warehouse,
        [
            f'alter table journeyman.decision_features add column "{f}" double precision'
            for f in features
            if f not in present
        ],
    )


_ARROW_TYPES = {
    "varchar": pa.string(),
    "timestamp": pa.timestamp("us"),
    "double precision": pa.float64(),
    "integer": pa.int32(),
    "date": pa.date32(),
    "boolean": pa.bool_(),
}


def arrow_schema(table: str) -> pa.Schema:
    """The Arrow schema of a raw or journeyman table (e.g. `raw.orders`), from its DDL above."""
    declared = {**declared_columns(RAW_TABLES_DDL), **declared_columns(JOURNEYMAN_TABLES_DDL)}
    return pa.schema([(name, _ARROW_TYPES[kind]) for name, kind in declared[table]])
