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
THREADS_ENV = "JOURNEYMAN_THREADS"
MAX_DEFAULT_THREADS = 8
#: set by simulations (the demo, benchmarks): days are simulated, not lived, so a sync's
#: dispatch is on time by construction and send windows are not enforced against the wall clock
SIMULATION_ENV = "JOURNEYMAN_SIMULATION"


def warehouse_path() -> Path:
    """The DuckDB file named by JOURNEYMAN_WAREHOUSE, else .journeyman/warehouse.duckdb here."""
    return Path(os.environ.get(WAREHOUSE_ENV) or DEFAULT_WAREHOUSE).expanduser().absolute()


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
