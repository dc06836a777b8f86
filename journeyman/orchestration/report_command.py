"""`journeyman report`: the marketer's self-contained HTML report from the performance marts.

Registered on the `journeyman` group with `main.add_command(report)`. Every failure (no
warehouse, marts not built, an unknown agent, an agent without decisions, a locked file) is one
`error:` line and exit status 2.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import click

from journeyman import settings
from journeyman.orchestration.console import DateParam

if TYPE_CHECKING:
    from journeyman.decisioning.config import AgentConfig
    from journeyman.warehouse import Warehouse


def _configured_agents() -> list[AgentConfig]:
    """The agent files (to tell "no decisions yet" from "unknown", and the candidates)."""
    from journeyman.decisioning.config import AgentConfigError, load_agents

    try:
        return load_agents(settings.agents_dir())
    except (AgentConfigError, OSError):
        return []


@click.command("report")
@click.option("--agent", help="Only this agent (default: every agent with data in the marts).")
@click.option(
    "--since",
    type=DateParam(),
    help="First day of the charts over time (uplift and totals cover the whole experiment).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write the report into (default: reports/ beside the warehouse file; "
    ".journeyman/reports for a server warehouse).",
)
@click.option(
    "--ope-days",
    type=click.IntRange(min=0),
    default=7,
    show_default=True,
    help="Evaluate the comparison and shadow policies off-policy on the last N days of logs "
    "whose outcomes are in (0: leave the section out).",
)
def report(agent: str | None, since: date | None, out_dir: Path | None, ope_days: int) -> None:
    """Write one self-contained HTML report (no scripts, no external resources) of how each
    agent is doing: uplift against its holdout and baselines with 95 % intervals, outcomes over
    time, what it chooses, per-segment preferences, messages and delivery diagnostics. Reads
    the performance marts of JOURNEYMAN_WAREHOUSE; prints the report's path."""
    from journeyman.insights import ReportError, write_report
    from journeyman.orchestration.console import fail
    from journeyman.warehouse import Warehouse, WarehouseError

    agents = _configured_agents()
    try:
        warehouse = Warehouse(settings.warehouse_setting(), read_only=True)
        off_policy = _off_policy(warehouse, agents, agent, ope_days)
        written = write_report(
            warehouse,
            out_dir or settings.data_dir() / "reports",
            agent=agent,
            since=since,
            off_policy=off_policy,
            configured_agents=[a.name for a in agents],
        )
    except (ReportError, WarehouseError, OSError) as exc:
        fail(str(exc))
    click.echo(str(written))


def _off_policy(
    warehouse: Warehouse, agents: list[AgentConfig], only: str | None, days: int
) -> list[tuple[str, dict]]:
    """The candidates' off-policy estimates (warnings on stderr for those that cannot be)."""
    from journeyman.insights.candidates import estimate_candidates

    if days == 0 or not warehouse.exists():
        return []
    result = estimate_candidates(warehouse, agents, only, days)
    for note in result.notes:
        click.echo(f"warning: {note}", err=True)
    return result.estimates
