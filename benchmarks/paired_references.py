"""The learned arm's decisions next to the references, on the same customer-days (benchmark only).

For every decision the agent's own policy made (treatment group, not excluded), the world's truth
gives the expected goal gain of every action the guardrails allowed that day (`gain`: 0 for
sending nothing). On those same rows:

- `learned` — the action the policy chose;
- `best_static` — the best single ranking of actions, the same for everyone (the top allowed
  one): the action that is best on average over all the rows, known from the ground truth;
- `feature_ceiling` — the best policy the agent's features can express: the linear model
  x̃ ⊗ φ(a) (standardised decision-time features × the agent's action features) least-squares
  fitted on the TRUE gains of every row and action, its best allowed action per row;
- `uniform_random` — the mean gain over the allowed actions;
- `oracle` — the best allowed action per row (knows the latent traits).

Each is summed per customer, so the differences between them are paired (same customers, same
days, same masks): the intervals of `learned − best_static` do not carry the between-customer
spread that separate arms do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import numpy as np

from journeyman.decisioning.actions import ActionSpace, unpack_allowed
from journeyman.warehouse import Warehouse

#: gain(customer ids, action index) → expected goal gain of that action for each customer
Gain = Callable[[np.ndarray, int], np.ndarray]
REFERENCES = ("learned", "best_static", "feature_ceiling", "uniform_random", "oracle")


@dataclass
class Rows:
    """The policy's decisions of one or more days, with every action's true gain."""

    customers: np.ndarray  # str (n,)
    gains: np.ndarray  # (n, K); 0 for sending nothing
    allowed: np.ndarray  # bool (n, K)
    x: np.ndarray  # (n, d) decision-time features
    chosen: np.ndarray  # int (n,); -1: none

    @classmethod
    def concat(cls, parts: list[Rows]) -> Rows:
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in cls.__annotations__))


def day_rows(
    warehouse: Warehouse,
    config,
    space: ActionSpace,
    day: date,
    policy: str,
    gain: Gain,
) -> Rows:
    """The day's decisions of `policy` in the agent's treatment group, as decided."""
    features = list(config.features or [])
    selected = ", ".join(f'f."{c}"' for c in features)
    table = warehouse.read_arrow(
        f"""
        select d.customer_id, d.action_id, d.allowed_actions{", " + selected if selected else ""}
        from journeyman.decisions d
        join journeyman.decision_features f on f.decision_id = d.decision_id
        where d.agent = :agent and d.decision_date = :day and d.policy = :policy
          and d.experiment_group = 'treatment' and d.exclusion_reason is null
        order by d.customer_id
        """,
        {"agent": config.name, "day": day, "policy": policy},
    )
    ids = np.asarray(table.column("customer_id").to_pylist(), dtype=str)
    allowed = unpack_allowed(table.column("allowed_actions").to_pylist(), space.size)
    index = {a: i for i, a in enumerate(space.action_id)}
    chosen = np.array([index.get(a, -1) for a in table.column("action_id").to_pylist()])
    x = (
        np.column_stack(
            [table.column(c).to_numpy(zero_copy_only=False).astype(float) for c in features]
        )
        if features
        else np.zeros((len(ids), 0))
    )
    gains = np.zeros((len(ids), space.size))
    if len(ids):
        for a in np.flatnonzero(space.is_send):
            gains[:, a] = gain(ids, int(a))
    return Rows(ids, gains, allowed, x, chosen)


def reference_choices(rows: Rows, phi: np.ndarray) -> dict[str, np.ndarray]:
    """Per row, the value of each reference's choice (REFERENCES)."""
    n = len(rows.customers)
    at = np.arange(n)
    masked = np.where(rows.allowed, rows.gains, -np.inf)
    has = rows.allowed.any(axis=1)

    def value_of(scores: np.ndarray) -> np.ndarray:
        best = np.where(rows.allowed, scores, -np.inf).argmax(axis=1)
        return np.where(has, rows.gains[at, best], 0.0)

    totals = np.where(rows.allowed, rows.gains, 0.0).sum(0)
    counts = np.maximum(rows.allowed.sum(0), 1)
    learned = np.where(rows.chosen >= 0, rows.gains[at, np.maximum(rows.chosen, 0)], 0.0)
    return {
        "learned": learned,
        "best_static": value_of(np.broadcast_to(totals / counts, rows.gains.shape)),
        "feature_ceiling": value_of(linear_fit(rows.x, phi, rows.gains)),
        "uniform_random": np.where(has, np.where(rows.allowed, rows.gains, 0).sum(1), 0.0)
        / np.maximum(rows.allowed.sum(1), 1),
        "oracle": np.where(has, masked.max(axis=1), 0.0),
    }


def linear_fit(x: np.ndarray, phi: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """Least-squares scores of the model gain[r, a] ≈ x̃_r W φ_a over every row and action.

    The design z = x̃ ⊗ φ has Gram matrix (X̃ᵀX̃) ⊗ (ΦᵀΦ), so W = (X̃ᵀX̃)⁺ X̃ᵀ G Φ (ΦᵀΦ)⁺ without
    forming the (n·K) × (d·p) design.
    """
    sd = x.std(0)
    xt = np.column_stack([np.ones(len(x)), (x - x.mean(0)) / np.where(sd > 0, sd, 1.0)])
    w = np.linalg.pinv(xt.T @ xt) @ xt.T @ gains @ phi @ np.linalg.pinv(phi.T @ phi)
    return xt @ w @ phi.T


def per_customer(rows: Rows, phi: np.ndarray, customers: np.ndarray) -> dict[str, np.ndarray]:
    """Each reference's value summed per customer, over `customers` (0 for a customer without
    a decision of the policy)."""
    values = reference_choices(rows, phi)
    order = {c: i for i, c in enumerate(customers)}
    where = np.array([order.get(c, -1) for c in rows.customers], dtype=np.int64)
    keep = where >= 0
    return {
        name: np.bincount(where[keep], weights=v[keep], minlength=len(customers))
        for name, v in values.items()
    }
