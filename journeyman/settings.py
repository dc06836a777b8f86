"""Where journeyman finds its project files and warehouse."""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Mapping
from pathlib import Path

import sqlalchemy as sa

WAREHOUSE_ENV = "JOURNEYMAN_WAREHOUSE"
DEFAULT_WAREHOUSE = Path(".journeyman") / "warehouse.duckdb"
#: the SQLAlchemy driver journeyman talks to PostgreSQL with (psycopg 3)
POSTGRES_DRIVER = "postgresql+psycopg"
#: the variables the dbt profile's postgres target reads, set from the warehouse URL
DBT_POSTGRES_ENV = {
    "host": "JOURNEYMAN_PG_HOST",
    "port": "JOURNEYMAN_PG_PORT",
    "user": "JOURNEYMAN_PG_USER",
    "dbname": "JOURNEYMAN_PG_DBNAME",
    "sslmode": "JOURNEYMAN_PG_SSLMODE",
    # dbt scrubs the values of DBT_ENV_SECRET_* variables from its logs
    "password": "DBT_ENV_SECRET_JOURNEYMAN_PG_PASSWORD",
}
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
AGENTS_DIR = PROJECT_ROOT / "agents"
AGENTS_ENV = "JOURNEYMAN_AGENTS"
#: the logical date dbt builds as of (macros/as_of.sql), when no --vars run_date is given
RUN_DATE_ENV = "JOURNEYMAN_RUN_DATE"
THREADS_ENV = "JOURNEYMAN_THREADS"
MAX_DEFAULT_THREADS = 8
#: set by simulations (the demo, benchmarks): days are simulated, not lived, so a sync's
#: dispatch is on time by construction and send windows are not enforced against the wall clock
SIMULATION_ENV = "JOURNEYMAN_SIMULATION"


class WarehouseSettingError(ValueError):
    """JOURNEYMAN_WAREHOUSE cannot be used as asked; the message says what to set."""


def is_url(value: str | Path) -> bool:
    """Whether a warehouse setting is a URL (`scheme://…`) rather than a DuckDB file path."""
    return isinstance(value, str) and bool(_URL.match(value.strip()))


def parse_warehouse_url(value: str) -> sa.URL:
    """A PostgreSQL warehouse URL as SQLAlchemy's URL, on the psycopg 3 driver
    (`postgres://` and `postgresql://` are read as `postgresql+psycopg://`). The error never
    repeats the URL, which may hold a password."""
    try:
        url = sa.make_url(value.strip())
    except Exception:
        raise WarehouseSettingError(
            f"{WAREHOUSE_ENV} is not a valid URL; use a DuckDB file path or "
            f"{POSTGRES_DRIVER}://user@host:5432/database"
        ) from None
    backend, _, driver = url.drivername.partition("+")
    if backend in ("postgres", "postgresql") and driver in ("", "psycopg"):
        url = url.set(drivername=POSTGRES_DRIVER)
    elif backend == "duckdb":
        return url
    else:
        raise WarehouseSettingError(
            f"{WAREHOUSE_ENV} names an unsupported warehouse ({url.drivername}://…); use a "
            f"DuckDB file path or {POSTGRES_DRIVER}://user@host:5432/database"
        )
    if not url.database:
        raise WarehouseSettingError(
            f"{WAREHOUSE_ENV} names no database: {url.render_as_string(hide_password=True)}; "
            f"add it, as in {POSTGRES_DRIVER}://user@host:5432/database"
        )
    return url


def masked(value: str | Path) -> str:
    """A warehouse setting safe to print: a URL with its password replaced by ***."""
    if not is_url(value):
        return str(value)
    try:
        return sa.make_url(str(value).strip()).render_as_string(hide_password=True)
    except Exception:
        return f"<a {WAREHOUSE_ENV} URL that cannot be parsed>"


def warehouse_setting() -> str:
    """JOURNEYMAN_WAREHOUSE as given when it is a URL, else the DuckDB file's absolute path
    (default .journeyman/warehouse.duckdb under the working directory)."""
    return resolve_warehouse(os.environ.get(WAREHOUSE_ENV))


def resolve_warehouse(value: str | None) -> str:
    """A JOURNEYMAN_WAREHOUSE value (None or empty: the default) as warehouse_setting says."""
    raw = (value or "").strip()
    if is_url(raw):
        url = parse_warehouse_url(raw)
        if url.drivername == "duckdb":
            return str(Path(url.database or DEFAULT_WAREHOUSE).expanduser().absolute())
        return raw
    return str(Path(raw or DEFAULT_WAREHOUSE).expanduser().absolute())


def warehouse_path() -> Path:
    """The DuckDB file named by JOURNEYMAN_WAREHOUSE, else .journeyman/warehouse.duckdb here.
    Raises WarehouseSettingError when the setting is a server URL (use warehouse_setting)."""
    setting = warehouse_setting()
    if is_url(setting):
        raise WarehouseSettingError(
            f"{WAREHOUSE_ENV} is a server URL ({masked(setting)}), and this command works on a "
            "DuckDB warehouse file only; set it to a file path to use it"
        )
    return Path(setting)


def data_dir() -> Path:
    """The local folder for what journeyman keeps beside the warehouse (the file outbox, the
    Dagster instance of `journeyman run`): the DuckDB file's folder, or `.journeyman` under the
    working directory for a server warehouse."""
    setting = warehouse_setting()
    return DEFAULT_WAREHOUSE.parent.absolute() if is_url(setting) else Path(setting).parent


def dbt_environment(setting: str | None = None) -> dict[str, str]:
    """The environment variables the dbt profile reads for a warehouse setting (default: the
    current one): JOURNEYMAN_WAREHOUSE itself and, for a PostgreSQL URL, its connection fields.
    A password given in the URL goes to a DBT_ENV_SECRET_ variable (dbt masks those); without
    one, libpq reads PGPASSWORD or ~/.pgpass."""
    setting = warehouse_setting() if setting is None else setting
    env = {WAREHOUSE_ENV: setting}
    if not is_url(setting):
        return env
    url = parse_warehouse_url(setting)
    host = url.host or str(url.query.get("host") or "") or os.environ.get("PGHOST", "localhost")
    fields = {
        "host": host,
        "port": str(url.port or os.environ.get("PGPORT") or 5432),
        "user": url.username or os.environ.get("PGUSER") or getpass.getuser(),
        "dbname": url.database or "",
        "sslmode": str(url.query.get("sslmode") or os.environ.get("PGSSLMODE") or "prefer"),
        "password": url.password,  # None: the profile falls back to PGPASSWORD, ~/.pgpass
    }
    env.update({DBT_POSTGRES_ENV[k]: v for k, v in fields.items() if v is not None})
    return env


def dbt_process_environment(base: Mapping[str, str], setting: str | None = None) -> dict[str, str]:
    """`base` (e.g. os.environ) with the dbt profile's variables for `setting` in place of any
    it held before."""
    env = {k: v for k, v in base.items() if k not in DBT_POSTGRES_ENV.values()}
    env.update(dbt_environment(setting))
    return env


def export_dbt_environment(setting: str | None = None) -> None:
    """Put dbt_environment(setting) into this process's environment, for the dbt processes it
    starts (dagster-dbt passes os.environ on)."""
    for name in DBT_POSTGRES_ENV.values():
        os.environ.pop(name, None)
    os.environ.update(dbt_environment(setting))


def agents_dir() -> Path:
    """The agent files folder: JOURNEYMAN_AGENTS, else the project's agents/."""
    return Path(os.environ.get(AGENTS_ENV) or AGENTS_DIR).expanduser().absolute()


def decide_threads() -> int:
    """Threads a policy may score with: JOURNEYMAN_THREADS, else the cores this process may use
    (at most 8). Decisions do not depend on it."""
    raw = os.environ.get(THREADS_ENV, "").strip()
    if raw:
        if not raw.isdigit() or int(raw) < 1:
            raise ValueError(f"{THREADS_ENV} must be a positive whole number; got {raw!r}")
        return int(raw)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_DEFAULT_THREADS))


def simulation() -> bool:
    """Whether this process simulates days (JOURNEYMAN_SIMULATION=1, set by the demo)."""
    return os.environ.get(SIMULATION_ENV, "").strip() in ("1", "true", "yes")
