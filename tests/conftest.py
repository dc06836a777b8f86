"""Shared fixtures: a temporary warehouse file wired through JOURNEYMAN_WAREHOUSE."""

from __future__ import annotations

from pathlib import Path

import pytest

from journeyman import settings

SHARED = settings.PROJECT_ROOT.parent / "shared"


@pytest.fixture
def warehouse_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point JOURNEYMAN_WAREHOUSE at a fresh file under tmp_path; return its path."""
    path = tmp_path / "wh" / "warehouse.duckdb"
    monkeypatch.setenv(settings.WAREHOUSE_ENV, str(path))
    return path
