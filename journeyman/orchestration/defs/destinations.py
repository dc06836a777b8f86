"""Destinations as Dagster resources, one per destination of the catalog (`destinations.yml`,
connectors/catalog.py); secrets come from environment variables through `EnvVar`."""

from __future__ import annotations

from typing import Any

import dagster as dg

from journeyman import settings
from journeyman.connectors.catalog import DestinationConfigError, catalog_path, load_catalog
from journeyman.connectors.destination import Destination
from journeyman.connectors.registry import KINDS, SECRET_ENV, build_destination

DEFAULT_FAILURE_SHARE = 0.05


class DestinationResource(dg.ConfigurableResource):
    """One destination: its kind, non-secret settings, and secrets read from the environment."""

    name: str
    kind: str
    options: dict[str, Any] = {}
    secrets: dict[str, str] = {}  # setting → environment variable name (values never stored)
    outbox_dir: str = ""
    max_failure_share: float = DEFAULT_FAILURE_SHARE
    max_unknown: int = 0
    #: requests in flight at once in a sync; 0 = the destination's default_concurrency
    concurrency: int = 0

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
        concurrency = int(entry.pop("concurrency", 0))
        out[f"destination_{name}"] = DestinationResource(
            name=name,
            kind=kind,
            options=entry,
            secrets=dict(SECRET_ENV[kind]),
            outbox_dir=outbox,
            max_failure_share=share,
            max_unknown=max_unknown,
            concurrency=concurrency,
        )
    return out
