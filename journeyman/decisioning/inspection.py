"""The decision inspector: why did this customer get that message (or none)?

For one customer and the last N decision days, per agent: the customer's sticky experiment group
and serving policy; each day's decision (sent, "send nothing", or excluded with the reason in
words and the rule's setting); the alternatives the policy weighed, RECOMPUTED — decisions are
deterministic for a day and a warehouse state, so the agent's decider is rebuilt as of that day
(the statistics available then), fed the decision-time features (journeyman.decision_features)
and the logged allowed-action mask, and asked for its probabilities and scores; then what was
delivered (the ledger), the events that followed and the orders in the attribution window.
Plain dataclasses, no presentation: `orchestration/inspect_command.py` prints them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from journeyman.decisioning import guardrails
from journeyman.decisioning.actions import unpack_allowed
from journeyman.decisioning.assignment import HOLDOUT, SHADOW, assign
from journeyman.decisioning.decide import NOT_ELIGIBLE, NULL_FEATURE, AgentDecider
from journeyman.decisioning.features import agent_features
from journeyman.decisioning.hashing import unit_uniform
from journeyman.decisioning.policies import DecisionContext, Policy
from journeyman.decisioning.schema import AgentConfig
from journeyman.decisioning.store import (
    DECISIONS_TABLE,
    FEATURES_SNAPSHOT,
    FEATURES_TABLE,
    LEDGER_TABLE,
    load_arm_statistics,
)
from journeyman.warehouse import Warehouse

DEFAULT_DAYS = 14
TOP_ALTERNATIVES = 5
#: how close the recomputed probability of the logged action must be to the logged propensity
TOLERANCE = 1e-9
_KEYS = ("decision_id", "agent", "decision_date")


class InspectionError(ValueError):
    """The customer, agent or window cannot be inspected; the message says what to do."""


@dataclass(frozen=True)
class Alternative:
    """One action the policy weighed: its probability and the expected reward it ascribed."""

    action_id: str
    probability: float
    score: float | None  # posterior-mean expected reward; None for rule_based / uniform_random
    logged: bool  # the action the decision recorded


@dataclass(frozen=True)
class Recomputation:
    """The decision replayed from the warehouse as of its day."""

    policy_version: str | None  # of the rebuilt policy (compare with the logged one)
    alternatives: list[Alternative] = field(default_factory=list)
    probability: float | None = None  # recomputed probability of the logged action
    recomputed_action: str | None = None  # what the rebuilt policy chooses with the same draw
    matches: bool = False  # probability equals the logged propensity (within TOLERANCE)
    note: str | None = None  # why it could not be recomputed, or why it differs


@dataclass(frozen=True)
class Delivery:
    """One ledger row of the decision (journeyman.deliveries)."""

    destination: str
    status: str
    attempts: int
    error: str | None
    provider_message_id: str | None
    delivered_at: datetime | None


@dataclass(frozen=True)
class Event:
    """One raw.message_events row of the decision."""

    event_type: str
    channel: str | None
    occurred_at: datetime | None


@dataclass(frozen=True)
class Order:
    """One raw.orders row of the customer inside the decision's attribution window."""

    order_id: str
    ordered_at: datetime
    amount: float | None
    category: str | None


@dataclass
class DecisionView:
    """One day's decision of one agent for the customer, explained."""

    decision_id: str
    decision_date: date
    experiment_group: str
    policy: str
    policy_version: str
    outcome: str  # sent | shadow | send nothing | excluded
    exclusion_reason: str | None
    explanation: str | None
    action_id: str | None
    message_id: str | None
    channel: str | None
    local_hour: int | None
    subject_variant: int | None
    send_at: datetime | None  # UTC
    send_at_local: datetime | None  # in the customer's time zone
    send_until: datetime | None
    propensity: float | None
    attribution_window_days: int
    recomputed: Recomputation | None = None
    deliveries: list[Delivery] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)


@dataclass
class AgentView:
    """The customer as one agent sees them: group, serving policy and the decisions."""

    agent: str
    experiment_group: str | None
    policy: str | None
    decisions: list[DecisionView] = field(default_factory=list)
    note: str | None = None


@dataclass
class CustomerTimeline:
    """Everything the inspector found for one customer."""

    customer_id: str
    time_zone: str | None
    start: date
    end: date
    agents: list[AgentView]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (dates and times as ISO 8601 strings, UTC naive times with Z)."""
        return _jsonable(dataclasses.asdict(self))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat() + ("Z" if value.tzinfo is None else "")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# -- reading the warehouse ------------------------------------------------------------------


@dataclass
class _Facts:
    """The customer's rows, read once."""

    decisions: list[dict[str, Any]]  # every agent, [start − 7 days, end]: caps and gaps need them
    decision_days: dict[str, set[date]]  # per agent, the days it decided for anyone
    features: dict[str, Any] | None  # the current marts.customer_features row
    snapshots: dict[str, dict[str, Any]]  # decision_id → decision-time features
    deliveries: dict[str, list[Delivery]]
    events: dict[str, list[Event]]
    orders: list[Order]
    available: list[str] = field(default_factory=list)  # the feature columns


def _tables(warehouse: Warehouse) -> set[str]:
    rows = warehouse.rows("select table_schema, table_name from information_schema.tables")
    return {f"{schema}.{name}" for schema, name in rows}


def _dicts(warehouse: Warehouse, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in warehouse.rows(sql, params)]


def _read_facts(
    warehouse: Warehouse, tables: set[str], customer_id: str, start: date, end: date
) -> _Facts:
    """The customer's decisions, features, ledger rows, events and orders."""
    key = {"c": customer_id, "from": start - timedelta(days=7), "to": end}
    mine = f"select decision_id from {DECISIONS_TABLE} where customer_id = :c"
    decisions = _dicts(
        warehouse,
        f"select * from {DECISIONS_TABLE} where customer_id = :c "
        "and decision_date between :from and :to order by decision_date, agent",
        key,
    )
    decision_days: dict[str, set[date]] = {}
    days_sql = (
        f"select distinct agent, decision_date from {DECISIONS_TABLE} "
        "where decision_date between :from and :to"
    )
    for agent_name, day in warehouse.rows(days_sql, key):
        decision_days.setdefault(agent_name, set()).add(day)
    features = None
    if FEATURES_TABLE in tables:
        found = _dicts(warehouse, f"select * from {FEATURES_TABLE} where customer_id = :c", key)
        features = found[0] if found else None
    snapshots: dict[str, dict[str, Any]] = {}
    if FEATURES_SNAPSHOT in tables:
        sql = f"select * from {FEATURES_SNAPSHOT} where decision_id in ({mine})"
        snapshots = {r["decision_id"]: r for r in _dicts(warehouse, sql, key)}
    return _Facts(
        decisions=decisions,
        decision_days=decision_days,
        features=features,
        snapshots=snapshots,
        deliveries=_read_deliveries(warehouse, tables, mine, key),
        events=_read_events(warehouse, tables, customer_id),
        orders=_read_orders(warehouse, tables, customer_id),
    )


def _read_deliveries(
    warehouse: Warehouse, tables: set[str], mine: str, key: Mapping[str, Any]
) -> dict[str, list[Delivery]]:
    if LEDGER_TABLE not in tables:
        return {}
    out: dict[str, list[Delivery]] = {}
    sql = (
        "select decision_id, destination, status, attempts, error, provider_message_id, "
        f"delivered_at from {LEDGER_TABLE} where decision_id in ({mine}) order by destination"
    )
    for r in _dicts(warehouse, sql, key):
        out.setdefault(r.pop("decision_id"), []).append(Delivery(**r))
    return out


def _read_events(
    warehouse: Warehouse, tables: set[str], customer_id: str
) -> dict[str, list[Event]]:
    """The customer's message events by decision, each vendor event once."""
    if "raw.message_events" not in tables:
        return {}
    sql = (
        "select distinct decision_id, event_id, event_type, channel, occurred_at "
        "from raw.message_events where customer_id = :c and decision_id is not null "
        "order by occurred_at, event_type"
    )
    out: dict[str, list[Event]] = {}
    for r in _dicts(warehouse, sql, {"c": customer_id}):
        r.pop("event_id")
        out.setdefault(r.pop("decision_id"), []).append(Event(**r))
    return out


def _read_orders(warehouse: Warehouse, tables: set[str], customer_id: str) -> list[Order]:
    """The customer's orders as loaded, each order id once."""
    if "raw.orders" not in tables:
        return []
    sql = (
        "select order_id, ordered_at, amount, category from ("
        "select order_id, ordered_at, amount, category, "
        "row_number() over (partition by order_id order by _loaded_at) as copy_rank "
        "from raw.orders where customer_id = :c and ordered_at is not null"
        ") as loaded where copy_rank = 1 order by ordered_at"
    )
    return [Order(**r) for r in _dicts(warehouse, sql, {"c": customer_id})]


# -- the timeline ---------------------------------------------------------------------------


def inspect_customer(
    warehouse: Warehouse,
    agents: Sequence[AgentConfig],
    customer_id: str,
    *,
    agent: str | None = None,
    days: int = DEFAULT_DAYS,
    available_features: Sequence[str] | None = None,
) -> CustomerTimeline:
    """The customer's decisions over the last `days` decision days (ending on the warehouse's
    latest decision date), for every agent or the one named, explained and recomputed.

    `available_features`: the feature columns the decisions asset used (the dbt manifest's);
    default: the columns of journeyman.decision_features."""
    if days < 1:
        raise InspectionError(f"--days must be at least 1; got {days}")
    tables = _tables(warehouse)
    if DECISIONS_TABLE not in tables:
        raise InspectionError(
            f"the warehouse {warehouse.location} has no {DECISIONS_TABLE} table: run "
            "`journeyman demo` or the daily job first"
        )
    names = _agent_names(warehouse, agents, agent)
    end = warehouse.scalar(f"select max(decision_date) from {DECISIONS_TABLE}")
    if end is None:
        raise InspectionError(
            f"{DECISIONS_TABLE} is empty: run `journeyman demo` or the daily job first"
        )
    start = end - timedelta(days=days - 1)
    facts = _read_facts(warehouse, tables, customer_id, start, end)
    _require_customer(warehouse, customer_id, facts)
    features = list(available_features or _snapshot_features(warehouse, tables))
    facts.available = features
    by_name = {a.name: a for a in agents}
    deciders: dict[tuple[str, date, int], AgentDecider] = {}
    views = [
        _agent_timeline(warehouse, name, by_name.get(name), customer_id, start, facts, deciders)
        for name in names
    ]
    zone = (facts.features or {}).get("time_zone")
    return CustomerTimeline(customer_id, zone, start, end, views)


def _agent_timeline(
    warehouse: Warehouse,
    name: str,
    config: AgentConfig | None,
    customer_id: str,
    start: date,
    facts: _Facts,
    deciders: dict[tuple[str, date, int], AgentDecider],
) -> AgentView:
    """One agent's view of the customer: group, policy, and each decision since `start`."""
    view = _agent_view(name, config, customer_id)
    stored: set[date] = set()
    for row in facts.decisions:
        if row["agent"] != name or row["decision_date"] < start:
            continue
        stored.add(row["decision_date"])
        decision = _decision_view(row, config, facts)
        if config is not None and row["allowed_actions"] is not None:
            decision.recomputed = _recompute(warehouse, config, row, facts, deciders)
        view.decisions.append(decision)
    for day in sorted(facts.decision_days.get(name, set()) - stored):
        if day >= start:
            view.decisions.append(_outside_audience(view, day, customer_id, config, facts))
    view.decisions.sort(key=lambda d: d.decision_date)
    return view


def _outside_audience(
    view: AgentView, day: date, customer_id: str, config: AgentConfig | None, facts: _Facts
) -> DecisionView:
    """A day the agent decided for others but stored no row for the customer: they were outside
    its audience (`not_eligible` rows are counted, not stored)."""
    return DecisionView(
        decision_id=f"{view.agent}-{day:%Y%m%d}-{customer_id} (not stored)",
        decision_date=day,
        experiment_group=view.experiment_group or "?",
        policy=view.policy or "?",
        policy_version="—",
        outcome="excluded",
        exclusion_reason=NOT_ELIGIBLE,
        explanation=explain(NOT_ELIGIBLE, {}, config, facts),
        action_id=None,
        message_id=None,
        channel=None,
        local_hour=None,
        subject_variant=None,
        send_at=None,
        send_at_local=None,
        send_until=None,
        propensity=None,
        attribution_window_days=config.goal.attribution_window_days if config else 0,
    )


def _agent_names(
    warehouse: Warehouse, agents: Sequence[AgentConfig], wanted: str | None
) -> list[str]:
    """The agents to show: every agent file and every agent with decisions, or the named one."""
    logged = [r[0] for r in warehouse.rows(f"select distinct agent from {DECISIONS_TABLE}")]
    known = sorted({a.name for a in agents} | set(logged))
    if wanted is None:
        return known
    if wanted not in known:
        raise InspectionError(
            f"unknown agent {wanted!r}; known agents: {', '.join(known) or '(none)'}"
        )
    return [wanted]


def _require_customer(warehouse: Warehouse, customer_id: str, facts: _Facts) -> None:
    if facts.decisions or facts.features is not None:
        return
    ever = warehouse.scalar(
        f"select count(*) from {DECISIONS_TABLE} where customer_id = :c", {"c": customer_id}
    )
    if not ever:
        raise InspectionError(
            f"customer {customer_id} has no decisions and is not in {FEATURES_TABLE}"
        )


def _snapshot_features(warehouse: Warehouse, tables: set[str]) -> list[str]:
    """The feature columns of journeyman.decision_features, in the order they were added."""
    if FEATURES_SNAPSHOT not in tables:
        return []
    rows = warehouse.rows(
        "select column_name from information_schema.columns where table_schema = 'journeyman' "
        "and table_name = 'decision_features' order by ordinal_position"
    )
    return [r[0] for r in rows if r[0] not in _KEYS]


def _agent_view(name: str, config: AgentConfig | None, customer_id: str) -> AgentView:
    """The customer's sticky group and serving policy under the agent's current file."""
    if config is None:
        return AgentView(name, None, None, note="no agent file: alternatives not recomputed")
    assignment = assign(config, np.array([customer_id]))
    policies = [config.policy.name, *(b.name for b in config.baselines)]
    group = str(assignment.group[0])
    return AgentView(name, group, policies[int(assignment.policy_index[0])])


def _decision_view(
    row: Mapping[str, Any], config: AgentConfig | None, facts: _Facts
) -> DecisionView:
    """The decision row, its outcome in words, and what followed it."""
    reason = row["exclusion_reason"]
    if reason:
        outcome = "excluded"
    elif row["message_id"] is None:
        outcome = "send nothing"
    else:
        outcome = "shadow" if row["experiment_group"] == SHADOW else "sent"
    learnable = not reason or reason == HOLDOUT
    return DecisionView(
        decision_id=row["decision_id"],
        decision_date=row["decision_date"],
        experiment_group=row["experiment_group"],
        policy=row["policy"],
        policy_version=row["policy_version"],
        outcome=outcome,
        exclusion_reason=reason,
        explanation=explain(reason, row, config, facts) if reason else None,
        action_id=row["action_id"],
        message_id=row["message_id"],
        channel=row["channel"],
        local_hour=row["local_hour"],
        subject_variant=row["subject_variant"],
        send_at=row["send_at"],
        send_at_local=_local(row["send_at"], (facts.features or {}).get("time_zone")),
        send_until=row["send_until"],
        propensity=row["propensity"],
        attribution_window_days=row["attribution_window_days"],
        deliveries=facts.deliveries.get(row["decision_id"], []),
        events=facts.events.get(row["decision_id"], []),
        orders=_orders_in_window(row, facts.orders) if learnable else [],
    )


def _local(instant: datetime | None, zone: str | None) -> datetime | None:
    if instant is None or not zone:
        return None
    try:
        return instant.replace(tzinfo=UTC).astimezone(ZoneInfo(zone))
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _orders_in_window(row: Mapping[str, Any], orders: list[Order]) -> list[Order]:
    """Orders with anchor < ordered_at <= anchor + window: the anchor is the send, or the
    decision day's midnight UTC when nothing was sent (the rewards' definition)."""
    anchor = row["send_at"] or datetime.combine(row["decision_date"], datetime.min.time())
    until = anchor + timedelta(days=int(row["attribution_window_days"]))
    return [o for o in orders if anchor < o.ordered_at <= until]


# -- exclusions in words --------------------------------------------------------------------


def explain(reason: str, row: Mapping[str, Any], config: AgentConfig | None, facts: _Facts) -> str:
    """The exclusion reason in words, with the rule and its setting."""
    if config is None:
        return reason
    current = facts.features or {}
    if reason == NOT_ELIGIBLE:
        columns = sorted(config.audience_expression.columns)
        values = ", ".join(f"{c}={_value(current[c])}" for c in columns if c in current)
        now = f" (now: {values})" if values else ""
        return f"not_eligible: not in the agent's audience `{config.audience}`{now}"
    if reason == NULL_FEATURE:
        return _explain_null(config, row, facts)
    if reason == HOLDOUT:
        return (
            f"holdout: in the agent's control group (holdout_share "
            f"{config.guardrails.holdout_share}), never sent its messages"
        )
    return _explain_guardrail(reason, config, row, facts)


def _value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else repr(value)


def _explain_null(config: AgentConfig, row: Mapping[str, Any], facts: _Facts) -> str:
    names = config.features or facts.available
    for source, values in (
        ("at decision time", facts.snapshots.get(row["decision_id"])),
        ("in the current customer_features", facts.features),
    ):
        if values is None:
            continue
        null = [f for f in names if f in values and _missing(values[f])]
        if null:
            return f"null_feature: {', '.join(null)} was NULL ({source})"
    return "null_feature: a feature the agent uses was NULL that day (none is NULL now)"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _explain_guardrail(
    reason: str, config: AgentConfig, row: Mapping[str, Any], facts: _Facts
) -> str:
    rules = config.guardrails
    if reason == guardrails.NO_CONSENT:
        now = facts.features or {}
        flags = ", ".join(
            f"{c} {'yes' if now.get(f'consent_{c}') else 'no'}" for c in config.dimensions.channels
        )
        return (
            "no_consent: no consent with a valid contact point on any channel the agent "
            f"uses{f' (now: {flags})' if now else ''}"
        )
    contacts = _contacts(row, facts)
    if reason == guardrails.CAP_REACHED:
        return f"cap_reached: {_caps_met(config, contacts)}"
    if reason == guardrails.MIN_GAP:
        last = contacts.last
        seen = f"; their last message was planned for {last:%Y-%m-%d %H:%M} UTC" if last else ""
        return f"min_gap: min_gap_hours {rules.min_gap_hours:g}{seen}"
    if reason == guardrails.QUIET_HOURS and rules.quiet_hours is not None:
        quiet = rules.quiet_hours
        return (
            f"quiet_hours: {quiet.start:02d}:00–{quiet.end:02d}:00 local; every send hour the "
            "other rules allowed fell inside them"
        )
    if reason == guardrails.NO_SEND_TIME:
        hours = ", ".join(f"{h:02d}:00" for h in config.dimensions.send_hours)
        return f"no_send_time: none of the send hours ({hours}) existed locally that day (DST)"
    return reason


@dataclass(frozen=True)
class _Contacts:
    """journeyman's messages to the customer as the guardrails counted them for a decision."""

    week: list[str]  # channels of messages sent (delivered) in the 7 days before the day
    today: list[str]  # channels of messages planned earlier that day (agents decide in name order)
    last: datetime | None  # the latest of their send instants


def _contacts(row: Mapping[str, Any], facts: _Facts) -> _Contacts:
    day, agent = row["decision_date"], row["agent"]
    midnight = datetime.combine(day, datetime.min.time())
    week, today, instants = [], [], []
    for r in facts.decisions:
        if r["send_at"] is None or r["experiment_group"] == SHADOW:
            continue
        if r["decision_date"] == day and r["agent"] < agent:
            today.append(r["channel"])
        elif r["send_at"] < midnight and any(
            x.status == "delivered" for x in facts.deliveries.get(r["decision_id"], [])
        ):
            if r["send_at"] >= midnight - timedelta(days=7):
                week.append(r["channel"])
        else:
            continue
        instants.append(r["send_at"])
    return _Contacts(week, today, max(instants, default=None))


def _caps_met(config: AgentConfig, contacts: _Contacts) -> str:
    """Which caps the customer's messages met, with the counts (all settings if none is)."""
    rules, week, today = config.guardrails, contacts.week, contacts.today
    counts = f"{len(week)} sent in the 7 days before, {len(today)} planned earlier that day"
    met = []
    if len(today) >= rules.max_per_day:
        met.append(f"max_per_day {rules.max_per_day} ({len(today)} planned earlier that day)")
    if len(week) + len(today) >= rules.max_per_week:
        met.append(f"max_per_week {rules.max_per_week} ({counts})")
    for channel, cap in rules.max_per_channel_per_week.items():
        used = week.count(channel) + today.count(channel)
        if used >= cap:
            met.append(f"max_per_channel_per_week {channel} {cap} ({used} {channel})")
    if met:
        return "; ".join(met)
    per_channel = ", ".join(f"{c}: {n}" for c, n in rules.max_per_channel_per_week.items())
    return (
        f"max_per_day {rules.max_per_day}, max_per_week {rules.max_per_week}, "
        f"max_per_channel_per_week {{{per_channel}}} ({counts} that journeyman knows of)"
    )


# -- the alternatives, recomputed -----------------------------------------------------------


class _Unavailable(Exception):
    """The decision cannot be replayed; the message says why."""


def _recompute(
    warehouse: Warehouse,
    config: AgentConfig,
    row: Mapping[str, Any],
    facts: _Facts,
    deciders: dict[tuple[str, date, int], AgentDecider],
) -> Recomputation:
    """Rebuild the serving policy as of the decision's day and replay the decision."""
    day = row["decision_date"]
    try:
        serving = _serving_spec(config, row)
        if (config.name, day, serving) not in deciders:
            deciders[(config.name, day, serving)] = _build_decider(
                warehouse, config, serving, day, facts.available
            )
        decider = deciders[(config.name, day, serving)]
        policy, space = decider.policies[0], decider.actions
        allowed = unpack_allowed([row["allowed_actions"]], space.size)
        ctx = _context(decider, row, facts)
        probabilities = policy.probabilities(ctx, allowed)[0]
        scores = policy.scores(ctx)
        u = unit_uniform(np.array([row["customer_id"]]), f"{config.name}:{day.isoformat()}:choice")
        chosen = int(policy.choose(ctx, allowed, u).action[0])
    except _Unavailable as exc:
        return Recomputation(None, note=str(exc))
    except (LookupError, ValueError, RuntimeError) as exc:
        return Recomputation(None, note=f"cannot rebuild the decider: {exc}")
    logged = np.flatnonzero(space.action_id == row["action_id"])
    probability = float(probabilities[logged[0]]) if len(logged) else None
    matches = (
        probability is not None
        and row["propensity"] is not None
        and abs(probability - row["propensity"]) <= TOLERANCE
    )
    return Recomputation(
        policy_version=policy.version,
        alternatives=_alternatives(
            space.action_id,
            allowed[0],
            probabilities,
            None if scores is None else scores[0],
            logged,
        ),
        probability=probability,
        recomputed_action=str(space.action_id[chosen]) if chosen >= 0 else None,
        matches=matches,
        note=_note(row, policy, probability, matches),
    )


def _serving_spec(config: AgentConfig, row: Mapping[str, Any]) -> int:
    """Index of the policy that made the decision (0: the agent's, i: baselines[i − 1]): the
    customer's sticky slot if it runs the logged policy, else the first that does."""
    specs = [config.policy, *config.baselines]
    slot = int(assign(config, np.array([row["customer_id"]])).policy_index[0])
    for i in (slot, *range(len(specs))):
        if specs[i].name == row["policy"]:
            return i
    raise _Unavailable(
        f"the agent no longer has a {row['policy']} policy: alternatives not recomputed"
    )


def _build_decider(
    warehouse: Warehouse, config: AgentConfig, serving: int, day: date, available: Sequence[str]
) -> AgentDecider:
    """The agent's decider as `daily.decide_day` built it on `day` (the statistics available
    then; the agent file as it is now), with only the serving policy: AgentDecider.build fits
    every learning policy it holds, and a fit is what costs time here."""
    spec = [config.policy, *config.baselines][serving]
    alone = config.model_copy(update={"policy": spec, "baselines": []})
    features = list(available)
    stats = load_arm_statistics(
        warehouse, config.name, day, features, signal=config.goal.learning_signal
    )
    return AgentDecider.build(alone, agent_features(config, features, config.source), stats)


def _context(decider: AgentDecider, row: Mapping[str, Any], facts: _Facts) -> DecisionContext:
    """The policy's input for the one customer: decision-time features (journeyman.
    decision_features); other customer_features columns as they are now."""
    snapshot = facts.snapshots.get(row["decision_id"])
    if snapshot is None:
        raise _Unavailable(
            "no decision-time features in journeyman.decision_features: alternatives not recomputed"
        )
    columns = {**(facts.features or {}), **{k: v for k, v in snapshot.items() if k not in _KEYS}}
    missing = [f for f in decider.feature_names if f not in snapshot]
    if missing:
        raise _Unavailable(f"the decision-time features lack {', '.join(missing)}")
    x = np.array([[_float(snapshot[f]) for f in decider.feature_names]], dtype=np.float64)
    day = row["decision_date"]
    return DecisionContext(
        day=day,
        actions=decider.actions,
        features=x,
        feature_names=decider.feature_names,
        columns={k: np.array([_float_or(v)]) for k, v in columns.items()},
        seed_key=f"{decider.agent.name}:{day.isoformat()}",
    )


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


def _float_or(value: Any) -> Any:
    """Numbers as float (NULL as NaN), like a numeric Arrow column turned to numpy."""
    if value is None:
        return math.nan
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def _alternatives(
    action_ids: np.ndarray,
    allowed: np.ndarray,
    probabilities: np.ndarray,
    scores: np.ndarray | None,
    logged: np.ndarray,
) -> list[Alternative]:
    """The allowed actions by probability, then score (then action order): the top few."""
    index = np.flatnonzero(allowed)
    score = scores[index] if scores is not None else np.zeros(len(index))
    order = index[np.lexsort((index, -score, -probabilities[index]))][:TOP_ALTERNATIVES]
    return [
        Alternative(
            action_id=str(action_ids[i]),
            probability=float(probabilities[i]),
            score=None if scores is None else float(scores[i]),
            logged=bool(len(logged) and i == logged[0]),
        )
        for i in order
    ]


def _note(
    row: Mapping[str, Any], policy: Policy, probability: float | None, matches: bool
) -> str | None:
    """Why the replay differs from the log (or that the policy changed although it does not)."""
    changed = (
        f"the policy is now {policy.version}, it was {row['policy_version']} when deciding "
        "(the agent file or the statistics changed since)"
    )
    if matches:
        return None if policy.version == row["policy_version"] else f"same probability; {changed}"
    if row["action_id"] is None or probability is None:
        return f"the logged action {row['action_id']} is not in the agent's action space now"
    if row["propensity"] is None:
        return "the decision has no logged propensity"
    said = (
        f"recomputed probability {probability:.6g} of {row['action_id']} differs from the logged "
        f"propensity {row['propensity']:.6g}"
    )
    if policy.version != row["policy_version"]:
        return f"{said}: {changed}"
    return f"{said} although the policy version is the same"


__all__ = [
    "DEFAULT_DAYS",
    "Alternative",
    "AgentView",
    "CustomerTimeline",
    "DecisionView",
    "Delivery",
    "Event",
    "InspectionError",
    "Order",
    "Recomputation",
    "inspect_customer",
]
