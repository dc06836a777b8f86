"""Sticky assignment of customers to holdout, baselines and the agent's policy.

A customer's bucket is `unit_uniform(customer_id, agent salt)`: holdout takes [0, h), each
baseline the next slice of its share of the non-holdout rest, the agent's own policy the
remainder. The same customer and salt always land in the same group, run after run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from journeyman.decisioning.config import AgentConfig
from journeyman.decisioning.hashing import unit_uniform

HOLDOUT = "holdout"
TREATMENT = "treatment"
#: decided and logged, never sent (the agent's or the serving policy's `mode: shadow`)
SHADOW = "shadow"


@dataclass(frozen=True)
class Assignment:
    """Per customer: experiment group and index of the serving policy (0 = agent's policy)."""

    group: np.ndarray  # str: treatment | holdout | shadow
    policy_index: np.ndarray  # int: 0 = agent policy, i = baselines[i-1]


def assign(agent: AgentConfig, customer_ids: np.ndarray) -> Assignment:
    """Deterministic group and policy per customer for this agent."""
    u = unit_uniform(customer_ids, agent.holdout_salt)
    h = agent.guardrails.holdout_share
    holdout = u < h
    group = np.where(holdout, HOLDOUT, TREATMENT)
    rest = np.where(holdout, 0.0, (u - h) / (1 - h)) if h < 1 else np.zeros_like(u)
    policy_index = np.zeros(len(u), dtype=np.int64)
    edge = 0.0
    for i, baseline in enumerate(agent.baselines, start=1):
        in_slice = (rest >= edge) & (rest < edge + baseline.share) & ~holdout
        policy_index[in_slice] = i
        edge += baseline.share
    modes = [agent.policy.mode, *(b.mode for b in agent.baselines)]
    shadow = np.array([agent.mode == "shadow" or m == "shadow" for m in modes])
    group = np.where(~holdout & shadow[policy_index], SHADOW, group)
    return Assignment(group=group, policy_index=policy_index)
