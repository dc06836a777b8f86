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
from journeyman.decisioning.decide import AgentDecider
from journeyman.decisioning.features import agent_features
from journeyman.decisioning.off_policy import OffPolicyEstimate, evaluate
from journeyman.decisioning.policies import DecisionContext
from journeyman.decisioning.reward_model import cross_fitted_predictions
from journeyman.decisioning.schema import AgentConfig, Baseline, PolicySpec
from journeyman.decisioning.store import load_arm_statistics
from journeyman.tables import SENT_GROUPS
from journeyman.warehouse import Warehouse

ID_COLUMNS = ("decision_id", "agent", "decision_date")


class CandidateEvaluationError(ValueError):
    """The logs or the candidate cannot be evaluated; the message says what to do."""


class NoLogsYet(CandidateEvaluationError):
    """The agent has no decision whose outcome is in yet: nothing to evaluate on (normal in an
    agent's first days)."""


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


def load_logged(
    warehouse: Warehouse,
    agent: AgentConfig,
    since: date | None,
    *,
    max_decisions: int | None = None,
    seed: int = 0,
) -> LoggedDecisions:
    """The agent's acted-on, rewarded decisions since `since` (all when None); at most
    `max_decisions` of them, a seeded uniform sample."""
    for schema, table in (("journeyman", "decisions"), ("marts", "decision_rewards")):
        if not warehouse.table_exists(schema, table):
            raise CandidateEvaluationError(
                f"{schema}.{table} does not exist: run the daily job (or journeyman demo) first"
            )
    table = warehouse.read_arrow(_logs_sql(warehouse), _params(agent, since))
    if max_decisions is not None and table.num_rows > max_decisions:
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(table.num_rows, size=max_decisions, replace=False))
        table = table.take(pa.array(keep))
    if table.num_rows == 0:
        raise NoLogsYet(
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
    """Per logged decision: each candidate's probability of every action (the logged space's
    columns, then that candidate's new actions) and the logging mixture's (logged columns)."""

    candidates: list[np.ndarray]  # each (n, K + its extra)
    logging: np.ndarray  # (n, K)
    extra: list[list[str]]
    mismatched: int  # decisions whose recomputed propensity differs from the logged one

    def logging_for(self, i: int) -> np.ndarray:
        """The logging mixture padded with zeros to candidate i's columns."""
        pad = self.candidates[i].shape[1] - self.logging.shape[1]
        return np.pad(self.logging, ((0, 0), (0, pad)))


def probabilities(
    warehouse: Warehouse,
    agent: AgentConfig,
    candidates: list[AgentConfig],
    logs: LoggedDecisions,
) -> Probabilities:
    """Day by day, the agent's policies and each candidate fitted on what the agent knew that
    morning, each asked for its probability of every action under that day's guardrails.
    A candidate that is one of the agent's own policies (its policy or a baseline's, same
    actions and features) reuses that policy's answer: no second fit.

    The logging policy is the mixture of the agent's live policies weighted by their groups'
    shares: group assignment is a random hash of the customer, independent of the context, so
    every decision was drawn from that mixture (the multiple-loggers estimator of Agarwal et
    al., 2017 — lower variance than each decision's own policy, and it lets the random control
    and the treatment lend their support to any candidate)."""
    plans = [_CandidatePlan.of(agent, c, logs) for c in candidates]
    logging = np.zeros((logs.n, logs.space.size))
    weights = _mixture_weights(agent)
    own = np.full(logs.n, np.nan)
    for day, rows, decider in _daily_deciders(warehouse, agent, logs):
        computed = []
        for p_i, policy in enumerate(decider.policies):
            probs = policy.probabilities(_context(decider, logs, rows, day), logs.allowed[rows])
            logging[rows] += weights[p_i] * probs
            mine = logs.policy_index[rows] == p_i
            own[rows[mine]] = probs[mine, logs.action[rows[mine]]]
            computed.append(probs)
        for plan in plans:
            plan.fill(warehouse, agent, logs, rows, day, computed)
    mismatched = int((~np.isclose(own, logs.propensity, rtol=0, atol=1e-9)).sum())
    return Probabilities([p.out for p in plans], logging, [p.extra for p in plans], mismatched)


@dataclass
class _CandidatePlan:
    """One candidate's columns, allowed actions, and its place among the agent's policies."""

    candidate: AgentConfig
    own_index: int | None  # the agent's policy it is, if any
    extra: list[str]
    to_column: np.ndarray
    allowed: np.ndarray
    out: np.ndarray

    @classmethod
    def of(cls, agent: AgentConfig, candidate: AgentConfig, logs: LoggedDecisions):  # noqa: ANN206
        space = ActionSpace.for_agent(candidate)
        column = {a: i for i, a in enumerate(logs.space.action_id)}
        extra = [a for a in space.action_id if a not in column]
        column.update({a: logs.space.size + i for i, a in enumerate(extra)})
        to_column = np.array([column[a] for a in space.action_id], dtype=np.int64)
        out = np.zeros((logs.n, logs.space.size + len(extra)))
        own = _own_index(agent, candidate)
        return cls(candidate, own, extra, to_column, _candidate_allowed(logs, space), out)

    def fill(
        self,
        warehouse: Warehouse,
        agent: AgentConfig,
        logs: LoggedDecisions,
        rows: np.ndarray,
        day: date,
        computed: list[np.ndarray],
    ) -> None:
        """This day's rows: the agent's own answer, or the candidate fitted for the day."""
        if self.own_index is not None:
            self.out[np.ix_(rows, self.to_column)] = computed[self.own_index]
            return
        decider = _fitted(warehouse, agent, self.candidate, logs, day)
        ctx = _context(decider, logs, rows, day)
        probs = decider.policies[0].probabilities(ctx, self.allowed[rows])
        self.out[np.ix_(rows, self.to_column)] = probs


def _own_index(agent: AgentConfig, candidate: AgentConfig) -> int | None:
    """Which of the agent's policies the candidate is (same actions, features and goal)."""
    if candidate is agent:
        return 0
    same = (
        candidate.dimensions == agent.dimensions
        and candidate.features == agent.features
        and candidate.goal == agent.goal
    )
    if not same:
        return None
    specs = [agent.policy, *agent.baselines]
    for i, spec in enumerate(specs):
        if (spec.name, spec.params) == (candidate.policy.name, candidate.policy.params):
            return i
    return None


def _mixture_weights(agent: AgentConfig) -> np.ndarray:
    """Each live policy's share of the sent groups (shadow policies send nothing: weight 0)."""
    shares = [1 - sum(b.share for b in agent.baselines), *(b.share for b in agent.baselines)]
    modes = [agent.policy.mode, *(b.mode for b in agent.baselines)]
    live = np.array([s if m == "live" else 0.0 for s, m in zip(shares, modes, strict=True)])
    return live / live.sum() if live.sum() > 0 else live


def _daily_deciders(
    warehouse: Warehouse, agent: AgentConfig, logs: LoggedDecisions
) -> Iterator[tuple[date, np.ndarray, AgentDecider]]:
    """Per logged day: its rows and the agent's decider fitted (from scratch, as the daily job
    does) on the statistics the agent had that morning."""
    for day in np.unique(logs.day):
        on = day.astype(object)
        yield on, np.flatnonzero(logs.day == day), _fitted(warehouse, agent, agent, logs, on)


def _fitted(
    warehouse: Warehouse,
    agent: AgentConfig,
    policy_agent: AgentConfig,
    logs: LoggedDecisions,
    day: date,
) -> AgentDecider:
    """`policy_agent`'s decider fitted on `agent`'s statistics available on `day`."""
    available = list(logs.features.column_names)
    stats = load_arm_statistics(
        warehouse, agent.name, day, available, signal=policy_agent.goal.learning_signal
    )
    features = agent_features(policy_agent, available, policy_agent.source)
    return AgentDecider.build(policy_agent, features, stats)


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


def evaluate_candidates(
    warehouse: Warehouse,
    agent: AgentConfig,
    candidates: Mapping[str, AgentConfig],
    since: date | None = None,
    *,
    resamples: int = 500,
    seed: int = 0,
    max_decisions: int | None = None,
) -> list[CandidateReport]:
    """IPW, SNIPW, DM and DR estimates of each candidate's reward per decision on the logs
    (one pass over the days for all of them; at most `max_decisions`, a seeded uniform sample,
    which keeps every estimator unbiased)."""
    logs = load_logged(warehouse, agent, since, max_decisions=max_decisions, seed=seed)
    probs = probabilities(warehouse, agent, list(candidates.values()), logs)
    by_group = {str(g): float(logs.reward[logs.group == g].mean()) for g in sorted(set(logs.group))}
    days = len(np.unique(logs.day))
    x = _numeric(logs)
    rows = np.arange(logs.n)
    reports = []
    for i, name in enumerate(candidates):
        pi = probs.candidates[i]
        q = cross_fitted_predictions(x, logs.action, logs.reward, pi.shape[1], seed=seed)
        estimate = evaluate(
            logs.reward,
            logs.action,
            probs.logging[rows, logs.action],
            pi,
            predictions=q,
            logging=probs.logging_for(i),
            resamples=resamples,
            seed=seed,
        )
        notes = _notes(probs.extra[i], probs.mismatched, logs.n)
        if notes:
            estimate = dataclasses.replace(estimate, warnings=(*estimate.warnings, *notes))
        reports.append(CandidateReport(agent.name, name, estimate, by_group, days))
    return reports


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
    """One candidate's estimates (`evaluate_candidates`)."""
    reports = evaluate_candidates(
        warehouse, agent, {candidate_name: candidate}, since, resamples=resamples, seed=seed
    )
    return reports[0]


def _notes(extra: list[str], mismatched: int, n: int) -> list[str]:
    """Warnings about what the estimate rests on, in words."""
    notes = []
    if extra:
        notes.append(
            f"the candidate can choose {len(extra)} action(s) the logs never took "
            f"(e.g. {extra[0]}): the direct method guesses their value from the reward "
            "model; IPW, SNIPW and DR cannot see it"
        )
    if mismatched:
        notes.append(
            f"{mismatched} of {n} decisions' recomputed propensities differ from the logged "
            "ones (the agent file changed, or late data changed the statistics it learned "
            "from): the estimate uses the recomputed ones; evaluate with --since after that"
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
            return candidate_from_baseline(agent, baseline)
    groups = ["treatment", *(b.experiment_group for b in agent.baselines)]
    raise CandidateEvaluationError(
        f"agent {agent.name} has no {group} group; use a candidate agent file or one of {groups}"
    )


def candidate_from_baseline(agent: AgentConfig, baseline: Baseline) -> AgentConfig:
    """The agent with one baseline's policy (live, whatever its mode) as its own."""
    spec = PolicySpec(name=baseline.name, params=baseline.params)
    return agent.model_copy(update={"policy": spec, "baselines": []})
