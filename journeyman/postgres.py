"""PostgreSQL behind the warehouse interface (journeyman/warehouse.py): the engine on psycopg 3,
connection errors in one line naming JOURNEYMAN_WAREHOUSE, and Arrow in and out.

Arrow reads fetch in binary format and build each column with one `pyarrow.array` call, typed
from the result's column types (so an empty result has a schema); streamed reads use a
server-side cursor, so memory stays bounded by the batch. Arrow writes use `COPY … FROM STDIN`
in binary format (text format when a column's Arrow type does not match the table's column).
No message here ever holds the password.
"""

from __future__ import annotations

import itertools
import os
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from journeyman import settings

#: seconds to wait for a server that does not answer (libpq's default is to wait forever)
CONNECT_TIMEOUT_S = 10
_READ_ONLY = "-c default_transaction_read_only=on"
_CURSORS = itertools.count()  # server-side cursor names, unique in the process

# -- the engine and its errors --------------------------------------------------------------


def engine(url: sa.URL, read_only: bool) -> sa.Engine:
    """An engine on `url` whose connections close when released (like DuckDB's)."""
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in url.query and not os.environ.get("PGCONNECT_TIMEOUT"):
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    if read_only:
        given = str(url.query.get("options") or "")
        connect_args["options"] = f"{given} {_READ_ONLY}".strip()
    return sa.create_engine(url, connect_args=connect_args, poolclass=sa.pool.NullPool)


_UNREACHABLE = (
    "connection refused",
    "could not translate host name",
    "name or service not known",
    "timeout expired",
    "no route to host",
    "network is unreachable",
    "could not connect to server",
    "no such file or directory",  # a Unix socket that is not there
    "server closed the connection unexpectedly",
)
_LOGIN = (
    "password authentication failed",
    "no password supplied",
    "authentication failed",
    "role",  # role "x" does not exist
    "pg_hba.conf",
)


def connection_problem(url: sa.URL, error: BaseException) -> str:
    """One line saying why `url` could not be opened and what to change, password-free."""
    where = f"the PostgreSQL warehouse {url.render_as_string(hide_password=True)}"
    detail = scrub(_first_line(error), url)
    text = detail.lower()
    setting = settings.WAREHOUSE_ENV
    if any(p in text for p in _UNREACHABLE):
        return (
            f"Cannot reach {where} ({detail}). Start the server, or fix the host and port in "
            f"{setting}."
        )
    if "database" in text and "does not exist" in text:
        return (
            f"{where} has no database {url.database!r} ({detail}). Create it, or fix the "
            f"database name in {setting}."
        )
    if any(p in text for p in _LOGIN):
        return (
            f"{where} refused the login of user {url.username or '(default)'!r} ({detail}). "
            f"Fix the user in {setting}, or the password (PGPASSWORD, ~/.pgpass or the URL in "
            f"{setting})."
        )
    return f"Cannot open {where} ({setting}): {detail}"


def _first_line(error: BaseException) -> str:
    """The driver's own message: SQLAlchemy's wrapper minus its '(module.Class)' prefix."""
    inner = getattr(error, "orig", None) or error
    lines = [line.strip() for line in str(inner).splitlines() if line.strip()]
    reasons = [line for line in lines if line.startswith(("FATAL:", "ERROR:"))]
    chosen = reasons[0] if reasons else (lines[0] if lines else type(inner).__name__)
    return chosen.replace("FATAL:", "").replace("ERROR:", "").strip()


def scrub(text: str, url: sa.URL) -> str:
    """`text` with the URL's password (plain and percent-encoded) replaced by ***."""
    password = url.password
    if not password:
        return text
    for form in {
        str(password),
        urllib.parse.quote(str(password), safe=""),
        urllib.parse.quote(str(password)),
    }:
        if form:
            text = text.replace(form, "***")
    return text


# -- Arrow out ------------------------------------------------------------------------------


def _to_float(values: Sequence[Any]) -> list[float | None]:
    return [None if v is None else float(v) for v in values]


def _to_str(values: Sequence[Any]) -> list[str | None]:
    return [None if v is None else str(v) for v in values]


#: PostgreSQL type OID → (Arrow type, conversion of the driver's values or None)
_ARROW: dict[int, tuple[pa.DataType, Callable[[Sequence[Any]], Sequence[Any]] | None]] = {
    16: (pa.bool_(), None),
    17: (pa.binary(), None),
    18: (pa.string(), None),
    19: (pa.string(), None),
    20: (pa.int64(), None),
    21: (pa.int16(), None),
    23: (pa.int32(), None),
    25: (pa.string(), None),
    26: (pa.int64(), None),
    700: (pa.float32(), None),
    701: (pa.float64(), None),
    1042: (pa.string(), None),
    1043: (pa.string(), None),
    1082: (pa.date32(), None),
    1083: (pa.time64("us"), None),
    1114: (pa.timestamp("us"), None),
    1184: (pa.timestamp("us", tz="UTC"), None),
    1700: (pa.float64(), _to_float),  # numeric: sums and averages of integers
    2950: (pa.string(), _to_str),  # uuid
    1000: (pa.list_(pa.bool_()), None),
    1005: (pa.list_(pa.int16()), None),
    1007: (pa.list_(pa.int32()), None),
    1009: (pa.list_(pa.string()), None),
    1015: (pa.list_(pa.string()), None),
    1016: (pa.list_(pa.int64()), None),
    1021: (pa.list_(pa.float32()), None),
    1022: (pa.list_(pa.float64()), None),
}


def _column(values: Sequence[Any], oid: int) -> pa.Array:
    arrow_type, convert = _ARROW.get(oid, (None, None))
    if convert is not None:
        values = convert(values)
    return pa.array(values, type=arrow_type)


def _schema(description: Sequence[Any]) -> pa.Schema:
    return pa.schema([(d.name, _ARROW.get(d.type_code, (pa.null(), None))[0]) for d in description])


def _batch(rows: Sequence[Sequence[Any]], description: Sequence[Any]) -> pa.RecordBatch:
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in description]
    arrays = [_column(values, d.type_code) for values, d in zip(columns, description, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, names=[d.name for d in description])


def _compiled(conn: sa.Connection, sql: str, params: Mapping[str, Any] | None) -> tuple[str, Any]:
    """The statement in psycopg's placeholder style with its parameters, as SQLAlchemy binds
    `:name` parameters (and escapes a literal %)."""
    compiled = sa.text(sql).compile(dialect=conn.dialect)
    return compiled.string, compiled.construct_params(dict(params or {}))


def read_arrow(conn: sa.Connection, sql: str, params: Mapping[str, Any] | None) -> pa.Table:
    """Query → Arrow table over the connection's psycopg connection (its transaction)."""
    statement, values = _compiled(conn, sql, params)
    with conn.connection.driver_connection.cursor(binary=True) as cursor:
        cursor.execute(statement, values)
        description = cursor.description or []
        batch = _batch(cursor.fetchall(), description)
    return pa.Table.from_batches([batch])


def stream_arrow(
    conn: sa.Connection, sql: str, batch_size: int, params: Mapping[str, Any] | None
) -> Iterator[pa.RecordBatch]:
    """Query → record batches of at most batch_size rows from a server-side cursor."""
    statement, values = _compiled(conn, sql, params)
    raw = conn.connection.driver_connection
    with raw.cursor(name=f"jm_stream_{next(_CURSORS)}", binary=True) as cursor:
        cursor.itersize = batch_size
        cursor.execute(statement, values)
        description = cursor.description or []
        empty = True
        while rows := cursor.fetchmany(batch_size):
            empty = False
            yield _batch(rows, description)
        if empty:
            yield pa.RecordBatch.from_pylist([], schema=_schema(description))


# -- Arrow in -------------------------------------------------------------------------------

_STRINGS = {18, 19, 25, 1042, 1043}
_INTEGERS = {20, 21, 23}
_FLOATS = {700, 701}


def _binary_fits(arrow_type: pa.DataType, oid: int) -> bool:
    """Whether psycopg's binary dumper for column type `oid` takes this Arrow type's values."""
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return oid in _STRINGS
    if pa.types.is_integer(arrow_type):
        return oid in _INTEGERS | _FLOATS
    if pa.types.is_floating(arrow_type):
        return oid in _FLOATS
    if pa.types.is_timestamp(arrow_type):
        return oid == (1184 if arrow_type.tz else 1114)
    checks = {
        pa.types.is_date32: 1082,
        pa.types.is_boolean: 16,
        pa.types.is_binary: 17,
        pa.types.is_large_binary: 17,
        pa.types.is_null: oid,
    }
    return any(check(arrow_type) and oid == wanted for check, wanted in checks.items())


def _python_columns(batch: pa.RecordBatch) -> list[list[Any]]:
    """The batch's columns as Python values (nanosecond timestamps cut to microseconds)."""
    columns = []
    for column in batch.columns:
        if pa.types.is_timestamp(column.type) and column.type.unit == "ns":
            column = pc.cast(column, pa.timestamp("us", column.type.tz), safe=False)
        columns.append(column.to_pylist())
    return columns


def append_arrow(conn: sa.Connection, table_name: str, data: pa.Table) -> None:
    """COPY the Arrow table into table_name (columns by name) in the connection's transaction."""
    cols = ", ".join(f'"{c}"' for c in data.column_names)
    with conn.connection.driver_connection.cursor() as cursor:
        cursor.execute(f"select {cols} from {table_name} where false")
        oids = [d.type_code for d in cursor.description or []]
        binary = all(_binary_fits(f.type, oid) for f, oid in zip(data.schema, oids, strict=True))
        mode = "binary" if binary else "text"
        with cursor.copy(f"copy {table_name} ({cols}) from stdin (format {mode})") as copy:
            if binary:
                copy.set_types(oids)
            for batch in data.to_batches(max_chunksize=65_536):
                for row in zip(*_python_columns(batch), strict=True):
                    copy.write_row(row)
