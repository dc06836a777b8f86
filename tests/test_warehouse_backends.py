"""The warehouse interface on both backends (a DuckDB file, a PostgreSQL database), the one
warehouse setting, and the clear, password-free errors of a server warehouse.

The PostgreSQL cases need the test server (tests/backends.py) and skip without it.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import traceback
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa
from backends import SKIP_REASON, backend_params, new_warehouse, postgres_database, server_url

from journeyman import settings
from journeyman.tables import (
    JOURNEYMAN_TABLES_DDL,
    RAW_TABLES_DDL,
    arrow_schema,
    declared_columns,
    ensure_feature_columns,
    ensure_journeyman_tables,
    ensure_raw_tables,
    missing_raw_tables,
    raw_tables_problem,
)
from journeyman.warehouse import Warehouse, WarehouseError, stream_arrow

#: a password that must never reach a message, a log line or an exception's text
SENTINEL = "Sentinel-Pw-5f3c9e"
needs_server = pytest.mark.skipif(server_url() is None, reason=SKIP_REASON)


@pytest.fixture(params=backend_params())
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    """A fresh, empty warehouse of each backend."""
    with new_warehouse(request.param, tmp_path, "api") as location:
        yield Warehouse(location)


def orders(n: int) -> pa.Table:
    """n rows of raw.orders with NULLs, NaN and timestamps."""
    return pa.table(
        {
            "order_id": [f"o{i:03d}" for i in range(n)],
            "customer_id": [None if i % 5 == 0 else f"c{i % 7}" for i in range(n)],
            "ordered_at": [datetime(2024, 1, 1 + i % 28, i % 24, 30) for i in range(n)],
            "amount": [float("nan") if i == 3 else i * 1.25 for i in range(n)],
            "discount_amount": [None if i % 2 else 0.5 for i in range(n)],
            "category": ["home"] * n,
            "_loaded_at": [datetime(2024, 2, 1)] * n,
        },
        schema=arrow_schema("raw.orders"),
    )


def test_tables_are_created_alike_and_upgraded_in_place(warehouse: Warehouse) -> None:
    assert missing_raw_tables(warehouse) == [
        "raw.customers",
        "raw.orders",
        "raw.consents",
        "raw.message_events",
    ]
    ensure_raw_tables(warehouse)
    ensure_journeyman_tables(warehouse)
    ensure_journeyman_tables(warehouse)  # idempotent
    ensure_feature_columns(warehouse, ["order_count", "email_open_rate"])
    assert missing_raw_tables(warehouse) == [] and raw_tables_problem(warehouse) is None
    present = {
        (f"{r[0]}.{r[1]}", r[2])
        for r in warehouse.rows(
            "select table_schema, table_name, column_name from information_schema.columns "
            "where table_schema in ('raw', 'journeyman')"
        )
    }
    declared = {**declared_columns(RAW_TABLES_DDL), **declared_columns(JOURNEYMAN_TABLES_DDL)}
    expected = {(t, c) for t, columns in declared.items() for c, _ in columns}
    extra = {("journeyman.decision_features", f) for f in ("order_count", "email_open_rate")}
    assert present == expected | extra
    kinds = {kind for columns in declared.values() for _, kind in columns}
    assert kinds == {
        "varchar",
        "timestamp",
        "double precision",
        "date",
        "integer",
        "bytea",
        "boolean",
    }
    # a dropped column comes back (nullable) and the rows stay
    warehouse.execute(
        "insert into journeyman.message_tags (agent, message_id, tag, value) "
        "values ('a', 'm', 'offer', 'none');\n"
        "alter table journeyman.message_tags drop column valid_to"
    )
    ensure_journeyman_tables(warehouse)
    assert [
        tuple(r) for r in warehouse.rows("select value, valid_to from journeyman.message_tags")
    ] == [("none", None)]


def test_arrow_round_trip(warehouse: Warehouse) -> None:
    ensure_raw_tables(warehouse)
    data = orders(25)
    warehouse.append_arrow("raw.orders", data)
    warehouse.append_arrow("raw.orders", data.slice(0, 0))  # nothing to write
    back = warehouse.read_arrow("select * from raw.orders order by order_id")
    assert back.schema == data.schema
    assert back.to_pylist()[:3] == data.to_pylist()[:3]
    assert back.column("amount").to_pylist()[4:] == data.column("amount").to_pylist()[4:]
    assert str(back.column("amount")[3].as_py()) == "nan"
    # bind parameters, on the one-shot and the streamed read
    query = "select order_id, amount from raw.orders where customer_id = :c order by order_id"
    expected = [r for r in data.to_pylist() if r["customer_id"] == "c1"]
    got = warehouse.read_arrow(query, {"c": "c1"})
    assert got.column("order_id").to_pylist() == [r["order_id"] for r in expected]
    with warehouse.connect() as conn:
        batches = list(stream_arrow(conn, query, 1, {"c": "c1"}))
        assert [b.num_rows for b in batches] == [1] * len(expected)
        whole = list(stream_arrow(conn, "select * from raw.orders order by order_id", 10))
        assert [b.num_rows for b in whole] == [10, 10, 5]
        streamed = pa.Table.from_batches(whole)
        assert streamed.schema == back.schema
        assert streamed.drop_columns("amount").equals(back.drop_columns("amount"))
        empty = list(stream_arrow(conn, "select order_id from raw.orders where false", 10))
        assert sum(b.num_rows for b in empty) == 0
        assert all(b.schema.field("order_id").type == pa.string() for b in empty)


def test_sql_helpers(warehouse: Warehouse) -> None:
    ensure_raw_tables(warehouse)
    warehouse.append_arrow("raw.orders", orders(10))
    assert warehouse.table_exists("raw", "orders")
    assert not warehouse.table_exists("raw", "nothing")
    # 6.25 to 11.25, and NaN: both order NaN above every number
    assert warehouse.scalar("select count(*) from raw.orders where amount > :a", {"a": 5}) == 6
    warehouse.execute(
        "delete from raw.orders where order_id = :o;\nupdate raw.orders set category = :c",
        {"o": "o000", "c": "beauty"},
    )
    rows = warehouse.rows("select category, count(*) from raw.orders group by category")
    assert [tuple(r) for r in rows] == [("beauty", 9)]
    summed = warehouse.read_arrow(
        "select count(*) as n, sum(amount) as total, cast(:d as date) as day "
        "from raw.orders where order_id <> 'o003'",
        {"d": date(2024, 3, 1)},
    )
    assert summed.to_pylist() == [{"n": 8, "total": pytest.approx(52.5), "day": date(2024, 3, 1)}]


def test_a_failed_unit_of_work_writes_nothing(warehouse: Warehouse) -> None:
    ensure_raw_tables(warehouse)
    with pytest.raises(sa.exc.DBAPIError), warehouse.connect() as conn:
        from journeyman.warehouse import append_arrow

        append_arrow(conn, "raw.orders", orders(3))
        conn.execute(sa.text("select * from raw.no_such_table"))
    assert warehouse.scalar("select count(*) from raw.orders") == 0


# -- the setting ---------------------------------------------------------------------------


def test_duckdb_memory_limit_is_set_and_a_bad_one_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every DuckDB connection journeyman opens carries the memory limit (DuckDB's own default
    is 80 % of the machine); a value DuckDB cannot read is one clear error naming the setting."""
    from journeyman.warehouse import MEMORY_LIMIT_ENV

    monkeypatch.setenv(MEMORY_LIMIT_ENV, "768MB")
    limit = Warehouse(tmp_path / "w.duckdb").scalar("select current_setting('memory_limit')")
    assert limit.replace(" ", "") in {"768.0MiB", "732.4MiB", "768MiB", "732MiB"}, limit
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "lots")
    with pytest.raises(WarehouseError, match=f"{MEMORY_LIMIT_ENV} must be an amount of memory"):
        Warehouse(tmp_path / "x.duckdb").scalar("select 1")


def test_setting_is_a_path_or_a_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(settings.WAREHOUSE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert settings.warehouse_path() == tmp_path / ".journeyman" / "warehouse.duckdb"
    assert settings.dbt_environment() == {settings.WAREHOUSE_ENV: settings.warehouse_setting()}
    url = f"postgresql://ana%40shop:{SENTINEL}@db.example:6543/crm?sslmode=require"
    monkeypatch.setenv(settings.WAREHOUSE_ENV, url)
    assert settings.warehouse_setting() == url
    env = settings.dbt_environment()
    assert env["JOURNEYMAN_PG_HOST"] == "db.example" and env["JOURNEYMAN_PG_PORT"] == "6543"
    assert env["JOURNEYMAN_PG_USER"] == "ana@shop" and env["JOURNEYMAN_PG_DBNAME"] == "crm"
    assert env["JOURNEYMAN_PG_SSLMODE"] == "require"
    assert env["DBT_ENV_SECRET_JOURNEYMAN_PG_PASSWORD"] == SENTINEL  # dbt masks these
    wh = Warehouse(url)
    assert wh.backend == "postgresql"
    assert wh.location == "postgresql+psycopg://ana%40shop:***@db.example:6543/crm?sslmode=require"
    shown = [wh.location, wh.url, repr(wh.engine()), settings.masked(url)]
    assert not any(SENTINEL in text for text in shown)
    with pytest.raises(WarehouseError, match=settings.WAREHOUSE_ENV) as caught:
        _ = wh.path
    assert SENTINEL not in str(caught.value)
    with pytest.raises(settings.WarehouseSettingError, match=settings.WAREHOUSE_ENV) as caught:
        settings.warehouse_path()
    assert SENTINEL not in str(caught.value)
    # a file path given as a duckdb:/// URL is a file
    monkeypatch.setenv(settings.WAREHOUSE_ENV, f"duckdb:///{tmp_path}/w.duckdb")
    assert settings.warehouse_path() == tmp_path / "w.duckdb"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (f"mysql://u:{SENTINEL}@h/db", "unsupported warehouse"),
        (f"postgresql+psycopg2://u:{SENTINEL}@h/db", "unsupported warehouse"),
        (f"postgresql://u:{SENTINEL}@h:5432", "names no database"),
        (f"postgresql://u:{SENTINEL}@h:port/db", "not a valid URL"),
    ],
    ids=["mysql", "psycopg2", "no-database", "bad-port"],
)
def test_unusable_urls_are_named_without_the_password(url: str, says: str) -> None:
    with pytest.raises(settings.WarehouseSettingError) as caught:
        Warehouse(url)
    assert says in str(caught.value) and settings.WAREHOUSE_ENV in str(caught.value)
    assert SENTINEL not in str(caught.value)


# -- clear errors of a server warehouse ----------------------------------------------------


def _refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again: nothing listens there


def _everything_said(error: BaseException, caplog: pytest.LogCaptureFixture) -> str:
    """The message, the traceback a user would see, every chained exception and the logs."""
    texts = [str(error), repr(error), "".join(traceback.format_exception(error)), caplog.text]
    seen: BaseException | None = error
    while seen is not None:
        texts.append(str(seen))
        seen = seen.__cause__ or seen.__context__
    return "\n".join(texts)


def _open_error(url: str, caplog: pytest.LogCaptureFixture) -> tuple[str, str]:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(WarehouseError) as caught:
        Warehouse(url).scalar("select 1")
    return str(caught.value), _everything_said(caught.value, caplog)


def _server(**changes: object) -> str:
    """The test server's URL with some parts changed (password=None: without a password)."""
    url = sa.make_url(server_url() or "")
    url = sa.URL.create(**{**url._asdict(), **changes})
    return url.render_as_string(hide_password=False)


@needs_server
@pytest.mark.postgres
def test_unreachable_server(caplog: pytest.LogCaptureFixture) -> None:
    message, said = _open_error(
        _server(password=SENTINEL, port=_refused_port(), host="127.0.0.1"), caplog
    )
    assert message.startswith("Cannot reach the PostgreSQL warehouse postgresql+psycopg://")
    assert "Start the server, or fix the host and port in JOURNEYMAN_WAREHOUSE" in message
    assert "\n" not in message and SENTINEL not in said


@needs_server
@pytest.mark.postgres
def test_wrong_password(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    message, said = _open_error(_server(password=SENTINEL), caplog)
    assert "refused the login of user 'journeyman'" in message
    assert "password authentication failed" in message
    assert "JOURNEYMAN_WAREHOUSE" in message and "PGPASSWORD" in message
    assert "\n" not in message and SENTINEL not in said
    # the same from PGPASSWORD, with no password in the URL
    monkeypatch.setenv("PGPASSWORD", SENTINEL)
    message, said = _open_error(_server(password=None), caplog)
    assert "password authentication failed" in message and SENTINEL not in said


@needs_server
@pytest.mark.postgres
def test_missing_database_and_raw_tables(caplog: pytest.LogCaptureFixture) -> None:
    message, said = _open_error(_server(database="no_such_db"), caplog)
    assert "has no database 'no_such_db'" in message and "JOURNEYMAN_WAREHOUSE" in message
    with postgres_database("empty") as url:
        problem = raw_tables_problem(Warehouse(url))
    assert problem is not None and "JOURNEYMAN_WAREHOUSE" in problem
    assert "has no raw.customers, raw.orders, raw.consents, raw.message_events" in problem
    password = sa.make_url(url).password
    assert password and password not in problem and ":***@" in problem


@needs_server
@pytest.mark.postgres
def test_password_from_pgpassword_or_pgpass(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = sa.make_url(server_url() or "")
    bare = _server(password=None)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "absent"))
    with pytest.raises(WarehouseError, match="JOURNEYMAN_WAREHOUSE"):
        Warehouse(bare).scalar("select 1")
    monkeypatch.setenv("PGPASSWORD", str(url.password))
    assert Warehouse(bare).scalar("select 1") == 1
    monkeypatch.delenv("PGPASSWORD")
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"{url.host}:{url.port}:*:{url.username}:{url.password}\n")
    pgpass.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(pgpass))
    assert Warehouse(bare).scalar("select 1") == 1


@needs_server
@pytest.mark.postgres
def test_read_only_warehouse_refuses_writes() -> None:
    with postgres_database("ro") as url:
        Warehouse(url).execute("create table t (x integer)")
        with pytest.raises(sa.exc.DBAPIError, match="read-only"):
            Warehouse(url, read_only=True).execute("insert into t values (1)")
        assert Warehouse(url, read_only=True).scalar("select count(*) from t") == 0


def dbt_debug(setting: str, folder: Path) -> tuple[subprocess.CompletedProcess[str], str]:
    """`dbt debug` (profile, then a connection test) with the environment journeyman gives
    dbt for `setting`; the result and dbt's log file."""
    env = settings.dbt_process_environment(os.environ, setting)
    dbt = Path(sys.executable).parent / "dbt"
    project = str(settings.DBT_PROJECT_DIR)
    result = subprocess.run(
        [str(dbt), "debug", "--project-dir", project, "--profiles-dir", project]
        + ["--log-path", str(folder / "logs")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    logs = "".join(p.read_text() for p in (folder / "logs").glob("*.log"))
    return result, logs


def test_dbt_target_follows_the_setting(tmp_path: Path) -> None:
    """The profile picks the duckdb target for a file path, the postgres one for a URL."""
    duck, _ = dbt_debug(str(tmp_path / "w.duckdb"), tmp_path)
    assert duck.returncode == 0 and "adapter type: duckdb" in duck.stdout, duck.stdout[-2000:]
    url = f"postgresql+psycopg://u:{SENTINEL}@127.0.0.1:{_refused_port()}/db"
    server, logs = dbt_debug(url, tmp_path)
    assert server.returncode != 0 and "adapter type: postgres" in server.stdout
    assert "Connection refused" in server.stdout
    assert SENTINEL not in server.stdout + server.stderr + logs


@needs_server
@pytest.mark.postgres
def test_dbt_never_prints_the_password(tmp_path: Path) -> None:
    """dbt on the postgres target: a wrong password fails the connection test without
    printing it (nor logging it); the right one, from the URL or PGPASSWORD, passes."""
    wrong, logs = dbt_debug(_server(password=SENTINEL), tmp_path)
    assert wrong.returncode != 0 and "password authentication failed" in wrong.stdout
    assert SENTINEL not in wrong.stdout + wrong.stderr + logs
    right, _ = dbt_debug(server_url() or "", tmp_path)
    assert right.returncode == 0 and "All checks passed" in right.stdout, right.stdout[-3000:]
    password = str(sa.make_url(server_url() or "").password)
    os.environ["PGPASSWORD"] = password
    try:
        bare, _ = dbt_debug(_server(password=None), tmp_path)
    finally:
        del os.environ["PGPASSWORD"]
    assert bare.returncode == 0 and "All checks passed" in bare.stdout, bare.stdout[-3000:]
