"""Destinations as Dagster resources: the catalog (`destinations.yml`) names each destination's
kind and non-secret settings; secrets come from environment variables through `EnvVar`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dagster as dg
import yaml

from journeyman import settings
from journeyman.connectors.destination import Destination
from journeyman.connectors.registry import KINDS, SECRET_ENV, build_destination

CATALOG_ENV = "JOURNEYMAN_DESTINATIONS"
DEFAULT_FAILURE_SHARE = 0.05


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
    return data


def shadow_catalog(catalog: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The same destination names, each the `file` destination (shadow mode: nothing is sent)."""
    return {name: {"kind": "file"} for name in catalog}


def write_catalog(path: Path, catalog: dict[str, dict[str, Any]]) -> Path:
    """Write a catalog (non-secret settings only) as YAML; returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(catalog, sort_keys=True))
    return path


class DestinationResource(dg.ConfigurableResource):
    """One destination: its kind, non-secret settings, and secrets read from the environment."""

    name: str
    kind: str
    options: dict[str, Any] = {}
    secrets: dict[str, str] = {}  # setting → environment variable name (values never stored)
    outbox_dir: str = ""
    max_failure_share: float = DEFAULT_FAILURE_SHARE
    max_unknown: int = 0

    def build(self) -> Destination:
        values = dict(self.options)
        for setting, env in self.secrets.items():
            values[setting] = dg.EnvVar(env).get_value()
            if not values[setting]:  # unset, or set empty (e.g. a blank line in a .env file)
                raise dg.Failure(
                    f"destination `{self.name}` needs the environment variable {env}; set it "
                    "(it is read at run time and never stored)"
                )
        if self.kind == "file":
            values.setdefault("root", self.outbox_dir)
        return build_destination(self.name, self.kind, values)


def shadow_resource(name: str = "shadow") -> DestinationResource:
    """The file destination shadow decisions are logged to (`<outbox>/shadow/<day>.jsonl`)."""
    outbox = str(settings.data_dir() / "outbox")
    return DestinationResource(name=name, kind="file", outbox_dir=outbox)


def destination_resources(names: set[str]) -> dict[str, DestinationResource]:
    """Resource key `destination_<name>` for each destination the agents use."""
    catalog = load_catalog()
    unknown = sorted(names - set(catalog))
    if unknown:
        raise DestinationConfigError(
            f"agents deliver to {unknown}, which {catalog_path()} does not define; add them "
            f"with a `kind` ({sorted(KINDS)})"
        )
    outbox = str(settings.data_dir() / "outbox")
    out = {}
    for name in sorted(names):
        entry = dict(catalog[name])
        kind = entry.pop("kind")
        share = float(entry.pop("max_failure_share", DEFAULT_FAILURE_SHARE))
        max_unknown = int(entry.pop("max_unknown", 0))
        out[f"destination_{name}"] = DestinationResource(
            name=name,
            kind=kind,
            options=entry,
            secrets=dict(SECRET_ENV[kind]),
            outbox_dir=outbox,
            max_failure_share=share,
            max_unknown=max_unknown,
        )
    return out
