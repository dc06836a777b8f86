"""Decide, for one agent and one batch of customers, what each receives today — or why not.

Order of checks per customer: audience → usable features → holdout → guardrails → policy.
Every customer gets a decision row; rows that send nothing say why in `exclusion_reason`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from journeyman.decisioning import guardrails
from journeyman.decisioning.action_features import action_features
from journeyman.decisioning.actions import ActionSpace, pack_allowed
from journeyman.decisioning.assignment import HOLDOUT, SHADOW, assign
from journeyman.decisioning.hashing import unit_uniform
from journeyman.decisioning.learning import ArmStatistics
from journeyman.decisioning.policies import DecisionContext, Policy, build_policy
from journeyman.decisioning.schema import CHANNELS, AgentConfig
from journeyman.decisioning.send_time import send_deadlines, send_instants

NOT_ELIGIBLE = "not_eligible"
NULL_FEATURE = "null_feature"

DECISIONS_SCHEMA = pa.schema(
    [
        ("decision_id", pa.string()),
        ("agent", pa.string()),
        ("decision_date", pa.date32()),
        ("customer_id", pa.string()),
        ("policy", pa.string()),
        ("policy_version", pa.string()),
        ("experiment_group", pa.string()),
        ("action_id", pa.string()),
        ("message_id", pa.string()),
        ("channel", pa.string()),
        ("local_hour", pa.int32()),
        ("subject_variant", pa.int32()),
        ("send_at", pa.timestamp("s")),
        ("send_until", pa.timestamp("s")),
        ("propensity", pa.float64()),
        ("exclusion_reason", pa.string()),
        ("goal_metric", pa.string()),
        ("attribution_window_days", pa.int32()),
        ("learning_window_days", pa.int32()),
        ("penalty_unsubscribe", pa.float64()),
        ("penalty_complaint", pa.float64()),
        ("created_at", pa.timestamp("s")),
        ("allowed_actions", pa.binary()),
    ]
)


def audience_column(agent: AgentConfig) -> str:
    """Name of the boolean column holding the agent's audience predicate."""
    return f"_audience_{agent.name}"


def uses_own_contacts(agent: AgentConfig) -> bool:
    """Whether one of the agent's policies is a business-as-usual journey (rule_based), which
    reads the agent's own contact history."""
    return any(p.name == "rule_based" for p in (agent.policy, *agent.baselines))


def own_contact_column(agent: AgentConfig) -> str:
    """Name of the column holding the hours since the agent's own last message to the customer
    (NULL: never), shown to its policies as `agent_hours_since_last_message`."""
    return f"_own_hours_{agent.name}"


@dataclass
class AgentDecider:
    """An agent with its action space and policies, ready to decide batches."""

    agent: AgentConfig
    feature_names: list[str]
    policies: list[Policy]
    actions: ActionSpace

    @classmethod
    def build(
        cls, agent: AgentConfig, feature_names: list[str], stats: ArmStatistics | None = None
    ) -> AgentDecider:
        """Policies ready to choose; learning policies are fitted on the agent's statistics."""
        policies = [build_policy(agent.policy), *(build_policy(b) for b in agent.baselines)]
        decider = cls(agent, list(feature_names), policies, ActionSpace.for_agent(agent))
        decider.refit(stats)
        return decider

    def refit(self, stats: ArmStatistics | None) -> None:
        """Fit the policies on the agent's statistics (learning policies' priors warm-start from
        the previous fit: refitting one decider day after day is cheaper than building anew).
        Only a revenue goal keeps the order split of the statistics (its hurdle model)."""
        if not any(p.learns for p in self.policies):
            return  # nothing learns: no action features to build
        phi = action_features(self.agent, self.actions)
        known = stats if stats is not None else ArmStatistics.empty(self.feature_names)
        subset = known.select(self.feature_names)
        if self.agent.goal.metric != "revenue":
            subset = subset.without_orders()
        for policy in self.policies:  # a policy that does not learn ignores its fit
            policy.fit(subset, phi, list(self.actions.action_id))


def contact_history(batch: pa.Table) -> guardrails.ContactHistory:
    """Past-message counters for a batch of customer_features rows."""
    return guardrails.ContactHistory(
        messages_last_7d=_counts(batch, "messages_last_7d"),
        channel_last_7d={c: _counts(batch, f"{c}_messages_last_7d") for c in CHANNELS},
        last_message_at=batch.column("last_message_at")
        .to_numpy(zero_copy_only=False)
        .astype("datetime64[s]"),
    )


def _counts(batch: pa.Table, name: str) -> np.ndarray:
    return batch.column(name).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)


class _Columns(Mapping[str, np.ndarray]):
    """customer_features columns as numpy, converted only when a policy reads one; `aliases`
    show a batch column under another name (the agent's own contact history)."""

    def __init__(
        self, batch: pa.Table, rows: np.ndarray, aliases: Mapping[str, str] | None = None
    ) -> None:
        self._batch, self._rows = batch, rows
        names = set(batch.column_names)
        self._aliases = {k: v for k, v in (aliases or {}).items() if v in names}

    def __getitem__(self, name: str) -> np.ndarray:
        column = self._batch.column(self._aliases.get(name, name))
        return column.to_numpy(zero_copy_only=False)[self._rows]

    def __iter__(self) -> Iterator[str]:
        return iter([*self._batch.column_names, *self._aliases])

    def __len__(self) -> int:
        return self._batch.num_columns + len(self._aliases)


def decide_batch(
    decider: AgentDecider, batch: pa.Table, day: date, history: guardrails.ContactHistory
) -> pa.Table:
    """Decision rows for one batch of customer_features rows; records planned sends in history.

    The steps, in the order of the checks: exclusions (audience, features, holdout), the
    guardrails' verdict on the rest, each policy's choice for its customers, the sends' times.
    """
    ids = batch.column("customer_id").to_numpy(zero_copy_only=False).astype(str)
    x = _feature_matrix(batch, decider.feature_names)
    assignment = assign(decider.agent, ids)
    reason = _exclusions(decider.agent, batch, x, assignment.group)
    active = np.flatnonzero(reason == "")
    instants = send_instants(batch.column("time_zone").to_numpy(zero_copy_only=False)[active], day)
    verdict = _guardrail_verdict(decider, batch, active, instants, history, reason)
    action, propensity = _choose(
        decider, batch, day, ids, x, assignment.policy_index, active, verdict, reason
    )
    sends, send_at, send_until = _plan_sends(
        decider, batch, day, action, active, instants, assignment.group, history
    )
    allowed = np.zeros((len(ids), decider.actions.size), dtype=bool)
    allowed[active] = verdict.allowed
    return _decision_table(
        decider,
        day,
        ids,
        assignment.group,
        assignment.policy_index,
        action,
        propensity,
        reason,
        sends,
        send_at,
        send_until,
        allowed,
    )


def _feature_matrix(batch: pa.Table, feature_names: list[str]) -> np.ndarray:
    """(n, d) float features, NaN where a value is NULL."""
    if not feature_names:
        return np.zeros((batch.num_rows, 0))
    return np.column_stack(
        [batch.column(f).cast(pa.float64()).fill_null(np.nan).to_numpy() for f in feature_names]
    )


def _exclusions(
    agent: AgentConfig, batch: pa.Table, x: np.ndarray, group: np.ndarray
) -> np.ndarray:
    """Per customer the first reason to decide nothing (audience, then features, then holdout);
    "" for the customers who go on to the guardrails."""
    n = batch.num_rows
    reason = np.full(n, "", dtype=object)
    audience = batch.column(audience_column(agent)).fill_null(False).to_numpy(zero_copy_only=False)
    reason[~audience.astype(bool)] = NOT_ELIGIBLE
    bad = ~np.isfinite(x).all(axis=1) if x.shape[1] else np.zeros(n, dtype=bool)
    reason[(reason == "") & bad] = NULL_FEATURE
    reason[(reason == "") & (group == HOLDOUT)] = HOLDOUT
    return reason


def _guardrail_verdict(
    decider: AgentDecider,
    batch: pa.Table,
    active: np.ndarray,
    instants: np.ndarray,
    history: guardrails.ContactHistory,
    reason: np.ndarray,
) -> guardrails.GuardrailVerdict:
    """The guardrails' allowed actions for the `active` rows; a customer who can receive
    nothing today gets the guardrail's reason (written into `reason`)."""
    space = decider.actions
    consent = {
        c: batch.column(f"consent_{c}").fill_null(False).to_numpy(zero_copy_only=False)[active]
        for c in CHANNELS
    }
    verdict = guardrails.evaluate(
        decider.agent.guardrails, space, consent, history.take(active), instants
    )
    send_blocked = verdict.send_block_reason(space)
    reason[active[send_blocked != ""]] = send_blocked[send_blocked != ""]
    return verdict


def _choose(
    decider: AgentDecider,
    batch: pa.Table,
    day: date,
    ids: np.ndarray,
    x: np.ndarray,
    policy_index: np.ndarray,
    active: np.ndarray,
    verdict: guardrails.GuardrailVerdict,
    reason: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Each policy's choice for its customers among their allowed actions: (action, -1 for
    none; propensity, NaN for none). A wished-for action a guardrail blocks is never taken:
    its row gets the guardrail's reason (written into `reason`)."""
    agent, n = decider.agent, len(ids)
    choosing = reason[active] == ""
    action = np.full(n, -1, dtype=np.int64)
    propensity = np.full(n, np.nan)
    u = unit_uniform(ids, f"{agent.name}:{day.isoformat()}:choice")
    for p_i, policy in enumerate(decider.policies):
        local = np.flatnonzero(choosing & (policy_index[active] == p_i))
        if len(local) == 0:
            continue
        rows = active[local]
        ctx = DecisionContext(
            day=day,
            actions=decider.actions,
            features=x[rows],
            feature_names=decider.feature_names,
            columns=_Columns(
                batch, rows, {"agent_hours_since_last_message": own_contact_column(agent)}
            ),
            seed_key=f"{agent.name}:{day.isoformat()}",
        )
        choice = policy.choose(ctx, verdict.allowed[local], u[rows])
        wished = choice.action
        is_action = wished >= 0
        refused = np.zeros(len(local), dtype=bool)
        refused[is_action] = ~verdict.allowed[local[is_action], wished[is_action]]
        # Safety net: a wished-for action a guardrail blocks is never sent; the row says why.
        reason[rows[refused]] = verdict.blocked_reason(local[refused], wished[refused])
        ok = ~refused
        action[rows[ok]] = wished[ok]
        propensity[rows[ok]] = choice.propensity[ok]
    return action, propensity


def _plan_sends(
    decider: AgentDecider,
    batch: pa.Table,
    day: date,
    action: np.ndarray,
    active: np.ndarray,
    instants: np.ndarray,
    group: np.ndarray,
    history: guardrails.ContactHistory,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sends, send_at, send_until) per row; the live sends are recorded in `history`, so later
    agents' caps and gaps see them (a shadow decision is never sent: they do not)."""
    space, n = decider.actions, batch.num_rows
    chosen = action >= 0
    sends = np.zeros(n, dtype=bool)
    sends[chosen] = space.is_send[action[chosen]]
    send_at = np.full(n, np.datetime64("NaT"), dtype="datetime64[s]")
    active_pos = np.full(n, -1, dtype=np.int64)
    active_pos[active] = np.arange(len(active))
    send_rows = np.flatnonzero(sends)
    send_at[send_rows] = instants[active_pos[send_rows], space.hour[action[send_rows]]]
    live = send_rows[group[send_rows] != SHADOW]
    history.record(live, space.channel[action[live]], send_at[live])
    send_until = _send_until(decider.agent, batch, send_rows, space.hour[action[send_rows]], day)
    return sends, send_at, send_until


def _send_until(
    agent: AgentConfig, batch: pa.Table, rows: np.ndarray, hours: np.ndarray, day: date
) -> np.ndarray:
    """datetime64[s] per batch row: the end of each send's window (NaT where nothing is sent)."""
    out = np.full(batch.num_rows, np.datetime64("NaT"), dtype="datetime64[s]")
    quiet = agent.guardrails.quiet_hours
    out[rows] = send_deadlines(
        batch.column("time_zone").to_numpy(zero_copy_only=False)[rows],
        hours,
        day,
        quiet.start if quiet is not None else None,
        agent.guardrails.send_window_hours,
    )
    return out


def _decision_table(
    decider: AgentDecider,
    day: date,
    ids: np.ndarray,
    group: np.ndarray,
    policy_index: np.ndarray,
    action: np.ndarray,
    propensity: np.ndarray,
    reason: np.ndarray,
    sends: np.ndarray,
    send_at: np.ndarray,
    send_until: np.ndarray,
    allowed: np.ndarray,
) -> pa.Table:
    """The batch's decision rows in `DECISIONS_SCHEMA` (columnar, no per-row Python)."""
    agent, space, n = decider.agent, decider.actions, len(ids)
    acted = action >= 0
    policy_names = np.array([p.name for p in decider.policies], dtype=object)[policy_index]
    versions = np.array([p.version for p in decider.policies], dtype=object)[policy_index]
    safe_action = np.where(acted, action, 0)
    created = datetime.combine(day, datetime.min.time(), tzinfo=UTC).replace(tzinfo=None)
    day_key = day.strftime("%Y%m%d")

    def pick(values: np.ndarray, mask: np.ndarray, kind: pa.DataType) -> pa.Array:
        """values where mask holds, NULL elsewhere (columnar, no per-row Python)."""
        return pa.array(values, type=kind, mask=~mask)

    def const(value: object, kind: pa.DataType) -> pa.Array:
        return pa.repeat(pa.scalar(value, type=kind), n)

    customer = pa.array(ids, type=pa.string())
    return pa.table(
        {
            "decision_id": pc.binary_join_element_wise(
                const(f"{agent.name}-{day_key}", pa.string()), customer, "-"
            ),
            "agent": const(agent.name, pa.string()),
            "decision_date": const(day, pa.date32()),
            "customer_id": customer,
            "policy": pa.array(policy_names.astype(str), type=pa.string()),
            "policy_version": pa.array(versions.astype(str), type=pa.string()),
            "experiment_group": pa.array(group.astype(str), type=pa.string()),
            "action_id": pick(space.action_id[safe_action], acted, pa.string()),
            "message_id": pick(space.message_id[safe_action], sends, pa.string()),
            "channel": pick(space.channel[safe_action], sends, pa.string()),
            "local_hour": pick(space.hour[safe_action], sends, pa.int32()),
            "subject_variant": pick(space.variant[safe_action], sends, pa.int32()),
            "send_at": pa.array(send_at, type=pa.timestamp("s")),
            "send_until": pa.array(send_until, type=pa.timestamp("s")),
            "propensity": pick(propensity, acted, pa.float64()),
            "exclusion_reason": pick(reason.astype(str), reason != "", pa.string()),
            "goal_metric": const(agent.goal.metric, pa.string()),
            "attribution_window_days": const(agent.goal.attribution_window_days, pa.int32()),
            "learning_window_days": const(agent.goal.learning_window, pa.int32()),
            "penalty_unsubscribe": const(
                agent.goal.penalties.get("unsubscribe", 0.0), pa.float64()
            ),
            "penalty_complaint": const(agent.goal.penalties.get("complaint", 0.0), pa.float64()),
            "created_at": const(created, pa.timestamp("s")),
            "allowed_actions": pack_allowed(allowed, acted),
        },
        schema=DECISIONS_SCHEMA,
    )
