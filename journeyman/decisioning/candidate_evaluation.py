"""Off-policy evaluation of a candidate policy on an agent's logged decisions in the warehouse.

The logs: every decision the agent's live policies acted on (treatment, business-as-usual,
random control, challengers) whose attribution window has closed, with its exact propensity,
its decision-time features (journeyman.decision_features), the actions the guardrails allowed
(journeyman.decisions.allowed_actions) and its goal reward (marts.decision_rewards).

The candidate: another agent file, the same agent with other policy parameters, or one of the
agent's own groups' policies (the business-as-usual journey). Day by day it is fitted on the
statistics the live agent had that morning and asked for its probability of every action under
that day's guardrails; `off_policy.evaluate` weighs those against the logs. Actions the logs never
took (a new message, another hour) get logging probability 0: the support check warns.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pyarrow as pa

from journeyman.decisioning.actions import ActionSpace, unpack_allowed
from journeyman.decisioning.config import AgentConfig, PolicySpec
from journeyman.decisioning.decide import AgentDecider
from journeyman.decisioning.features import agent_features
from journeyman.decisioning.off_policy import OffPolicyEstimate, evaluate
from journeyman.decisioning.policies import DecisionContext
from journeyman.decisioning.reward_model import cross_fitted_predictions
from journeyman.decisioning.store import load_arm_statistics
from journeyman.tables import SENT_GROUPS
from journeyman.warehouse import Warehouse

ID_COLUMNS = ("decision_id", "agent", "decision_date")


class CandidateEvaluationError(ValueError):
    """The logs or the candidate cannot be evaluated; the message says what to do."""


@dataclass(frozen=True)
class LoggedDecisions:
    """An agent's evaluable logged decisions, in the agent's current action space."""

    day: np.ndarray  # datetime64[D] (n,)
    action: np.ndarray  # int (n,): index in `space`
    propensity: np.ndarray  # (n,)
    reward: np.ndarray  # (n,)
    allowed: np.ndarray  # bool (n, K)
    policy_index: np.ndarray  # int (n,): the serving policy (0 = the agent's)
    group: np.ndarray  # str (n,)
    features: pa.Table  # decision-time feature columns, (n,)
    space: ActionSpace

    @property
    def n(self) -> int:
        return len(self.action)


@dataclass(frozen=True)
class CandidateReport:
    """The estimate plus what it was computed from."""

    agent: str
    candidate: str
    estimate: OffPolicyEstimate
    logged_by_group: Mapping[str, float]
    days: int

    def to_json(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "candidate": self.candidate,
            "days": self.days,
            **self.estimate.to_json(),
            "logged_by_group": dict(self.logged_by_group),
        }


def load_logged(warehouse: Warehouse, agent: AgentConfig, since: date | None) -> LoggedDecisions:
    """The agent's acted-on, rewarded decisions since `since` (all when None)."""
    for schema, table in (("journeyman", "decisions"), ("marts", "decision_rewards")):
        if not warehouse.table_exists(schema, table):
            raise CandidateEvaluationError(
                f"{schema}.{table} does not exist: run the daily job (or journeyman demo) first"
            )
    table = warehouse.read_arrow(_logs_sql(warehouse), _params(agent, since))
    if table.num_rows == 0:
        raise CandidateEvaluationError(
            f"agent {agent.name} has no logged decisions with a closed attribution window"
            + (f" since {since}" if since else "")
            + " yet: evaluate again once its first sends' outcomes are in"
        )
    space = ActionSpace.for_agent(agent)
    index = {a: i for i, a in enumerate(space.action_id)}
    ids = table.column("action_id").to_pylist()
    unknown = sorted({a for a in ids if a not in index})
    if unknown:
        raise CandidateEvaluationError(
            f"logged actions {unknown[:3]} are not in agent {agent.name}'s action space any more "
            "(its dimensions changed): evaluate with --since after the change"
        )
    serving = [agent.policy.name, *(b.name for b in agent.baselines)]
    names = table.column("policy").to_pylist()
    return LoggedDecisions(
        day=table.column("decision_date").to_numpy(zero_copy_only=False).astype("datetime64[D]"),
        action=np.array([index[a] for a in ids], dtype=np.int64),
        propensity=_floats(table, "propensity"),
        reward=_floats(table, "reward"),
        allowed=unpack_allowed(table.column("allowed_actions").to_pylist(), space.size),
        policy_index=np.array([_serving_index(serving, p) for p in names], dtype=np.int64),
        group=np.array(table.column("experiment_group").to_pylist(), dtype=object),
        features=table.drop_columns(
            [
                "decision_date",
                "action_id",
                "propensity",
                "reward",
                "allowed_actions",
                "policy",
                "experiment_group",
            ]
        ),
        space=space,
    )


def _serving_index(serving: list[str], policy: str) -> int:
    return serving.index(policy) if policy in serving else -1


def _floats(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).cast(pa.float64()).fill_null(0.0).to_numpy()


def _params(agent: AgentConfig, since: date | None) -> dict[str, Any]:
    return {"agent": agent.name, "since": since or date(1900, 1, 1)}


def _logs_sql(warehouse: Warehouse) -> str:
    """The logs' query: each decision with its reward and decision-time features."""
    features = [
        r[0]
        for r in warehouse.rows(
            "select column_name from information_schema.columns where table_schema = "
            "'journeyman' and table_name = 'decision_features' order by ordinal_position"
        )
        if r[0] not in ID_COLUMNS
    ]
    selected = "".join(f', f."{c}"' for c in features)
    groups = ", ".join(f"'{g}'" for g in SENT_GROUPS)  # constants, not input
    return f"""
        select d.decision_date, d.action_id, d.propensity, d.allowed_actions, d.policy,
               d.experiment_group, r.reward{selected}
        from journeyman.decisions d
        join marts.decision_rewards r on r.decision_id = d.decision_id
        join journeyman.decision_features f on f.decision_id = d.decision_id
        where d.agent = :agent and d.decision_date >= :since
          and d.exclusion_reason is null and d.propensity is not null
          and d.allowed_actions is not null and d.experiment_group in ({groups})
        order by d.decision_date, d.decision_id
        """


# --- the candidate's and the logging policies' probabilities ----------------------------------


@dataclass(frozen=True)
class Probabilities:
    """Per logged decision: the candidate's probability of every action (the logged space's
    columns, then the candidate's new actions) and the logging mixture's."""

    candidate: np.ndarray  # (n, K + extra)
    logging: np.ndarray  # (n, K + extra): zero on the extra columns
    extra: list[str]
    mismatched: int  # decisions whose recomputed propensity differs from the logged one


def probabilities(
    warehouse: Warehouse, agent: AgentConfig, candidate: AgentConfig, logs: LoggedDecisions
) -> Probabilities:
    """Day by day, the agent's policies and the candidate fitted on what the agent knew that
    morning, each asked for its probability of every action under that day's guardrails.

    The logging policy is the mixture of the agent's live policies weighted by their groups'
    shares: group assignment is a random hash of the customer, independent of the context, so
    every decision was drawn from that mixture (the multiple-loggers estimator of Agarwal et
    al., 2017 — lower variance than each decision's own policy, and it lets the random control
    and the treatment lend their support to any candidate)."""
    cand_space = ActionSpace.for_agent(candidate)
    column = {a: i for i, a in enumerate(logs.space.action_id)}
    extra = [a for a in cand_space.action_id if a not in column]
    column.update({a: logs.space.size + i for i, a in enumerate(extra)})
    to_column = np.array([column[a] for a in cand_space.action_id], dtype=np.int64)
    cand_allowed = _candidate_allowed(logs, cand_space)
    width = logs.space.size + len(extra)
    pi, logging = np.zeros((logs.n, width)), np.zeros((logs.n, width))
    weights = _mixture_weights(agent)
    own = np.full(logs.n, np.nan)
    same = candidate is agent
    for day, rows, decider, cand in _daily_deciders(warehouse, agent, candidate, logs, same):
        for p_i, policy in enumerate(decider.policies):
            probs = policy.probabilities(_context(decider, logs, rows, day), logs.allowed[rows])
            logging[rows, : logs.space.size] += weights[p_i] * probs
            mine = logs.policy_index[rows] == p_i
            own[rows[mine]] = probs[mine, logs.action[rows[mine]]]
            if same and p_i == 0:
                pi[rows, : logs.space.size] = probs
        if not same:
            ctx = _context(cand, logs, rows, day)
            pi[np.ix_(rows, to_column)] = cand.policies[0].probabilities(ctx, cand_allowed[rows])
    mismatched = int((~np.isclose(own, logs.propensity, rtol=0, atol=1e-9)).sum())
    return Probabilities(pi, logging, extra, mismatched)


def _mixture_weights(agent: AgentConfig) -> np.ndarray:
    """Each live policy's share of the sent groups (shadow policies send nothing: weight 0)."""
    shares = [1 - sum(b.share for b in agent.baselines), *(b.share for b in agent.baselines)]
    modes = [agent.policy.mode, *(b.mode for b in agent.baselines)]
    live = np.array([s if m == "live" else 0.0 for s, m in zip(shares, modes, strict=True)])
    return live / live.sum() if live.sum() > 0 else live


def _daily_deciders(
    warehouse: Warehouse,
    agent: AgentConfig,
    candidate: AgentConfig,
    logs: LoggedDecisions,
    same: bool,
) -> Iterator[tuple[date, np.ndarray, AgentDecider, AgentDecider]]:
    """Per logged day: its rows, the agent's decider and the candidate's, both fitted (from
    scratch, as the daily job does) on the statistics the agent had that morning."""
    available = list(logs.features.column_names)
    features = agent_features(agent, available, agent.source)
    cand_features = agent_features(candidate, available, candidate.source)
    for day in np.unique(logs.day):
        rows = np.flatnonzero(logs.day == day)
        on = day.astype(object)
        stats = load_arm_statistics(
            warehouse, agent.name, on, available, signal=agent.goal.learning_signal
        )
        decider = AgentDecider.build(agent, features, stats)
        if same:
            yield on, rows, decider, decider
            continue
        if candidate.goal.learning_signal != agent.goal.learning_signal:
            stats = load_arm_statistics(
                warehouse, agent.name, on, available, signal=candidate.goal.learning_signal
            )
        yield on, rows, decider, AgentDecider.build(candidate, cand_features, stats)


def _context(
    decider: AgentDecider, logs: LoggedDecisions, rows: np.ndarray, day: date
) -> DecisionContext:
    """The decision context of some logged rows, as the live decider saw them that day."""
    columns = {
        c: logs.features.column(c).to_numpy(zero_copy_only=False)[rows]
        for c in logs.features.column_names
    }
    names = decider.feature_names
    x = np.column_stack([columns[f] for f in names]) if names else np.zeros((len(rows), 0))
    # the live agent's seed key: the same policy on the same day draws what it drew then
    seed_key = f"{decider.agent.name}:{day.isoformat()}"
    return DecisionContext(day, decider.actions, x.astype(np.float64), names, columns, seed_key)


def _candidate_allowed(logs: LoggedDecisions, cand_space: ActionSpace) -> np.ndarray:
    """The candidate's allowed actions per logged decision: the logged guardrail verdict for
    actions both spaces share; a new action is allowed where some logged action of its channel
    and hour was (the guardrails judge channels, hours and sends, not messages)."""
    space = logs.space
    out = np.zeros((logs.n, cand_space.size), dtype=bool)
    index = {a: i for i, a in enumerate(space.action_id)}
    for j, action in enumerate(cand_space.action_id):
        if action in index:
            out[:, j] = logs.allowed[:, index[action]]
            continue
        same = (space.channel == cand_space.channel[j]) & (space.hour == cand_space.hour[j])
        same &= space.is_send == cand_space.is_send[j]
        if same.any():
            out[:, j] = logs.allowed[:, same].any(axis=1)
    return out


# --- the estimate -------------------------------------------------------------------------------


def evaluate_candidate(
    warehouse: Warehouse,
    agent: AgentConfig,
    candidate: AgentConfig,
    candidate_name: str,
    since: date | None = None,
    *,
    resamples: int = 500,
    seed: int = 0,
) -> CandidateReport:
    """IPW, SNIPW, DM and DR estimates of the candidate's reward per decision on the logs."""
    logs = load_logged(warehouse, agent, since)
    probs = probabilities(warehouse, agent, candidate, logs)
    width = probs.candidate.shape[1]
    q = cross_fitted_predictions(_numeric(logs), logs.action, logs.reward, width, seed=seed)
    rows = np.arange(logs.n)
    estimate = evaluate(
        logs.reward,
        logs.action,
        probs.logging[rows, logs.action],
        probs.candidate,
        predictions=q,
        logging=probs.logging,
        resamples=resamples,
        seed=seed,
    )
    notes = _notes(probs, logs.n)
    if notes:
        estimate = dataclasses.replace(estimate, warnings=(*estimate.warnings, *notes))
    by_group = {str(g): float(logs.reward[logs.group == g].mean()) for g in sorted(set(logs.group))}
    days = len(np.unique(logs.day))
    return CandidateReport(agent.name, candidate_name, estimate, by_group, days)


def _notes(probs: Probabilities, n: int) -> list[str]:
    """Warnings about what the estimate rests on, in words."""
    notes = []
    if probs.extra:
        notes.append(
            f"the candidate can choose {len(probs.extra)} action(s) the logs never took "
            f"(e.g. {probs.extra[0]}): the direct method guesses their value from the reward "
            "model; IPW, SNIPW and DR cannot see it"
        )
    if probs.mismatched:
        notes.append(
            f"{probs.mismatched} of {n} decisions' recomputed propensities differ from the "
            "logged ones (the agent file changed, or data arrived late and changed the statistics it learned from): the "
            "estimate uses the recomputed ones; evaluate with --since after the change"
        )
    return notes


def _numeric(logs: LoggedDecisions) -> np.ndarray:
    """The logged features as a float matrix for the reward model (NaN → 0)."""
    columns = [
        logs.features.column(c).cast(pa.float64()).fill_null(0.0).to_numpy()
        for c in logs.features.column_names
        if pa.types.is_floating(logs.features.schema.field(c).type)
        or pa.types.is_integer(logs.features.schema.field(c).type)
    ]
    x = np.column_stack(columns) if columns else np.zeros((logs.n, 0))
    return np.nan_to_num(x)


def candidate_from_group(agent: AgentConfig, group: str) -> AgentConfig:
    """The agent with the policy of one of its groups as its own (e.g. business_as_usual)."""
    if group == "treatment":
        return agent
    for baseline in agent.baselines:
        if baseline.experiment_group == group:
            spec = PolicySpec(name=baseline.name, params=baseline.params)
            return agent.model_copy(update={"policy": spec, "baselines": []})
    groups = ["treatment", *(b.experiment_group for b in agent.baselines)]
    raise CandidateEvaluationError(
        f"agent {agent.name} has no {group} group; use a candidate agent file or one of {groups}"
    )
