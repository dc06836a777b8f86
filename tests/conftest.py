"""Shared test setup: the graph delivers to the file destination unless a test says otherwise.

The shipped agents route to `sendgrid`, `twilio` and `fcm` (destinations.yml: the real vendors,
secrets from the environment). Tests that materialize the whole graph without emulators use
the same names in shadow mode: every destination writes JSON lines under the outbox.
"""

from __future__ import annotations

import os

import pytest

from journeyman.connectors.catalog import (
    CATALOG_ENV,
    PROJECT_CATALOG,
    load_catalog,
    shadow_catalog,
    write_catalog,
)
from journeyman.orchestration.project import prepare_manifest


@pytest.fixture(autouse=True, scope="session")
def shadow_destinations(tmp_path_factory):
    """JOURNEYMAN_DESTINATIONS → the project's destination names, each the file destination."""
    if os.environ.get(CATALOG_ENV):
        yield os.environ[CATALOG_ENV]
        return
    path = tmp_path_factory.mktemp("catalog") / "destinations.yml"
    write_catalog(path, shadow_catalog(load_catalog(PROJECT_CATALOG)))
    mp = pytest.MonkeyPatch()
    mp.setenv(CATALOG_ENV, str(path))
    try:
        yield path
    finally:
        mp.undo()


@pytest.fixture(scope="session")
def insights_world(tmp_path_factory):
    """A small warehouse decided, delivered and built by dbt over a few days (insights_world.py),
    shared by the tests of the marts, the report, the inspector and off-policy evaluation."""
    from insights_world import build
    from test_dbt_project import run_dbt

    return build(tmp_path_factory.mktemp("insights"), run_dbt)


#: the slowest modules (minutes each: whole demos, several dbt builds, two runs compared),
#: started first so that the workers finish together
_SLOW_FIRST = (
    "test_shadow_mode.py",
    "test_demo_emulators.py",
    "test_dbt_project.py",
    "test_cli.py",
    "test_backend_loop.py",
    "test_learning_warehouse.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On pytest-xdist workers (pyproject's addopts: `-n auto --dist loadfile`, each module on
    one worker so its module fixtures are built once), the slowest modules first."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        slow = {name: rank for rank, name in enumerate(_SLOW_FIRST)}
        items.sort(key=lambda item: slow.get(item.path.name, len(slow)))  # stable: file order


def pytest_configure(config: pytest.Config) -> None:
    """Register the `postgres` marker, and parse the dbt project before any test loads the
    Dagster definitions (which, as in a deployment, only read the prepared manifest)."""
    prepare_manifest()
    config.addinivalue_line(
        "markers",
        "postgres: runs on the PostgreSQL test server (JOURNEYMAN_TEST_POSTGRES_URL; "
        "tests/backends.py); skipped without it",
    )
