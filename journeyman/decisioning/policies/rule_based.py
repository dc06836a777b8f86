"""The static journeys marketers run today, as a baseline: "e-mail when a customer passes 30 days
without an order and has had no message from this journey since; a reminder with an offer two
weeks later"."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from journeyman.decisioning.actions import ActionSpace
from journeyman.decisioning.policies.base import Choice, DecisionContext, Policy

DEFAULTS = {
    "days_after_last_order": 30,
    "channel": "email",
    "local_hour": 10,
    "message": None,
    "steps": None,
    "window_days": 14,
}
STEP_KEYS = {"after_days", "message", "channel", "local_hour"}


class RuleBased(Policy):
    """A journey of steps, each "send `message` on `channel` at `local_hour` once the customer
    has gone `after_days` without an order and has had no message from this journey since".
    Deterministic (propensity 1).

    Params: `steps` — a list of `{after_days, message, channel?, local_hour?}` in increasing
    `after_days`; without it, one step from `days_after_last_order` (30) and `message` (default:
    the agent's first). `channel` ("email") and `local_hour` (10) are the steps' defaults.
    A step is due from its day until the next step's (the last one for `window_days`, 14):
    a customer a guardrail blocked on the first day gets it on a later one, and one who already
    had a message from the agent since the step came due does not get it again (other agents'
    messages do not count: the guardrails' frequency caps govern those, as a team's journey tool
    counts its own sends).
    """

    name = "rule_based"
    defaults = DEFAULTS

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(params)
        self.steps = _steps(self.params)

    def choose(self, ctx: DecisionContext, allowed: np.ndarray, u: np.ndarray) -> Choice:
        space = ctx.actions
        idle = -1 if space.no_send_index is None else space.no_send_index
        days = np.asarray(ctx.columns["days_since_last_order"], dtype=np.float64)
        ordered = np.asarray(ctx.columns["has_ordered"]) > 0
        since_message = _hours_since_last_message(ctx, len(days))
        action = np.full(len(days), idle, dtype=np.int64)
        for start, end, step in self._windows():
            due = ordered & (days >= start) & (days < end)
            # no message since the step came due: the last one is older than the time since
            quiet = ~(since_message <= (days - start) * 24.0)
            action[due & quiet] = _action(space, step)
        return Choice(action=action, propensity=np.ones(len(action)))

    def _windows(self) -> list[tuple[float, float, dict[str, Any]]]:
        ends = [s["after_days"] for s in self.steps[1:]]
        ends.append(self.steps[-1]["after_days"] + float(self.params["window_days"]))
        return [(s["after_days"], float(e), s) for s, e in zip(self.steps, ends, strict=True)]


def _steps(params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The journey's steps with their defaults filled in; a bad list is a ValueError."""
    raw = params["steps"]
    if raw is None:
        raw = [{"after_days": params["days_after_last_order"], "message": params["message"]}]
    if not isinstance(raw, list) or not raw:
        raise ValueError("`steps` must be a non-empty list of {after_days, message, ...}")
    steps = []
    for i, step in enumerate(raw):
        if not isinstance(step, dict) or "after_days" not in step:
            raise ValueError(f"steps[{i}] needs `after_days` (e.g. {{after_days: 30}})")
        unknown = sorted(set(step) - STEP_KEYS)
        if unknown:
            raise ValueError(f"steps[{i}]: unknown key(s) {unknown}; use {sorted(STEP_KEYS)}")
        steps.append(
            {
                "after_days": float(step["after_days"]),
                "message": step.get("message", params["message"]),
                "channel": step.get("channel", params["channel"]),
                "local_hour": int(step.get("local_hour", params["local_hour"])),
            }
        )
    days = [s["after_days"] for s in steps]
    if any(b <= a for a, b in zip(days, days[1:], strict=False)) or days[0] < 0:
        raise ValueError(f"steps' `after_days` must be ≥ 0 and increasing, got {days}")
    if float(params["window_days"]) <= 0:
        raise ValueError("`window_days` must be positive")
    return steps


def _hours_since_last_message(ctx: DecisionContext, n: int) -> np.ndarray:
    """Hours since the journey's own last message (`agent_hours_since_last_message`: the agent's
    messages only, NaN where it never sent one). A caller without the agent's contact history
    (the offline replay) gives customer_features.hours_since_last_message, every agent's; one
    with neither gives NaN, "no message"."""
    for name in ("agent_hours_since_last_message", "hours_since_last_message"):
        if name in ctx.columns:
            return np.asarray(ctx.columns[name], dtype=np.float64)
    return np.full(n, np.nan)


def _action(space: ActionSpace, step: Mapping[str, Any]) -> int:
    """The action index of one step (the agent's first message when the step names none)."""
    message = step["message"] or str(space.message_id[space.is_send][0])
    wanted = space.index_of(message, step["channel"], step["local_hour"])
    if wanted is None:
        raise ValueError(
            f"rule_based policy: action {message}/{step['channel']}/{step['local_hour']} is not "
            "in the agent's dimensions; set the step's `message`, `channel` and `local_hour` "
            "(or the policy's) to values it lists"
        )
    return int(wanted)
