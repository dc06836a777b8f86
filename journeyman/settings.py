"""Where journeyman finds its project files and warehouse."""

from __future__ import annotations

import os
from pathlib import Path

WAREHOUSE_ENV = "JOURNEYMAN_WAREHOUSE"
DEFAULT_WAREHOUSE = Path(".journeyman") / "warehouse.duckdb"

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
AGENTS_DIR = PROJECT_ROOT / "agents"
AGENTS_ENV = "JOURNEYMAN_AGENTS"


def warehouse_path() -> Path:
    """The DuckDB file named by JOURNEYMAN_WAREHOUSE, else .journeyman/warehouse.duckdb here."""
    return Path(os.environ.get(WAREHOUSE_ENV) or DEFAULT_WAREHOUSE).expanduser().absolute()


def agents_dir() -> Path:
    """The agent files folder: JOURNEYMAN_AGENTS, else the project's agents/."""
    return Path(os.environ.get(AGENTS_ENV) or AGENTS_DIR).expanduser().absolute()
