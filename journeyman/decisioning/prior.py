"""The hierarchical ridge prior of the linear policies, fitted by empirical Bayes.

With d customer features and p action features the reward model has (d+1)·p coefficients, and
with one fixed weak ridge every customer's sampled score carries the noise of all of them:
Thompson sampling keeps exploring, and the posterior mean keeps over-fitting, long after the
data have said that the actions barely interact with the features. The hierarchical prior splits
the coefficients into groups, each with its own prior precision:

- the baseline: the organic intercept and the overall effect of sending (`bias`, `send`), which
  keep the policy's weak `ridge`;
- action effects: every other action feature's main effect (channel, hour, tags, message,
  subject line), shrunk together — most of them differ by a few cents (with fewer than eight
  there is too little to pool: they keep the baseline's ridge);
- each customer feature's effect shared by all actions (the organic baseline's slope);
- feature × action interactions (personalisation);
- interactions the agent does not personalise on (`personalise`): pinned at zero.

The strengths of the action effects, shared effects and interactions maximise the evidence
(type-II maximum likelihood, MacKay's fixed point, Bishop 2006 §3.5) at every refit, and the
posterior is then averaged over the interactions' strength, each value weighted by its evidence,
so a still-uncertain "no interaction" verdict keeps some exploration of personalisation. When
the evidence says the interactions are noise they shrink towards zero and the policy behaves
like a per-action bandit; when it supports personalisation they are released.

`personalise` (a policy parameter) maps action-feature families — `send`, `channel`, `hour`,
`message`, `subject` and each tag key (`offer`, `tone`, `value_prop`, `category`) — to the
customer features allowed to change them (`all`, or a list). Families it does not name are not
personalised. Fewer interactions learn faster: on the winback sandbox, personalising the send
and the channel on every feature and the hour on the order-hour features alone keeps the
feature ceiling of full personalisation with 91 coefficients instead of 312
(docs/learning-history.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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
BASELINE, SHARED, INTERACTION, ACTION, OFF = 0, 1, 2, 3, 4
FITTED = (SHARED, INTERACTION, ACTION)  # the groups whose strength the evidence sets
BASELINE_ACTION_FEATURES = ("send",)
MIN_POOLED_ACTION_EFFECTS = 8  # fewer action effects keep the fixed ridge (too few to pool)
Personalise = Mapping[str, str | Sequence[str]]


def family(action_feature: str) -> str:
    """The family of an action feature name: `channel=sms` → channel, `tag:offer=x` → offer."""
    return action_feature.split("=", 1)[0].removeprefix("tag:")


def _baseline_features(actions: ActionFeatures) -> np.ndarray:
    """Which action features are the baseline's: constant over actions, or `send`."""
    shared = np.all(actions.matrix == actions.matrix[:1], axis=0)
    return shared | np.isin(actions.names, BASELINE_ACTION_FEATURES)


def pools_action_effects(
    actions: ActionFeatures, min_pooled: int = MIN_POOLED_ACTION_EFFECTS
) -> bool:
    """Whether the hierarchical prior pools the action effects (at least `min_pooled` action
    features besides the baseline's); otherwise each keeps the baseline's fixed ridge."""
    return int((~_baseline_features(actions)).sum()) >= min_pooled


def prior_groups(
    feature_names: Sequence[str],
    actions: ActionFeatures,
    personalise: Personalise | None = None,
    min_pooled: int = MIN_POOLED_ACTION_EFFECTS,
) -> np.ndarray:
    """Group of each coefficient of z = x̃' ⊗ φ (row-major over (1 + features) × action features):
    BASELINE (the constant times `bias` / `send`, and every action feature when there are fewer
    than `min_pooled` others), ACTION (the constant times any other action
    feature), SHARED (a customer feature times an action feature constant over actions),
    INTERACTION (a customer feature times an action feature), OFF (an interaction `personalise`
    leaves out)."""
    phi = actions.matrix
    d1 = len(feature_names) + 1
    shared = np.all(phi == phi[:1], axis=0)  # (p,)
    groups = np.where(shared, SHARED, INTERACTION)[None, :].repeat(d1, axis=0)
    baseline = _baseline_features(actions)
    pooled = pools_action_effects(actions, min_pooled)
    groups[0, :] = np.where(baseline | (not pooled), BASELINE, ACTION)
    if personalise is not None:
        for col, name in enumerate(actions.names):
            if shared[col]:
                continue
            allowed = personalise.get(family(name), ())
            for j, feature in enumerate(feature_names, start=1):
                if allowed != "all" and feature not in allowed:
                    groups[j, col] = OFF
    return groups.reshape(-1)


def empirical_bayes_posterior(
    stats: ArmStatistics,
    actions: ActionFeatures,
    action_ids: Sequence[str],
    ridge: float = 1.0,
    start: Sequence[float] | None = None,
    max_iter: int = 300,
    average: bool = True,
    personalise: Personalise | None = None,
    min_pooled: int = MIN_POOLED_ACTION_EFFECTS,
) -> tuple[LinearPosterior, list[float]]:
    """The linear posterior under the hierarchical ridge prior (see the module docstring).

    Prior θ_g ~ N(0, σ²/λ_g · I) per group g (`prior_groups`); λ₀ = `ridge` (the baseline, as
    the policy's own prior), λ_off = 10¹⁰, and λ₁ (shared), λ₂ (interactions), λ₃ (action
    effects) maximise the evidence p(r | λ, σ²) by MacKay's fixed point in ridge units:
    S = (Λ + ZᵀZ)⁻¹, m = S Zᵀr, γᵢ = 1 − λᵢ Sᵢᵢ, σ² = ‖r − Zm‖² / (n − Σγ),
    λ_g = σ² Σ_{i∈g} γᵢ / ‖m_g‖². The posterior is then `fit_posterior`'s with a diagonal Λ
    instead of λI (noise σ̂² from the residual as there) — with `average`, moment-matched over
    λ₂ (`_average_interactions`). Returns it and [λ₀, λ₁, λ₂, λ₃] (λ₂ the evidence maximum);
    `start` warm-starts λ₁…λ₃ from such a list. The action effects are pooled when there are
    at least `min_pooled` of them.
    """
    design = design_statistics(stats, actions, action_ids)
    groups = prior_groups(stats.feature_names, actions, personalise, min_pooled)
    lam = np.full(OFF + 1, float(ridge))
    lam[OFF] = _MAX_RIDGE
    if start is not None and len(start) == len(FITTED) + 1:
        lam[list(FITTED)] = [start[g] for g in FITTED]
    free = [g for g in FITTED if (groups == g).any()]
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
    if average and (groups == INTERACTION).any():
        mu, cov = _average_interactions(design, groups, lam, noise2)
    posterior = posterior_of(design, mu, cov, noise2)
    return posterior, lam[:OFF].tolist()


_INTERACTION_GRID = 10.0 ** np.arange(0.0, 10.01, 0.5)


def _average_interactions(
    design: Design, groups: np.ndarray, lam: np.ndarray, noise2: float
) -> tuple[np.ndarray, np.ndarray]:
    """Average the posterior over the interactions' prior strength λ₂ instead of plugging in
    its maximum: a log-uniform hyperprior on a grid (1 … 10¹⁰), each point weighted by its
    evidence, the mixture replaced by its mean and covariance. Thompson sampling then keeps
    exploring personalisation while the evidence against it is still weak."""
    ztz, ztr = design.ztz, design.ztr
    count2 = int((groups == INTERACTION).sum())
    fixed_logdet = float(np.log(lam[groups[groups != INTERACTION]]).sum())
    means, covs, logev = [], [], []
    for lam2 in _INTERACTION_GRID:
        lamvec = np.where(groups == INTERACTION, lam2, lam[groups])
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
    personalise: Personalise | None = None,
    min_pooled: int = MIN_POOLED_ACTION_EFFECTS,
) -> tuple[LinearPosterior, list[float] | None]:
    """The posterior under `prior` ("fixed": ridge·I; "empirical_bayes": the hierarchical prior,
    warm-started from `start`), and the group strengths [λ₀, λ₁, λ₂, λ₃] when they were fitted.
    `personalise` pins the interactions it leaves out at zero under either prior; `min_pooled`:
    how many action effects the evidence pools at least (fewer keep the fixed ridge)."""
    if prior not in PRIORS:
        raise ValueError(f"prior must be one of {', '.join(PRIORS)}; got {prior!r}")
    if prior == "empirical_bayes" and stats.observations >= MIN_EVENTS_FOR_EVIDENCE:
        return empirical_bayes_posterior(
            stats, actions, action_ids, ridge, start, personalise=personalise, min_pooled=min_pooled
        )
    if personalise is None:
        return fit_posterior(stats, actions, action_ids, ridge), None
    design = design_statistics(stats, actions, action_ids)
    groups = prior_groups(stats.feature_names, actions, personalise)
    mu, noise2, cov = ridge_posterior(design, np.where(groups == OFF, _MAX_RIDGE, ridge))
    return posterior_of(design, mu, cov, noise2), None
