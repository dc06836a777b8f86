"""Decision policies behind one interface (`base.Policy`), looked up by the name agent files use
(`registry.REGISTRY`)."""

from __future__ import annotations

from journeyman.decisioning.policies.base import Choice, DecisionContext, Policy, PolicyParamsError
from journeyman.decisioning.policies.linear import LinearPolicy
from journeyman.decisioning.policies.registry import REGISTRY, build_policy, check_policy

__all__ = [
    "REGISTRY",
    "Choice",
    "DecisionContext",
    "LinearPolicy",
    "Policy",
    "PolicyParamsError",
    "build_policy",
    "check_policy",
]
