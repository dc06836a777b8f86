"""`journeyman run`: a run killed while it holds the `warehouse` pool slot does not block the next.

The command runs in a subprocess against a small sandbox world and the project's instance
settings (DAGSTER_HOME unset: the instance lives next to the warehouse). The first run is
SIGKILLed while a step holds the slot; a second run of the same day marks it failed, frees the
slot and completes. Timeouts are safety nets only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from journeyman import settings
from journeyman.orchestration.defs.partitions import WAREHOUSE_POOL
from journeyman.sandbox import SandboxWorld
from journeyman.warehouse import Warehouse

DAY = date(2026, 3, 2)
N = 150
SAFETY_SECONDS = 600  # never reached by a working command; bounds a broken one


def _journeyman_run(*args: str) -> list[str]:
    """`journeyman run ARGS` (until `run` is registered in the CLI: the same click command run as
    a module)."""
    exe = Path(sys.executable).parent / "journeyman"
    if exe.exists() and _registered():
        return [str(exe), "run", *args]
    return [sys.executable, "-m", "journeyman.orchestration.run", *args]


def _registered() -> bool:
    from journeyman.orchestration.cli import main

    return "run" in main.commands


@pytest.fixture()
def world(tmp_path, monkeypatch):
    path = tmp_path / "warehouse.duckdb"
    SandboxWorld(Warehouse(path), seed=11).create(n_customers=N, start=DAY)
    env = {**os.environ, settings.WAREHOUSE_ENV: str(path), settings.SIMULATION_ENV: "1"}
    env.pop("DAGSTER_HOME", None)  # the project's instance settings, stored next to the warehouse
    monkeypatch.setenv(settings.WAREHOUSE_ENV, str(path))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    return {"path": path, "env": env, "root": tmp_path}


def _instance():
    from journeyman.orchestration.run import open_instance

    return open_instance()


def _wait_for_slot(instance, proc: subprocess.Popen, log: Path, deadline: float) -> str:
    """The run id of the STARTED run once one of its steps holds the `warehouse` slot."""
    import dagster as dg

    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before it held the pool slot: " + log.read_text()
        started = {
            r.dagster_run.run_id
            for r in instance.get_run_records(
                filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])
            )
        }
        if started:
            info = instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL)
            holders = {s.run_id for s in info.claimed_slots} & started
            if holders:
                return holders.pop()
        time.sleep(0.1)
    raise AssertionError("no run held the warehouse pool slot in time")


def test_a_killed_run_does_not_block_the_next_one(world):
    import dagster as dg

    watcher = _instance()  # creates the instance's storage before the command opens it
    log = world["root"] / "first.log"
    with log.open("w") as stderr:
        first = subprocess.Popen(
            _journeyman_run("--date", DAY.isoformat()),
            cwd=world["root"],
            env=world["env"],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,  # its own process group: the kill takes its dbt child too
        )
    try:
        killed_run = _wait_for_slot(watcher, first, log, time.monotonic() + SAFETY_SECONDS)
        os.killpg(first.pid, signal.SIGKILL)  # a lost worker: no chance to clean up
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=60)
        watcher.dispose()

    with _instance() as instance:
        run = instance.get_run_by_id(killed_run)
        assert run.status == dg.DagsterRunStatus.STARTED  # as the kill left it
        held = instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).claimed_slots
        assert [s.run_id for s in held] == [killed_run]  # the slot it will never free itself

    second = subprocess.run(
        _journeyman_run("--date", DAY.isoformat()),
        cwd=world["root"],
        env=world["env"],
        capture_output=True,
        text=True,
        timeout=SAFETY_SECONDS,
        check=False,
    )
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"freed run {killed_run}" in second.stderr
    assert "succeeded" in second.stdout

    with _instance() as instance:
        assert instance.get_run_by_id(killed_run).status == dg.DagsterRunStatus.FAILURE
        runs = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS]))
        assert len(runs) == 1 and runs[0].tags.get("dagster/partition") == DAY.isoformat()
        info = instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL)
        assert info.claimed_slots == [] and info.limit == 1  # the project's dagster.yaml
    wh = Warehouse(world["path"])
    assert (
        wh.scalar("select count(*) from journeyman.decisions where decision_date = :d", {"d": DAY})
        > 0
    )
    assert wh.scalar("select count(*) from journeyman.deliveries where status = 'delivered'") > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--date", "2024-12-31"], "before the first daily partition, 2025-01-01"),
        (["--date", "2999-01-01"], "after the last daily partition"),
        (["--date", "March 2"], "not a date like"),
        (["--date", "2026-03-02", "--select", "key:no_such_asset"], "selects no asset"),
        (["--date", "2026-03-02", "--select", "key:decisions ((("], "invalid --select"),
    ],
)
def test_bad_input_is_one_line_and_exit_status_2(args, message, tmp_path):
    env = {**os.environ, settings.WAREHOUSE_ENV: str(tmp_path / "warehouse.duckdb")}
    env.pop("DAGSTER_HOME", None)
    out = subprocess.run(
        _journeyman_run(*args),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=SAFETY_SECONDS,
        check=False,
    )
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines


def test_only_runs_whose_process_is_gone_are_failed_and_freed(tmp_path):
    """free_dead_runs on a bare instance: a STARTED run of a live process keeps its slot; one of
    a process that has exited is marked failed and its slot freed."""
    import socket

    import dagster as dg

    from journeyman.orchestration.run import HOST_TAG, PID_TAG, free_dead_runs, project_instance

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(timeout=60)  # exited and reaped: its pid names no process now
    with project_instance(tmp_path / "dagster") as instance:
        storage = instance.event_log_storage
        storage.set_concurrency_slots(WAREHOUSE_POOL, 2)
        runs = {}
        for name, pid in (("live", os.getpid()), ("dead", gone.pid)):
            run = dg.DagsterRun(
                job_name="daily_loop",
                status=dg.DagsterRunStatus.STARTED,
                tags={HOST_TAG: socket.gethostname(), PID_TAG: str(pid)},
            )
            instance.add_run(run)
            assert storage.claim_concurrency_slot(WAREHOUSE_POOL, run.run_id, name).is_claimed
            runs[name] = run.run_id

        freed = free_dead_runs(instance)

        assert [(f.run_id, f.slots) for f in freed] == [(runs["dead"], 1)]
        assert instance.get_run_by_id(runs["dead"]).status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(runs["live"]).status == dg.DagsterRunStatus.STARTED
        held = storage.get_concurrency_info(WAREHOUSE_POOL).claimed_slots
        assert [s.run_id for s in held] == [runs["live"]]
        assert free_dead_runs(instance) == []  # nothing left to free


def test_a_pid_reused_by_a_later_process_is_not_the_run_s():
    from journeyman.orchestration.run import process_alive

    assert process_alive(os.getpid())
    assert process_alive(os.getpid(), started_by=time.time())
    if Path("/proc/self/stat").exists():  # Linux: the process started after the run did
        assert not process_alive(os.getpid(), started_by=time.time() - 10 * 365 * 86400)
