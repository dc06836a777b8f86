"""benchmarks/peer_policy.py: MABWiser's LinTS as a policy, fitted on a tiny warehouse's closed
learning windows (no dbt): it honours the masks, learns a planted best action per kind of
customer, starts cold by `u` and is deterministic per seed key."""

from __future__ import annotations

import importlib.util
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from journeyman import settings
from journeyman.decisioning.actions import ActionSpace
from journeyman.decisioning.config import load_agent
from journeyman.decisioning.policies.base import DecisionContext
from journeyman.warehouse import Warehouse

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "peer_policy.py"
_SPEC = importlib.util.spec_from_file_location("peer_policy", _PATH)
peer = importlib.util.module_from_spec(_SPEC)
sys.modules["peer_policy"] = peer
_SPEC.loader.exec_module(peer)

SPACE = ActionSpace.for_agent(load_agent(settings.AGENTS_DIR / "winback.yml"))
IDS = list(SPACE.action_id)
K = len(IDS)
BEST_POSITIVE, BEST_NEGATIVE = 0, 1  # the planted best actions for x > 0 and for x < 0
NAMES = ["x", "noise"]
POLICY = peer.MabwiserLinTS.name


def _rewards(x: np.ndarray, action: np.ndarray, sign: float, rng) -> np.ndarray:
    """2·x for the x > 0 action, −2·x for the x < 0 one, 0 otherwise (`sign` −1 reverses)."""
    mean = np.where(action == BEST_POSITIVE, 2 * x, 0.0)
    mean = np.where(action == BEST_NEGATIVE, -2 * x, mean)
    return sign * mean + rng.normal(size=len(x))


def _logged(rng, n: int, start: int, agent: str, policy: str, group: str, sign: float) -> tuple:
    """n uniformly logged decisions: (reward rows, feature rows)."""
    x = rng.normal(size=n)
    action = rng.integers(0, K, n)
    ids = [f"d{start + i:07d}" for i in range(n)]
    rewards = pa.table(
        {
            "decision_id": ids,
            "agent": [agent] * n,
            "policy": [policy] * n,
            "experiment_group": [group] * n,
            "action_id": [IDS[a] for a in action],
            "reward": np.zeros(n),
            "learning_reward": _rewards(x, action, sign, rng),
        }
    )
    features = pa.table(
        {
            "decision_id": ids,
            "agent": [agent] * n,
            "decision_date": [date(2026, 3, 2)] * n,
            "x": x,
            "noise": rng.normal(size=n),
            "unused": rng.normal(size=n),
        }
    )
    return rewards, features


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Warehouse:
    """The policy's own rows (150 per action) among decoys that must not count: another
    policy's, shadow ones, held-out ones and a later garbage copy of some feature rows."""
    warehouse = Warehouse(tmp_path_factory.mktemp("peer") / "w.duckdb")
    warehouse.execute(
        "create schema marts; create schema journeyman;\n"
        "create table marts.decision_learning_rewards (decision_id varchar, agent varchar, "
        "policy varchar, experiment_group varchar, action_id varchar, reward double, "
        "learning_reward double);\n"
        "create table journeyman.decision_features (decision_id varchar, agent varchar, "
        "decision_date date, x double, noise double, unused double)"
    )
    rng = np.random.default_rng(3)
    n = 150 * K
    parts = [
        _logged(rng, n, 0, "winback", POLICY, "treatment", 1.0),
        _logged(rng, n, n, "winback", "linear_ts", "treatment", -1.0),
        _logged(rng, n, 2 * n, "winback", POLICY, "shadow", -1.0),
        _logged(rng, n, 3 * n, "other", POLICY, "treatment", -1.0),
    ]
    held_out, _ = _logged(rng, 100, 4 * n, "winback", POLICY, "holdout", 1.0)
    parts.append((held_out.set_column(4, "action_id", pa.nulls(100, pa.string())), None))
    copies = parts[0][1].slice(0, 500)
    copies = copies.set_column(2, "decision_date", pa.array([date(2026, 3, 9)] * 500))
    copies = copies.set_column(3, "x", pa.array(-np.asarray(copies.column("x"))))
    parts.append((None, copies))
    for rewards, features in parts:
        if rewards is not None:
            warehouse.append_arrow("marts.decision_learning_rewards", rewards)
        if features is not None:
            warehouse.append_arrow("journeyman.decision_features", features)
    return warehouse


def _ctx(x: np.ndarray, seed_key: str = "winback:2026-03-10") -> DecisionContext:
    features = np.column_stack([x, np.zeros(len(x))])
    return DecisionContext(date(2026, 3, 10), SPACE, features, NAMES, {}, seed_key)


def _fitted(warehouse: Warehouse, agent: str = "winback", **params):
    peer.configure(warehouse, agent)
    policy = peer.MabwiserLinTS(params)
    policy.fit(None, None, IDS)
    return policy


def test_chooses_only_allowed_actions_and_nothing_when_none_is(warehouse):
    rng = np.random.default_rng(1)
    allowed = rng.random((400, K)) < 0.3
    allowed[:40] = False
    choice = _fitted(warehouse).choose(_ctx(rng.normal(size=400)), allowed, rng.random(400))
    assert (choice.action[:40] == -1).all()
    assert allowed[np.arange(40, 400), choice.action[40:]].all()
    assert (choice.propensity == 1.0).all()


def test_learns_the_planted_best_action_per_kind_of_customer(warehouse):
    """Only the policy's own closed windows count (the decoys reverse the planted effects)."""
    policy = _fitted(warehouse)
    assert policy.version.endswith(f"#n{150 * K}")
    x = np.concatenate([np.linspace(0.5, 2.0, 200), -np.linspace(0.5, 2.0, 200)])
    action = policy.choose(_ctx(x), np.ones((400, K), dtype=bool), np.full(400, 0.5)).action
    assert (action[:200] == BEST_POSITIVE).mean() > 0.9
    assert (action[200:] == BEST_NEGATIVE).mean() > 0.9


def test_cold_start_picks_the_allowed_action_u_points_to(warehouse):
    rng = np.random.default_rng(2)
    allowed = rng.random((300, K)) < 0.2
    allowed[:10] = False
    u = rng.random(300)
    policy = _fitted(warehouse, agent="nobody")
    assert policy.version.endswith("#n0")
    action = policy.choose(_ctx(rng.normal(size=300)), allowed, u).action
    assert (action[:10] == -1).all()
    for row in range(10, 300):
        options = np.flatnonzero(allowed[row])
        assert action[row] == options[int(u[row] * len(options))]


def test_deterministic_per_seed_key_and_fitted_once_per_day(warehouse, monkeypatch):
    rng = np.random.default_rng(4)
    x, u = rng.normal(size=500), rng.random(500)
    allowed = rng.random((500, K)) < 0.5
    fits = []
    fit = peer.MAB.fit
    monkeypatch.setattr(peer.MAB, "fit", lambda mab, *a: fits.append(1) or fit(mab, *a))

    def day(seed_key: str, alpha: float = 1.0) -> list[np.ndarray]:
        policy = _fitted(warehouse, alpha=alpha)
        return [
            policy.choose(_ctx(x[p], seed_key), allowed[p], u[p]).action
            for p in (slice(0, 250), slice(250, 500))
        ]

    first = day("winback:2026-03-10")
    assert len(fits) == 1  # the day's two batches share one fit
    assert all((a == b).all() for a, b in zip(first, day("winback:2026-03-10"), strict=True))
    wide = np.concatenate(day("winback:2026-03-10", alpha=20.0))
    assert (wide != np.concatenate(day("winback:2026-03-11", alpha=20.0))).any()


def test_refuses_the_parameters_lints_refuses():
    for params in ({"alpha": 0}, {"l2_lambda": -1.0}, {"scale": "yes"}, {"seed": 1.5}):
        with pytest.raises(ValueError):
            peer.MabwiserLinTS(params)
