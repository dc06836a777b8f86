"""Resources: the warehouse, the agent files, the destinations and dbt.

Paths and secrets come from the environment (`EnvVar`), never from files in the repo.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource

from journeyman import settings
from journeyman.connectors.destination import Destination
from journeyman.connectors.file import FileDestination
from journeyman.decisioning.config import AgentConfig, load_agents
from journeyman.orchestration.project import dbt_project
from journeyman.warehouse import Warehouse


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse file (DuckDB), opened briefly per unit of work."""

    path: str

    def open(self) -> Warehouse:
        return Warehouse(self.path)


class AgentsResource(dg.ConfigurableResource):
    """The folder of agent YAML files; validated on load."""

    directory: str = str(settings.AGENTS_DIR)

    def load(self) -> list[AgentConfig]:
        return load_agents(self.directory)


class DestinationsResource(dg.ConfigurableResource):
    """Where each named destination delivers. `file` writes JSONL under `outbox_dir`."""

    outbox_dir: str

    def get(self, name: str) -> Destination:
        if name == "file":
            return FileDestination(Path(self.outbox_dir), name="file")
        raise ValueError(
            f"unknown destination {name!r}; this version ships the `file` destination "
            "(set an agent's `destinations` to `file`)"
        )


def default_outbox() -> str:
    """The outbox folder beside the warehouse file."""
    return str(settings.warehouse_path().parent / "outbox")


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "warehouse": WarehouseResource(path=dg.EnvVar(settings.WAREHOUSE_ENV)),
            "agents": AgentsResource(),
            "destinations": DestinationsResource(outbox_dir=default_outbox()),
            "dbt": DbtCliResource(
                project_dir=dbt_project, profiles_dir=str(settings.DBT_PROJECT_DIR)
            ),
        }
    )
