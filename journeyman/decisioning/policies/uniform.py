"""Uniform random over the allowed actions: the exploration baseline."""

from __future__ import annotations

import numpy as np

from journeyman.decisioning.policies.base import Choice, DecisionContext, Policy, pick_among


class UniformRandom(Policy):
    """Each allowed action (including "send nothing") with equal probability."""

    name = "uniform_random"

    def choose(self, ctx: DecisionContext, allowed: np.ndarray, u: np.ndarray) -> Choice:
        action = pick_among(allowed, np.ones(allowed.shape[1]), u)
        count = allowed.sum(axis=1)
        propensity = np.where(count > 0, 1.0 / np.maximum(count, 1), 1.0)
        return Choice(action=action, propensity=propensity)

    def probabilities(self, ctx: DecisionContext, allowed: np.ndarray) -> np.ndarray:
        count = np.maximum(allowed.sum(axis=1, keepdims=True), 1)
        return allowed / count
