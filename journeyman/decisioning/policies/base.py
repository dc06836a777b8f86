"""The policy interface: given customers, their allowed actions and a uniform draw each, choose."""

from __future__ import annotations

import abc
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np

from journeyman.decisioning.actions import ActionSpace

if TYPE_CHECKING:
    from journeyman.decisioning.action_features import ActionFeatures
    from journeyman.decisioning.learning import ArmStatistics
    from journeyman.decisioning.schema import AgentConfig


@dataclass(frozen=True)
class DecisionContext:
    """Everything a policy may look at for one batch of customers."""

    day: date
    actions: ActionSpace
    features: np.ndarray  # float (n, d)
    feature_names: list[str]
    columns: Mapping[str, np.ndarray]  # every customer_features column, (n,)
    seed_key: str = ""  # agent and day: seeds a policy's own daily randomness


@dataclass(frozen=True)
class Choice:
    """Chosen action index per customer (-1 = send nothing) and its probability."""

    action: np.ndarray  # int (n,)
    propensity: np.ndarray  # float (n,)


class PolicyParamsError(ValueError):
    """A policy's name or parameters are invalid. `field` is where, under the policy's entry in
    the agent file (`name`, `params`, `params.personalise.hour`); the message says the fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class Policy(abc.ABC):
    """A decision policy. Implementations must choose only allowed actions, except the rule-based
    baseline, whose wished-for action is checked (and refused with a reason) by the caller.

    The contract: `name` (what agent files call it), `defaults` (every parameter it reads: any
    other key is a typo, refused at load), `__init__` (raises ValueError on a bad value),
    `check_agent` (parameters that must match the agent's messages or features), `fit` (learn
    from the agent's statistics; a no-op unless `learns`) and `choose`.
    """

    name: str
    #: every parameter the policy reads, with its default
    defaults: Mapping[str, Any] = {}
    learns = False  # learning policies are fitted from warehouse statistics before choosing
    #: the strengths of the policy's hierarchical prior at its last fit (None: it has none)
    prior_ridges: list[float] | None = None

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        self.params = {**self.defaults, **(params or {})}

    def check_agent(self, agent: AgentConfig) -> None:
        """Raise PolicyParamsError when the parameters name what the agent does not have (a
        message, a tag, a feature). Called at load; nothing to check by default."""
        return

    def fit(self, stats: ArmStatistics, actions: ActionFeatures, action_ids: Sequence[str]) -> None:
        """Learn from the agent's statistics (rows of `actions` in `action_ids` order) before
        choosing. Called before every day's choices; a no-op for policies that do not learn."""
        return

    @property
    def version(self) -> str:
        """Name plus a short digest of the hyperparameters (and, for learners, the state)."""
        digest = hashlib.sha256(json.dumps(self.params, sort_keys=True).encode()).hexdigest()
        return f"{self.name}@{digest[:8]}"

    @abc.abstractmethod
    def choose(self, ctx: DecisionContext, allowed: np.ndarray, u: np.ndarray) -> Choice:
        """allowed: bool (n, K); u: deterministic uniforms in [0, 1), one per customer."""

    #: how many evenly spaced uniforms reproduce the policy's randomness exactly (1: the
    #: choice does not depend on `u`)
    probability_grid = 1

    def probabilities(self, ctx: DecisionContext, allowed: np.ndarray) -> np.ndarray:
        """(n, K) probability of each action, what off-policy evaluation weighs: `choose` over
        an exact grid of uniforms. A wished-for action the guardrails block is never sent, so
        its mass goes to "send nothing" (or nowhere, when the agent has no such action)."""
        n, k = allowed.shape
        out = np.zeros((n, k))
        grid = self.probability_grid
        idle = ctx.actions.no_send_index
        for j in range(grid):
            chosen = self.choose(ctx, allowed, np.full(n, (j + 0.5) / grid)).action
            rows = np.flatnonzero(chosen >= 0)
            refused = ~allowed[rows, chosen[rows]]
            if idle is not None:
                chosen[rows[refused]] = idle
            else:
                rows = rows[~refused]
            np.add.at(out, (rows, chosen[rows]), 1.0 / grid)
        return out

    def scores(self, ctx: DecisionContext) -> np.ndarray | None:
        """(n, K) the expected reward the policy ascribes to each action (None: it keeps no
        such model): what the inspector shows as the alternatives it weighed."""
        return None


def pick_among(allowed: np.ndarray, weights: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw per row from weights restricted to allowed actions (-1 if none)."""
    w = np.where(allowed, weights, 0.0)
    total = w.sum(axis=1)
    cdf = np.cumsum(w, axis=1)
    target = (u * total)[:, None]
    idx = (cdf <= target).sum(axis=1)
    idx = np.minimum(idx, allowed.shape[1] - 1)
    return np.where(total > 0, idx, -1)
