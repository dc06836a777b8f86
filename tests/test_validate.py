"""`journeyman validate` and the template check the decisions asset runs before deciding: on
real agent files, the project's dbt manifest and real Jinja."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from journeyman import settings
from journeyman.decisioning.config import AgentConfig, AgentConfigError, load_agent, load_agents
from journeyman.orchestration.cli import main
from journeyman.orchestration.project import ensure_manifest
from journeyman.orchestration.templates_check import (
    check_agent_templates,
    manifest_columns,
    require_valid_templates,
    warehouse_columns,
)
from journeyman.warehouse import Warehouse


@pytest.fixture(scope="module")
def columns() -> list[str]:
    """customer_features' columns, from the project's dbt manifest (parsed when stale)."""
    return manifest_columns(ensure_manifest())


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
    assert result.exit_code == 2
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
    assert result.exit_code == 2
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
    assert result.exit_code == 2
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
    assert result.exit_code == 2
    assert f"{path}: audience: uses unknown column(s) ['dayz_since_last_order']" in result.output


def test_without_columns_it_says_so_and_still_checks_the_syntax(agents, tmp_path, monkeypatch):
    monkeypatch.setenv(settings.WAREHOUSE_ENV, str(tmp_path / "none" / "warehouse.duckdb"))
    missing = tmp_path / "no-manifest.json"
    result = _validate(agents, "--manifest", str(missing))
    assert result.exit_code == 0, result.output
    assert "warning: the marts.customer_features columns could not be read" in result.output
    _edit(agents / "winback.yml", _set_body(1, "email", "{{ oops"))
    result = _validate(agents, "--manifest", str(missing))
    assert result.exit_code == 2
    assert "dimensions.messages.1.email.body" in result.output


def test_a_missing_agents_folder_is_one_line_and_exit_2(tmp_path):
    result = _validate(tmp_path / "nowhere")
    assert result.exit_code == 2
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
