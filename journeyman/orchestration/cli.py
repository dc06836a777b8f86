"""The `journeyman` command line."""

from __future__ import annotations

import os
import sys
import time
from datetime import date

import click
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from journeyman import settings
from journeyman.orchestration.console import DateParam, console, fail, out


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


@main.command()
@click.option(
    "--customers",
    type=click.IntRange(100, 2_000_000),
    default=5000,
    show_default=True,
    help="Size of the synthetic customer population.",
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
    "--warehouse",
    "warehouse_setting",
    default=None,
    help="A DuckDB file, or an empty PostgreSQL database as postgresql+psycopg://user@host:port/db "
    "(password from PGPASSWORD or ~/.pgpass) [default: JOURNEYMAN_WAREHOUSE, else "
    ".journeyman/warehouse.duckdb]",
)
def demo(
    customers: int, days: int, seed: int, start: date, delivery: str, warehouse_setting: str | None
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
    if warehouse_setting:
        os.environ[settings.WAREHOUSE_ENV] = warehouse_setting
    try:
        location = settings.warehouse_setting()
    except settings.WarehouseSettingError as exc:
        fail(str(exc))
    os.environ[settings.WAREHOUSE_ENV] = location
    settings.export_dbt_environment(location)
    data_dir = settings.data_dir()
    outbox = data_dir / "outbox"
    try:
        dbt_executable()  # every day builds with dbt: fail before the warehouse is touched
        prepare_manifest()
        load_agents(settings.agents_dir())
        from journeyman.orchestration.definitions import defs
        from journeyman.orchestration.demo import (
            DemoError,
            DemoOptions,
            demo_delivery,
            prepare_warehouse,
            run_demo,
        )

        options = DemoOptions(customers=customers, days=days, seed=seed, start=start)
        with (
            demo_delivery(delivery, data_dir, location, seed) as channel,
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
        from journeyman.orchestration.demo import summary_rows

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
    _print_summary(rows, customers, days, seed, warehouse.location)
    console.print(f"finished in {time.perf_counter() - started:.1f} s")


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


def _print_summary(rows: list[dict], customers: int, days: int, seed: int, path: str) -> None:
    table = Table(title=f"journeyman demo: {customers} customers, {days} days, seed {seed}")
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
