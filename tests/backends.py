"""The two warehouse backends of the test matrix: a DuckDB file and a PostgreSQL database.

The PostgreSQL half needs a server: JOURNEYMAN_TEST_POSTGRES_URL, a
`postgresql+psycopg://user:password@host:port/db` of a role that may create databases
(`.ci/run` starts one; locally: `eval "$(python tests/postgres_server.py start)"`). Without it
those tests skip. Each test warehouse on it is a new database, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from journeyman.warehouse import Warehouse

URL_ENV = "JOURNEYMAN_TEST_POSTGRES_URL"
BACKENDS = ("duckdb", "postgres")
SKIP_REASON = (
    f"no PostgreSQL server for the test matrix: set {URL_ENV} "
    '(`eval "$(python tests/postgres_server.py start)"`; .ci/run always does)'
)


def server_url() -> str | None:
    """The test server's URL, or None when the Postgres half of the matrix is not set up."""
    return os.environ.get(URL_ENV) or None


def backend_params() -> list:
    """pytest params for a fixture that runs once per backend (postgres: marked, skips
    without a server)."""
    return [
        pytest.param("duckdb", id="duckdb"),
        pytest.param(
            "postgres",
            id="postgres",
            marks=[
                pytest.mark.postgres,
                pytest.mark.skipif(server_url() is None, reason=SKIP_REASON),
            ],
        ),
    ]


def _admin() -> sa.Engine:
    url = server_url()
    if url is None:
        pytest.skip(SKIP_REASON)
    return sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


def database_url(name: str) -> str:
    """The test server's URL with another database name (password kept)."""
    url = sa.make_url(server_url() or "")
    return url.set(database=name).render_as_string(hide_password=False)


@contextmanager
def postgres_database(hint: str = "t") -> Iterator[str]:
    """A new, empty database on the test server; its URL. Dropped on exit."""
    name = f"jm_{hint}_{uuid.uuid4().hex[:10]}".lower()
    engine = _admin()
    with engine.connect() as conn:
        conn.execute(sa.text(f'create database "{name}"'))
    try:
        yield database_url(name)
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f'drop database if exists "{name}" with (force)'))
        engine.dispose()


@contextmanager
def new_warehouse(backend: str, folder: Path, hint: str = "t") -> Iterator[str]:
    """A fresh warehouse of `backend`: a DuckDB file path in `folder`, or a PostgreSQL URL."""
    if backend == "duckdb":
        yield str(folder / "warehouse.duckdb")
        return
    with postgres_database(hint) as url:
        yield url


def rows(location: str | Path, sql: str) -> list[dict]:
    """Query rows as dicts (read-only), on either backend."""
    return [dict(r._mapping) for r in Warehouse(location, read_only=True).rows(sql)]
