"""The reward model behind the direct-method and doubly robust estimates: expected reward of
every action in a logged context, fitted on the logs themselves.

A ridge regression of the reward on the standardised context that all actions share, plus a
more strongly shrunk per-action correction: actions with many logged rows get their own slope,
rare ones stay near the shared model, and actions never logged get the shared model alone.
Predictions are cross-fitted (each half of the logs predicted by a model fitted on the other
half), so the doubly robust correction does not reuse a row's own reward.
"""

from __future__ import annotations

import numpy as np

SHARED_RIDGE = 1.0
ACTION_RIDGE = 20.0  # per-action corrections shrink harder: they see a fraction of the rows


def cross_fitted_predictions(
    x: np.ndarray, action: np.ndarray, reward: np.ndarray, k: int, *, folds: int = 2, seed: int = 0
) -> np.ndarray:
    """(n, k) predicted reward of each of k actions for each logged row."""
    n = len(reward)
    fold = np.random.default_rng(seed).integers(0, folds, n)
    out = np.zeros((n, k))
    design = _design(x)
    for f in range(folds):
        train, test = fold != f, fold == f
        if not train.any():
            train = test  # one row: nothing to hold out
        model = _fit(design[train], action[train], reward[train], k)
        out[test] = _predict(model, design[test])
    return out


def _design(x: np.ndarray) -> np.ndarray:
    """[1, standardised x]."""
    x = np.asarray(x, dtype=np.float64)
    sd = x.std(axis=0)
    z = (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    return np.column_stack([np.ones(len(x)), z])


def _ridge(design: np.ndarray, target: np.ndarray, penalty: float) -> np.ndarray:
    gram = design.T @ design + penalty * np.eye(design.shape[1])
    return np.linalg.solve(gram, design.T @ target)


def _fit(design: np.ndarray, action: np.ndarray, reward: np.ndarray, k: int) -> np.ndarray:
    """(k, p) coefficients: the shared fit plus each action's shrunk correction."""
    shared = _ridge(design, reward, SHARED_RIDGE)
    residual = reward - design @ shared
    coef = np.tile(shared, (k, 1))
    for a in np.unique(action):
        rows = action == a
        coef[a] += _ridge(design[rows], residual[rows], ACTION_RIDGE)
    return coef


def _predict(coef: np.ndarray, design: np.ndarray) -> np.ndarray:
    return design @ coef.T
