"""Decision policies behind one interface, looked up by the name used in agent files."""

from __future__ import annotations

from journeyman.decisioning.config import PolicySpec
from journeyman.decisioning.policies.base import Choice, DecisionContext, Policy
from journeyman.decisioning.policies.linear import (
    EpsilonGreedy,
    LinearPolicy,
    LinearThompsonSampling,
    LinUCB,
)
from journeyman.decisioning.policies.rule_based import RuleBased
from journeyman.decisioning.policies.uniform import UniformRandom

REGISTRY: dict[str, type[Policy]] = {
    p.name: p for p in (LinearThompsonSampling, LinUCB, EpsilonGreedy, UniformRandom, RuleBased)
}


def build_policy(spec: PolicySpec) -> Policy:
    """Instantiate the policy an agent file names."""
    try:
        return REGISTRY[spec.name](spec.params)
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise ValueError(f"unknown policy {spec.name!r}; use one of: {known}") from None


__all__ = ["REGISTRY", "Choice", "DecisionContext", "LinearPolicy", "Policy", "build_policy"]
