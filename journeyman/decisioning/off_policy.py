"""Off-policy evaluation: what a candidate policy would have earned on the decisions a logging
policy made, from their exact propensities and rewards.

Four estimators over n logged decisions (action a_i, reward r_i, logging propensity p_i), a
candidate's probabilities pi(a | x_i) for every allowed action and, for the model-based ones, a
reward model's predictions q(x_i, a):

- IPW: mean(w_i r_i) with w_i = pi(a_i | x_i) / p_i (unbiased when the logging policy covers
  the candidate's actions; high variance when weights are large);
- SNIPW: sum(w_i r_i) / sum(w_i) (self-normalised: a little bias, much less variance);
- DM: mean over i of sum_a pi(a | x_i) q(x_i, a) (the reward model's answer; biased when the
  model is);
- DR: DM + mean(w_i (r_i - q(x_i, a_i))) (unbiased if either the propensities or the model
  are right).

Intervals are percentile bootstraps over the decisions (seeded, so a report is reproducible).
A candidate that puts probability on actions the logging policy never takes (zero logging
probability) has no unbiased estimate there: `support_gap` says how much of its mass falls
outside the logs' support, and `warnings` say so in words instead of a silent number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

ESTIMATORS = ("ipw", "snipw", "dm", "dr")


@dataclass(frozen=True)
class Interval:
    """A point estimate and its percentile-bootstrap interval."""

    value: float
    low: float
    high: float

    def covers(self, truth: float) -> bool:
        return self.low <= truth <= self.high

    def to_json(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class OffPolicyEstimate:
    """Each estimator's value with its interval, the logged policy's own value, diagnostics."""

    estimates: dict[str, Interval]
    logged: Interval
    n: int
    effective_sample_size: float  # (sum w)^2 / sum w^2: how many decisions the weights use
    support_gap: float  # mean candidate mass on actions the logging policy never takes
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            **{name: est.to_json() for name, est in self.estimates.items()},
            "logged": self.logged.to_json(),
            "n": self.n,
            "effective_sample_size": self.effective_sample_size,
            "support_gap": self.support_gap,
            "warnings": list(self.warnings),
        }


def evaluate(
    rewards: np.ndarray,
    actions: np.ndarray,
    propensities: np.ndarray,
    candidate: np.ndarray,
    predictions: np.ndarray | None = None,
    logging: np.ndarray | None = None,
    *,
    confidence: float = 0.95,
    resamples: int = 500,
    seed: int = 0,
) -> OffPolicyEstimate:
    """Estimate a candidate's value per decision from logged decisions.

    - `rewards` (n,), `actions` (n,) indices of the logged actions, `propensities` (n,) the
      logging policy's probability of each logged action (exact, as journeyman records them);
    - `candidate` (n, k): the candidate's probability of each action per decision;
    - `predictions` (n, k): a reward model's expected reward per action (DM and DR need it;
      without it they are left out);
    - `logging` (n, k): the logging policy's probabilities of every action, for the support
      check (optional: without it only zero-weight signs are checked).
    """
    r, a, p, pi = _checked(rewards, actions, propensities, candidate)
    n = len(r)
    rows = np.arange(n)
    w = pi[rows, a] / p
    terms: dict[str, np.ndarray] = {"ipw": w * r}
    if predictions is not None:
        q = np.asarray(predictions, dtype=float)
        if q.shape != pi.shape:
            raise ValueError(f"predictions have shape {q.shape}, expected {pi.shape}")
        direct = (pi * q).sum(axis=1)
        terms["dm"] = direct
        terms["dr"] = direct + w * (r - q[rows, a])
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(resamples, n))
    tail = (1 - confidence) / 2
    estimates = {
        name: _interval(t.mean(), t[draws].mean(axis=1), tail) for name, t in terms.items()
    }
    weight_sums = w[draws].sum(axis=1)
    snipw = np.divide(
        (w * r)[draws].sum(axis=1),
        weight_sums,
        where=weight_sums > 0,
        out=np.full(resamples, np.nan),
    )
    estimates["snipw"] = _interval(_safe_ratio((w * r).sum(), w.sum()), snipw, tail)
    logged = _interval(r.mean(), r[draws].mean(axis=1), tail)
    ess = float(w.sum() ** 2 / (w**2).sum()) if (w**2).sum() > 0 else 0.0
    gap = _support_gap(pi, logging)
    ordered = {name: estimates[name] for name in ESTIMATORS if name in estimates}
    return OffPolicyEstimate(ordered, logged, n, ess, gap, _warnings(n, ess, gap))


def _checked(
    rewards: np.ndarray, actions: np.ndarray, propensities: np.ndarray, candidate: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r = np.asarray(rewards, dtype=float)
    a = np.asarray(actions, dtype=np.int64)
    p = np.asarray(propensities, dtype=float)
    pi = np.asarray(candidate, dtype=float)
    n = len(r)
    if not n:
        raise ValueError("no logged decisions to evaluate on")
    if a.shape != (n,) or p.shape != (n,) or pi.ndim != 2 or pi.shape[0] != n:
        raise ValueError("rewards, actions, propensities and candidate rows must align")
    if not np.isfinite(r).all():
        raise ValueError("rewards must be finite")
    if (p <= 0).any() or (p > 1).any() or not np.isfinite(p).all():
        raise ValueError("logged propensities must be in (0, 1]: the logged action was chosen")
    if (a < 0).any() or (a >= pi.shape[1]).any():
        raise ValueError("an action index is outside the candidate's actions")
    if (pi < 0).any() or not np.allclose(pi.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError("each candidate row must be a probability distribution")
    return r, a, p, pi


def _interval(value: float, draws: np.ndarray, tail: float) -> Interval:
    finite = draws[np.isfinite(draws)]
    if not len(finite):
        return Interval(float(value), float("nan"), float("nan"))
    low, high = np.quantile(finite, [tail, 1 - tail])
    return Interval(float(value), float(low), float(high))


def _safe_ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else float("nan")


def _support_gap(pi: np.ndarray, logging: np.ndarray | None) -> float:
    if logging is None:
        return 0.0
    mu = np.asarray(logging, dtype=float)
    if mu.shape != pi.shape:
        raise ValueError(f"logging has shape {mu.shape}, expected {pi.shape}")
    return float((pi * (mu <= 0)).sum(axis=1).mean())


def _warnings(n: int, ess: float, gap: float) -> list[str]:
    out = []
    if gap > 0.01:
        out.append(
            f"{gap:.0%} of the candidate's choices are actions the logging policy never takes: "
            "the logs cannot tell what those earn (IPW, SNIPW and DR miss them; DM guesses)"
        )
    if ess < max(30.0, 0.01 * n):
        out.append(
            f"the candidate differs so much from the logging policy that only about {ess:.0f} of "
            f"{n} decisions carry its weight: intervals are wide and unstable"
        )
    return out
