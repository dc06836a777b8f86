"""The policies agent files may name, and the check of a policy entry's name and parameters.

`check_policy` is what loading an agent file runs on `policy` and on every baseline: an unknown
name, an unknown parameter (a typo), a bad value or a parameter naming what the agent does not
have each raise `PolicyParamsError` with the field; `decisioning.config` adds the file.
"""

from __future__ import annotations

from journeyman.decisioning.policies.base import Policy, PolicyParamsError
from journeyman.decisioning.policies.linear import EpsilonGreedy, LinearThompsonSampling, LinUCB
from journeyman.decisioning.policies.rule_based import RuleBased
from journeyman.decisioning.policies.uniform import UniformRandom
from journeyman.decisioning.schema import AgentConfig, PolicySpec

REGISTRY: dict[str, type[Policy]] = {
    p.name: p for p in (LinearThompsonSampling, LinUCB, EpsilonGreedy, UniformRandom, RuleBased)
}


def build_policy(spec: PolicySpec) -> Policy:
    """Instantiate the policy an agent file names (its parameters were checked at load)."""
    try:
        return REGISTRY[spec.name](spec.params)
    except KeyError:
        raise ValueError(_unknown_name(spec.name)) from None


def check_policy(spec: PolicySpec, agent: AgentConfig | None = None) -> Policy:
    """The policy `spec` names, built from parameters that are all known and valid (and, with
    `agent`, fit that agent); raises PolicyParamsError naming the field otherwise."""
    if spec.name not in REGISTRY:
        raise PolicyParamsError("name", _unknown_name(spec.name))
    cls = REGISTRY[spec.name]
    unknown = sorted(set(spec.params) - set(cls.defaults))
    if unknown:
        raise PolicyParamsError(
            "params",
            f"unknown parameter(s) {unknown} for policy {spec.name!r}; its parameters are "
            f"{sorted(cls.defaults)}",
        )
    try:
        policy = cls(spec.params)
    except (TypeError, ValueError) as exc:
        raise PolicyParamsError("params", str(exc)) from None
    if agent is not None:
        policy.check_agent(agent)
    return policy


def _unknown_name(name: str) -> str:
    return f"unknown policy {name!r}; use one of: {', '.join(sorted(REGISTRY))}"
