"""`journeyman validate`: check the agent files, the destinations they deliver to, every
message template, the audiences against `marts.customer_features` and, when the warehouse file
exists, its raw source tables and columns, before anything runs.

Each problem is one line, `file: field: problem; fix`, then a summary line. Exit status 0 when
clean, 1 when problems were found, 2 on a usage error or when the check itself cannot run (one
`error:` line).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from journeyman import settings
from journeyman.decisioning.config import AgentConfig, AgentConfigError, load_agent
from journeyman.decisioning.features import FEATURES_MODEL
from journeyman.orchestration.templates_check import (
    FEATURES_SCHEMA,
    Problem,
    manifest_columns,
    template_problems,
    warehouse_columns,
)
from journeyman.tables import RAW_TABLES_DDL, declared_columns

#: exit status when problems were found (usage errors and a check that cannot run: 2)
PROBLEMS_FOUND = 1
#: how long validate waits for a warehouse another process holds before skipping it
_LOCK_WAIT_S = 2.0

_FILE = "(file)"
_REASON_CHARS = 300


def _one_line(text: Any, limit: int = _REASON_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class Report:
    """What `validate` found."""

    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    files: int = 0
    templates: int = 0
    destinations: int = 0
    columns_from: str | None = None
    raw_tables_from: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "problems": [p.as_dict() for p in self.problems],
            "warnings": self.warnings,
            "agent_files": self.files,
            "templates": self.templates,
            "destinations": self.destinations,
            "columns_from": self.columns_from,
            "raw_tables_from": self.raw_tables_from,
        }

    def summary(self) -> str:
        checked = (
            f"{self.files} agent file(s), {self.templates} template(s), "
            f"{self.destinations} destination(s)"
        )
        if self.columns_from:
            checked += f"; columns from {self.columns_from}"
        if self.raw_tables_from:
            checked += f"; raw tables in {self.raw_tables_from}"
        if self.ok:
            return f"validate: ok ({checked})"
        files = len({p.file for p in self.problems})
        return f"validate: {len(self.problems)} problem(s) in {files} file(s) ({checked})"


# -- agent files -----------------------------------------------------------------------------


def config_error_problems(path: Path, message: str) -> list[Problem]:
    """An AgentConfigError's message (`path: ...`, possibly a list of `  - field: msg` lines)
    as one Problem per field."""
    rest = message.removeprefix(f"{path}: ")
    head, *items = rest.split("\n  - ")
    if not items:
        return [Problem(str(path), _FILE, _one_line(rest))]
    problems = []
    for item in items:
        loc, sep, msg = item.partition(": ")
        if not sep:
            loc, msg = _FILE, item
        problems.append(Problem(str(path), loc.strip(), _one_line(msg)))
    return problems


def load_agent_files(directory: Path) -> tuple[list[AgentConfig], list[Problem], int]:
    """Every agent file in `directory`, each loaded on its own: (agents, problems, files)."""
    if not directory.is_dir():
        problem = "the agents folder does not exist; create it or set JOURNEYMAN_AGENTS"
        return [], [Problem(str(directory), _FILE, problem)], 0
    files = sorted([*directory.glob("*.yml"), *directory.glob("*.yaml")])
    if not files:
        problem = "no agent files (*.yml) found; add one or set JOURNEYMAN_AGENTS"
        return [], [Problem(str(directory), _FILE, problem)], 0
    agents, problems = [], []
    for path in files:
        try:
            agents.append(load_agent(path))
        except AgentConfigError as exc:
            problems.extend(config_error_problems(path, str(exc)))
    return agents, problems, len(files)


# -- destinations ----------------------------------------------------------------------------


def destination_problems(agents: Iterable[AgentConfig]) -> tuple[list[Problem], int]:
    """The catalog loads, and every destination an agent names is in it."""
    from journeyman.connectors.catalog import catalog_path, load_catalog
    from journeyman.connectors.registry import KINDS

    path = catalog_path()
    try:
        catalog = load_catalog()
    except Exception as exc:  # an invalid catalog is a problem to report
        message = str(exc).removeprefix(f"{path}: ")
        return [Problem(str(path), "(catalog)", _one_line(message))], 0
    problems = []
    for agent in agents:
        for channel, name in agent.destinations.items():
            if name not in catalog:
                problems.append(
                    Problem(
                        agent.source,
                        f"destinations.{channel}",
                        f"destination `{name}` is not defined in {path}; add it there with a "
                        f"`kind` ({', '.join(sorted(KINDS))}) or use one of {sorted(catalog)}",
                    )
                )
    return problems, len(catalog)


# -- columns ---------------------------------------------------------------------------------


def feature_columns(manifest: Path | None) -> tuple[list[str] | None, str]:
    """customer_features' columns and where they came from, or None and why not: the given
    manifest, else the project's (parsed with dbt when stale), else the warehouse."""
    try:
        if manifest is None:
            from journeyman.orchestration.project import prepare_manifest

            manifest = prepare_manifest()
        return manifest_columns(manifest), f"dbt manifest {manifest}"
    except Exception as exc:  # no dbt / no manifest: say so, check the rest
        reason = _one_line(exc, 200)
    path = settings.warehouse_path()
    if path.exists():
        try:
            from journeyman.warehouse import Warehouse

            warehouse = Warehouse(path, read_only=True, lock_wait_s=_LOCK_WAIT_S)
            columns = warehouse_columns(warehouse)
            if columns:
                return columns, f"warehouse {path}"
        except Exception:  # busy or unreadable: the manifest reason stands
            pass
    return None, reason


def _audience_columns(agent: AgentConfig) -> set[str] | None:
    """The columns the agent's parsed audience uses, when the agent exposes them."""
    for attribute in ("audience_columns", "audience_expression"):
        value = getattr(agent, attribute, None)
        if callable(value):
            value = value()
        columns = getattr(value, "columns", value)
        if isinstance(columns, set | frozenset | list | tuple):
            return {str(c) for c in columns}
    return None


def audience_problems(agents: Iterable[AgentConfig], columns: Collection[str]) -> list[Problem]:
    """Audience columns that customer_features does not have (DuckDB names: any case)."""
    known = {c.lower() for c in columns}
    problems = []
    for agent in agents:
        try:
            used = _audience_columns(agent)
        except Exception as exc:  # an audience that does not parse
            problems.append(Problem(agent.source, "audience", _one_line(exc)))
            continue
        unknown = sorted(c for c in used or () if c.lower() not in known)
        if unknown:
            problems.append(
                Problem(
                    agent.source,
                    "audience",
                    f"uses unknown column(s) {unknown}; use columns of "
                    f"{FEATURES_SCHEMA}.{FEATURES_MODEL}: {', '.join(sorted(columns))}",
                )
            )
    return problems


# -- raw source tables -----------------------------------------------------------------------

#: type names (their leading word; DuckDB's, PostgreSQL's) each declared raw column type accepts
_COMPATIBLE_TYPES = {
    "varchar": {"VARCHAR", "CHARACTER", "TEXT"},
    "timestamp": {"TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "DATETIME"},
    "double precision": {
        "DOUBLE", "FLOAT", "REAL", "DECIMAL", "NUMERIC", "TINYINT", "SMALLINT", "INTEGER",
        "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT",
    },
}  # fmt: skip
_TYPE_FIXES = {
    "TIMESTAMP WITH TIME ZONE": "store UTC as TIMESTAMP without time zone",
}


def optional_raw_columns(ddl: str = RAW_TABLES_DDL) -> set[tuple[str, str]]:
    """(table, column) the raw DDL marks optional (`-- ... optional`): dbt reads NULL without
    them."""
    optional = set()
    for match in re.finditer(r"create table if not exists (\S+) \((.*?)\n\);", ddl, re.S):
        for line in match.group(2).splitlines():
            found = re.match(r"\s+(\w+) \w+.*--.*\boptional\b", line)
            if found:
                optional.add((match.group(1), found.group(1)))
    return optional


def _type_matches(declared: str, actual: str) -> bool:
    head = re.split(r"[ (]", actual.upper(), maxsplit=1)[0]
    if actual.upper().startswith("TIMESTAMP WITH TIME ZONE"):
        return False
    return head in _COMPATIBLE_TYPES.get(declared, {declared.upper()})


def raw_table_problems(path: Path) -> tuple[list[Problem], list[str]]:
    """The raw source tables (journeyman/tables.py) the warehouse at `path` lacks, their
    missing columns and columns of an incompatible type; and warnings (a busy warehouse)."""
    from journeyman.warehouse import Warehouse

    warehouse = Warehouse(path, read_only=True, lock_wait_s=_LOCK_WAIT_S)
    try:
        rows = warehouse.rows(
            "select table_schema, table_name, column_name, data_type "
            "from information_schema.columns where table_schema = 'raw'"
        )
    except Exception as exc:  # locked by a writer, or not a DuckDB file
        warning = f"the raw tables in {path} were not checked ({_one_line(exc, 200)})"
        return [], [warning]
    finally:
        warehouse.engine().dispose()
    present: dict[str, dict[str, str]] = {}
    for schema, table, column, kind in rows:
        present.setdefault(f"{schema}.{table}", {})[column] = kind
    optional = optional_raw_columns()
    problems = []
    for table, declared in declared_columns(RAW_TABLES_DDL).items():
        columns = present.get(table)
        if columns is None:
            listed = ", ".join(f"{name} {kind}" for name, kind in declared)
            problems.append(
                Problem(
                    str(path),
                    table,
                    f"table is missing; load it with your ETL tool ({listed}; schema in "
                    "journeyman/tables.py), or run `journeyman demo` for a sandbox world",
                )
            )
            continue
        for name, kind in declared:
            actual = columns.get(name)
            if actual is None:
                if (table, name) in optional:
                    continue
                problems.append(
                    Problem(
                        str(path),
                        f"{table}.{name}",
                        f"column is missing; add it as {kind} (schema in journeyman/tables.py)",
                    )
                )
            elif not _type_matches(kind, actual):
                fix = _TYPE_FIXES.get(actual.upper(), f"load it as {kind}")
                problems.append(
                    Problem(
                        str(path),
                        f"{table}.{name}",
                        f"column is {actual}, expected {kind}; {fix} (schema in "
                        "journeyman/tables.py)",
                    )
                )
    return problems, []


# -- the command -----------------------------------------------------------------------------


def validate_project(agents_dir: Path, manifest: Path | None = None) -> Report:
    """Check the agent files in `agents_dir`, the destinations catalog, every template, the
    audiences against customer_features and, when the warehouse file exists, its raw tables."""
    report = Report()
    agents, report.problems, report.files = load_agent_files(agents_dir)
    problems, report.destinations = destination_problems(agents)
    report.problems.extend(problems)
    columns, source = feature_columns(manifest)
    if columns is None:
        report.warnings.append(
            f"the {FEATURES_SCHEMA}.{FEATURES_MODEL} columns could not be read ({source}); "
            "templates were checked for syntax only, not for unknown variables or audience "
            "columns"
        )
    else:
        report.columns_from = source
    problems, report.templates = template_problems(agents, columns)
    report.problems.extend(problems)
    if columns is not None:
        report.problems.extend(audience_problems(agents, columns))
    warehouse = settings.warehouse_path()
    if warehouse.is_file():
        problems, warnings = raw_table_problems(warehouse)
        report.problems.extend(problems)
        report.warnings.extend(warnings)
        if not warnings:
            report.raw_tables_from = str(warehouse)
    return report


def _emit(report: Report, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report.as_dict()))
        return
    for problem in report.problems:
        click.echo(str(problem))
    for warning in report.warnings:
        click.echo(f"warning: {warning}")
    click.echo(report.summary())


@click.command("validate")
@click.option(
    "--agents",
    "agents_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of agent files (default: JOURNEYMAN_AGENTS, else the project's agents/).",
)
@click.option(
    "--manifest",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="dbt manifest.json to read the customer_features columns from (default: the "
    "project's, parsed with dbt when missing or stale).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead.")
def validate(agents_dir: Path | None, manifest: Path | None, as_json: bool) -> None:
    """Check the agent files, their destinations, every message template, the audiences
    against marts.customer_features and, when the warehouse file (JOURNEYMAN_WAREHOUSE) exists,
    its raw source tables and columns. One line per problem (file: field: problem; fix); exit
    status 1 when there is any, 2 when the check cannot run."""
    try:
        report = validate_project(agents_dir or settings.agents_dir(), manifest)
    except Exception as exc:  # one line, never a traceback
        message = f"{type(exc).__name__}: {_one_line(exc)}"
        if as_json:
            click.echo(json.dumps({"ok": False, "error": message}))
        else:
            click.echo(f"error: {message}", err=True)
        sys.exit(2)
    _emit(report, as_json)
    sys.exit(0 if report.ok else PROBLEMS_FOUND)
