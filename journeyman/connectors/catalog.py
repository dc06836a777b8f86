"""The destinations catalog (`destinations.yml`): each destination's kind and non-secret
settings, validated on load; secrets never live in it (they come from environment variables)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from journeyman import settings
from journeyman.connectors.registry import KINDS, SECRET_ENV

CATALOG_ENV = "JOURNEYMAN_DESTINATIONS"


class DestinationConfigError(ValueError):
    """The destinations catalog is invalid; the message names file, destination and fix."""


PROJECT_CATALOG = settings.PROJECT_ROOT / "destinations.yml"


def catalog_path() -> Path:
    """JOURNEYMAN_DESTINATIONS, else destinations.yml in the project."""
    return Path(os.environ.get(CATALOG_ENV) or PROJECT_CATALOG)


def load_catalog(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """name → settings (with `kind`), validated: known kind, no secrets in the file."""
    path = path or catalog_path()
    if not path.exists():
        return {"file": {"kind": "file"}}
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise DestinationConfigError(f"{path}: expected a mapping of destination names")
    for name, entry in data.items():
        kind = (entry or {}).get("kind")
        if kind not in KINDS:
            raise DestinationConfigError(
                f"{path}: destination `{name}` field `kind` is {kind!r}; use one of {sorted(KINDS)}"
            )
        secrets = sorted(set(entry) & set(SECRET_ENV[kind]))
        if secrets:
            raise DestinationConfigError(
                f"{path}: destination `{name}` has secret field(s) {secrets} in the file; remove "
                f"them and set the environment variable(s) {[SECRET_ENV[kind][s] for s in secrets]}"
            )
        _check_concurrency(path, name, entry.get("concurrency"))
    return data


#: the most requests in flight a sync may hold (Twilio's per-account limit is 100)
MAX_CONCURRENCY = 64


def _check_concurrency(path: Path, name: str, value: Any) -> None:
    """`concurrency`, when set, is a whole number of requests in flight, 1..MAX_CONCURRENCY."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CONCURRENCY:
        raise DestinationConfigError(
            f"{path}: destination `{name}` field `concurrency` is {value!r}; use a whole number "
            f"of requests in flight from 1 to {MAX_CONCURRENCY}, or leave it out for the "
            "destination's default"
        )


def shadow_catalog(catalog: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The same destination names, each the `file` destination (shadow mode: nothing is sent)."""
    return {name: {"kind": "file"} for name in catalog}


def write_catalog(path: Path, catalog: dict[str, dict[str, Any]]) -> Path:
    """Write a catalog (non-secret settings only) as YAML; returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(catalog, sort_keys=True))
    return path
