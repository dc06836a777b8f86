"""The `journeyman` command line."""

from __future__ import annotations

import os
import sys
import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from journeyman import settings
from journeyman.orchestration.console import DateParam, console, fail, out

if TYPE_CHECKING:
    from journeyman.orchestration.demo import DemoOptions
    from journeyman.sandbox.cdnow import Transactions
    from journeyman.warehouse import Warehouse


def _show_one_line(error: click.UsageError, file=None) -> None:  # noqa: ANN001 - click's
    hint = f" (see `{error.ctx.command_path} --help`)" if error.ctx is not None else ""
    message = " ".join(error.format_message().split())
    click.echo(f"error: {message}{hint}", file=file or sys.stderr)


class _Group(click.Group):
    """The `journeyman` group: a usage error anywhere below it (a bad option, a missing
    argument, an invalid value) is one `error:` line on stderr and exit status 2."""

    @staticmethod
    def _one_line(error: click.UsageError) -> click.UsageError:
        error.show = lambda file=None: _show_one_line(error, file)  # type: ignore[method-assign]
        return error

    def make_context(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201 - click's
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as error:
            raise self._one_line(error) from error.__cause__

    def invoke(self, ctx: click.Context):  # noqa: ANN201 - click's
        try:
            return super().invoke(ctx)
        except click.UsageError as error:
            if error.ctx is None and ctx.invoked_subcommand:  # a parse error: name the command
                command = self.get_command(ctx, ctx.invoked_subcommand)
                if command is not None:
                    error.ctx = click.Context(command, parent=ctx, info_name=ctx.invoked_subcommand)
            raise self._one_line(error) from error.__cause__


@click.group(cls=_Group)
@click.version_option(package_name="journeyman")
def main() -> None:
    """journeyman: warehouse-native AI decisioning for customer journeys."""


#: the CDNOW file `demo --orders cdnow` reads by default: the shared data sets beside the project
CDNOW_FILE = settings.PROJECT_ROOT.parent / "shared" / "datasets" / "cdnow" / "CDNOW_master.txt"


@main.command()
@click.option(
    "--customers",
    type=click.IntRange(100, 2_000_000),
    default=5000,
    show_default=True,
    help="Size of the synthetic customer population; with --orders cdnow, how many of the file's "
    "customers are taken: the first N customer ids in id order (all of them when the file has "
    "fewer).",
)
@click.option(
    "--days",
    type=click.IntRange(1, 365),
    default=14,
    show_default=True,
    help="Number of daily decision cycles to simulate.",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the sandbox world.")
@click.option(
    "--start",
    type=DateParam(),
    default="2026-03-02",
    show_default=True,
    help="Logical date of the first simulated day (UTC).",
)
@click.option(
    "--delivery",
    type=click.Choice(["emulators", "file"]),
    default="emulators",
    show_default=True,
    help="emulators: send through local SendGrid / Twilio / FCM emulators; their signed "
    "webhooks bring the outcomes back through the event intake. file: shadow mode, messages "
    "are JSON lines under the outbox folder.",
)
@click.option(
    "--orders",
    type=click.Choice(["synthetic", "cdnow"]),
    default="synthetic",
    show_default=True,
    help="synthetic: a drawn population with two years of orders. cdnow: the customers and "
    "orders of a CDNOW-format file (--orders-file), shifted to end the day before --start, with "
    "synthetic, labelled contact details; the world continues each customer's real purchase "
    "pattern (docs/sandbox.md).",
)
@click.option(
    "--orders-file",
    type=click.Path(path_type=Path),
    default=None,
    help=f"The CDNOW-format file of --orders cdnow [default: {CDNOW_FILE}]",
)
@click.option(
    "--warehouse",
    "warehouse_setting",
    default=None,
    help="A DuckDB file, or an empty PostgreSQL database as postgresql+psycopg://user@host:port/db "
    "(password from PGPASSWORD or ~/.pgpass) [default: JOURNEYMAN_WAREHOUSE, else "
    ".journeyman/warehouse.duckdb]",
)
def demo(
    customers: int,
    days: int,
    seed: int,
    start: date,
    delivery: str,
    orders: str,
    orders_file: Path | None,
    warehouse_setting: str | None,
) -> None:
    """Run the whole loop on embedded DuckDB (or the PostgreSQL database of --warehouse): a
    sandbox world, D daily cycles of the Dagster job (dbt → decisions → deliveries), then a per
    agent / policy / group summary."""
    from journeyman.decisioning.config import AgentConfigError, load_agents
    from journeyman.orchestration.project import (
        DbtUnavailableError,
        dbt_executable,
        prepare_manifest,
    )
    from journeyman.warehouse import WarehouseError

    _check_demo_dates(start, days)
    started = time.perf_counter()
    history = _demo_history(orders, orders_file, customers)
    customers = customers if history is None else history.n_customers
    if warehouse_setting:
        os.environ[settings.WAREHOUSE_ENV] = warehouse_setting
    try:
        location = settings.warehouse_setting()
    except settings.WarehouseSettingError as exc:
        fail(str(exc))
    os.environ[settings.WAREHOUSE_ENV] = location
    settings.export_dbt_environment(location)
    try:
        dbt_executable()  # every day builds with dbt: fail before the warehouse is touched
        prepare_manifest()
        load_agents(settings.agents_dir())
        from journeyman.orchestration.demo import DemoOptions, summary_rows

        options = DemoOptions(customers, days, seed, start, history)
        warehouse = _run_demo_with_progress(options, delivery, location)
        rows = summary_rows(warehouse)
    except (AgentConfigError, DbtUnavailableError, WarehouseError) as exc:
        console.print("[red]error:[/red]", escape(str(exc)), soft_wrap=True)
        sys.exit(2)
    except Exception as exc:
        from journeyman.orchestration.demo import DemoError

        if isinstance(exc, DemoError):
            console.print("[red]error:[/red]", escape(str(exc)), soft_wrap=True)
            sys.exit(1)
        raise
    note = _history_line(history, orders_file or CDNOW_FILE, start)
    _print_summary(rows, customers, days, seed, warehouse.location, note)
    console.print(f"finished in {time.perf_counter() - started:.1f} s")


def _run_demo_with_progress(options: DemoOptions, delivery: str, location: str) -> Warehouse:
    """Start the delivery path, empty the warehouse and run the demo's days under a progress
    bar; the warehouse it ran on."""
    from journeyman.orchestration.definitions import defs
    from journeyman.orchestration.demo import demo_delivery, prepare_warehouse, run_demo

    data_dir = settings.data_dir()
    outbox = data_dir / "outbox"
    days = options.days
    with (
        demo_delivery(delivery, data_dir, location, options.seed) as channel,
        Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[step]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress,
    ):
        loaded = defs()
        warehouse = prepare_warehouse(location, outbox)
        task = progress.add_task("simulated days", total=days + 1, step="")
        seen: set[date] = set()

        def on_step(day: date, step: str) -> None:
            if day not in seen and seen:
                progress.advance(task)
            seen.add(day)
            progress.update(task, step=f"{day}  {step}")

        run_demo(options, loaded, warehouse, outbox, on_step, channel)
        progress.update(task, completed=days + 1, step="done")
    return warehouse


def _demo_history(orders: str, orders_file: Path | None, customers: int) -> Transactions | None:
    """The CDNOW histories `--orders cdnow` makes the world of (the first `customers` customer
    ids of the file), None for the synthetic population. A file that is missing or has no valid
    line is one `error:` line and exit 2, before anything is done; malformed lines are one
    warning."""
    if orders != "cdnow":
        if orders_file is not None:
            raise click.UsageError("--orders-file is read only with --orders cdnow")
        return None
    from journeyman.sandbox.cdnow import CdnowError, read_transactions
    from journeyman.sandbox.cdnow_world import first_customers

    path = orders_file or CDNOW_FILE
    if not path.exists():
        fail(
            f"--orders cdnow reads {path}, which does not exist; set --orders-file to a "
            "CDNOW-format file"
        )
    try:
        transactions = read_transactions(path)
    except CdnowError as exc:
        fail(str(exc))
    if transactions.skipped:
        first = transactions.bad[0]
        console.print(
            f"warning: skipped {transactions.skipped:,} malformed line(s) of {escape(str(path))} "
            f"(line {first.line}: {escape(first.reason)})",
            soft_wrap=True,
        )
    return first_customers(transactions, customers)


def _history_line(history: Transactions | None, path: Path, start: date) -> str | None:
    """The summary's line saying whose orders these are (None for the synthetic ones)."""
    if history is None:
        return None
    return (
        f"orders: CDNOW's ({path}): {len(history.customer):,} real orders of "
        f"{history.n_customers:,} customers, dates shifted to end before {start}; contact "
        "details, time zones and consents are synthetic"
    )


def _check_demo_dates(start: date, days: int) -> None:
    """The demo runs the partitions `start` … `start + days` (the last one settles outcomes):
    all must be daily partitions (from the partitions' start date to today, UTC), else one
    `error:` line and exit 2 before anything is done."""
    from datetime import timedelta

    from journeyman.orchestration.defs.partitions import daily

    first = daily.start.date()
    last = date.fromisoformat(daily.get_last_partition_key())  # today (UTC)
    end = start + timedelta(days=days)
    if first <= start and end <= last:
        return
    latest = last - timedelta(days=days)
    if latest < first:
        choose = f"choose at most {(last - first).days} --days"
    else:
        choose = f"choose --start between {first} and {latest}"
    fail(
        f"--start {start} with --days {days} runs the days {start} to {end} (the last one "
        f"settles outcomes), but the daily partitions run from {first} to {last} (today, UTC); "
        f"{choose}"
    )


@main.command("dev")
def dev() -> None:
    """Open the Dagster UI (`dagster dev`) on the instance the demo and `journeyman run` record
    into, with their warehouse: every simulated or real day's run, the assets' metadata and the
    checks' results."""
    import shlex

    from journeyman.orchestration.project import DbtUnavailableError, prepare_manifest
    from journeyman.orchestration.run import dev_command_line

    try:
        prepare_manifest()
    except DbtUnavailableError as exc:
        fail(str(exc))
    # what `dagster dev` hands to the dbt parse of every code reload (prepare_if_dev): dbt from
    # this environment and the warehouse's profile variables (a password only as a
    # DBT_ENV_SECRET_ variable, which dbt masks)
    os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]])
    settings.export_dbt_environment()
    command = dev_command_line()
    setting = settings.warehouse_setting()  # a URL's password is not printed
    shown = shlex.join(command).replace(setting, settings.masked(setting))
    console.print(f"running: {shown}", soft_wrap=True)
    os.execvp(command[0], command)


@main.command("prepare")
def prepare() -> None:
    """Parse the dbt project into the manifest the Dagster definitions load (only when it is
    missing or older than the project's files): run it at deploy time, before `dagster` or `dg`
    commands load the definitions. `journeyman run`, `demo` and `dev` do it themselves."""
    from journeyman.orchestration.project import DbtUnavailableError, prepare_manifest

    try:
        out.print(f"dbt manifest ready: {prepare_manifest()}", soft_wrap=True)
    except DbtUnavailableError as exc:
        fail(str(exc))


@main.command("serve-events")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8787, show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Worker processes (more than one needs a PostgreSQL warehouse).",
)
def serve_events(host: str, port: int, workers: int) -> None:
    """Receive vendors' signed event webhooks (SendGrid, Twilio, generic HMAC) into
    raw.message_events. Secrets come from the environment; see docs/intake.md."""
    from journeyman.intake.app import serve
    from journeyman.intake.config import IntakeConfigError, IntakeSettings

    try:
        settings_ = IntakeSettings.from_env()
        serve(host, port, settings_, workers=workers)
    except IntakeConfigError as exc:
        fail(str(exc))


@main.command("cancel-scheduled")
@click.argument("destination")
@click.option("--batch-id", "batch_ids", multiple=True, help="Only this batch (repeatable).")
def cancel_scheduled(destination: str, batch_ids: tuple[str, ...]) -> None:
    """Cancel DESTINATION's scheduled, not-yet-sent sends (SendGrid batches) and mark them
    cancelled in the delivery ledger. See docs/connectors.md."""
    import dagster as dg

    from journeyman.connectors.catalog import DestinationConfigError
    from journeyman.connectors.destination import DestinationError
    from journeyman.orchestration.defs.syncs import cancel_scheduled_sends

    try:
        report = cancel_scheduled_sends(destination, list(batch_ids) or None)
    except (DestinationError, DestinationConfigError, dg.Failure) as exc:
        fail(str(exc))
    out.print(
        f"{destination}: {len(report.batches)} batch(es) cancelled, {report.cancelled} "
        f"message(s) marked cancelled, {report.uncertain} due within the vendor's cut-off "
        "(may still go out; left as delivered)"
    )


def _print_summary(
    rows: list[dict], customers: int, days: int, seed: int, path: str, note: str | None = None
) -> None:
    span = f"{days} day" if days == 1 else f"{days} days"
    table = Table(title=f"journeyman demo: {customers} customers, {span}, seed {seed}")
    for name in (
        "agent",
        "policy",
        "group",
        "customers",
        "messages sent",
        "conversions",
        "revenue / customer",
        "unsubscribes",
    ):
        text = name in ("agent", "policy", "group")
        table.add_column(name, justify="left" if text else "right", no_wrap=text)
    for r in rows:
        table.add_row(
            r["agent"],
            "—" if r["experiment_group"] == "holdout" else r["policy"],
            r["experiment_group"],
            f"{r['customers']:,}",
            f"{r['messages_sent']:,}",
            f"{r['conversions']:,}",
            f"{r['revenue_per_customer']:.2f}",
            f"{r['unsubscribes']:,}",
        )
    out.print(table)
    if note:
        out.print(note, soft_wrap=True)
    out.print(f"warehouse: {path}  (explore: `journeyman dev` opens the Dagster UI on these runs)")


def _register_subcommands() -> None:
    from journeyman.orchestration.deliveries import deliveries
    from journeyman.orchestration.evaluate import evaluate
    from journeyman.orchestration.fit_command import fit
    from journeyman.orchestration.init import init
    from journeyman.orchestration.inspect_command import inspect
    from journeyman.orchestration.load_command import load
    from journeyman.orchestration.report_command import report
    from journeyman.orchestration.run import run
    from journeyman.orchestration.validate import validate

    main.add_command(deliveries)
    main.add_command(evaluate)
    main.add_command(fit)
    main.add_command(init)
    main.add_command(inspect)
    main.add_command(load)
    main.add_command(report)
    main.add_command(run)
    main.add_command(validate)


_register_subcommands()
