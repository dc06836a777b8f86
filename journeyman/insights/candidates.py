"""The report's off-policy section: each live agent's comparison policies (business as usual,
random control, challengers, policies in shadow mode) and every shadow agent that shares a live
agent's actions, evaluated on the live agent's recent logs (docs/evaluation.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np

from journeyman.decisioning.actions import ActionSpace
from journeyman.decisioning.candidate_evaluation import (
    CandidateEvaluationError,
    NoLogsYet,
    candidate_from_baseline,
    evaluate_candidates,
)
from journeyman.decisioning.config import AgentConfig, AgentConfigError
from journeyman.warehouse import Warehouse

MAX_DECISIONS = 200_000  # a seeded uniform sample beyond this: the estimates stay unbiased


@dataclass
class CandidateEstimates:
    """(name, CandidateReport.to_json()) pairs for the report, and why some are missing."""

    estimates: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def candidates_of(agent: AgentConfig, agents: Sequence[AgentConfig]) -> dict[str, AgentConfig]:
    """The policies worth comparing with this live agent's treatment, by display name."""
    out: dict[str, AgentConfig] = {}
    for baseline in agent.baselines:
        shadow = ", shadow" if baseline.mode == "shadow" else ""
        name = f"{baseline.experiment_group} ({baseline.name}{shadow})"
        out[name] = candidate_from_baseline(agent, baseline)
    if agent.policy.mode == "shadow":
        out[f"treatment ({agent.policy.name}, shadow)"] = agent
    actions = list(ActionSpace.for_agent(agent).action_id)
    for other in agents:
        if other.mode == "shadow" and list(ActionSpace.for_agent(other).action_id) == actions:
            out[f"shadow agent {other.name} ({other.policy.name})"] = other
    return out


def estimate_candidates(
    warehouse: Warehouse,
    agents: Sequence[AgentConfig],
    only: str | None = None,
    days: int = 7,
) -> CandidateEstimates:
    """Off-policy estimates over the last `days` days whose attribution windows have closed."""
    result = CandidateEstimates()
    for agent in agents:
        if agent.mode != "live":
            continue
        candidates = candidates_of(agent, agents)
        if only is not None and only != agent.name:
            candidates = {k: v for k, v in candidates.items() if v.name == only}
        if not candidates:
            continue
        try:
            since = _window_start(warehouse, agent.name, days)
            reports = evaluate_candidates(
                warehouse, agent, candidates, since, max_decisions=MAX_DECISIONS
            )
        except NoLogsYet:
            continue  # its first outcomes are not in yet: the section says there are none
        except (CandidateEvaluationError, AgentConfigError) as exc:
            result.notes.append(f"{agent.name}: no off-policy estimates ({exc})")
            continue
        for report in reports:
            result.estimates.append((f"{agent.name}: {report.candidate}", report.to_json()))
    return result


def _window_start(warehouse: Warehouse, agent: str, days: int) -> date | None:
    """The first of the last `days` decision days whose outcomes are in."""
    if not warehouse.table_exists("marts", "decision_rewards"):
        return None
    latest = warehouse.scalar(
        "select max(decision_date) from marts.decision_rewards where agent = :agent",
        {"agent": agent},
    )
    if latest is None:
        return None
    return np.datetime64(latest, "D").astype(object) - timedelta(days=days - 1)
