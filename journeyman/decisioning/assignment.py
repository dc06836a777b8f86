"""Sticky assignment of customers to experiment groups: holdout, each baseline's group
(business-as-usual, random control, challenger) and the agent's policy (treatment).

A customer's bucket is `unit_uniform(customer_id, agent salt)`: holdout takes [0, h), each
baseline the next contiguous slice of its share of the non-holdout rest, the agent's own policy
the remainder. The same customer and salt always land in the same group, run after run; a group
never rebalances (changing a share moves only the customers at the edge of its range — start a
new experiment with a new salt).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from journeyman.decisioning.hashing import unit_uniform
from journeyman.decisioning.schema import AgentConfig

HOLDOUT = "holdout"
TREATMENT = "treatment"
BUSINESS_AS_USUAL = "business_as_usual"
RANDOM_CONTROL = "random_control"
#: decided and logged, never sent (the agent's or the serving policy's `mode: shadow`)
SHADOW = "shadow"


@dataclass(frozen=True)
class Assignment:
    """Per customer: experiment group and index of the serving policy (0 = agent's policy)."""

    group: np.ndarray  # str: treatment | holdout | business_as_usual | ... | shadow
    policy_index: np.ndarray  # int: 0 = agent policy, i = baselines[i-1]


def assign(agent: AgentConfig, customer_ids: np.ndarray) -> Assignment:
    """Deterministic group and policy per customer for this agent."""
    u = unit_uniform(customer_ids, agent.holdout_salt)
    h = agent.guardrails.holdout_share
    holdout = u < h
    rest = np.where(holdout, 0.0, (u - h) / (1 - h)) if h < 1 else np.zeros_like(u)
    policy_index = np.zeros(len(u), dtype=np.int64)
    edge = 0.0
    for i, baseline in enumerate(agent.baselines, start=1):
        in_slice = (rest >= edge) & (rest < edge + baseline.share) & ~holdout
        policy_index[in_slice] = i
        edge += baseline.share
    served = np.array([TREATMENT, *(b.experiment_group for b in agent.baselines)], dtype=object)
    group = np.where(holdout, HOLDOUT, served[policy_index])
    modes = [agent.policy.mode, *(b.mode for b in agent.baselines)]
    shadow = np.array([agent.mode == "shadow" or m == "shadow" for m in modes])
    group = np.where(~holdout & shadow[policy_index], SHADOW, group)
    return Assignment(group=group, policy_index=policy_index)
