"""Loading agent files: YAML, then the schema (`decisioning.schema`), then the policies each
file names and their parameters (`decisioning.policies.registry`).

One YAML file per use case in `agents/`. Loading validates everything before anything runs; an
invalid file raises `AgentConfigError` naming the file, the field and the fix. This module sits
above both the schema and the policies (which build on the schema), so nothing imports in a
circle; it re-exports the schema's names for the callers that import them from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from journeyman.decisioning.policies.base import PolicyParamsError
from journeyman.decisioning.policies.registry import check_policy
from journeyman.decisioning.schema import (
    CHANNELS,
    DEFAULT_GROUP,
    AgentConfig,
    AgentConfigError,
    Baseline,
    Channel,
    ChannelContent,
    ComparisonGroup,
    Dimensions,
    Goal,
    Guardrails,
    Message,
    Mode,
    PolicySpec,
    QuietHours,
)

__all__ = [
    "CHANNELS",
    "DEFAULT_GROUP",
    "AgentConfig",
    "AgentConfigError",
    "Baseline",
    "Channel",
    "ChannelContent",
    "ComparisonGroup",
    "Dimensions",
    "Goal",
    "Guardrails",
    "Message",
    "Mode",
    "PolicySpec",
    "QuietHours",
    "load_agent",
    "load_agents",
]


def load_agent(path: str | Path) -> AgentConfig:
    """Read and validate one agent file."""
    path = Path(path)
    agent = _validated(path, _read(path))
    _check_policies(path, agent)
    if agent.name != path.stem:
        raise AgentConfigError(
            f"{path}: field `name` is {agent.name!r} but the file is {path.name}; "
            f"rename the file to {agent.name}.yml or set name: {path.stem}"
        )
    agent._source = str(path)
    return agent


def load_agents(directory: str | Path) -> list[AgentConfig]:
    """Load every `*.yml` / `*.yaml` agent in a folder, sorted by name."""
    directory = Path(directory)
    files = sorted([*directory.glob("*.yml"), *directory.glob("*.yaml")])
    if not files:
        raise AgentConfigError(f"{directory}: no agent files (*.yml) found")
    return sorted((load_agent(f) for f in files), key=lambda a: a.name)


def _read(path: Path) -> dict[str, Any]:
    """The file's top-level mapping."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise AgentConfigError(f"{path}: cannot read the agent file ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise AgentConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise AgentConfigError(f"{path}: expected a mapping of agent settings at the top level")
    return data


def _validated(path: Path, data: dict[str, Any]) -> AgentConfig:
    """The schema's checks, every failing field on its own line."""
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as exc:
        lines = "\n".join(_describe(e) for e in exc.errors())
        raise AgentConfigError(f"{path}: invalid agent configuration:\n{lines}") from None


def _describe(error: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in error["loc"] if p not in ("function-after",)) or "(top level)"
    msg = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        msg = "unknown field; check its spelling against docs/agents.md"
    elif error["type"] == "missing":
        msg = "required field is missing; add it"
    return f"  - {loc}: {msg}"


def _check_policies(path: Path, agent: AgentConfig) -> None:
    """The policy and every baseline: a known name, known and valid parameters, and parameters
    that fit the agent (the registry's checks), so a typo fails at load, not on the first run."""
    specs: list[tuple[str, PolicySpec]] = [("policy", agent.policy)]
    specs += [(f"baselines.{i}", b) for i, b in enumerate(agent.baselines)]
    for prefix, spec in specs:
        try:
            check_policy(spec, agent)
        except PolicyParamsError as exc:
            raise AgentConfigError(
                f"{path}: invalid agent configuration:\n  - {prefix}.{exc.field}: {exc}"
            ) from None
