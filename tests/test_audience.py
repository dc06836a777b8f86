"""The audience language: injection probes refused at load, compiled SQL with bind parameters
only, and the same customers selected on a real DuckDB `marts.customer_features`."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
import yaml

from journeyman import settings
from journeyman.decisioning.audience import FUNCTIONS, Audience, AudienceError
from journeyman.decisioning.config import AgentConfigError, load_agent, load_agents
from journeyman.decisioning.decide import audience_column
from journeyman.decisioning.store import check_audiences, stream_customers
from journeyman.warehouse import Warehouse

WINBACK = settings.AGENTS_DIR / "winback.yml"
ODD_COUNTRY = "O'Hare; drop table raw.orders; --"  # data that looks like SQL
ODD_LITERAL = "'" + ODD_COUNTRY.replace("'", "''") + "'"


def _agent_file(tmp_path: Path, audience: str, name: str = "winback") -> Path:
    data = yaml.safe_load(WINBACK.read_text())
    data.update(name=name, audience=audience)
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(data))
    return path


# -- refused at load ------------------------------------------------------------------------

PROBES = [
    # the reproduced attack: close the expression, run statements, reopen it
    ("true) from marts.customer_features; drop table raw.orders; select (true", "`;`"),
    (
        "true) from marts.customer_features; copy (select content from "
        "read_text('/proc/self/environ')) to '/tmp/env.csv'; select (true",
        "`;`",
    ),
    ("copy (select content from read_text('/proc/self/environ')) to '/tmp/env.csv'", "`COPY`"),
    ("read_text('/proc/self/environ') is not null", "`read_text(...)`"),
    ("length(read_text('/proc/self/environ')) > 0", "`read_text(...)`"),
    ("read_csv('/etc/passwd') is not null", "`read_csv(...)`"),
    ("getenv('HOME') = '/root'", "`getenv(...)`"),
    ("current_setting('threads') = 4", "`current_setting(...)`"),
    ("(select count(*) from raw.orders) > 0", "SELECT COUNT(*) FROM raw.orders"),
    ("exists (select 1 from raw.orders)", "EXISTS"),
    ("customer_id in (select customer_id from raw.orders)", "SELECT customer_id FROM raw.orders"),
    ("has_ordered = 1; select 1", "`;`"),
    ("has_ordered = 1 -- and everyone else", "`-- and everyone else`"),
    ("has_ordered = 1 /* hidden */ or true", "`/* hidden */`"),
    ("has_ordered = 1 union select 1", "`UNION`"),
    ("raw.orders.amount > 0", "`raw.orders.amount`"),
    ("customer_features.has_ordered = 1", "`customer_features.has_ordered`"),
    ("pragma version", "`PRAGMA`"),
    ("attach '/tmp/other.duckdb' as other", "`ATTACH`"),
    ("set threads = 1", "`SET`"),
    ("count(*) > 0", "`count(...)`"),
    ("sum(order_count) over () > 1", "OVER ()"),
    ("has_ordered::json is not null", "JSON"),
    ("$1 = has_ordered", "`$1`"),
    ("*", "`*`"),
    ("order_count + 1", "is a value, not a condition"),
    ("has_ordered = ", "cannot parse the audience"),
]


@pytest.mark.parametrize(("audience", "token"), PROBES)
def test_injection_probes_are_refused_at_load_naming_the_token(tmp_path, audience, token):
    path = _agent_file(tmp_path, audience)
    with pytest.raises(AgentConfigError) as err:
        load_agent(path)
    message = str(err.value)
    assert message.startswith(f"{path}: invalid agent configuration:\n  - audience: ")
    assert token.lower() in message.lower()


def test_the_parser_error_is_a_value_error_naming_the_whitelist():
    with pytest.raises(AudienceError) as err:
        Audience.parse("getenv('OPENAI_API_KEY') is not null")
    assert isinstance(err.value, ValueError)
    assert "functions are limited to " + ", ".join(FUNCTIONS) in str(err.value)


# -- compiled SQL -----------------------------------------------------------------------------


def test_compiled_sql_holds_only_quoted_columns_operators_and_parameters():
    text = (
        f"country in ({ODD_LITERAL}, 'AT') "
        "and order_count >= 12345 and email ilike '%@shop.example' "
        "and hash(customer_id || 'split-salt') % 1000 < 225 and not (ipi_mean_days is null)"
    )
    audience = Audience.parse(text)
    sql, params = audience.sql("aud_winback")
    assert sorted(params.values(), key=str) == sorted(
        [ODD_COUNTRY, "AT", 12345, "%@shop.example", "split-salt", 1000, 225], key=str
    )
    assert all(re.fullmatch(r"aud_winback_\d+", name) for name in params)
    assert audience.columns == {"country", "order_count", "email", "customer_id", "ipi_mean_days"}
    rest = re.sub(r'"[a-z_][a-z0-9_]*"|:aud_winback_\d+', " ", sql)
    rest = re.sub(r"\b(" + "|".join(FUNCTIONS) + r")\(", "(", rest)
    assert re.fullmatch(r"[\sA-Z()<>=!,+\-*/%|]*", rest), rest
    for leaked in ("drop", "12345", "shop", "split", "O'Hare", "--", ";"):
        assert leaked not in sql


# -- a small real warehouse -----------------------------------------------------------------

COLUMNS = {
    "customer_id": "varchar",
    "country": "varchar",
    "email": "varchar",
    "has_ordered": "integer",
    "order_count": "integer",
    "days_since_last_order": "integer",
    "ipi_mean_days": "double",
    "email_open_rate": "double",
    "repurchase_p_alive": "double",
}


@pytest.fixture
def warehouse(tmp_path) -> Warehouse:
    """marts.customer_features with 200 varied customers (and raw.orders, which must survive)."""
    rng = np.random.default_rng(5)
    n = 200
    countries = np.array(["DE", "AT", "FR", ODD_COUNTRY, None], dtype=object)
    ordered = rng.random(n) < 0.8
    rows = [
        {
            "customer_id": f"c{i:04d}",
            "country": countries[i % len(countries)],
            "email": f"u{i}@{'shop' if i % 3 else 'mail'}.example",
            "has_ordered": int(ordered[i]),
            "order_count": int(rng.integers(1, 6)) if ordered[i] else 0,
            "days_since_last_order": int(rng.integers(0, 90)) if ordered[i] else None,
            "ipi_mean_days": float(rng.uniform(5, 60)) if rng.random() < 0.7 else None,
            "email_open_rate": float(rng.random()) if i % 4 else None,
            "repurchase_p_alive": float(rng.random()) if ordered[i] else 0.0,
        }
        for i in range(n)
    ]
    warehouse = Warehouse(tmp_path / "warehouse.duckdb")
    columns = ", ".join(f"{name} {kind}" for name, kind in COLUMNS.items())
    warehouse.execute(
        "create schema marts;\n"
        f"create table marts.customer_features ({columns});\n"
        # what rule_based journeys read: no agent has sent anything yet
        "create table marts.customer_agent_contacts (customer_id varchar, agent varchar, "
        "hours_since_last_message double);\n"
        "create schema raw;\n"
        "create table raw.orders (order_id varchar, amount double)"
    )
    values = ", ".join(f":{name}" for name in COLUMNS)
    with warehouse.connect() as conn:
        conn.execute(sa.text(f"insert into marts.customer_features values ({values})"), rows)
    return warehouse


def _selected(warehouse: Warehouse, agents, batch_size: int = 64) -> dict[str, list[str]]:
    """Per agent, the customer ids stream_customers marks in its audience."""
    out: dict[str, list[str]] = {a.name: [] for a in agents}
    for batch in stream_customers(warehouse, agents, batch_size):
        assert batch.num_rows <= batch_size
        ids = batch.column("customer_id").to_pylist()
        for agent in agents:
            flags = batch.column(audience_column(agent)).to_pylist()
            out[agent.name] += [c for c, keep in zip(ids, flags, strict=True) if keep]
    return out


def _expected(warehouse: Warehouse, where: str) -> list[str]:
    """The customers the test's own SQL text selects (the reference, written here)."""
    sql = f"select customer_id from marts.customer_features where {where} order by customer_id"
    return [r[0] for r in warehouse.rows(sql)]


def test_a_valid_audience_selects_exactly_the_expected_customers(tmp_path, warehouse):
    winback = load_agent(_agent_file(tmp_path, "has_ordered = 1 and days_since_last_order >= 21"))
    odd_audience = f"country = {ODD_LITERAL} and email like '%@shop%'"
    odd = load_agent(_agent_file(tmp_path, odd_audience, name="odd_country"))
    check_audiences(warehouse, [winback, odd])
    selected = _selected(warehouse, [winback, odd])
    assert selected["winback"] == _expected(
        warehouse, "has_ordered = 1 and days_since_last_order >= 21"
    )
    assert selected["odd_country"] == _expected(warehouse, odd_audience)
    assert 0 < len(selected["odd_country"]) < len(selected["winback"]) < 200
    assert warehouse.table_exists("raw", "orders")


def test_shipped_and_benchmark_audiences_select_what_their_sql_did(tmp_path, warehouse):
    """The shipped agents' audiences and benchmarks/learning.py's oracle split (hash, ||, %)
    select the same customers as the text run as SQL did before the audience language."""
    audiences = [a.audience for a in load_agents(settings.AGENTS_DIR)]
    split = "hash(customer_id || 'winback-oracle') % 1000 < 225"
    audiences += [f"({audiences[-1]}) and not ({split})", f"({audiences[-1]}) and ({split})"]
    agents = [
        load_agent(_agent_file(tmp_path, audience, name=f"agent_{i}"))
        for i, audience in enumerate(audiences)
    ]
    check_audiences(warehouse, agents)
    selected = _selected(warehouse, agents, batch_size=50)
    for agent in agents:
        assert selected[agent.name] == _expected(warehouse, f"coalesce(({agent.audience}), false)")
    assert all(selected[a.name] for a in agents)


def test_recurring_purchase_audience_reads_the_repurchase_model(warehouse):
    """The shipped recurring-purchase agent nudges only customers the day's BG/NBD model says
    are still likely active: a due repeat customer with a low P(alive) is left out."""
    agent = load_agent(settings.AGENTS_DIR / "recurring_purchase.yml")
    assert "repurchase_p_alive" in agent.audience_expression.columns
    selected = set(_selected(warehouse, [agent])["recurring_purchase"])
    due = set(
        _expected(warehouse, "order_count >= 2 and days_since_last_order >= 0.6 * ipi_mean_days")
    )
    alive = set(_expected(warehouse, "repurchase_p_alive >= 0.3"))
    assert selected == due & alive
    assert due - alive and selected  # the model excluded some due customers, kept others


def test_an_unknown_column_fails_check_audiences_with_file_field_and_columns(tmp_path, warehouse):
    path = _agent_file(tmp_path, "has_ordered = 1 and days_since_order >= 21")
    agent = load_agent(path)
    with pytest.raises(AgentConfigError) as err:
        check_audiences(warehouse, [agent])
    message = str(err.value)
    assert message.startswith(f"{path}: field `audience` uses `days_since_order`")
    assert "Its columns: " + ", ".join(COLUMNS) in message


def test_a_type_error_fails_check_audiences_with_file_and_field(tmp_path, warehouse):
    path = _agent_file(tmp_path, "lower(order_count) = 'a'")
    with pytest.raises(AgentConfigError) as err:
        check_audiences(warehouse, [load_agent(path)])
    assert str(err.value).startswith(f"{path}: field `audience` is not a valid condition")
