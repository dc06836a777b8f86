"""`journeyman run --date D`: one day of the production `daily_loop` job, run in this process and
recorded in the Dagster instance.

The instance is DAGSTER_HOME's when that is set (its dagster.yaml), else a persistent one in
`dagster/` next to the warehouse file (by default `.journeyman/dagster`) configured by the
`dagster.yaml` in that folder, a copy of the project's made when there is none, so that
`DAGSTER_HOME=<that folder> dagster dev` (`dev_command_line`) shows the same runs with the same
settings. `journeyman demo` records its simulated days in the same instance. The run claims
the `warehouse` pool slot of each step like any run of the instance, so it waits while another
live run holds the warehouse.

Before starting, it frees the pool from runs whose process is gone: a run of this instance in
STARTING / STARTED whose process no longer exists on this host (killed, machine restarted) is
marked failed (`DagsterInstance.report_run_failed`), and the pool slots held by it or by any
finished run are freed (`instance.event_log_storage.free_concurrency_slots_for_run`). Without
that, a run killed while holding the slot keeps it and, with a pool limit of 1, every later run
waits forever.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import click
import dagster as dg
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.dagster_run import DagsterRunStatus
from dagster._core.utils import make_new_run_id

from journeyman import settings
from journeyman.orchestration.defs.partitions import WAREHOUSE_POOL, daily
from journeyman.orchestration.failures import describe_failure

JOB_NAME = "daily_loop"
INSTANCE_FOLDER = "dagster"  # next to the warehouse file, when DAGSTER_HOME is unset
PROJECT_INSTANCE_CONFIG = settings.PROJECT_ROOT / "dagster.yaml"
#: tags of the runs `journeyman run` starts: which process on which host runs them
HOST_TAG = "journeyman/host"
PID_TAG = "journeyman/pid"
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
_ALIVE_STATUSES = (DagsterRunStatus.STARTING, DagsterRunStatus.STARTED)
_PID_START_SLACK_SECONDS = 2.0


class RunCommandError(Exception):
    """The run cannot start; the message says why (exit status 2)."""


# --- the instance -------------------------------------------------------------------------------


def instance_home() -> Path | None:
    """The folder of the instance `journeyman run` uses when DAGSTER_HOME is unset (else None)."""
    if os.environ.get("DAGSTER_HOME"):
        return None
    return settings.data_dir() / INSTANCE_FOLDER


def project_instance(home: Path) -> dg.DagsterInstance:
    """A persistent instance storing in `home`, configured by `home/dagster.yaml`: a copy of the
    project's dagster.yaml is put there first when there is none."""
    ensure_instance_config(home)
    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))


def ensure_instance_config(home: Path) -> Path:
    """Create `home` and copy the project's dagster.yaml into it unless it has one; the path."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists() and PROJECT_INSTANCE_CONFIG.exists():
        shutil.copyfile(PROJECT_INSTANCE_CONFIG, config)
    return config


def open_instance() -> dg.DagsterInstance:
    """DAGSTER_HOME's instance if set, else the project instance next to the warehouse."""
    home = instance_home()
    if home is None:
        return dg.DagsterInstance.get()
    return project_instance(home)


#: the code location `dagster dev` loads, named as the project's pyproject.toml names it
WORKSPACE = """load_from:
  - python_module:
      module_name: journeyman.orchestration.definitions
      location_name: journeyman
"""


def dev_command_line() -> list[str]:
    """The command that opens the Dagster UI on the instance `journeyman run` and the demo record
    into, with the warehouse they use: `env DAGSTER_HOME=… JOURNEYMAN_WAREHOUSE=… dagster dev -w
    <instance>/workspace.yaml` (`shlex.join` prints it for a shell; it works from any folder).
    The instance folder, its dagster.yaml (project instance) and workspace.yaml are created if
    missing."""
    home = instance_home()
    if home is None:
        home = Path(os.environ["DAGSTER_HOME"])
    else:
        ensure_instance_config(home)
    home = home.expanduser().absolute()
    workspace = home / "workspace.yaml"
    if not workspace.exists():
        home.mkdir(parents=True, exist_ok=True)
        workspace.write_text(WORKSPACE)
    beside = Path(sys.executable).parent / "dagster"
    return [
        "env",
        f"DAGSTER_HOME={home}",
        f"{settings.WAREHOUSE_ENV}={settings.warehouse_setting()}",
        str(beside) if beside.exists() else "dagster",
        "dev",
        "-w",
        str(workspace),
    ]


def pool_warning(instance: dg.DagsterInstance) -> str | None:
    """Why runs of this instance may write the warehouse at the same time (None: they cannot)."""
    config = instance.get_concurrency_config().pool_config
    if config.pool_granularity is not None and config.pool_granularity.value == "run":
        return (
            "the instance enforces pools per run (concurrency.pools.granularity: run), not in "
            "runs executed in-process: set `granularity: op` (see the project's dagster.yaml)"
        )
    limit = {p.name: p.limit for p in instance.event_log_storage.get_pool_limits()}.get(
        WAREHOUSE_POOL, config.default_pool_limit
    )
    if limit is None:
        return (
            f"the instance sets no limit on the pool `{WAREHOUSE_POOL}`: runs may write the "
            "warehouse at the same time (set `concurrency: pools: default_limit: 1`, see the "
            "project's dagster.yaml)"
        )
    return None


# --- runs whose process is gone -----------------------------------------------------------------


@dataclass(frozen=True)
class FreedRun:
    run_id: str
    status: str  # its status before: STARTED / STARTING (marked failed), or a finished one
    pid: int | None
    slots: int  # pool slots it held


def _boot_time() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        pass
    return None


def process_alive(pid: int, started_by: float | None = None) -> bool:
    """Whether process `pid` exists on this host (and is not a zombie). With `started_by` (a
    timestamp) a process that started later is another one that reuses the number: not alive."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (not Linux): the signal answered
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return False
    boot = _boot_time()
    if started_by is not None and boot is not None:
        started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
        if started > started_by + _PID_START_SLACK_SECONDS:
            return False
    return True


def _storage_is_local(instance: dg.DagsterInstance) -> bool:
    """A SQLite instance is a file on this host: the processes of its runs ran here."""
    ref = instance.get_ref()
    names = [d.class_name for d in (ref.storage_data, ref.run_storage_data) if d is not None]
    return any("Sqlite" in name for name in names)


def _run_process(instance: dg.DagsterInstance, run: dg.DagsterRun) -> tuple[int | None, bool]:
    """(pid of the process executing the run, whether it is on this host)."""
    host = run.tags.get(HOST_TAG)
    if host is not None and run.tags.get(PID_TAG, "").isdigit():
        return int(run.tags[PID_TAG]), host == socket.gethostname()
    # other runs (dagster dev, the daemon): the process that started the run worker, else the one
    # that launched it; events carry no host name
    event_type = (
        dg.DagsterEventType.RUN_START
        if run.status == DagsterRunStatus.STARTED
        else dg.DagsterEventType.RUN_STARTING
    )
    entries = instance.all_logs(run.run_id, of_type=event_type)
    pids = [e.dagster_event.pid for e in entries if e.dagster_event and e.dagster_event.pid]
    return (pids[-1] if pids else None), _storage_is_local(instance)


def _slot_holders(instance: dg.DagsterInstance, pool: str) -> dict[str, int]:
    if not instance.event_log_storage.supports_global_concurrency_limits:
        return {}
    info = instance.event_log_storage.get_concurrency_info(pool)
    holders: dict[str, int] = {}
    for slot in info.claimed_slots:
        holders[slot.run_id] = holders.get(slot.run_id, 0) + 1
    for step in info.pending_steps:
        holders.setdefault(step.run_id, 0)
    return holders


def free_dead_runs(instance: dg.DagsterInstance, pool: str = WAREHOUSE_POOL) -> list[FreedRun]:
    """Mark failed the runs in STARTING / STARTED whose process is gone from this host, and free
    the `pool` slots they, or runs already finished, still hold. Live runs are left alone."""
    freed = []
    holders = _slot_holders(instance, pool)
    in_progress = instance.get_run_records(filters=dg.RunsFilter(statuses=list(_ALIVE_STATUSES)))
    candidates = {r.dagster_run.run_id: r for r in in_progress}
    for run_id in holders.keys() - candidates.keys():
        record = instance.get_run_record_by_id(run_id)
        if record is not None:
            candidates[run_id] = record
    for run_id, record in candidates.items():
        run = record.dagster_run
        pid = None
        if run.status in _ALIVE_STATUSES:
            pid, local = _run_process(instance, run)
            started = record.start_time or record.create_timestamp.timestamp()
            if pid is None or not local or process_alive(pid, started):
                continue
            instance.report_run_failed(
                run,
                f"the process of this run (pid {pid} on {socket.gethostname()}) is gone; "
                "marked failed and its pool slots freed by `journeyman run`",
            )
        elif not run.is_finished:
            continue  # CANCELING / SUSPENDED / queued: the run monitoring's business
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)
        freed.append(FreedRun(run_id, run.status.value, pid, holders.get(run_id, 0)))
    for run_id in holders.keys() - candidates.keys():  # slots of deleted runs
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)
        freed.append(FreedRun(run_id, "deleted", None, holders[run_id]))
    return freed


# --- the day and the selection ------------------------------------------------------------------


def partition_key(day: date) -> str:
    """The day's partition key; a day outside the partitions says which days there are."""
    key = day.isoformat()
    first = daily.start.date()
    last = daily.get_last_partition_key()
    if day < first:
        raise RunCommandError(f"{key} is before the first daily partition, {first}")
    if last is None or key > last:
        raise RunCommandError(
            f"{key} is after the last daily partition, {last} (today, UTC): days run once they "
            "have begun"
        )
    if not daily.has_partition_key(key):
        raise RunCommandError(f"{key} is not a daily partition ({first} to {last})")
    return key


def selected_keys(job: dg.JobDefinition, selection: str | None) -> list[dg.AssetKey] | None:
    """The job's assets an asset selection string names (None: the whole job)."""
    if selection is None:
        return None
    executable = set(job.asset_layer.executable_asset_keys)
    try:
        keys = dg.AssetSelection.from_string(selection).resolve(job.asset_layer.asset_graph)
    except Exception as exc:  # parse errors and unknown groups, tags, …
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunCommandError(f"invalid --select {selection!r}: {message}") from exc
    keys = [k for k in keys if k in executable]
    if not keys:
        raise RunCommandError(
            f"--select {selection!r} selects no asset of {JOB_NAME} "
            "(e.g. 'key:decisions', 'key:sync_*', 'group:delivery', 'decisions+')"
        )
    return sorted(keys, key=lambda k: k.to_user_string())


# --- progress -----------------------------------------------------------------------------------


class Progress:
    """Prints the run's steps to stderr as its events are recorded."""

    def __init__(self, instance: dg.DagsterInstance, echo=None) -> None:  # noqa: ANN001
        self.instance = instance
        self.echo = echo or (lambda line: click.echo(line, err=True))
        self.started: dict[str, float] = {}
        self.materialized: dict[str, int] = {}
        self.blocked: set[str] = set()

    def __call__(self, entry) -> None:  # noqa: ANN001 - an EventLogEntry
        event = entry.dagster_event
        if event is None:
            return
        step = event.step_key or ""
        kind = event.event_type
        if kind == dg.DagsterEventType.STEP_START:
            self.started[step] = entry.timestamp
            self.echo(f"  ▸ {step}")
        elif kind == dg.DagsterEventType.ASSET_MATERIALIZATION:
            self.materialized[step] = self.materialized.get(step, 0) + 1
        elif kind == dg.DagsterEventType.STEP_SUCCESS:
            took = entry.timestamp - self.started.get(step, entry.timestamp)
            n = self.materialized.get(step, 0)
            self.echo(f"  ✓ {step}: {n} asset(s) materialized in {took:.1f} s")
        elif kind == dg.DagsterEventType.STEP_FAILURE:
            self.echo(f"  ✗ {step} failed")
        elif kind == dg.DagsterEventType.STEP_SKIPPED:
            self.echo(f"  - {step} skipped (an upstream step failed)")
        elif (
            kind == dg.DagsterEventType.ENGINE_EVENT
            and "blocked by limit for pool" in (entry.user_message or "")
            and step not in self.blocked
        ):
            self.blocked.add(step)
            held = sorted(
                {
                    s.run_id[:8]
                    for s in self.instance.event_log_storage.get_concurrency_info(
                        WAREHOUSE_POOL
                    ).claimed_slots
                    if s.run_id != entry.run_id
                }
            )
            by = f" (held by run {', '.join(held)})" if held else ""
            self.echo(f"  … {step} waits for the `{WAREHOUSE_POOL}` pool{by}")


@contextlib.contextmanager
def _quiet_dagster_warnings():
    with warnings.catch_warnings():
        for category in (dg.BetaWarning, dg.PreviewWarning):
            warnings.simplefilter("ignore", category)
        yield


def execute_recorded(
    instance: dg.DagsterInstance,
    job: dg.JobDefinition,
    key: str,
    asset_selection: Sequence[dg.AssetKey] | None = None,
    listener=None,  # noqa: ANN001 - called with each EventLogEntry of the run
    tags: dict[str, str] | None = None,
) -> tuple[dg.ExecuteInProcessResult, str]:
    """Run `job` for partition `key` in this process, recorded in `instance` and tagged with this
    host and process (`free_dead_runs`); the result and what dagster-dbt printed to stdout."""
    run_id = make_new_run_id()
    if listener is not None:
        instance.add_event_listener(run_id, listener)
    captured = io.StringIO()  # dagster-dbt echoes dbt's log to stdout: shown on failure only
    with contextlib.redirect_stdout(captured):
        result = job.execute_in_process(
            partition_key=key,
            instance=instance,
            run_id=run_id,
            run_config=QUIET_LOGS,
            asset_selection=asset_selection,
            tags={HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid()), **(tags or {})},
            raise_on_error=False,
        )
    return result, captured.getvalue()


def execute_day(
    instance: dg.DagsterInstance,
    job: dg.JobDefinition,
    key: str,
    asset_selection: Sequence[dg.AssetKey] | None = None,
    echo=None,  # noqa: ANN001
) -> dg.ExecuteInProcessResult:
    """Run `job` for partition `key` in this process, recorded in `instance`, with progress."""
    result, output = execute_recorded(instance, job, key, asset_selection, Progress(instance, echo))
    if not result.success:
        tail = output.splitlines()[-15:]
        if tail:
            click.echo("\n".join(tail), err=True)
    return result


@click.command("run")
@click.option(
    "--date",
    "day",
    required=True,
    metavar="YYYY-MM-DD",
    help="The logical date (UTC) whose daily partition to run, YYYY-MM-DD.",
)
@click.option(
    "--select",
    "selection",
    default=None,
    help="Only these assets of daily_loop, as a Dagster asset selection, e.g. 'key:decisions+' "
    "or 'group:delivery'. Default: the whole job.",
)
def run(day: str, selection: str | None) -> None:
    """Run one day of the daily_loop job (dbt → decisions → deliveries) in this process,
    recorded in the Dagster instance (DAGSTER_HOME, else dagster/ next to the warehouse).

    Runs of the instance whose process is gone are marked failed first and their `warehouse`
    pool slots freed; a live run holding the pool is waited for."""
    started = time.perf_counter()
    try:
        try:
            logical_date = date.fromisoformat(day)
        except ValueError:
            raise RunCommandError(f"--date {day!r} is not a date like 2026-03-02") from None
        key = partition_key(logical_date)
        with _quiet_dagster_warnings():
            from journeyman.orchestration.project import prepare_manifest

            prepare_manifest()
            from journeyman.orchestration.definitions import defs

            job = defs().resolve_job_def(JOB_NAME)
            keys = selected_keys(job, selection)
            os.environ.setdefault(settings.WAREHOUSE_ENV, settings.warehouse_setting())
            instance = open_instance()
    except RunCommandError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except Exception as exc:  # definitions that cannot load, an instance that cannot open
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        click.echo(f"error: {first}", err=True)
        sys.exit(2)
    with instance, _quiet_dagster_warnings():
        where = os.environ.get("DAGSTER_HOME") or str(instance_home())
        click.echo(f"{key}: {JOB_NAME} on the Dagster instance {where}", err=True)
        warning = pool_warning(instance)
        if warning:
            click.echo(f"warning: {warning}", err=True)
        for freed in free_dead_runs(instance):
            was = f"{freed.status}, pid {freed.pid} gone" if freed.pid else freed.status
            click.echo(
                f"  freed run {freed.run_id} ({was}): marked failed if it was not, "
                f"{freed.slots} `{WAREHOUSE_POOL}` slot(s) released",
                err=True,
            )
        result = execute_day(instance, job, key, keys)
    took = time.perf_counter() - started
    if not result.success:
        click.echo(
            f"error: {key}: {describe_failure(result, first_line=True)} (run {result.run_id})",
            err=True,
        )
        sys.exit(1)
    click.echo(f"{key}: {JOB_NAME} succeeded in {took:.1f} s (run {result.run_id})")


def main() -> None:  # pragma: no cover - `python -m journeyman.orchestration.run`
    run()


if __name__ == "__main__":  # pragma: no cover
    main()
