"""`journeyman demo`: a sandbox world driven day by day through the real Dagster job.

Each simulated day is one partition of `daily_loop` (dbt build → decisions → deliveries) run
in-process, followed by the world living that day (organic orders, responses to the messages
delivered). A final dbt build as of the day after the last one settles the outcome tables.
The runs are recorded in the persistent instance `journeyman run` uses (DAGSTER_HOME, else
`dagster/` next to the warehouse), tagged `journeyman/demo`: `dagster dev` on that instance
(`run.dev_command_line`) shows each day's run, the assets' metadata and the checks' results.

Delivery (`demo_delivery`): by default the sync assets send through local SendGrid, Twilio and
FCM emulators (the demo's own destinations catalog points the shipped one's vendors at them),
the world answers what the emulators accepted, and the vendors' signed webhooks carry e-mail
events and SMS delivery receipts through the event intake (in this process: DuckDB allows one
writing process per file) into raw.message_events — the production path. `file` is shadow
mode: every destination writes JSON lines under the outbox, and the world reads them.

With `history` (`--orders cdnow`), the world's customers and orders are real purchase histories
(`SandboxWorld.create_from_history`, journeyman/sandbox/cdnow_world.py); the days run the same.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import dagster as dg

from journeyman import settings
from journeyman.connectors.catalog import (
    CATALOG_ENV,
    PROJECT_CATALOG,
    load_catalog,
    shadow_catalog,
    write_catalog,
)
from journeyman.connectors.destination import OutboundMessage
from journeyman.decisioning.config import load_agents
from journeyman.orchestration.failures import describe_failure
from journeyman.orchestration.run import execute_recorded, free_dead_runs, open_instance
from journeyman.sandbox import SandboxError, SandboxWorld, read_outbox
from journeyman.sandbox.cdnow import Transactions
from journeyman.sandbox.vendors import VendorError
from journeyman.sandbox.world import EventReporter
from journeyman.tables import JOURNEYMAN_SCHEMA
from journeyman.warehouse import Warehouse, WarehouseError

DEMO_TAG = "journeyman/demo"


class DemoError(RuntimeError):
    """The demo cannot run; the message says what to do."""


@dataclass(frozen=True)
class DemoOptions:
    customers: int
    days: int
    seed: int
    start: date
    #: real purchase histories the world is made of (`--orders cdnow`); None: synthetic
    history: Transactions | None = None


#: what a demo writes into a server warehouse (dropped before it starts again)
DEMO_SCHEMAS = ("sandbox", "raw", JOURNEYMAN_SCHEMA, "staging", "intermediate", "marts", "seeds")


def _holds_foreign_data(warehouse: Warehouse) -> bool:
    has_data = warehouse.table_exists(JOURNEYMAN_SCHEMA, "decisions") or warehouse.table_exists(
        "raw", "customers"
    )
    return has_data and not warehouse.table_exists("sandbox", "world")


def prepare_warehouse(location: str | Path, outbox: Path) -> Warehouse:
    """Start from an empty demo warehouse; refuse to delete one that is not a sandbox's. On a
    PostgreSQL server, the demo's schemas are dropped instead of the file."""
    warehouse = Warehouse(location)
    if warehouse.backend != "duckdb":
        warehouse.check_writable()
        if _holds_foreign_data(warehouse):
            raise DemoError(
                f"{warehouse.location} holds data that the demo did not create; the demo starts "
                "from an empty database. Point --warehouse at another one to run it."
            )
        warehouse.execute(";\n".join(f"drop schema if exists {s} cascade" for s in DEMO_SCHEMAS))
        shutil.rmtree(outbox, ignore_errors=True)
        return warehouse
    path = warehouse.path
    if path.exists():
        # a file another process holds is not the demo's to take: fail at once, touch nothing
        Warehouse(path, lock_wait_s=0).check_writable()
        if _holds_foreign_data(warehouse):
            raise DemoError(
                f"{path} holds a warehouse that the demo did not create; the demo starts from an "
                "empty one. Point JOURNEYMAN_WAREHOUSE at another file to run it."
            )
        path.unlink()
        Path(f"{path}.wal").unlink(missing_ok=True)
    shutil.rmtree(outbox, ignore_errors=True)
    warehouse.check_writable()
    return warehouse


DELIVERY_MODES = ("emulators", "file")


@dataclass
class DemoDelivery:
    """Where the demo's messages go and how the world learns of them (see `demo_delivery`)."""

    mode: str
    outbox: Path
    vendors: object | None = None  # journeyman.sandbox.vendors.SandboxVendors (emulators mode)
    intake: object | None = None  # journeyman.intake.server.IntakeServer (emulators mode)
    catalog: Path | None = None
    answered: dict[str, int] = field(default_factory=dict)  # accepted → answered / unknown

    @property
    def reporter(self) -> EventReporter | None:
        """Who carries the world's message events back (None: the world loads them all)."""
        return self.vendors  # type: ignore[return-value]

    def delivered(self, day: date, warehouse: Warehouse) -> list[OutboundMessage]:
        """The messages the world answers on `day`: what the vendors accepted (emulators), or
        the outbox's lines sent that day (file)."""
        if self.vendors is None:
            key = day.isoformat()
            return [m for m in read_outbox(self.outbox) if m.send_at.startswith(key)]
        return accepted_messages(self.vendors.accepted(), warehouse, day, self.answered)


def _message_tags() -> dict[tuple[str, str], dict[str, str]]:
    return {
        (agent.name, message.id): dict(message.tags)
        for agent in load_agents(settings.agents_dir())
        for message in agent.dimensions.messages
    }


def accepted_messages(
    accepted: list, warehouse: Warehouse, day: date, counts: dict[str, int] | None = None
) -> list[OutboundMessage]:
    """Messages the emulators accepted → what the world reads: the decision each one carries
    (SendGrid custom_args, FCM data, Twilio StatusCallback query), its customer and creative
    tags; the send time the vendor held it for, else the decision's (dispatched when due)."""
    decisions = warehouse.read_arrow(
        "select decision_id, agent, customer_id, message_id, send_at from journeyman.decisions "
        "where decision_date = :day and message_id is not null",
        {"day": day},
    ).to_pylist()
    by_id = {r["decision_id"]: r for r in decisions}
    tags = _message_tags()
    out = []
    unknown = 0
    for a in accepted:
        row = by_id.get(a.decision_id)
        if row is None:  # not a decision of this day: the world cannot answer it
            unknown += 1
            continue
        out.append(
            OutboundMessage(
                decision_id=a.decision_id,
                idempotency_key="",
                agent=row["agent"],
                customer_id=a.customer_id or row["customer_id"],
                channel=a.channel,
                message_id=row["message_id"],
                to=a.recipient,
                subject=None,
                body="",
                send_at=a.send_at or row["send_at"].strftime("%Y-%m-%dT%H:%M:%SZ"),
                tags=tags.get((row["agent"], row["message_id"]), {}),
            )
        )
    if counts is not None:
        counts["accepted"] = counts.get("accepted", 0) + len(accepted)
        counts["unknown"] = counts.get("unknown", 0) + unknown
    return out


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables in this process only; restore them on exit."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def demo_delivery(
    mode: str, data_dir: Path, warehouse_path: str | Path, seed: int
) -> Iterator[DemoDelivery]:
    """Set up the demo's delivery path; load the Dagster definitions inside this block.

    `emulators`: start SendGrid, Twilio and FCM emulators and the event intake (writing to
    `warehouse_path`) on loopback, write `<data_dir>/destinations.yml` (the project's catalog
    pointed at them) and set JOURNEYMAN_DESTINATIONS and the vendors' secret variables to
    sandbox values, in this process only. `file`: the same destination names, each the file
    destination. Everything is stopped and restored on exit.
    """
    if mode not in DELIVERY_MODES:
        raise DemoError(f"unknown delivery {mode!r}; choose one of {', '.join(DELIVERY_MODES)}")
    outbox = data_dir / "outbox"
    catalog_file = data_dir / "destinations.yml"
    base = load_catalog(PROJECT_CATALOG)  # the shipped catalog, whatever the environment says
    if mode == "file":
        write_catalog(catalog_file, shadow_catalog(base))
        with _environment({CATALOG_ENV: str(catalog_file)}):
            yield DemoDelivery(mode, outbox, catalog=catalog_file)
        return
    from journeyman.intake.config import IntakeSettings
    from journeyman.intake.server import IntakeServer
    from journeyman.sandbox.vendors import SandboxVendors

    fcm = next((e for e in base.values() if e.get("kind") == "fcm"), {})
    with SandboxVendors(
        seed, fcm_project_id=fcm.get("project_id") or "journeyman-sandbox"
    ) as vendors:
        settings = IntakeSettings(
            warehouse=warehouse_path,
            sendgrid_public_key=vendors.sendgrid.public_key_b64,
            twilio_auth_token=vendors.twilio.auth_token,
        )
        with IntakeServer(settings) as intake:
            write_catalog(catalog_file, vendors.catalog(base, intake.url))
            with _environment({CATALOG_ENV: str(catalog_file), **vendors.secrets()}):
                yield DemoDelivery(mode, outbox, vendors, intake, catalog_file)


def run_demo(
    options: DemoOptions,
    defs: dg.Definitions,
    warehouse: Warehouse,
    outbox: Path,
    on_step: Callable[[date, str], None] = lambda day, step: None,
    delivery: DemoDelivery | None = None,
    instance: dg.DagsterInstance | None = None,
) -> None:
    """Create the world and run `options.days` daily cycles through the `daily_loop` job.

    `delivery` comes from `demo_delivery` (the defs loaded inside it); without one, the world
    reads what the file destination wrote under `outbox` (shadow mode). The runs are recorded in
    `instance`, by default the one `journeyman run` uses (`run.open_instance`); runs of it whose
    process is gone are failed first and their `warehouse` pool slots freed."""
    delivery = delivery or DemoDelivery("file", outbox)
    with contextlib.ExitStack() as stack:
        if instance is None:
            instance = stack.enter_context(open_instance())
        free_dead_runs(instance)
        with _environment({settings.SIMULATION_ENV: "1"}):  # simulated days: dispatch is on time
            _run_days(options, defs, warehouse, on_step, delivery, instance)


def _run_days(
    options: DemoOptions,
    defs: dg.Definitions,
    warehouse: Warehouse,
    on_step: Callable[[date, str], None],
    delivery: DemoDelivery,
    instance: dg.DagsterInstance,
) -> None:
    world = SandboxWorld(warehouse, seed=options.seed)
    on_step(options.start, "creating the sandbox world")
    if options.history is None:
        world.create(n_customers=options.customers, start=options.start)
    else:
        try:
            world.create_from_history(options.history, start=options.start)
        except SandboxError as exc:
            raise DemoError(f"cannot make a world of these orders: {exc}") from exc
    job = defs.resolve_job_def("daily_loop")
    tag = f"{options.customers} customers, seed {options.seed}, from {options.start}"
    tag += ", CDNOW orders" if options.history is not None else ""
    days = [options.start + timedelta(days=i) for i in range(options.days)]
    for day in days:
        on_step(day, "dbt build → decisions → deliveries")
        _execute(instance, job, day, tag)
        on_step(day, "customers live the day")
        try:
            world.simulate_day(day, delivery.delivered(day, warehouse), reporter=delivery.reporter)
        except VendorError as exc:
            raise DemoError(f"day {day}: {exc}") from exc
    settle = days[-1] + timedelta(days=1)
    on_step(settle, "dbt build (outcomes)")
    dbt_keys = [
        k
        for k in job.asset_layer.executable_asset_keys
        if k != dg.AssetKey("decisions") and not k.path[-1].startswith("sync_")
    ]
    _execute(instance, job, settle, tag, dbt_keys)


def _execute(
    instance: dg.DagsterInstance,
    job: dg.JobDefinition,
    day: date,
    tag: str,
    asset_selection: list[dg.AssetKey] | None = None,
) -> None:
    """One partition of `job`, recorded in `instance`; dbt's log is shown only on failure."""
    result, output = execute_recorded(
        instance, job, day.isoformat(), asset_selection, tags={DEMO_TAG: tag}
    )
    if not result.success:
        tail = "\n".join(output.splitlines()[-15:])
        raise DemoError(f"day {day}: {describe_failure(result)}" + (f"\n{tail}" if tail else ""))


def summary_rows(warehouse: Warehouse) -> list[dict]:
    """The per agent / policy / group outcome table the demo prints."""
    try:
        return warehouse.read_arrow(
            "select * from marts.agent_group_outcomes order by agent, policy, experiment_group"
        ).to_pylist()
    except Exception as exc:  # the mart is missing only if dbt never ran
        raise WarehouseError(f"cannot read marts.agent_group_outcomes: {exc}") from exc
