"""The dbt project as Dagster sees it, with its manifest kept fresh."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from dagster_dbt import DbtProject

from journeyman import settings

# The dbt profile and every process reading the warehouse agree on one warehouse: an absolute
# DuckDB path, or a PostgreSQL URL whose connection fields the profile's `postgres` target reads.
os.environ.setdefault(settings.WAREHOUSE_ENV, settings.warehouse_setting())
settings.export_dbt_environment()

dbt_project = DbtProject(
    project_dir=settings.DBT_PROJECT_DIR,
    profiles_dir=settings.DBT_PROJECT_DIR,
)


class DbtUnavailableError(RuntimeError):
    """dbt cannot be run here; the message says how to fix it."""


def dbt_executable() -> str:
    """Path of the `dbt` executable, preferring the one next to this Python."""
    beside = Path(os.sys.executable).parent / "dbt"
    found = str(beside) if beside.exists() else shutil.which("dbt")
    if not found:
        raise DbtUnavailableError(
            "The `dbt` executable was not found. Install journeyman into this environment "
            "(`pip install -e .`, which installs dbt-core and dbt-duckdb) and run from it, "
            "or put dbt on PATH."
        )
    return found


def _newest_source_mtime(root: Path) -> float:
    newest = 0.0
    for folder in ("models", "seeds", "macros", "tests"):
        for path in (root / folder).rglob("*"):
            if path.is_file():
                newest = max(newest, path.stat().st_mtime)
    for name in ("dbt_project.yml", "profiles.yml"):
        if (root / name).exists():
            newest = max(newest, (root / name).stat().st_mtime)
    return newest


def ensure_manifest() -> Path:
    """Parse the dbt project when its manifest is missing or older than its sources."""
    manifest = dbt_project.manifest_path
    root = dbt_project.project_dir
    if manifest.exists() and manifest.stat().st_mtime >= _newest_source_mtime(root):
        return manifest
    result = subprocess.run(
        [
            dbt_executable(),
            "parse",
            "--quiet",
            "--project-dir",
            str(root),
            "--profiles-dir",
            str(root),
            "--target-path",
            str(dbt_project.target_path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise DbtUnavailableError(f"`dbt parse` failed:\n{result.stdout}{result.stderr}")
    return manifest
