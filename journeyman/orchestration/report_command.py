"""`journeyman report`: the marketer's self-contained HTML report from the performance marts.

Registered on the `journeyman` group with `main.add_command(report)`. Every failure (no
warehouse, marts not built, an unknown agent, an agent without decisions, a locked file) is one
`error:` line and exit status 2.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import click

from journeyman import settings


class _Day(click.ParamType):
    """A YYYY-MM-DD date (as the other commands' --start)."""

    name = "YYYY-MM-DD"

    def convert(self, value, param, ctx):  # noqa: ANN001, ANN201 - click's signature
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(value)
        except ValueError:
            self.fail(f"{value!r} is not a date like 2026-03-02", param, ctx)


def _configured_agents() -> list[str]:
    """Names of the agent files (only to tell "no decisions yet" from "unknown")."""
    from journeyman.decisioning.config import AgentConfigError, load_agents

    try:
        return [agent.name for agent in load_agents(settings.agents_dir())]
    except (AgentConfigError, OSError):
        return []


@click.command("report")
@click.option("--agent", help="Only this agent (default: every agent with data in the marts).")
@click.option(
    "--since",
    type=_Day(),
    help="First day of the charts over time (uplift and totals cover the whole experiment).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write the report into (default: reports/ beside the warehouse).",
)
def report(agent: str | None, since: date | None, out_dir: Path | None) -> None:
    """Write one self-contained HTML report (no scripts, no external resources) of how each
    agent is doing: uplift against its holdout and baselines with 95 % intervals, outcomes over
    time, what it chooses, per-segment preferences, messages and delivery diagnostics. Reads
    the performance marts of JOURNEYMAN_WAREHOUSE; prints the report's path."""
    from journeyman.insights import ReportError, write_report
    from journeyman.orchestration.cli import fail
    from journeyman.warehouse import Warehouse, WarehouseError

    path = settings.warehouse_path()
    try:
        written = write_report(
            Warehouse(path, read_only=True),
            out_dir or path.parent / "reports",
            agent=agent,
            since=since,
            configured_agents=_configured_agents(),
        )
    except (ReportError, WarehouseError, OSError) as exc:
        fail(str(exc))
    click.echo(str(written))
