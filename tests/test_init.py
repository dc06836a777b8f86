"""`journeyman init DIR`: a new project folder that `journeyman validate` passes as created, with
no secret in any file; a folder in use is refused with one line and exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from journeyman import settings
from journeyman.connectors.catalog import CATALOG_ENV, load_catalog
from journeyman.connectors.registry import KINDS, SECRET_ENV
from journeyman.decisioning.config import load_agents
from journeyman.intake.config import SENDGRID_KEY_ENV
from journeyman.orchestration.cli import main
from journeyman.orchestration.init import FILES, TEMPLATE_DIR

JOURNEYMAN = Path(sys.executable).parent / "journeyman"
VENDORS_MARKER = "# --- vendors"


def _journeyman(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(JOURNEYMAN), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
        check=False,
    )


def _env_example(project: Path) -> dict[str, str]:
    values = {}
    for line in (project / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, line
            values[name.strip()] = value.strip()
    return values


@pytest.fixture
def project(tmp_path) -> Path:
    folder = tmp_path / "shop" / "journeys"
    result = CliRunner().invoke(main, ["init", str(folder)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"created {folder}: ")
    return folder


def test_init_creates_the_project_files(project):
    written = sorted(str(p.relative_to(project)) for p in project.rglob("*") if p.is_file())
    assert written == sorted(FILES.values())
    assert {".env.example", "destinations.yml", "README.md", "agents/winback.yml"} <= set(written)
    # every template file is copied (a file added to the template is listed in FILES)
    template = sorted(str(p.relative_to(TEMPLATE_DIR)) for p in TEMPLATE_DIR.rglob("*"))
    assert [t for t in template if (TEMPLATE_DIR / t).is_file()] == sorted(FILES)


def test_init_then_validate_passes(project, tmp_path):
    """What the README says: from the folder, with the variables of .env.example."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in (settings.AGENTS_ENV, CATALOG_ENV, settings.WAREHOUSE_ENV)
    }
    env.update({k: v for k, v in _env_example(project).items() if v})
    assert {settings.AGENTS_ENV, CATALOG_ENV, settings.WAREHOUSE_ENV} <= set(env)
    result = _journeyman("validate", cwd=project, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith("validate: ok (1 agent file(s), "), result.stdout
    assert "1 destination(s)" in summary
    assert not (project / ".journeyman").exists()  # validate creates no warehouse

    # and from anywhere, pointing the variables at the folder
    env.update(
        {
            settings.AGENTS_ENV: str(project / "agents"),
            CATALOG_ENV: str(project / "destinations.yml"),
            settings.WAREHOUSE_ENV: str(tmp_path / "none" / "warehouse.duckdb"),
        }
    )
    result = _journeyman("validate", "--json", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_example_agent_delivers_to_the_catalogs_file_destination(project):
    (agent,) = load_agents(project / "agents")
    catalog = load_catalog(project / "destinations.yml")
    assert catalog == {"file": {"kind": "file"}}
    assert set(agent.destinations.values()) == {"file"}


def test_the_commented_vendors_are_valid_once_uncommented_and_hold_no_secret(project):
    text = (project / "destinations.yml").read_text()
    head, marker, vendors = text.partition(VENDORS_MARKER)
    assert marker, "the vendor section is missing"
    lines = vendors.splitlines()[1:]
    assert all(line.startswith("# ") for line in lines if line.strip())
    uncommented = project / "uncommented.yml"
    uncommented.write_text(head + "\n".join(line[2:] for line in lines) + "\n")
    catalog = load_catalog(uncommented)  # raises on a secret field or an unknown kind
    assert {entry["kind"] for entry in catalog.values()} == set(KINDS)
    secret_fields = {field for fields in SECRET_ENV.values() for field in fields}
    assert not any(secret_fields & set(entry) for entry in catalog.values())


def test_env_example_names_every_secret_with_an_empty_value(project):
    values = _env_example(project)
    secrets = {env for fields in SECRET_ENV.values() for env in fields.values()}
    secrets.add(SENDGRID_KEY_ENV)
    assert secrets <= set(values)
    assert all(values[name] == "" for name in secrets)
    assert ".env" in (project / ".gitignore").read_text().splitlines()


def test_init_accepts_an_empty_existing_folder(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    result = CliRunner().invoke(main, ["init", str(folder)])
    assert result.exit_code == 0, result.output
    assert (folder / "agents" / "winback.yml").is_file()


@pytest.mark.parametrize("kind", ["non-empty folder", "file"])
def test_init_refuses_a_folder_in_use_with_one_line(tmp_path, kind):
    target = tmp_path / "taken"
    if kind == "file":
        target.write_text("mine")
    else:
        target.mkdir()
        (target / "notes.txt").write_text("mine")
    before = sorted(tmp_path.rglob("*"))
    result = _journeyman("init", str(target), cwd=tmp_path, env=dict(os.environ))
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {target} ")
    assert "Traceback" not in result.stderr
    assert sorted(tmp_path.rglob("*")) == before


def test_init_without_a_folder_is_a_one_line_usage_error():
    result = CliRunner().invoke(main, ["init"])
    assert result.exit_code == 2
    assert result.output.startswith("error: Missing argument 'DIRECTORY'. (see `")
    assert result.output.strip().endswith(" init --help`)")
    assert len(result.output.strip().splitlines()) == 1


def test_the_example_agent_parses_as_yaml_with_comments_kept(project):
    text = (project / "agents" / "winback.yml").read_text()
    assert yaml.safe_load(text)["name"] == "winback"
    assert text.startswith("# An example agent")
