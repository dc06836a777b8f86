"""The dbt project as Dagster sees it, and how its manifest is prepared.

As in Dagster's own examples, nothing runs at import but `prepare_if_dev()`, which parses the
project under `dagster dev` only (`journeyman dev` gives it the warehouse's dbt profile
variables); every other entry point (`journeyman run`, `demo`, `validate`, the tests,
the benchmarks) calls `prepare_manifest()` before it loads the definitions, and a deployment
runs `journeyman prepare` (or `dagster-dbt project prepare-and-package`) at build time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from dagster_dbt import DbtProject

from journeyman import settings


class DbtUnavailableError(RuntimeError):
    """dbt cannot be run here; the message says how to fix it."""


def dbt_executable() -> str:
    """Path of the `dbt` executable, preferring the one next to this Python."""
    beside = Path(sys.executable).parent / "dbt"
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


dbt_project = DbtProject(
    project_dir=settings.DBT_PROJECT_DIR,
    profiles_dir=settings.DBT_PROJECT_DIR,
)
# under `dagster dev` only (a no-op elsewhere): re-parse the project on every code reload
dbt_project.prepare_if_dev()


def prepare_manifest() -> Path:
    """The project's manifest, parsed with `dbt parse` first when it is missing or older than any
    of the project's files. The dbt process gets the warehouse's profile variables explicitly;
    this process's environment is left as it is."""
    manifest = dbt_project.manifest_path
    root = Path(dbt_project.project_dir)
    if manifest.exists() and manifest.stat().st_mtime >= _newest_source_mtime(root):
        return manifest
    command = [dbt_executable(), "parse", "--quiet", "--project-dir", str(root)]
    command += ["--profiles-dir", str(root), "--target-path", str(dbt_project.target_path)]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        env=settings.dbt_process_environment(os.environ),
    )
    if result.returncode != 0:
        raise DbtUnavailableError(f"`dbt parse` failed:\n{result.stdout}{result.stderr}")
    return manifest


def manifest_or_fail() -> Path:
    """The prepared manifest the dbt assets load from; a clear error when there is none."""
    manifest = dbt_project.manifest_path
    if not manifest.exists():
        raise DbtUnavailableError(
            f"the dbt manifest {manifest} does not exist: run `journeyman prepare` (or "
            "`dagster dev`, which prepares it) before loading the definitions"
        )
    return manifest
