"""The static journey marketers run today: "e-mail 30 days after the last purchase at 10:00"."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from journeyman.decisioning.policies.base import Choice, DecisionContext, Policy

DEFAULTS = {"days_after_last_order": 30, "channel": "email", "local_hour": 10, "message": None}


class RuleBased(Policy):
    """Send one fixed message on one channel at one local hour when the trigger day is reached.

    Deterministic (propensity 1). Params: `days_after_last_order` (30), `channel` ("email"),
    `local_hour` (10), `message` (default: the agent's first message).
    """

    name = "rule_based"

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__({**DEFAULTS, **(params or {})})

    def choose(self, ctx: DecisionContext, allowed: np.ndarray, u: np.ndarray) -> Choice:
        space = ctx.actions
        message = self.params["message"] or str(space.message_id[space.is_send][0])
        wanted = space.index_of(message, self.params["channel"], int(self.params["local_hour"]))
        if wanted is None:
            raise ValueError(
                f"rule_based policy: action {message}/{self.params['channel']}/"
                f"{self.params['local_hour']} is not in the agent's dimensions; "
                "set policy params `message`, `channel` and `local_hour` to values it lists"
            )
        days = np.asarray(ctx.columns["days_since_last_order"], dtype=np.float64)
        fire = (days == float(self.params["days_after_last_order"])) & (
            np.asarray(ctx.columns["has_ordered"]) > 0
        )
        action = np.where(fire, wanted, -1 if space.no_send_index is None else space.no_send_index)
        return Choice(action=action.astype(np.int64), propensity=np.ones(len(action)))
