"""MABWiser's LinTS as a policy of a sandbox agent (benchmark only): a well-known bandit library
measured in the learning benchmark's own loop — the same features, guardrail masks and daily
batches as journeyman's policies.

The benchmark calls `configure(warehouse, agent)` before each day and registers the policy
(`REGISTRY[MabwiserLinTS.name] = MabwiserLinTS`). MABWiser cannot ingest sufficient
statistics, so `fit` ignores them and reads the agent's own closed learning windows from the
warehouse: `marts.decision_learning_rewards` (the decisions this policy made, not shadow ones,
with an action) joined to their decision-time features in `journeyman.decision_features`. The
first `choose` of a day, when the feature names are known, fits `MAB(LinTS)` from scratch on all
of them.

What it learns from and how (the choices a user of the library would make):

- the reward is `learning_reward` (the goal's reward net of the unsubscribe and complaint
  penalties), the decision's own — not the engagement surrogate an agent may learn from;
- contexts are x̃ = [1, (x − mean) / std], the mean and standard deviation over the day's
  training rows: MABWiser's ridge regressions have no intercept, and its `scale=True`
  standardizes each arm on its own rows, which centres the intercept column away too (the arms'
  average rewards could not be told apart), so `scale` defaults to False here;
- an arm with no rows keeps its prior: MABWiser scores it x̃·β with β ~ N(0, α²/λ·I), so it stays
  explorable; with no rows at all the policy picks uniformly among the allowed actions by `u`.

Propensities are recorded as 1.0: LinTS samples coefficients per customer from MABWiser's own
generator and its choice probability is not computed, so this arm is not evaluated off-policy.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from mabwiser.mab import MAB, LearningPolicy

from journeyman.decisioning.action_features import ActionFeatures
from journeyman.decisioning.learning import ArmStatistics
from journeyman.decisioning.policies.base import Choice, DecisionContext, Policy, pick_among
from journeyman.warehouse import Warehouse

_CONFIG: dict[str, Any] = {}
_MIN_STD = 1e-6  # a feature constant over the training rows is centred, not scaled

_ROWS_SQL = """
select r.action_id as _action_id, r.learning_reward as _reward, f.*
from marts.decision_learning_rewards as r
inner join (
    select d.*, row_number() over (partition by d.decision_id order by d.decision_date) as _copy
    from journeyman.decision_features as d
) as f on f.decision_id = r.decision_id and f._copy = 1
where r.agent = :agent
    and r.policy = :policy
    and r.action_id is not null
    and r.experiment_group <> 'shadow'
order by r.decision_id
"""


def configure(warehouse: Warehouse, agent: str) -> None:
    """Where `fit` reads the closed learning windows from, and whose: set before each day."""
    _CONFIG.update(warehouse=warehouse, agent=agent)


def closed_rows(policy: str) -> pa.Table:
    """The configured agent's closed learning windows decided by `policy`, with their features
    (the first copy of each decision's feature row), in decision_id order."""
    if "warehouse" not in _CONFIG:
        raise RuntimeError("peer_policy.configure(warehouse, agent) was not called before fit")
    warehouse: Warehouse = _CONFIG["warehouse"]
    if not warehouse.table_exists("marts", "decision_learning_rewards"):
        return pa.table({"_action_id": pa.array([], pa.string())})
    return warehouse.read_arrow(_ROWS_SQL, {"agent": _CONFIG["agent"], "policy": policy})


@dataclass(frozen=True)
class _Fitted:
    """A fitted MAB and the standardization of its contexts."""

    mab: MAB
    mean: np.ndarray
    std: np.ndarray

    def contexts(self, x: np.ndarray) -> np.ndarray:
        """x̃ = [1, (x − mean) / std]: the intercept MABWiser's ridge regressions lack."""
        return np.column_stack([np.ones(len(x)), (np.asarray(x, float) - self.mean) / self.std])

    def scores(self, x: np.ndarray, action_ids: Sequence[str]) -> np.ndarray:
        """(n, K) sampled expected rewards in `action_ids` order."""
        expectations = self.mab.predict_expectations(self.contexts(x))
        if isinstance(expectations, dict):  # MABWiser returns a bare dict for one context
            expectations = [expectations]
        get = operator.itemgetter(*action_ids)
        values = np.array([get(e) for e in expectations], dtype=float)
        return values.reshape(len(x), len(action_ids))


class MabwiserLinTS(Policy):
    """MABWiser's LinTS (disjoint ridge regression per action, coefficients sampled per
    customer), refitted from scratch each day on this policy's closed learning windows."""

    name = "mabwiser_lints"
    defaults: Mapping[str, Any] = {"alpha": 1.0, "l2_lambda": 1.0, "scale": False, "seed": 0}
    learns = True

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(params)
        _check_params(self.params)
        self._rows: pa.Table | None = None
        self._action_ids: list[str] = []
        self._fitted_for: tuple[str, tuple[str, ...]] | None = None
        self._model: _Fitted | None = None  # None: cold start (no usable rows)
        self.trained_on = "none"

    def fit(self, stats: ArmStatistics, actions: ActionFeatures, action_ids: Sequence[str]) -> None:
        """Read the day's training rows (`stats` is ignored); the MAB is fitted on the first
        `choose`, which knows the feature names."""
        self._rows = closed_rows(self.name)
        self._action_ids = [str(a) for a in action_ids]
        self._fitted_for, self._model = None, None
        self.trained_on = f"n{self._rows.num_rows}"

    @property
    def version(self) -> str:
        return f"{super().version}#{self.trained_on}"

    def choose(self, ctx: DecisionContext, allowed: np.ndarray, u: np.ndarray) -> Choice:
        allowed = np.asarray(allowed, dtype=bool)
        n = len(u)
        model = self._ready(ctx)
        if model is None or n == 0:
            action = pick_among(allowed, np.ones(allowed.shape[1]), np.asarray(u))
        else:
            masked = np.where(allowed, model.scores(ctx.features, self._action_ids), -np.inf)
            action = np.where(allowed.any(axis=1), masked.argmax(axis=1), -1)
        return Choice(action=action.astype(np.int64), propensity=np.ones(n))

    def _ready(self, ctx: DecisionContext) -> _Fitted | None:
        """The day's model, fitted once for the day's seed key and feature names."""
        if self._rows is None:
            raise RuntimeError(f"policy {self.name} was not fitted before choosing")
        key = (ctx.seed_key, tuple(ctx.feature_names))
        if self._fitted_for != key:
            self._model = self._fit_mab(ctx.feature_names, _day_seed(self.params["seed"], key[0]))
            self._fitted_for = key
        return self._model

    def _fit_mab(self, feature_names: Sequence[str], seed: int) -> _Fitted | None:
        """A MAB over every action fitted on the usable rows (None when there are none)."""
        data = _training_data(self._rows, feature_names, self._action_ids)
        if data is None:
            return None
        decisions, rewards, x = data
        std = x.std(axis=0)
        model = _Fitted(self._new_mab(seed), x.mean(axis=0), np.where(std > _MIN_STD, std, 1.0))
        model.mab.fit(decisions, rewards, model.contexts(x))
        return model

    def _new_mab(self, seed: int) -> MAB:
        p = self.params
        policy = LearningPolicy.LinTS(
            alpha=float(p["alpha"]), l2_lambda=float(p["l2_lambda"]), scale=bool(p["scale"])
        )
        return MAB(arms=list(self._action_ids), learning_policy=policy, seed=seed)


def _check_params(params: Mapping[str, Any]) -> None:
    """ValueError unless alpha, l2_lambda > 0, scale is a bool and seed an int (LinTS's rules)."""
    for key in ("alpha", "l2_lambda"):
        value = params[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise ValueError(f"`{key}` must be a number > 0; got {value!r}")
    if not isinstance(params["scale"], bool):
        raise ValueError(f"`scale` must be true or false; got {params['scale']!r}")
    if isinstance(params["seed"], bool) or not isinstance(params["seed"], int):
        raise ValueError(f"`seed` must be an integer; got {params['seed']!r}")


def _day_seed(seed: int, seed_key: str) -> int:
    """A 32-bit seed for the day's MAB from the policy's seed and the day's seed key."""
    digest = hashlib.sha256(f"{seed}:{seed_key}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def _training_data(
    rows: pa.Table, feature_names: Sequence[str], action_ids: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(decisions, rewards, x) of the rows with every feature, a finite reward and a current
    action; None when there are none (a feature never recorded counts as NULL everywhere)."""
    if not feature_names:  # x̃ = [1] alone hits MABWiser's squeeze of one-column samples
        raise ValueError(f"{MabwiserLinTS.name} needs at least one customer feature")
    if rows.num_rows == 0 or not set(feature_names) <= set(rows.column_names):
        return None
    decisions = rows.column("_action_id").to_numpy(zero_copy_only=False).astype(str)
    rewards = _floats(rows, "_reward")
    x = np.column_stack([_floats(rows, f) for f in feature_names])
    keep = np.isfinite(x).all(axis=1) & np.isfinite(rewards) & np.isin(decisions, action_ids)
    if not keep.any():
        return None
    return decisions[keep], rewards[keep], x[keep]


def _floats(rows: pa.Table, name: str) -> np.ndarray:
    return rows.column(name).cast(pa.float64()).fill_null(np.nan).to_numpy()
