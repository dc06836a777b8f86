"""`journeyman load …`: import purchase histories from files into the warehouse's raw tables."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import click

from journeyman import settings


@click.group()
def load() -> None:
    """Import purchase histories from files into the warehouse's raw tables."""


@load.command("cdnow")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--shift-to",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Move every date by a whole number of days so that the last order falls on the day "
    "before this date (UTC): the history then feeds a run dated DATE. Default: the file's dates.",
)
@click.option(
    "--seed",
    type=click.IntRange(0),
    default=1,
    show_default=True,
    help="Seed of the synthetic details (time zones, contact points, consents, order hours).",
)
@click.option(
    "--replace",
    is_flag=True,
    help="Delete the rows of an earlier CDNOW load (ids cdnow-…) first; without it a second "
    "load is refused.",
)
def cdnow_command(path: Path, shift_to: datetime | None, seed: int, replace: bool) -> None:
    """Load a CDNOW-format file (whitespace-separated customer_id, date YYYYMMDD,
    number_of_cds, dollar_value) into raw.orders, raw.customers and raw.consents, in one
    transaction. Customers get synthetic, undeliverable contact points (example.invalid,
    fictional 555-01XX phones) and seeded time zones and consents; every order's category is
    `electronics`. Malformed lines are listed and skipped."""
    from journeyman.orchestration.console import fail
    from journeyman.sandbox.cdnow import LISTED_BAD_LINES, CdnowError, load_cdnow
    from journeyman.warehouse import Warehouse, WarehouseError

    started = time.perf_counter()
    try:
        summary = load_cdnow(
            Warehouse(settings.warehouse_path()),
            path,
            seed=seed,
            shift_to=shift_to.date() if shift_to else None,
            replace=replace,
        )
    except (CdnowError, WarehouseError) as exc:
        fail(str(exc))
    for bad in summary.bad:
        click.echo(f"warning: skipped line {bad.line}: {bad.reason}", err=True)
    if summary.skipped > LISTED_BAD_LINES:
        more = summary.skipped - LISTED_BAD_LINES
        click.echo(f"warning: skipped {more:,} more malformed lines", err=True)
    click.echo(f"{summary.line()} in {time.perf_counter() - started:.1f} s")
