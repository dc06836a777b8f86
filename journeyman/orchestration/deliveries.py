"""`journeyman deliveries`: look at the delivery ledger and settle records whose outcome is
unknown (a lost response or a crash, with no lookup that could confirm them)."""

from __future__ import annotations

import getpass
import json
import sys
from datetime import UTC, datetime

import click
from rich.console import Console
from rich.table import Table

from journeyman import settings
from journeyman.connectors.destination import DeliveryStatus
from journeyman.connectors.ledger import DeliveryLedger
from journeyman.tables import ensure_journeyman_tables
from journeyman.warehouse import Warehouse, WarehouseError

console = Console(stderr=True)
out = Console(width=None if sys.stdout.isatty() else 160)
STATUSES = [s.value for s in DeliveryStatus]
COLUMNS = ("decision_id", "status", "attempts", "attempted_at", "send_until", "error")


class _Instant(click.ParamType):
    name = "TIME"

    def convert(self, value, param, ctx):  # noqa: ANN001, ANN201 - click's signature
        try:
            parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            self.fail(f"{value!r} is not a time like 2026-03-02T09:00:00Z", param, ctx)
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
        return parsed


def _ledger(destination: str) -> DeliveryLedger:
    warehouse = Warehouse.configured(f"set {settings.WAREHOUSE_ENV} to your warehouse file or URL")
    ensure_journeyman_tables(warehouse)
    return DeliveryLedger(warehouse, destination)


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}", soft_wrap=True)
    sys.exit(2)


@click.group()
def deliveries() -> None:
    """Inspect the delivery ledger and resolve records whose outcome is unknown."""


@deliveries.command("list")
@click.argument("destination")
@click.option("--status", type=click.Choice(STATUSES), help="Only records with this status.")
@click.option("--before", type=_Instant(), help="Only records attempted before this UTC time.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def list_(destination: str, status: str | None, before: datetime | None, as_json: bool) -> None:
    """List DESTINATION's ledger records (e.g. --status unknown)."""
    try:
        rows = _ledger(destination).records(status, before)
    except WarehouseError as exc:
        _fail(str(exc))
    if as_json:
        for row in rows:
            out.print(json.dumps({c: _text(row.get(c)) for c in COLUMNS}), soft_wrap=True)
        return
    table = Table(title=f"{destination}: {len(rows)} record(s)")
    for column in COLUMNS:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(_text(row.get(c)) or "" for c in COLUMNS))
    out.print(table)


@deliveries.command()
@click.argument("destination")
@click.option(
    "--as",
    "outcome",
    type=click.Choice(["sent", "failed"]),
    required=True,
    help="sent: the vendor has it (checked in its console); failed: it never went out.",
)
@click.option("--decision-id", "decision_ids", multiple=True, help="This record (repeatable).")
@click.option("--before", type=_Instant(), help="Every unknown record attempted before this time.")
@click.option("--note", default="", help="Why (kept in the ledger's error column as an audit).")
def resolve(
    destination: str,
    outcome: str,
    decision_ids: tuple[str, ...],
    before: datetime | None,
    note: str,
) -> None:
    """Settle DESTINATION's unknown records: --as sent (delivered) or failed (never sent; a
    failed record is not sent again). Name them with --decision-id or --before."""
    if not decision_ids and before is None:
        _fail("name the records: --decision-id ID (repeatable) or --before TIME")
    try:
        ledger = _ledger(destination)
        stuck = {
            r["decision_id"]
            for s in (DeliveryStatus.UNKNOWN, DeliveryStatus.IN_FLIGHT)
            for r in ledger.records(s.value, before)
        }
    except WarehouseError as exc:
        _fail(str(exc))
    wanted = sorted(stuck & set(decision_ids)) if decision_ids else sorted(stuck)
    missing = sorted(set(decision_ids) - stuck)
    now = datetime.now(UTC).replace(tzinfo=None)
    status = DeliveryStatus.DELIVERED if outcome == "sent" else DeliveryStatus.FAILED_PERMANENT
    audit = f"resolved_{outcome}_by_operator:{getpass.getuser()}:{now:%Y-%m-%dT%H:%M:%SZ}"
    changed = ledger.resolve(wanted, status, f"{audit}: {note}" if note else audit, now)
    out.print(f"{destination}: {changed} record(s) resolved as {outcome}")
    if missing:
        console.print(
            f"{len(missing)} named record(s) are not unknown in {destination}'s ledger and were "
            f"left as they are: {', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}"
        )


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)
