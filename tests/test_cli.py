"""`journeyman demo` end to end, and its clear errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from backends import SKIP_REASON, postgres_database, rows, server_url
from click.testing import CliRunner

from journeyman import settings
from journeyman.orchestration.cli import main
from journeyman.orchestration.defs.partitions import daily

JOURNEYMAN = Path(sys.executable).parent / "journeyman"


def _demo(env_path: Path, *args: str, agents: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, settings.WAREHOUSE_ENV: str(env_path), "COLUMNS": "160"}
    if agents is not None:
        env[settings.AGENTS_ENV] = str(agents)
    return subprocess.run(
        [str(JOURNEYMAN), "demo", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


def _table(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("│")]


def test_demo_runs_end_to_end_through_the_emulators(tmp_path):
    """The README's first command, small: the summary table lists the agents' groups and nothing
    went to files (the demo's reproducibility and its emulator path: test_demo_emulators.py;
    file delivery: test_demo_cdnow.py)."""
    path = tmp_path / "wh" / "warehouse.duckdb"
    first = _demo(path, "--customers", "300", "--days", "1", "--seed", "3")
    assert first.returncode == 0, first.stderr[-3000:]
    rows = _table(first.stdout)
    assert any("holdout" in r for r in rows) and any("rule_based" in r for r in rows)
    assert not (path.parent / "outbox").exists()  # nothing went to files


@pytest.mark.postgres
@pytest.mark.skipif(server_url() is None, reason=SKIP_REASON)
def test_demo_runs_on_a_postgres_warehouse_without_printing_its_password(tmp_path):
    with postgres_database("demo") as url:
        password = sa.make_url(url).password
        result = _demo(
            tmp_path / "unused.duckdb", "--customers", "100", "--days", "1", "--warehouse", url
        )
        assert result.returncode == 0, result.stderr[-3000:]
        table = _table(result.stdout)
        assert any("holdout" in r for r in table) and any("rule_based" in r for r in table)
        assert password and password not in result.stdout + result.stderr
        decided = rows(url, "select count(distinct customer_id) as n from journeyman.decisions")
        assert decided[0]["n"] > 0
        assert rows(url, "select count(*) as n from raw.message_events")[0]["n"] > 0
        _read_back_from_postgres(url, password, decided_customer(url), tmp_path)
    assert not (tmp_path / "unused.duckdb").exists()


def decided_customer(url: str) -> str:
    """A customer the demo's win-back agent decided for (sent or not)."""
    return rows(
        url,
        "select min(customer_id) as c from journeyman.decisions where agent = 'winback' "
        "and exclusion_reason is null",
    )[0]["c"]


def _read_back_from_postgres(url: str, password: str, customer: str, tmp_path: Path) -> None:
    """What a marketer reads works on the server warehouse too: the HTML report and a
    customer's timeline, neither printing the password."""
    env = {**os.environ, settings.WAREHOUSE_ENV: url}
    run = lambda *args: subprocess.run(  # noqa: E731
        [str(JOURNEYMAN), *args], capture_output=True, text=True, env=env, timeout=300
    )
    report = run("report", "--agent", "winback", "--out", str(tmp_path / "reports"))
    assert report.returncode == 0, report.stderr[-3000:]
    page = Path(report.stdout.strip())
    assert page.parent == tmp_path / "reports" and "winback" in page.read_text(encoding="utf-8")
    timeline = run("inspect", customer, "--agent", "winback", "--json")
    assert timeline.returncode == 0, timeline.stderr[-3000:]
    assert customer in timeline.stdout and '"decision_date"' in timeline.stdout
    ledger = run("deliveries", "list", "sendgrid", "--json")
    assert ledger.returncode == 0, ledger.stderr[-3000:]
    assert '"decision_id"' in ledger.stdout  # the e-mails the demo delivered
    for output in (report, timeline, ledger):
        assert password not in output.stdout + output.stderr


def test_invalid_option_is_one_clear_error_and_writes_nothing(tmp_path):
    path = tmp_path / "wh" / "warehouse.duckdb"
    result = _demo(path, "--customers", "5")
    assert result.returncode == 2
    assert "--customers" in result.stderr and "100" in result.stderr
    assert "Traceback" not in result.stderr
    assert not path.parent.exists()


def test_invalid_agent_file_names_file_and_field(tmp_path):
    agents = tmp_path / "agents"
    agents.mkdir()
    data = yaml.safe_load((settings.AGENTS_DIR / "winback.yml").read_text())
    data["guardrails"]["max_per_week"] = -1
    (agents / "winback.yml").write_text(yaml.safe_dump(data))
    path = tmp_path / "wh" / "warehouse.duckdb"
    result = _demo(path, agents=agents)
    assert result.returncode == 2
    message = re.sub(r"\s+", " ", result.stderr)
    assert "winback.yml" in message and "guardrails.max_per_week" in message
    assert "Traceback" not in result.stderr
    assert not path.exists()


def test_locked_warehouse_is_reported_and_left_untouched(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import duckdb, sys, time
            con = duckdb.connect({str(path)!r})
            con.execute("create table keep as select 42 as answer")
            print("locked", flush=True)
            time.sleep(120)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        size = path.stat().st_size
        result = _demo(path, "--customers", "300", "--days", "1")
        assert result.returncode == 2
        message = re.sub(r"\s+", " ", result.stderr)
        assert "locked by another process" in message
        assert "Traceback" not in result.stderr
        assert path.exists() and path.stat().st_size == size
        assert holder.poll() is None  # it gave up while the lock was still held
    finally:
        holder.kill()
        holder.wait()


def test_missing_dbt_executable_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(settings.WAREHOUSE_ENV, str(tmp_path / "wh" / "warehouse.duckdb"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    result = CliRunner().invoke(main, ["demo", "--customers", "300", "--days", "1"])
    assert result.exit_code == 2
    assert "The `dbt` executable was not found" in result.output
    assert not (tmp_path / "wh").exists()


@pytest.mark.parametrize(
    "args", [["--days", "0"], ["--start", "2026-13-01"], ["--start", "2999-01-01"]]
)
def test_bad_dates_and_days_are_rejected(args):
    result = CliRunner().invoke(main, ["demo", *args])
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert result.output.startswith("error: ")


@pytest.mark.parametrize(
    ("start", "days"),
    [
        (str(daily.start.date() - timedelta(days=2)), "14"),  # before the first partition
        (str(datetime.now(UTC).date() - timedelta(days=3)), "14"),  # ends after today
    ],
)
def test_dates_outside_the_partitions_are_one_line_naming_the_range(tmp_path, start, days):
    path = tmp_path / "wh" / "warehouse.duckdb"
    result = _demo(path, "--start", start, "--days", days)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    first, last = daily.start.date(), datetime.now(UTC).date()
    assert lines[0].startswith(f"error: --start {start} with --days {days} ")
    assert f"the daily partitions run from {first} to {last}" in lines[0]
    assert f"choose --start between {first} and {last - timedelta(days=int(days))}" in lines[0]
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not path.parent.exists()  # it fails before any work


def test_the_last_allowed_start_is_accepted_by_the_date_check():
    from journeyman.orchestration.cli import _check_demo_dates

    today = datetime.now(UTC).date()
    _check_demo_dates(today - timedelta(days=14), 14)  # does not exit
    _check_demo_dates(daily.start.date(), 14)
    with pytest.raises(SystemExit) as stop:
        _check_demo_dates(today - timedelta(days=13), 14)
    assert stop.value.code == 2


@pytest.mark.parametrize(
    "args",
    [
        ["demo", "--customers", "5"],
        ["demo", "--no-such-option"],
        ["no-such-command"],
        ["deliveries", "list"],
        ["cancel-scheduled"],
    ],
)
def test_usage_errors_are_one_line_and_exit_2(args):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert result.output.startswith("error: ") and "--help`)" in result.output


@pytest.fixture
def stale_manifest(tmp_path, monkeypatch) -> Path:
    """A copy of the project's manifest in a target folder of this test's own, older than every
    project file, and the project pointed at it (the shared manifest stays as it is for the
    tests running beside this one)."""
    from dagster_dbt import DbtProject

    from journeyman.orchestration import project

    own = DbtProject(
        project_dir=settings.DBT_PROJECT_DIR,
        profiles_dir=settings.DBT_PROJECT_DIR,
        target_path=tmp_path / "target",
    )
    own.manifest_path.parent.mkdir(parents=True)
    own.manifest_path.write_bytes(project.dbt_project.manifest_path.read_bytes())
    os.utime(own.manifest_path, (1, 1))
    monkeypatch.setattr(project, "dbt_project", own)
    return own.manifest_path


def test_prepare_parses_a_stale_manifest_and_reports_where_it_is(stale_manifest):
    manifest = stale_manifest
    result = CliRunner().invoke(main, ["prepare"])
    assert result.exit_code == 0, result.output
    assert f"dbt manifest ready: {manifest}" in " ".join(result.output.split())
    assert manifest.stat().st_mtime > 1  # parsed again


def test_prepare_without_dbt_is_one_clear_error(stale_manifest, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    result = CliRunner().invoke(main, ["prepare"])
    assert result.exit_code == 2
    assert result.output.startswith("error: The `dbt` executable was not found")
    assert len(result.output.strip().splitlines()) == 1
