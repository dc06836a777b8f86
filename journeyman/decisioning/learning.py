"""Learning from delayed, batched rewards: sufficient statistics and the linear posterior.

The warehouse aggregates, per agent and action, the decision-time feature vectors x̃ = [1, x]
and rewards into Σ x̃x̃ᵀ, Σ x̃r, Σ r² and counts (dbt model `arm_statistics`); only these small
matrices leave the warehouse. Statistics add up, so learning incrementally equals learning from
scratch on the same data.

The reward model is linear in z = x̃' ⊗ φ(a) — standardized customer features crossed with the
factored action features — so every action informs every other that shares a channel, hour, tag
or message. The posterior is Bayesian ridge regression: A = λI + ZᵀZ, μ = A⁻¹Zᵀr,
Σ = σ̂²A⁻¹ with σ̂² the residual variance.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from journeyman.decisioning.action_features import ActionFeatures

_MIN_SCALE = 1e-6


@dataclass(frozen=True)
class ArmStatistics:
    """Per-action sufficient statistics over x̃ = [1, x] (x named by `feature_names`)."""

    feature_names: list[str]
    action_ids: list[str]
    n: np.ndarray  # (K,)
    xx: np.ndarray  # (K, d+1, d+1)  Σ x̃ x̃ᵀ
    xr: np.ndarray  # (K, d+1)       Σ x̃ r
    rr: np.ndarray  # (K,)           Σ r²

    @classmethod
    def empty(cls, feature_names: Sequence[str]) -> ArmStatistics:
        d = len(feature_names) + 1
        return cls(
            list(feature_names), [], np.zeros(0), np.zeros((0, d, d)), np.zeros((0, d)), np.zeros(0)
        )

    @classmethod
    def from_observations(
        cls,
        feature_names: Sequence[str],
        x: np.ndarray,
        action_ids: np.ndarray,
        reward: np.ndarray,
    ) -> ArmStatistics:
        """Aggregate raw observations (what the dbt model does in SQL)."""
        ids, inverse = np.unique(np.asarray(action_ids).astype(str), return_inverse=True)
        xt = np.column_stack([np.ones(len(x)), np.asarray(x, dtype=np.float64)])
        r = np.asarray(reward, dtype=np.float64)
        k, d = len(ids), xt.shape[1]
        xx, xr = np.zeros((k, d, d)), np.zeros((k, d))
        n, rr = np.zeros(k), np.zeros(k)
        for a in range(k):
            rows = inverse == a
            xa = xt[rows]
            xx[a], xr[a] = xa.T @ xa, xa.T @ r[rows]
            n[a], rr[a] = rows.sum(), float(r[rows] @ r[rows])
        return cls(list(feature_names), ids.tolist(), n, xx, xr, rr)

    @property
    def observations(self) -> int:
        return int(self.n.sum())

    def __add__(self, other: ArmStatistics) -> ArmStatistics:
        if other.feature_names != self.feature_names:
            raise ValueError("cannot add statistics over different features")
        ids = sorted(set(self.action_ids) | set(other.action_ids))
        d = len(self.feature_names) + 1
        out = ArmStatistics(
            self.feature_names,
            ids,
            np.zeros(len(ids)),
            np.zeros((len(ids), d, d)),
            np.zeros((len(ids), d)),
            np.zeros(len(ids)),
        )
        for stats in (self, other):
            for i, a in enumerate(stats.action_ids):
                j = ids.index(a)
                out.n[j] += stats.n[i]
                out.xx[j] += stats.xx[i]
                out.xr[j] += stats.xr[i]
                out.rr[j] += stats.rr[i]
        return out

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
        )

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
        return h.hexdigest()[:10]


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
