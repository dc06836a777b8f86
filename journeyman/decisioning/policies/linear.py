"""Learning policies over the linear posterior: Thompson sampling, LinUCB, ε-greedy.

All three score every (customer, action) with factored action features, so hundreds of joint
actions cost one matrix product, not one model each. Propensities are exact:

- `linear_ts` draws M parameter vectors from the posterior once per day and agent; each customer
  uses draw ⌊u·M⌋ of a deterministic uniform u. The policy's randomness is exactly that choice, so
  P(a | x) = (number of draws whose best allowed action is a) / M — computed, not estimated.
- `lin_ucb` is deterministic given the day's statistics: propensity 1.
- `epsilon_greedy`: (1 − ε)·[a is the greedy action] + ε / |allowed|.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from journeyman.decisioning.action_features import ActionFeatures
from journeyman.decisioning.hashing import hash64
from journeyman.decisioning.learning import ArmStatistics, LinearPosterior, fit_posterior
from journeyman.decisioning.policies.base import Choice, DecisionContext, Policy, pick_among

_CHUNK = 20_000


class LinearPolicy(Policy):
    """Shared machinery: fit the posterior from warehouse statistics, then score."""

    defaults: Mapping[str, Any] = {"ridge": 1.0}
    learns = True

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__({**self.defaults, **(params or {})})
        self.posterior: LinearPosterior | None = None
        self.phi: np.ndarray | None = None
        self.trained_on = "prior"

    def fit(self, stats: ArmStatistics, actions: ActionFeatures, action_ids: Sequence[str]) -> None:
        """Posterior from the agent's statistics; the version then names the data it saw."""
        self.posterior = fit_posterior(stats, actions, action_ids, float(self.params["ridge"]))
        self.phi = actions.matrix
        self.trained_on = f"n{stats.observations}-{stats.digest()}"

    @property
    def version(self) -> str:
        return f"{super().version}#{self.trained_on}"

    def _ready(self, ctx: DecisionContext) -> tuple[LinearPosterior, np.ndarray]:
        if self.posterior is None or self.phi is None:
            raise RuntimeError(f"policy {self.name} was not fitted before choosing")
        if self.phi.shape[0] != ctx.actions.size:
            raise RuntimeError("action features do not match the action space")
        return self.posterior, self.phi


def _argmax_allowed(scores: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    masked = np.where(allowed, scores, -np.inf)
    best = masked.argmax(axis=-1)
    return np.where(allowed.any(axis=-1), best, -1)


class LinearThompsonSampling(LinearPolicy):
    """Thompson sampling with M posterior draws per day (params: ridge, exploration, draws)."""

    name = "linear_ts"
    defaults = {"ridge": 1.0, "exploration": 1.0, "draws": 32}

    def choose(self, ctx: DecisionContext, allowed: np.ndarray, u: np.ndarray) -> Choice:
        posterior, phi = self._ready(ctx)
        draws = int(self.params["draws"])
        seed = int(hash64([f"{ctx.seed_key}#{self.trained_on}"], "linear_ts")[0])
        rng = np.random.default_rng(seed)
        weights = posterior.sample_weights(phi, draws, rng)  # (M, d+1, K)
        if self.params["exploration"] != 1.0:
            center = (posterior.theta @ phi.T)[None]
            weights = center + float(self.params["exploration"]) * (weights - center)
        stacked = np.concatenate(list(weights), axis=1).astype(np.float32)  # (d+1, M·K)
        k = phi.shape[0]
        n = len(u)
        action = np.empty(n, dtype=np.int64)
        propensity = np.empty(n)
        draw = np.minimum((u * draws).astype(np.int64), draws - 1)
        for start in range(0, n, _CHUNK):
            sl = slice(start, start + _CHUNK)
            xt = posterior.standardize(ctx.features[sl]).astype(np.float32)
            scores = (xt @ stacked).reshape(-1, draws, k)
            best = _argmax_allowed(scores, allowed[sl][:, None, :])  # (c, M)
            chosen = best[np.arange(len(best)), draw[sl]]
            action[sl] = chosen
            propensity[sl] = (best == chosen[:, None]).mean(axis=1)
        return Choice(action=action, propensity=propensity)


class LinUCB(LinearPolicy):
    """Upper confidence bound: mean + α·sd (params: ridge, alpha). Deterministic."""

    name = "lin_ucb"
    defaults = {"ridge": 1.0, "alpha": 1.0}

    def choose(self, ctx: DecisionContext, allowed: np.ndarray, u: np.ndarray) -> Choice:
        posterior, phi = self._ready(ctx)
        alpha = float(self.params["alpha"])
        action = np.empty(len(u), dtype=np.int64)
        for start in range(0, len(u), _CHUNK):
            sl = slice(start, start + _CHUNK)
            x = ctx.features[sl]
            score = posterior.expected(x, phi) + alpha * posterior.uncertainty(x, phi)
            action[sl] = _argmax_allowed(score, allowed[sl])
        return Choice(action=action, propensity=np.ones(len(u)))


class EpsilonGreedy(LinearPolicy):
    """Greedy on the posterior mean, uniform over allowed actions with probability ε."""

    name = "epsilon_greedy"
    defaults = {"ridge": 1.0, "epsilon": 0.1}

    def choose(self, ctx: DecisionContext, allowed: np.ndarray, u: np.ndarray) -> Choice:
        posterior, phi = self._ready(ctx)
        eps = float(self.params["epsilon"])
        greedy = np.empty(len(u), dtype=np.int64)
        for start in range(0, len(u), _CHUNK):
            sl = slice(start, start + _CHUNK)
            greedy[sl] = _argmax_allowed(posterior.expected(ctx.features[sl], phi), allowed[sl])
        explore = u < eps
        uniform = pick_among(allowed, np.ones(allowed.shape[1]), np.where(explore, u / eps, 0.0))
        action = np.where(explore, uniform, greedy)
        count = np.maximum(allowed.sum(axis=1), 1)
        propensity = (1 - eps) * (action == greedy) + eps / count
        return Choice(action=action, propensity=propensity)
