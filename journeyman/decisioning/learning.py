"""Learning from delayed, batched rewards: sufficient statistics and the linear posterior.

The warehouse aggregates, per agent and action, the decision-time feature vectors x̃ = [1, x]
and rewards into Σ x̃x̃ᵀ, Σ x̃r, Σ r² and counts (dbt model `arm_statistics_daily`, split by
whether the decision led to an order); only these small matrices leave the warehouse.
Statistics add up, so learning incrementally equals learning from scratch on the same data.
The same sums over the decisions with an order (`ArmStatistics.ordered`) are what a revenue
goal's hurdle model learns from (`policies/hurdle.py`).

The reward model is linear in z = x̃' ⊗ φ(a) — standardized customer features crossed with the
factored action features — so every action informs every other that shares a channel, hour, tag
or message. The posterior is Bayesian ridge regression: A = λI + ZᵀZ, μ = A⁻¹Zᵀr,
Σ = σ̂²A⁻¹ with σ̂² the residual variance.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Protocol

import numpy as np

from journeyman.decisioning.action_features import ActionFeatures

_MIN_SCALE = 1e-6


@dataclass(frozen=True)
class ArmStatistics:
    """Per-action sufficient statistics over x̃ = [1, x] (x named by `feature_names`).

    `ordered`, when present, holds the same sums over the decisions that led to an order (its
    rewards are the order values, net of penalties), aligned to the same `action_ids`: what a
    revenue goal's hurdle model learns P(order) and the value of an order from. Without it
    (conversion goals, the engagement surrogate) the policies fit one linear model on r.
    """

    feature_names: list[str]
    action_ids: list[str]
    n: np.ndarray  # (K,)
    xx: np.ndarray  # (K, d+1, d+1)  Σ x̃ x̃ᵀ
    xr: np.ndarray  # (K, d+1)       Σ x̃ r
    rr: np.ndarray  # (K,)           Σ r²
    ordered: ArmStatistics | None = None  # the same over the decisions with an order

    @classmethod
    def empty(cls, feature_names: Sequence[str], ordered: bool = False) -> ArmStatistics:
        """No observations (`ordered`: with empty order statistics, so sums keep them)."""
        d = len(feature_names) + 1
        names = list(feature_names)
        zeros = (np.zeros(0), np.zeros((0, d, d)), np.zeros((0, d)), np.zeros(0))
        return cls(names, [], *zeros, ordered=cls(names, [], *zeros) if ordered else None)

    @classmethod
    def from_observations(
        cls,
        feature_names: Sequence[str],
        x: np.ndarray,
        action_ids: np.ndarray,
        reward: np.ndarray,
        ordered: np.ndarray | None = None,
    ) -> ArmStatistics:
        """Aggregate raw observations (what the dbt model does in SQL); `ordered` (bool per
        observation: it led to an order) adds the order statistics."""
        ids, inverse = np.unique(np.asarray(action_ids).astype(str), return_inverse=True)
        xt = np.column_stack([np.ones(len(x)), np.asarray(x, dtype=np.float64)])
        r = np.asarray(reward, dtype=np.float64)
        everything = _sums(feature_names, ids, inverse, xt, r, None)
        if ordered is None:
            return everything
        rows = np.asarray(ordered, dtype=bool)
        return replace(everything, ordered=_sums(feature_names, ids, inverse, xt, r, rows))

    @property
    def observations(self) -> int:
        return int(self.n.sum())

    def __add__(self, other: ArmStatistics) -> ArmStatistics:
        """The sums of both (order statistics only when both have them)."""
        if other.feature_names != self.feature_names:
            raise ValueError("cannot add statistics over different features")
        ids = sorted(set(self.action_ids) | set(other.action_ids))
        out = _aligned(ArmStatistics.empty(self.feature_names), ids)
        for stats in (self, other):
            for i, a in enumerate(stats.action_ids):
                j = ids.index(a)
                out.n[j] += stats.n[i]
                out.xx[j] += stats.xx[i]
                out.xr[j] += stats.xr[i]
                out.rr[j] += stats.rr[i]
        if self.ordered is None or other.ordered is None:
            return replace(out, ordered=None)
        return replace(out, ordered=_aligned(self.ordered + other.ordered, ids))

    def select(self, features: Sequence[str]) -> ArmStatistics:
        """The statistics of a subset of the features (a sub-block of each matrix)."""
        pos = [0] + [self.feature_names.index(f) + 1 for f in features]
        return ArmStatistics(
            list(features),
            list(self.action_ids),
            self.n.copy(),
            self.xx[:, pos][:, :, pos],
            self.xr[:, pos],
            self.rr.copy(),
            None if self.ordered is None else self.ordered.select(features),
        )

    def weighted(self, weights: np.ndarray) -> ArmStatistics:
        """Σ x̃x̃ᵀ, Σ x̃r and Σ r² of each action times its weight (counts unchanged): the
        statistics of weighted least squares with one weight per action."""
        w = np.asarray(weights, dtype=np.float64)
        return ArmStatistics(
            self.feature_names,
            self.action_ids,
            self.n,
            self.xx * w[:, None, None],
            self.xr * w[:, None],
            self.rr * w,
        )

    def without_orders(self) -> ArmStatistics:
        """The same statistics without the order split (one linear model on r)."""
        return replace(self, ordered=None)

    def order_indicator(self) -> ArmStatistics:
        """The statistics of c = 1[the decision led to an order] over every decision: Σ x̃c is
        the ordered decisions' Σ x̃, Σ c² their count. Raises without order statistics."""
        orders = self.order_values()
        return ArmStatistics(
            self.feature_names, self.action_ids, self.n, self.xx, orders.xx[:, :, 0], orders.n
        )

    def without_order_rewards(self) -> ArmStatistics:
        """The statistics of r·(1 − c) over every decision: the rewards of decisions without an
        order (penalties), zero where there was one."""
        orders = self.order_values()
        return ArmStatistics(
            self.feature_names,
            self.action_ids,
            self.n,
            self.xx,
            self.xr - orders.xr,
            self.rr - orders.rr,
        )

    def order_values(self) -> ArmStatistics:
        """The statistics of the decisions with an order (rewards: the order values), over
        these statistics' actions. Raises without order statistics."""
        if self.ordered is None:
            raise ValueError("these statistics have no order split")
        return _aligned(self.ordered, self.action_ids)

    def digest(self) -> str:
        """A short content hash: the same statistics give the same policy version.

        Sums are hashed at single precision: the warehouse adds floating-point values in
        parallel, in no fixed order, so the last bits of a double sum differ between runs on
        the same data; the version (which also seeds Thompson sampling) must not.
        """
        h = hashlib.sha256()
        h.update(",".join(self.feature_names).encode())
        h.update(",".join(self.action_ids).encode())
        for arr in (self.n, self.xx, self.xr, self.rr):
            h.update(np.ascontiguousarray(arr, dtype=np.float32).tobytes())
        if self.ordered is not None:
            h.update(b"ordered:" + self.order_values().digest().encode())
        return h.hexdigest()[:10]


def _sums(
    feature_names: Sequence[str],
    ids: np.ndarray,
    inverse: np.ndarray,
    xt: np.ndarray,
    r: np.ndarray,
    rows: np.ndarray | None,
) -> ArmStatistics:
    """Per-action sums over the observations in `rows` (None: all), one entry per id."""
    k, d = len(ids), xt.shape[1]
    xx, xr = np.zeros((k, d, d)), np.zeros((k, d))
    n, rr = np.zeros(k), np.zeros(k)
    for a in range(k):
        mine = inverse == a if rows is None else (inverse == a) & rows
        xa = xt[mine]
        xx[a], xr[a] = xa.T @ xa, xa.T @ r[mine]
        n[a], rr[a] = mine.sum(), float(r[mine] @ r[mine])
    return ArmStatistics(list(feature_names), ids.tolist(), n, xx, xr, rr)


def _aligned(stats: ArmStatistics, ids: Sequence[str]) -> ArmStatistics:
    """`stats` over the actions `ids` (zeros for the ones it lacks; its others dropped), as new
    arrays; the order statistics are left out."""
    d = len(stats.feature_names) + 1
    k = len(ids)
    n, xx, xr, rr = np.zeros(k), np.zeros((k, d, d)), np.zeros((k, d)), np.zeros(k)
    index = {a: i for i, a in enumerate(stats.action_ids)}
    for j, a in enumerate(ids):
        i = index.get(a)
        if i is not None:
            n[j], xx[j], xr[j], rr[j] = stats.n[i], stats.xx[i], stats.xr[i], stats.rr[i]
    return ArmStatistics(list(stats.feature_names), list(ids), n, xx, xr, rr)


class RewardPosterior(Protocol):
    """What the linear policies score with: expected rewards linear in the standardized
    features x̃' = [1, (x − mean) / scale] for each action, and their uncertainty
    (`LinearPosterior`; a revenue goal's `policies.hurdle.HurdlePosterior`)."""

    @property
    def mean(self) -> np.ndarray: ...

    @property
    def scale(self) -> np.ndarray: ...

    @property
    def observations(self) -> int: ...

    def standardize(self, x: np.ndarray) -> np.ndarray: ...

    def expected(self, x: np.ndarray, phi: np.ndarray) -> np.ndarray: ...

    def center_weights(self, phi: np.ndarray) -> np.ndarray: ...

    def sample_weights(
        self, phi: np.ndarray, draws: int, rng: np.random.Generator
    ) -> np.ndarray: ...

    def uncertainty(self, x: np.ndarray, phi: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class LinearPosterior:
    """Posterior over Θ (d+1 × p): expected reward of action a for x is x̃'ᵀ Θ φ(a)."""

    mean: np.ndarray  # (d,) feature means used to standardize
    scale: np.ndarray  # (d,) feature standard deviations
    theta: np.ndarray  # (d+1, p) posterior mean
    cov: np.ndarray  # ((d+1)·p, (d+1)·p) posterior covariance
    noise: float  # σ̂
    observations: int

    def standardize(self, x: np.ndarray) -> np.ndarray:
        """x̃' = [1, (x − mean) / scale]."""
        return np.column_stack([np.ones(len(x)), (x - self.mean) / self.scale])

    def expected(self, x: np.ndarray, phi: np.ndarray) -> np.ndarray:
        """(n, K) posterior-mean rewards."""
        return self.standardize(x) @ (self.theta @ phi.T)

    def center_weights(self, phi: np.ndarray) -> np.ndarray:
        """(d+1, K) the posterior-mean action weight matrix Θ Φᵀ."""
        return self.theta @ phi.T

    @cached_property
    def _chol(self) -> np.ndarray:
        """Cholesky factor of the covariance, once per posterior (every day's draws use it)."""
        return np.linalg.cholesky(self.cov + 1e-12 * np.eye(self.cov.shape[0]))

    def sample_weights(self, phi: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
        """(draws, d+1, K) action weight matrices W_m = Θ_m Φᵀ, Θ_m drawn from the posterior."""
        dim = self.cov.shape[0]
        thetas = self.theta.reshape(-1)[None, :] + rng.standard_normal((draws, dim)) @ self._chol.T
        thetas = thetas.reshape(draws, *self.theta.shape)
        return thetas @ phi.T

    def uncertainty(self, x: np.ndarray, phi: np.ndarray) -> np.ndarray:
        """(n, K) posterior standard deviation of each action's expected reward."""
        d1, p = self.theta.shape
        s4 = self.cov.reshape(d1, p, d1, p)
        per_action = np.einsum("ipjq,ap,aq->aij", s4, phi, phi, optimize=True)
        xt = self.standardize(x)
        var = np.stack(
            [np.einsum("ni,ij,nj->n", xt, m, xt, optimize=True) for m in per_action], axis=1
        )
        return np.sqrt(np.maximum(var, 0.0))


@dataclass(frozen=True)
class Design:
    """The standardized design z = x̃' ⊗ φ(a) as sufficient statistics: ZᵀZ, Zᵀr, Σr², n."""

    ztz: np.ndarray  # (D, D)
    ztr: np.ndarray  # (D,)
    rr: float
    n: float
    mean: np.ndarray  # (d,) feature means used to standardize
    scale: np.ndarray  # (d,) feature standard deviations
    shape: tuple[int, int]  # (d+1, p)


def design_statistics(
    stats: ArmStatistics, actions: ActionFeatures, action_ids: Sequence[str]
) -> Design:
    """Assemble ZᵀZ and Zᵀr from per-action statistics without materializing Z.

    Statistics of actions no longer in the space (a retired message) are skipped.
    """
    d1 = len(stats.feature_names) + 1
    p = actions.matrix.shape[1]
    index = {a: i for i, a in enumerate(action_ids)}
    keep = [i for i, a in enumerate(stats.action_ids) if a in index]
    total = float(stats.n[keep].sum()) if keep else 0.0
    if total > 1:
        pooled = stats.xx[keep].sum(axis=0)
        mean = pooled[0, 1:] / total
        var = np.diag(pooled)[1:] / total - mean**2
        scale = np.sqrt(np.maximum(var, 0.0))
        scale = np.where(scale > _MIN_SCALE, scale, 1.0)
    else:
        mean, scale = np.zeros(d1 - 1), np.ones(d1 - 1)
    transform = np.eye(d1)
    transform[1:, 0] = -mean / scale
    transform[1:, 1:] = np.diag(1.0 / scale)

    dim = d1 * p
    # Σ_a kron(G_a, φ_a φ_aᵀ) and Σ_a kron(b_a, φ_a) as two matrix products over the actions
    # (one kron per action made hundreds of joint actions slow).
    phis = actions.matrix[[index[stats.action_ids[i]] for i in keep]].reshape(len(keep), p)
    g = transform @ stats.xx[keep] @ transform.T  # (A, d1, d1)
    b = stats.xr[keep] @ transform.T  # (A, d1)
    outer = (phis[:, :, None] * phis[:, None, :]).reshape(len(keep), p * p)
    ztz = (g.reshape(len(keep), d1 * d1).T @ outer).reshape(d1, d1, p, p)
    ztz = ztz.transpose(0, 2, 1, 3).reshape(dim, dim)
    ztr = (b.T @ phis).reshape(dim)
    rr = float(stats.rr[keep].sum()) if keep else 0.0
    return Design(ztz, ztr, rr, total, mean, scale, (d1, p))


def fit_posterior(
    stats: ArmStatistics, actions: ActionFeatures, action_ids: Sequence[str], ridge: float = 1.0
) -> LinearPosterior:
    """Combine per-action statistics with the action features into the linear posterior."""
    design = design_statistics(stats, actions, action_ids)
    d1, p = design.shape
    mu, noise2, cov = ridge_posterior(design, np.full(d1 * p, ridge))
    return posterior_of(design, mu, cov, noise2)


def ridge_posterior(
    design: Design, prior_precision: np.ndarray
) -> tuple[np.ndarray, float, np.ndarray]:
    """Mean, residual variance σ̂² and covariance σ̂²A⁻¹ under A = diag(prior_precision) + ZᵀZ."""
    ztz, ztr = design.ztz, design.ztr
    precision = np.diag(prior_precision) + ztz
    mu = np.linalg.solve(precision, ztr)
    if design.n > 1:
        residual = design.rr - 2 * mu @ ztr + mu @ ztz @ mu
        noise2 = max(residual / max(design.n - 1, 1.0), 1e-6)
    else:
        noise2 = 1.0
    return mu, noise2, noise2 * np.linalg.inv(precision)


def posterior_of(design: Design, mu: np.ndarray, cov: np.ndarray, noise2: float) -> LinearPosterior:
    """The posterior object of a design's mean and covariance (symmetrized)."""
    d1, p = design.shape
    return LinearPosterior(
        design.mean,
        design.scale,
        mu.reshape(d1, p),
        (cov + cov.T) / 2,
        float(np.sqrt(noise2)),
        int(design.n),
    )
