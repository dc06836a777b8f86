"""Check every agent's message templates before a run, against the columns they are rendered
with (`marts.customer_features` plus the decision's own columns).

A template naming a column that does not exist, or one that does not compile, would otherwise
fail every record it renders at send time; checked here, it stops the day before anything is
decided, with the file, the field and the fix.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from journeyman.connectors.render import TemplateError, template_variables
from journeyman.decisioning.config import AgentConfig, AgentConfigError
from journeyman.decisioning.features import FEATURES_MODEL
from journeyman.warehouse import Warehouse

FEATURES_SCHEMA = "marts"
#: what the send step adds to each customer_features row (outbound.decisions_to_send_arrow)
DECISION_COLUMNS = frozenset(
    {"decision_id", "agent", "message_id", "channel", "send_at", "subject_variant"}
)


@dataclass(frozen=True)
class Problem:
    """One problem in one field of one file."""

    file: str
    field: str
    problem: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.problem}"

    def as_dict(self) -> dict[str, str]:
        return {"file": self.file, "field": self.field, "problem": self.problem}


def agent_templates(agent: AgentConfig) -> Iterator[tuple[str, str, str]]:
    """(field path, message id, template) for every template the agent's sends render: each
    message × channel the agent sends on: subject (or each subject variant), title, body and
    the vendor template's variables."""
    for i, message in enumerate(agent.dimensions.messages):
        for channel in agent.dimensions.channels:
            content = message.content(channel)
            if content is None:
                continue
            base = f"dimensions.messages.{i}.{channel}"
            if isinstance(content.subject, list):
                for j, subject in enumerate(content.subject):
                    yield f"{base}.subject.{j}", message.id, subject
            elif content.subject is not None:
                yield f"{base}.subject", message.id, content.subject
            for name in ("title", "body"):
                value = getattr(content, name)
                if value is not None:
                    yield f"{base}.{name}", message.id, value
            for name, value in (getattr(content, "variables", None) or {}).items():
                yield f"{base}.variables.{name}", message.id, value


def _unknown_variables(unknown: list[str], columns: Collection[str]) -> str:
    """The problem and its fix for variables that are not columns."""
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, list(columns), n=1)
        if close:
            hints.append(f"did you mean {close[0]!r} for {name!r}?")
    available = ", ".join(sorted(set(columns) - DECISION_COLUMNS))
    fix = (
        f"use a column of {FEATURES_SCHEMA}.{FEATURES_MODEL} (or add it to the dbt model); "
        f"available: {available}"
    )
    if hints:
        fix = " ".join(hints) + " Otherwise " + fix
    return f"template uses unknown variable(s) {unknown}; {fix}"


def template_problems(
    agents: Iterable[AgentConfig], columns: Collection[str] | None
) -> tuple[list[Problem], int]:
    """Compile every template of every agent and check its variables against `columns` (the
    customer_features columns; None: compile only). Returns the problems and the number of
    templates checked."""
    names = None if columns is None else set(columns) | DECISION_COLUMNS
    problems: list[Problem] = []
    checked = 0
    for agent in agents:
        for field, message_id, source in agent_templates(agent):
            checked += 1
            try:
                used = template_variables(source)
            except TemplateError as exc:
                problem = f"{str(exc).rstrip('.')}; fix the Jinja syntax (docs/agents.md)"
            else:
                unknown = sorted(used - names) if names is not None else []
                if not unknown:
                    continue
                problem = _unknown_variables(unknown, names)  # type: ignore[arg-type]
            problems.append(Problem(agent.source, field, f"message `{message_id}`: {problem}"))
    return problems, checked


def check_agent_templates(
    agents: Iterable[AgentConfig], columns: Collection[str] | None
) -> list[str]:
    """Every template problem of every agent, one line each: `file: field: problem; fix`."""
    problems, _ = template_problems(agents, columns)
    return [str(p) for p in problems]


def require_valid_templates(agents: Iterable[AgentConfig], columns: Collection[str] | None) -> None:
    """Raise AgentConfigError listing every template problem (what the decisions asset runs
    before it decides anything)."""
    problems = check_agent_templates(agents, columns)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise AgentConfigError(
            f"{len(problems)} agent template problem(s); nothing was decided. Fix them "
            f"(`journeyman validate` lists them):\n{lines}"
        )


def manifest_columns(manifest_path: str | Path, model: str = FEATURES_MODEL) -> list[str]:
    """All columns the dbt manifest documents for `model` (its contract is enforced, so they
    are all its columns), in YAML order."""
    manifest: dict[str, Any] = json.loads(Path(manifest_path).read_text())
    for node in manifest.get("nodes", {}).values():
        if node.get("resource_type") == "model" and node.get("name") == model:
            columns = list(node.get("columns") or {})
            if not columns:
                raise LookupError(
                    f"model {model!r} documents no columns in the dbt manifest {manifest_path}"
                )
            return columns
    raise LookupError(f"model {model!r} is not in the dbt manifest {manifest_path}")


def warehouse_columns(
    warehouse: Warehouse, schema: str = FEATURES_SCHEMA, table: str = FEATURES_MODEL
) -> list[str] | None:
    """The table's columns as the warehouse has them (None when the table does not exist)."""
    rows = warehouse.rows(
        "select column_name from information_schema.columns "
        "where table_schema = :schema and table_name = :table order by ordinal_position",
        {"schema": schema, "table": table},
    )
    return [r[0] for r in rows] or None
