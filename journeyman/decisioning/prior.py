"""The hierarchical ridge prior of the linear policies, fitted by empirical Bayes.

With d customer features and p action features the reward model has (d+1)·p coefficients, and
with one fixed weak ridge every customer's sampled score carries the noise of all of them:
Thompson sampling keeps exploring, and the posterior mean keeps over-fitting, long after the
data have said that the actions barely interact with the features. The hierarchical prior splits
the coefficients into three groups — intercepts (the constant times each action feature), each
feature's effect shared by all actions, and feature × action interactions — each with its own
prior precision. The intercepts keep the policy's `ridge`; the other two strengths maximise the
evidence (type-II maximum likelihood, MacKay's fixed point, Bishop 2006 §3.5) at every refit,
and the posterior is then averaged over the interactions' strength, each value weighted by its
evidence, so a still-uncertain "no interaction" verdict keeps some exploration of
personalisation. When the evidence says the interactions are noise they shrink towards zero and
the policy behaves like a per-action bandit; when it supports personalisation they are released.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from journeyman.decisioning.action_features import ActionFeatures
from journeyman.decisioning.learning import (
    ArmStatistics,
    Design,
    LinearPosterior,
    design_statistics,
    fit_posterior,
    posterior_of,
    ridge_posterior,
)

PRIORS = ("fixed", "empirical_bayes")
MIN_EVENTS_FOR_EVIDENCE = 2  # below this the evidence is undefined: the fixed ridge is used
_MAX_RIDGE = 1e10  # an "off" group: its coefficients are pinned at zero


def prior_groups(d1: int, phi: np.ndarray) -> np.ndarray:
    """Group of each coefficient of z = x̃' ⊗ φ: 0 intercepts (x̃'₀ = 1 times every action
    feature), 1 a feature's effect shared by all actions (φ column constant over actions),
    2 feature × action interactions (the rest)."""
    shared = np.all(phi == phi[:1], axis=0)  # (p,)
    groups = np.where(shared, 1, 2)[None, :].repeat(d1, axis=0)
    groups[0, :] = 0
    return groups.reshape(-1)


def empirical_bayes_posterior(
    stats: ArmStatistics,
    actions: ActionFeatures,
    action_ids: Sequence[str],
    ridge: float = 1.0,
    start: Sequence[float] | None = None,
    max_iter: int = 300,
    average: bool = True,
) -> tuple[LinearPosterior, list[float]]:
    """The linear posterior under the hierarchical ridge prior (see the module docstring).

    Prior θ_g ~ N(0, σ²/λ_g · I) per group g; λ₀ = `ridge` (intercepts, as the policy's own
    prior), λ₁ and λ₂ maximise the evidence p(r | λ, σ²) by MacKay's fixed point in ridge units:
    S = (Λ + ZᵀZ)⁻¹, m = S Zᵀr, γᵢ = 1 − λᵢ Sᵢᵢ, σ² = ‖r − Zm‖² / (n − Σγ),
    λ_g = σ² Σ_{i∈g} γᵢ / ‖m_g‖². The posterior is then `fit_posterior`'s with a diagonal Λ
    instead of λI (noise σ̂² from the residual as there) — with `average`, moment-matched over
    λ₂ (`_average_interactions`). Returns it and [λ₀, λ₁, λ₂] (λ₂ the evidence maximum).
    """
    design = design_statistics(stats, actions, action_ids)
    d1, p = design.shape
    groups = prior_groups(d1, actions.matrix)
    lam = np.array([ridge, *(start[1:] if start is not None else (ridge, ridge))], dtype=float)
    free = [g for g in (1, 2) if (groups == g).any()]
    ztz, ztr = design.ztz, design.ztr
    for _ in range(max_iter):
        lamvec = lam[groups]
        inv = np.linalg.inv(np.diag(lamvec) + ztz)
        m = inv @ ztr
        gamma = 1.0 - lamvec * np.diag(inv)
        resid = max(design.rr - 2 * m @ ztr + m @ ztz @ m, 0.0)
        sigma2 = max(resid / max(design.n - gamma.sum(), 1.0), 1e-12)
        new = lam.copy()
        for g in free:
            sel = groups == g
            energy = float(m[sel] @ m[sel])
            wanted = sigma2 * max(float(gamma[sel].sum()), 1e-12) / max(energy, 1e-300)
            new[g] = min(max(wanted, 1e-6), _MAX_RIDGE)
        done = float(np.abs(np.log(new / lam)).max()) < 1e-4
        lam = new
        if done:
            break
    mu, noise2, cov = ridge_posterior(design, lam[groups])
    if average and (groups == 2).any():
        mu, cov = _average_interactions(design, groups, lam, noise2)
    posterior = posterior_of(design, mu, cov, noise2)
    return posterior, lam.tolist()


_INTERACTION_GRID = 10.0 ** np.arange(0.0, 10.01, 0.5)


def _average_interactions(
    design: Design, groups: np.ndarray, lam: np.ndarray, noise2: float
) -> tuple[np.ndarray, np.ndarray]:
    """Average the posterior over the interactions' prior strength λ₂ instead of plugging in
    its maximum: a log-uniform hyperprior on a grid (1 … 10¹⁰), each point weighted by its
    evidence, the mixture replaced by its mean and covariance. Thompson sampling then keeps
    exploring personalisation while the evidence against it is still weak."""
    ztz, ztr = design.ztz, design.ztr
    count2 = int((groups == 2).sum())
    fixed_logdet = float(np.log(lam[groups[groups != 2]]).sum())
    means, covs, logev = [], [], []
    for lam2 in _INTERACTION_GRID:
        lamvec = np.where(groups == 2, lam2, lam[groups])
        chol = np.linalg.cholesky(np.diag(lamvec) + ztz)
        mean = np.linalg.solve(chol.T, np.linalg.solve(chol, ztr))
        inv_chol = np.linalg.inv(chol)
        means.append(mean)
        covs.append(noise2 * inv_chol.T @ inv_chol)
        logdet = 2.0 * float(np.log(np.diag(chol)).sum())
        fit = (design.rr - mean @ ztr) / noise2
        logev.append(0.5 * (fixed_logdet + count2 * np.log(lam2) - logdet - fit))
    w = np.exp(np.array(logev) - max(logev))
    w /= w.sum()
    stacked = np.array(means)
    mu = w @ stacked
    spread = stacked - mu
    cov = np.einsum("k,kij->ij", w, np.array(covs)) + (spread.T * w) @ spread
    return mu, cov


def fit_with_prior(
    stats: ArmStatistics,
    actions: ActionFeatures,
    action_ids: Sequence[str],
    ridge: float = 1.0,
    prior: str = "empirical_bayes",
    start: Sequence[float] | None = None,
) -> tuple[LinearPosterior, list[float] | None]:
    """The posterior under `prior` ("fixed": ridge·I; "empirical_bayes": the hierarchical prior,
    warm-started from `start`), and the group strengths [λ₀, λ₁, λ₂] when they were fitted."""
    if prior not in PRIORS:
        raise ValueError(f"prior must be one of {', '.join(PRIORS)}; got {prior!r}")
    if prior == "empirical_bayes" and stats.observations >= MIN_EVENTS_FOR_EVIDENCE:
        return empirical_bayes_posterior(stats, actions, action_ids, ridge, start)
    return fit_posterior(stats, actions, action_ids, ridge), None
