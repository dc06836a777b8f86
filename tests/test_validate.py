"""`journeyman validate` and the template check the decisions asset runs before deciding: on
real agent files, the project's dbt manifest, real Jinja and a real DuckDB warehouse. Exit
status: 0 clean, 1 problems found, 2 usage error or a check that cannot run."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from journeyman import settings
from journeyman.decisioning.config import AgentConfig, AgentConfigError, load_agent, load_agents
from journeyman.orchestration.cli import main
from journeyman.orchestration.project import prepare_manifest
from journeyman.orchestration.templates_check import (
    check_agent_templates,
    manifest_columns,
    require_valid_templates,
    warehouse_columns,
)
from journeyman.tables import RAW_TABLES_DDL, declared_columns, ensure_raw_tables
from journeyman.warehouse import Warehouse


@pytest.fixture(autouse=True)
def no_warehouse(tmp_path, monkeypatch) -> Path:
    """JOURNEYMAN_WAREHOUSE → a file that does not exist (tests that need one create it)."""
    path = tmp_path / "no-warehouse" / "warehouse.duckdb"
    monkeypatch.setenv(settings.WAREHOUSE_ENV, str(path))
    return path


@pytest.fixture(scope="module")
def columns() -> list[str]:
    """customer_features' columns, from the project's dbt manifest (parsed when stale)."""
    return manifest_columns(prepare_manifest())


@pytest.fixture
def agents(tmp_path) -> Path:
    """A copy of the shipped agent files."""
    folder = tmp_path / "agents"
    folder.mkdir()
    for path in sorted(settings.AGENTS_DIR.glob("*.yml")):
        (folder / path.name).write_text(path.read_text())
    return folder


def _edit(path: Path, change) -> Path:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _validate(agents: Path, *args: str):
    return CliRunner().invoke(
        main, ["validate", *args], env={settings.AGENTS_ENV: str(agents)}, catch_exceptions=False
    )


def _set_body(index: int, channel: str, body: str):
    def change(data: dict) -> None:
        data["dimensions"]["messages"][index][channel]["body"] = body

    return change


def test_a_clean_project_exits_0(agents, columns):
    result = _validate(agents)
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1].startswith("validate: ok (3 agent file(s)")
    assert "manifest" in result.output


def test_an_unknown_template_variable_names_file_field_and_fix(agents, columns):
    path = _edit(agents / "winback.yml", _set_body(1, "email", "{{ days_since_lastorder }} days"))
    result = _validate(agents)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    problem = next(line for line in lines if line.startswith(f"{path}: "))
    assert problem.startswith(f"{path}: dimensions.messages.1.email.body: message `ten_off`: ")
    assert "['days_since_lastorder']" in problem
    assert "did you mean 'days_since_last_order'" in problem
    assert lines[-1].startswith("validate: 1 problem(s) in 1 file(s)")
    assert "Traceback" not in result.output


def test_a_syntax_error_names_the_subject_variant_and_the_line(agents, columns):
    def change(data: dict) -> None:
        data["dimensions"]["messages"][0]["email"]["subject"][1] = "Hi\n{{ days_since_last_order"

    path = _edit(agents / "winback.yml", change)
    result = _validate(agents)
    assert result.exit_code == 1
    assert (
        f"{path}: dimensions.messages.0.email.subject.1: message `we_miss_you`: " in result.output
    )
    assert "template syntax error at line 2" in result.output
    assert "Traceback" not in result.output


def test_agent_file_and_destination_problems_are_listed_one_per_line_as_json(agents, columns):
    def change(data: dict) -> None:
        data["guardrails"]["max_per_week"] = -1
        data["dimensions"]["messages"][0]["email"]["body"] = "{% if %}"

    _edit(agents / "winback.yml", change)

    def elsewhere(data: dict) -> None:
        data["destinations"]["email"] = "mailgun"

    cross_sell = _edit(agents / "cross_sell.yml", elsewhere)
    result = _validate(agents, "--json")
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["ok"] is False
    found = {(Path(p["file"]).name, p["field"]) for p in report["problems"]}
    assert ("winback.yml", "guardrails.max_per_week") in found
    assert ("cross_sell.yml", "destinations.email") in found
    mailgun = next(p for p in report["problems"] if p["field"] == "destinations.email")
    assert mailgun["file"] == str(cross_sell) and "`mailgun` is not defined" in mailgun["problem"]
    # winback did not load: its broken template is not checked (its load problem is listed)
    assert not any(p["field"].endswith("email.body") for p in report["problems"])


def test_unknown_audience_columns_are_problems(agents, columns):
    if not hasattr(AgentConfig, "audience_expression"):
        pytest.skip("agents do not expose their parsed audience")

    def change(data: dict) -> None:
        data["audience"] = "has_ordered = 1 and dayz_since_last_order >= 21"

    path = _edit(agents / "winback.yml", change)
    result = _validate(agents)
    assert result.exit_code == 1
    assert f"{path}: audience: uses unknown column(s) ['dayz_since_last_order']" in result.output


def test_without_columns_it_says_so_and_still_checks_the_syntax(agents, tmp_path, monkeypatch):
    monkeypatch.setenv(settings.WAREHOUSE_ENV, str(tmp_path / "none" / "warehouse.duckdb"))
    missing = tmp_path / "no-manifest.json"
    result = _validate(agents, "--manifest", str(missing))
    assert result.exit_code == 0, result.output
    assert "warning: the marts.customer_features columns could not be read" in result.output
    _edit(agents / "winback.yml", _set_body(1, "email", "{{ oops"))
    result = _validate(agents, "--manifest", str(missing))
    assert result.exit_code == 1
    assert "dimensions.messages.1.email.body" in result.output


def test_a_missing_agents_folder_is_one_problem_and_exit_1(tmp_path):
    result = _validate(tmp_path / "nowhere")
    assert result.exit_code == 1
    assert "the agents folder does not exist" in result.output
    assert "Traceback" not in result.output


def test_the_decisions_check_passes_the_shipped_agents(columns):
    shipped = load_agents(settings.AGENTS_DIR)
    assert check_agent_templates(shipped, columns) == []
    require_valid_templates(shipped, columns)  # does not raise


def test_the_decisions_check_stops_a_template_naming_a_missing_column(agents, columns):
    path = _edit(agents / "winback.yml", _set_body(3, "push", "Free shipping, {{ first_name }}"))
    problems = check_agent_templates([load_agent(path)], columns)
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}: dimensions.messages.3.push.body: ")
    assert "['first_name']" in problems[0] and "available: " in problems[0]
    with pytest.raises(AgentConfigError, match="nothing was decided") as stop:
        require_valid_templates([load_agent(path)], columns)
    assert problems[0] in str(stop.value)
    # the decision's own columns are there at send time too
    _edit(path, _set_body(3, "push", "{{ message_id }} for {{ customer_id }} on {{ channel }}"))
    assert check_agent_templates([load_agent(path)], columns) == []


def test_warehouse_columns_read_the_table_as_built(tmp_path):
    warehouse = Warehouse(tmp_path / "warehouse.duckdb")
    assert warehouse_columns(warehouse) is None
    warehouse.execute(
        "create schema marts; create table marts.customer_features (customer_id varchar, "
        "days_since_last_order integer)"
    )
    assert warehouse_columns(warehouse) == ["customer_id", "days_since_last_order"]


# -- quiet hours -------------------------------------------------------------------------------


def test_quiet_hours_with_the_same_start_and_end_are_a_configuration_error(agents, columns):
    def change(data: dict) -> None:
        data["guardrails"]["quiet_hours"] = {"start": 9, "end": 9}

    path = _edit(agents / "winback.yml", change)
    with pytest.raises(AgentConfigError, match="guardrails.quiet_hours") as stop:
        load_agent(path)
    assert "omit quiet_hours for none, or give different hours" in str(stop.value)
    result = _validate(agents)
    assert result.exit_code == 1
    problem = next(line for line in result.output.splitlines() if line.startswith(f"{path}: "))
    assert problem.startswith(f"{path}: guardrails.quiet_hours: ")
    assert "both 9" in problem and "omit quiet_hours for none" in problem
    # none at all is fine
    _edit(path, lambda data: data["guardrails"].pop("quiet_hours"))
    assert _validate(agents).exit_code == 0


# -- raw tables --------------------------------------------------------------------------------


def test_an_existing_warehouse_has_its_raw_tables_and_columns_checked(
    agents, columns, no_warehouse
):
    warehouse = Warehouse(no_warehouse)
    ensure_raw_tables(warehouse)
    result = _validate(agents)
    assert result.exit_code == 0, result.output
    assert f"raw tables in {no_warehouse}" in result.output.splitlines()[-1]

    warehouse.execute(
        "drop table raw.consents; "
        "alter table raw.orders drop column amount; "
        "alter table raw.orders drop column discount_amount; "  # optional: not a problem
        "alter table raw.message_events alter occurred_at type varchar; "
        "alter table raw.customers alter signup_at type timestamptz"
    )
    result = _validate(agents, "--json")
    assert result.exit_code == 1
    report = json.loads(result.output)
    found = {p["field"]: p for p in report["problems"]}
    assert set(found) == {
        "raw.consents",
        "raw.orders.amount",
        "raw.message_events.occurred_at",
        "raw.customers.signup_at",
    }
    assert all(p["file"] == str(no_warehouse) for p in found.values())
    consents = ", ".join(f"{c} {t}" for c, t in declared_columns(RAW_TABLES_DDL)["raw.consents"])
    assert "table is missing; load it with your ETL tool" in found["raw.consents"]["problem"]
    assert consents in found["raw.consents"]["problem"]
    assert found["raw.orders.amount"]["problem"].startswith("column is missing; add it as double")
    assert found["raw.message_events.occurred_at"]["problem"].startswith(
        "column is VARCHAR, expected timestamp; load it as timestamp"
    )
    assert "store UTC as TIMESTAMP without time zone" in found["raw.customers.signup_at"]["problem"]

    text = _validate(agents)
    assert text.exit_code == 1
    lines = text.output.strip().splitlines()
    assert f"{no_warehouse}: raw.orders.amount: column is missing; add it as double" in text.output
    assert lines[-1].startswith("validate: 4 problem(s) in 1 file(s)")


def test_without_a_warehouse_file_the_raw_tables_are_not_checked(agents, columns, no_warehouse):
    result = _validate(agents, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["raw_tables_from"] is None
    assert not no_warehouse.exists()  # validate never creates the warehouse


def test_a_warehouse_another_process_holds_is_a_warning(agents, columns, no_warehouse):
    no_warehouse.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import duckdb, time
            con = duckdb.connect({str(no_warehouse)!r})
            con.execute("create schema raw")
            print("locked", flush=True)
            time.sleep(60)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = _validate(agents)
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code == 0, result.output
    assert f"warning: the raw tables in {no_warehouse} were not checked" in result.output


# -- usage errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args", [["--no-such-option"], ["--manifest"], ["--agents", "a", "extra-argument"]]
)
def test_a_usage_error_is_one_line_and_exit_2(agents, args):
    result = _validate(agents, *args)
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert result.output.startswith("error: ") and "validate --help" in result.output
