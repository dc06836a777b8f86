"""Off-policy estimators on a contextual bandit whose true values are known: the point
estimates land near the truth, the 95 % intervals cover it at close to the nominal rate over
repeated logs, and a candidate outside the logs' support is flagged, not silently scored."""

from __future__ import annotations

import numpy as np
import pytest

from journeyman.decisioning.off_policy import evaluate

K = 4


def _world(rng: np.random.Generator, n: int):
    """Contexts, true mean rewards per action, a softmax logging policy, logged decisions."""
    x = rng.normal(size=(n, 2))
    beta = np.array([[0.3, -0.2], [-0.1, 0.4], [0.2, 0.2], [0.0, -0.3]])
    means = 1 / (1 + np.exp(-(x @ beta.T - 1.0)))  # conversion probabilities per action
    logits = x @ np.array([[0.5, 0.0], [0.0, 0.5], [0.2, 0.2], [-0.3, 0.1]]).T
    mu = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    actions = (rng.random(n)[:, None] > mu.cumsum(axis=1)).sum(axis=1)
    rewards = (rng.random(n) < means[np.arange(n), actions]).astype(float)
    return x, means, mu, actions, rewards


def _greedy_on(scores: np.ndarray, temperature: float = 0.1) -> np.ndarray:
    z = np.exp((scores - scores.max(axis=1, keepdims=True)) / temperature)
    return z / z.sum(axis=1, keepdims=True)


def test_estimates_cover_the_candidates_true_value_at_the_nominal_rate():
    hits = {"ipw": 0, "snipw": 0, "dm": 0, "dr": 0}
    reps = 60
    for rep in range(reps):
        rng = np.random.default_rng(1000 + rep)
        x, means, mu, actions, rewards = _world(rng, 3000)
        candidate = _greedy_on(means + rng.normal(scale=0.05, size=means.shape))
        truth = float((candidate * means).mean(axis=0).sum())  # its expected reward per decision
        model = means + 0.02  # a slightly biased reward model
        result = evaluate(
            rewards,
            actions,
            mu[np.arange(len(actions)), actions],
            candidate,
            model,
            mu,
            resamples=300,
            seed=rep,
        )
        for name, estimate in result.estimates.items():
            hits[name] += estimate.covers(truth)
        assert abs(result.estimates["dr"].value - truth) < 0.05
    coverage = {name: count / reps for name, count in hits.items()}
    for name in ("ipw", "snipw", "dr"):
        assert 0.85 <= coverage[name] <= 1.0, coverage  # nominal 95 %
    assert coverage["dm"] < coverage["dr"]  # a biased model alone misses; DR corrects it


def test_the_logged_policy_evaluated_on_its_own_logs_is_its_mean_reward():
    rng = np.random.default_rng(7)
    x, means, mu, actions, rewards = _world(rng, 2000)
    result = evaluate(rewards, actions, mu[np.arange(2000), actions], mu)
    assert result.estimates["ipw"].value == pytest.approx(rewards.mean())
    assert result.estimates["snipw"].value == pytest.approx(rewards.mean())
    assert result.logged.value == pytest.approx(rewards.mean())
    assert "dm" not in result.estimates  # no reward model, no model-based estimate
    assert result.warnings == []


def test_a_candidate_outside_the_logs_support_is_flagged():
    rng = np.random.default_rng(3)
    x, means, mu, actions, rewards = _world(rng, 2000)
    mu = mu.copy()
    mu[:, 3] = 0.0  # the logging policy never took action 3 ...
    mu /= mu.sum(axis=1, keepdims=True)
    actions = np.minimum(actions, 2)
    candidate = np.zeros_like(mu)
    candidate[:, 3] = 1.0  # ... which is all the candidate does
    result = evaluate(rewards, actions, mu[np.arange(2000), actions], candidate, logging=mu)
    assert result.support_gap == pytest.approx(1.0)
    assert any("never takes" in w for w in result.warnings)


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="propensities"):
        evaluate(np.ones(2), np.zeros(2, int), np.array([0.5, 0.0]), np.full((2, 2), 0.5))
    with pytest.raises(ValueError, match="probability distribution"):
        evaluate(np.ones(2), np.zeros(2, int), np.full(2, 0.5), np.full((2, 2), 0.7))
    with pytest.raises(ValueError, match="no logged decisions"):
        evaluate(np.ones(0), np.zeros(0, int), np.ones(0), np.ones((0, 2)))
