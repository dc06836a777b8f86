"""The small warehouse interface every layer reads and writes through.

SQL goes through SQLAlchemy, so a DuckDB file (the default) and a PostgreSQL database (a
`postgresql+psycopg://` URL in JOURNEYMAN_WAREHOUSE) are used alike; bulk data moves as Arrow.
On DuckDB, Arrow reads and writes use the driver's zero-copy path; on PostgreSQL, psycopg's
binary transfer and COPY (journeyman/postgres.py).
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from journeyman import postgres, settings


class WarehouseError(RuntimeError):
    """The warehouse cannot be opened or used; the message says what to do."""


_LOCK_PATTERNS = ("Could not set lock", "Conflicting lock", "database is locked")
LOCK_WAIT_ENV = "JOURNEYMAN_LOCK_WAIT_S"
#: how long opening a warehouse another process holds is retried (DuckDB: one writer process)
DEFAULT_LOCK_WAIT_S = 120.0
MEMORY_LIMIT_ENV = "JOURNEYMAN_DUCKDB_MEMORY_LIMIT"
DEFAULT_DUCKDB_MEMORY_LIMIT = "2GB"


def _is_lock(error: Exception) -> bool:
    return any(p in str(error) for p in _LOCK_PATTERNS)


def lock_wait_s() -> float:
    """JOURNEYMAN_LOCK_WAIT_S, else DEFAULT_LOCK_WAIT_S (0: fail at once)."""
    raw = os.environ.get(LOCK_WAIT_ENV, "").strip()
    try:
        return max(0.0, float(raw)) if raw else DEFAULT_LOCK_WAIT_S
    except ValueError:
        raise WarehouseError(f"{LOCK_WAIT_ENV} must be a number of seconds; got {raw!r}") from None


def duckdb_memory_limit() -> str:
    """JOURNEYMAN_DUCKDB_MEMORY_LIMIT, else DEFAULT_DUCKDB_MEMORY_LIMIT: DuckDB's memory limit
    in journeyman's processes and in dbt's (its own default, 80 % of the machine's RAM, let
    one 100,000-customer decide step hold 3 GB, and the dbt build 14 GB); past it DuckDB
    spills to <warehouse>.tmp. At 1GB the 100,000-customer build ran out of memory (some
    joins cannot spill), hence 2GB."""
    raw = os.environ.get(MEMORY_LIMIT_ENV, "").strip() or DEFAULT_DUCKDB_MEMORY_LIMIT
    if not re.fullmatch(r"\d+(\.\d+)?\s*([KMGT]i?B)", raw, flags=re.IGNORECASE):
        raise WarehouseError(
            f"{MEMORY_LIMIT_ENV} must be an amount of memory such as 1GB or 512MB; got {raw!r}"
        )
    return raw


def _explain(path: Path, error: Exception) -> WarehouseError:
    text = str(error)
    if _is_lock(error):
        return WarehouseError(
            f"The warehouse file {path} is locked by another process (DuckDB allows one writer "
            "at a time). Stop the other journeyman, dbt or Dagster process using it, or point "
            "JOURNEYMAN_WAREHOUSE at another file."
        )
    if "Permission denied" in text or "Read-only file system" in text:
        return WarehouseError(
            f"The warehouse file {path} cannot be written ({text.splitlines()[0]}). "
            "Make the folder writable or set JOURNEYMAN_WAREHOUSE to a writable path."
        )
    return WarehouseError(f"Cannot open the warehouse {path}: {text.splitlines()[0]}")


def _explain_server(url: sa.URL, error: Exception) -> WarehouseError:
    return WarehouseError(postgres.connection_problem(url, error))


class Warehouse:
    """A DuckDB file or a PostgreSQL database, opened briefly for each unit of work.

    `location` is a DuckDB file path or a SQLAlchemy URL `postgresql+psycopg://user@host/db`
    (the password from the URL, PGPASSWORD or ~/.pgpass; never shown: `location` masks it)."""

    def __init__(
        self, location: str | Path, *, read_only: bool = False, lock_wait_s: float | None = None
    ) -> None:
        self._server: sa.URL | None = None
        self._path: Path | None = None
        if settings.is_url(location):
            url = settings.parse_warehouse_url(str(location))
            if url.drivername == "duckdb":
                self._path = Path(url.database or "").expanduser().absolute()
            else:
                self._server = url
        else:
            self._path = Path(location).expanduser().absolute()
        self.read_only = read_only
        #: seconds to keep retrying while another process holds the file (None: the env's)
        self.lock_wait_s = lock_wait_s
        self._engine: sa.Engine | None = None

    @property
    def backend(self) -> str:
        """`duckdb` or `postgresql`."""
        return "duckdb" if self._server is None else "postgresql"

    @property
    def path(self) -> Path:
        """The DuckDB file; a server warehouse has none (WarehouseError says so)."""
        if self._path is None:
            raise WarehouseError(
                f"the warehouse {self.location} ({settings.WAREHOUSE_ENV}) is a PostgreSQL "
                "server, and this step works on a DuckDB warehouse file only; set "
                f"{settings.WAREHOUSE_ENV} to a file path to use it"
            )
        return self._path

    @property
    def location(self) -> str:
        """The file path, or the URL with its password masked: safe to print."""
        if self._server is None:
            return str(self._path)
        return self._server.render_as_string(hide_password=True)

    @property
    def url(self) -> str:
        """The SQLAlchemy URL, its password masked."""
        return f"duckdb:///{self._path}" if self._server is None else self.location

    @classmethod
    def configured(cls, next_step: str, *, read_only: bool = False) -> Warehouse:
        """The warehouse JOURNEYMAN_WAREHOUSE names (file or URL), for a command that reads
        what is already there: WarehouseError naming it and `next_step` when there is none."""
        warehouse = cls(settings.warehouse_setting(), read_only=read_only)
        if not warehouse.exists():
            raise WarehouseError(f"no warehouse at {warehouse.location}; {next_step}")
        return warehouse

    def exists(self) -> bool:
        """Whether the warehouse is there: the file exists, or the server accepts a login (a
        server that cannot be reached raises WarehouseError, which says what to fix)."""
        if self._path is not None:
            return self._path.exists()
        with self.connect():
            return True

    def check_writable(self) -> None:
        """Raise WarehouseError unless the warehouse can be opened for writing right now."""
        if self._path is not None:
            try:
                self._path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise _explain(self._path, exc) from exc
        with self.connect():
            pass

    def engine(self) -> sa.Engine:
        if self._engine is None:
            if self._server is None:
                config = {"memory_limit": duckdb_memory_limit()}
                self._engine = sa.create_engine(
                    self.url,
                    connect_args={"read_only": self.read_only, "config": config},
                    poolclass=sa.pool.NullPool,  # connections close promptly: one writer per file
                )
            else:
                self._engine = postgres.engine(self._server, self.read_only)
        return self._engine

    @contextlib.contextmanager
    def connect(self) -> Iterator[sa.Connection]:
        """A transaction on a short-lived connection; commits on success, rolls back on error."""
        if not self.read_only and self._path is not None:
            try:
                self._path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise _explain(self._path, exc) from exc
        conn = self.open()
        try:
            with conn.begin():
                yield conn
        finally:
            conn.close()

    def open(self) -> sa.Connection:
        """A new connection (the caller closes it). While another process holds a DuckDB file,
        it is retried with jittered backoff for `lock_wait_s` (the writer holding it is usually
        a short transaction: the event intake, a dbt model, another step)."""
        if self._server is not None:
            try:
                return self.engine().connect()
            except Exception as exc:
                raise _explain_server(self._server, exc) from None
        wait = lock_wait_s() if self.lock_wait_s is None else self.lock_wait_s
        deadline = time.monotonic() + wait
        delay = 0.02
        while True:
            try:
                return self.engine().connect()
            except Exception as exc:  # duckdb raises IOException / PermissionError variants
                if not _is_lock(exc) or time.monotonic() + delay > deadline:
                    raise _explain(self.path, exc) from exc
            time.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, 0.5)

    # -- convenience ---------------------------------------------------------------------

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run one or more ';'-separated statements in a transaction."""
        with self.connect() as conn:
            for statement in split_statements(sql):
                conn.execute(sa.text(statement), dict(params or {}))

    def scalar(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        with self.connect() as conn:
            return conn.execute(sa.text(sql), dict(params or {})).scalar()

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[sa.Row]:
        with self.connect() as conn:
            return list(conn.execute(sa.text(sql), dict(params or {})))

    def table_exists(self, schema: str, name: str) -> bool:
        with self.connect() as conn:
            return sa.inspect(conn).has_table(name, schema=schema)

    def read_arrow(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        """Run a query and return the whole result as an Arrow table."""
        with self.connect() as conn:
            return read_arrow(conn, sql, params)

    def append_arrow(self, table_name: str, data: pa.Table) -> None:
        """Append an Arrow table to an existing warehouse table (columns matched by name)."""
        with self.connect() as conn:
            append_arrow(conn, table_name, data)


def split_statements(sql: str) -> list[str]:
    """Split a script on ';' line ends (no ';' inside literals in our DDL)."""
    return [s.strip() for s in re.split(r";\s*(?:\n|$)", sql) if s.strip()]


def _driver(conn: sa.Connection) -> Any | None:
    raw = conn.connection.driver_connection
    return raw if hasattr(raw, "register") and hasattr(raw, "sql") else None


def _is_postgres(conn: sa.Connection) -> bool:
    return conn.dialect.name == "postgresql"


def read_arrow(conn: sa.Connection, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
    """Query → Arrow table on an open connection (DuckDB fast path, PostgreSQL binary fetch,
    generic fallback)."""
    raw = _driver(conn)
    if raw is not None:
        bound = _positional(conn, sql, params)
        if bound is not None:
            with _as_dbapi_error(sql, params):
                table = raw.sql(bound[0], params=bound[1]).to_arrow_table()
            return _without_decimals(table) if params else table
    if _is_postgres(conn):
        return postgres.read_arrow(conn, sql, params)
    result = conn.execute(sa.text(sql), dict(params or {}))
    names = list(result.keys())
    rows = result.fetchall()
    return pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)})


def stream_arrow(
    conn: sa.Connection,
    sql: str,
    batch_size: int,
    params: Mapping[str, Any] | None = None,
) -> Iterator[pa.RecordBatch]:
    """Query → Arrow record batches of at most batch_size rows, memory independent of size.

    `params` binds SQLAlchemy `:name` parameters exactly as `conn.execute(sa.text(sql), params)`
    would: SQLAlchemy compiles them to the driver's placeholders (DuckDB: `$1`, `$2`, …)."""
    raw = _driver(conn)
    if raw is None and _is_postgres(conn):
        yield from postgres.stream_arrow(conn, sql, batch_size, params)
        return
    if raw is None:
        yield from read_arrow(conn, sql, params).to_batches(batch_size)
        return
    bound = _positional(conn, sql, params)
    if bound is None:  # a named placeholder style: bind through SQLAlchemy instead
        yield from read_arrow(conn, sql, params).to_batches(batch_size)
        return
    with _as_dbapi_error(sql, params):
        yield from raw.sql(bound[0], params=bound[1]).to_arrow_reader(batch_size)


@contextlib.contextmanager
def _as_dbapi_error(sql: str, params: Mapping[str, Any] | None) -> Iterator[None]:
    """DuckDB's own errors on the Arrow path raised as SQLAlchemy's DBAPIError, as the same
    query through SQLAlchemy would raise them (callers catch one kind of error)."""
    import duckdb

    try:
        yield
    except duckdb.Error as exc:
        raise sa.exc.DBAPIError(sql, dict(params or {}), exc) from exc


def _without_decimals(table: pa.Table) -> pa.Table:
    """DuckDB's decimal results (sums of integers are HUGEINT) as int64 when whole, else
    float64: the numbers a bound query gives on PostgreSQL (postgres.py) and through SQLAlchemy."""
    for i, field in enumerate(table.schema):
        if pa.types.is_decimal(field.type):
            to = pa.int64() if field.type.scale == 0 else pa.float64()
            table = table.set_column(i, field.name, table.column(i).cast(to, safe=False))
    return table


def _positional(
    conn: sa.Connection, sql: str, params: Mapping[str, Any] | None
) -> tuple[str, list[Any] | None] | None:
    """A query with SQLAlchemy `:name` parameters as the DuckDB driver takes it: the SQL with
    the dialect's positional placeholders and the values in their order (no parameters: the SQL
    as it is). None when the dialect's placeholders are not positional."""
    if not params:
        return sql, None
    compiled = sa.text(sql).compile(dialect=conn.dialect)
    if not compiled.positional:
        return None
    values = compiled.construct_params(dict(params))
    return compiled.string, [values[name] for name in compiled.positiontup or []]


@contextlib.contextmanager
def id_relation(
    conn: sa.Connection, ids: pa.Array | pa.ChunkedArray | list[str]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """A one-column relation `decision_id` holding `ids`, for a query on `conn` to join or
    filter on: (the SQL of a subquery, its parameters). DuckDB reads the Arrow array in place (a
    registered view); PostgreSQL gets one array parameter (`unnest`), so any number of ids binds
    as a single value (a parameter per id stops at the protocol's 65,535)."""
    array = ids if isinstance(ids, pa.Array | pa.ChunkedArray) else pa.array(ids, pa.string())
    raw = _driver(conn)
    if raw is None:
        yield (
            "select unnest(cast(:_jm_ids as varchar[])) as decision_id",
            {"_jm_ids": array.to_pylist()},
        )
        return
    view = f"_jm_ids_{id(array)}"
    raw.register(view, pa.table({"decision_id": array}))
    try:
        yield f"select decision_id from {view}", {}
    finally:
        raw.unregister(view)


def append_arrow(conn: sa.Connection, table_name: str, data: pa.Table) -> None:
    """Append an Arrow table to table_name on an open connection."""
    if data.num_rows == 0:
        return
    raw = _driver(conn)
    cols = ", ".join(f'"{c}"' for c in data.column_names)
    if raw is not None:
        view = f"_jm_append_{id(data)}"
        raw.register(view, data)
        try:
            raw.execute(f"insert into {table_name} ({cols}) select {cols} from {view}")
        finally:
            raw.unregister(view)
        return
    if _is_postgres(conn):
        postgres.append_arrow(conn, table_name, data)
        return
    placeholders = ", ".join(f":{c}" for c in data.column_names)
    conn.execute(
        sa.text(f"insert into {table_name} ({cols}) values ({placeholders})"), data.to_pylist()
    )
