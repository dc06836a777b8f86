"""Learning quality in the sandbox world: the learned agent against the static rule-based
journey, uniform random and the oracle, over simulated days, for several seeds.

One world per seed; one agent (default: agents/winback.yml) whose audience is split by hashes
into four arms served side by side on the same days: `linear_ts` (the agent's policy),
`rule_based` (the static journey) and `uniform_random` — sticky assignment within the agent,
which also holds out 10 % — and an `oracle` that reads the world's ground truth and picks, per
customer and day, the allowed action with the highest expected goal value (revenue minus the
agent's penalty per unsubscribe and per complaint times their probabilities) — a myopic upper
reference.
The oracle runs as a twin agent on its own 22.5 % of the audience so that its choices, made on
latent traits, never enter the learning agent's statistics. Every day runs through the real
Dagster job (dbt build → decisions → deliveries) exactly as `journeyman demo` does.

Two metrics per arm, each averaged over the arm's customers (everyone who entered the audience),
with a normal 95 % interval:

- `revenue_per_customer` (realized, intention-to-treat): each customer's order revenue from their
  first in-audience day to the end of the run. Honest but noisy: most of its variance is whether
  a customer happened to order at all (≈ ±2 per seed at 5,000 customers).
- `expected_value_per_customer` (decision quality under the ground truth): the sum, over the
  customer's decisions, of the world's expected 7-day incremental revenue of the chosen action
  minus the agent's penalties times the unsubscribe / complaint probabilities (`Reward.penalty`:
  what the agent's learning reward subtracts), read from the world's truth as it
  stood when the decision was made (sending nothing, a held-out or a blocked decision: 0). It
  removes the outcome noise — the standard regret-style measure of bandit simulations — and is
  what the oracle maximizes day by day.

Next to them, `closed_windows_per_arm` (what there was to learn from): decisions whose
attribution window closed within the run, the sends among them and the orders inside those
windows.

gap_closed = (learned − rule_based) / (oracle − rule_based), for each metric; the target is
judged on the expected value (the realized revenue is reported next to it).
`gap_closed_by_week` is the same gap on the expected value of each week's decisions (days 0–6,
7–13, …): how fast the agent learns.

Scale: at 5,000 customers each arm's closed windows over 30 days hold about 40–80 orders — too
few to learn anything from (`closed_windows_per_arm`); the default is 20,000 customers (about
240–340 orders per arm, 6–9 minutes per seed on 2 cores).

Usage: python benchmarks/learning.py [--customers 20000] [--days 30] [--seeds 1,2,3] [--keep DIR]
       [--param KEY=VALUE ...]
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import numpy as np
import paired_references
import peer_policy
import yaml

from journeyman import settings
from journeyman.decisioning.hashing import unit_uniform
from journeyman.decisioning.policies import REGISTRY, Choice, DecisionContext, Policy
from journeyman.warehouse import Warehouse

ARMS = ["linear_ts", "rule_based", "uniform_random", "oracle"]
CHANNEL_INDEX = {"email": 0, "sms": 1, "push": 2}
_WORLD: dict[str, object] = {}


def _goal_gain(truth, goal, ids: np.ndarray, channel: str, hour: int, tags: dict) -> np.ndarray:
    """Expected 7-day (the goal's window) gain of one send over sending nothing, per customer:
    incremental revenue (or conversion) minus the agent's penalties, under the ground truth."""
    reward = truth.expected_reward(
        ids, channel, hour, tags, window_days=goal.attribution_window_days
    )
    if goal.metric == "revenue":
        gain = reward.revenue - reward.baseline_revenue
    elif goal.metric == "retention":  # an order and no opt-out (independent, to first order)
        gain = reward.conversion * (1 - reward.unsubscribe) - reward.baseline_conversion
    else:
        gain = reward.conversion - reward.baseline_conversion
    return gain - reward.penalty(goal.penalties)


class Oracle(Policy):
    """Best allowed action per customer under the sandbox's ground truth (benchmark only)."""

    name = "oracle"

    def choose(self, ctx: DecisionContext, allowed: np.ndarray, u: np.ndarray) -> Choice:
        ids = np.asarray(ctx.columns["customer_id"]).astype(str)
        space = ctx.actions
        values = np.zeros((len(ids), space.size))  # sending nothing gains nothing
        for a in np.flatnonzero(space.is_send):
            tags = _WORLD["tags"][str(space.message_id[a])]
            values[:, a] = _goal_gain(
                _WORLD["world"].truth,
                _WORLD["goal"],
                ids,
                str(space.channel[a]),
                int(space.hour[a]),
                tags,
            )
        masked = np.where(allowed, values, -np.inf)
        action = np.where(allowed.any(axis=1), masked.argmax(axis=1), -1)
        return Choice(action=action, propensity=np.ones(len(ids)))


ORACLE_SHARE = 0.225  # of the audience: about the size of each of the agent's three arms


def _agent_files(
    source: Path, target: Path, params: dict | None = None, peer: bool = False
) -> tuple[tuple[str, ...], dict[str, str]]:
    """The agent under test and its twins on disjoint slices of one audience split: the
    oracle, and with `peer` MABWiser's LinTS (peer_policy.py). Returns the agents' names and
    each twin's slice (an audience expression), by arm.

    A twin is a separate agent (own statistics): the oracle because it chooses on latent traits
    the features do not show (pooled into the agent's statistics, its choices would be
    confounded data: its "send nothing" falls on the customers it knows are worth least); the
    peer because it learns only from its own decisions, as the library would.
    """
    data = yaml.safe_load(source.read_text())
    data["policy"]["params"] = {**data["policy"].get("params", {}), **(params or {})}
    rule = next(b for b in data.get("baselines", []) if b["name"] == "rule_based")
    audience = data.get("audience", "true")
    # one expression of the audience language (docs/agents.md): hash is an allowed function
    bucket = f"hash(customer_id || '{data['name']}-oracle') % 1000"
    share = round(ORACLE_SHARE * 1000)
    slices = {"oracle": f"{bucket} < {share}"}
    if peer:
        slices[peer_policy.MabwiserLinTS.name] = f"{bucket} >= {share} and {bucket} < {2 * share}"
    split = " or ".join(f"({s})" for s in slices.values())
    # Shadow delivery (the file destination): the benchmark measures decisions, not transport.
    destinations = {channel: "file" for channel in data["destinations"]}
    agent = {
        **data,
        "audience": f"({audience}) and not ({split})",
        "baselines": [{**rule, "share": 1 / 3}, {"name": "uniform_random", "share": 1 / 3}],
        "guardrails": {**data["guardrails"], "holdout_share": 0.1},
        "destinations": destinations,
    }
    oracle = {
        **agent,
        "name": f"{data['name']}_oracle",
        "salt": f"{data.get('salt') or data['name']}-oracle",
        "audience": f"({audience}) and ({split})",
        "policy": {"name": "oracle"},
        "baselines": [],
        "guardrails": {**data["guardrails"], "holdout_share": 0.0},
    }
    target.mkdir(parents=True, exist_ok=True)
    (target.parent / "destinations.yml").write_text("file:\n  kind: file\n")
    (target / source.name).write_text(yaml.safe_dump(agent, sort_keys=False))
    twins = [{**oracle, "audience": f"({audience}) and ({slices['oracle']})"}]
    if peer:
        twins.append(
            {
                **oracle,
                "name": f"{data['name']}_peer",
                "salt": f"{data.get('salt') or data['name']}-peer",
                "audience": f"({audience}) and ({slices[peer_policy.MabwiserLinTS.name]})",
                "policy": {"name": peer_policy.MabwiserLinTS.name},
            }
        )
    for twin in twins:
        (target / f"{twin['name']}.yml").write_text(yaml.safe_dump(twin, sort_keys=False))
    return (agent["name"], *(t["name"] for t in twins)), slices


def _per_customer(
    warehouse: Warehouse, end: date, weekly: Sequence[dict[str, float]]
) -> tuple[dict[str, np.ndarray], list[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """Per arm: each audience customer's realized revenue, per week of the run their
    decisions' expected value (`weekly`: customer → value, one dict per week), and their ids."""
    rows = warehouse.rows(
        f"""
        with first_seen as (
            select customer_id,
                   case when experiment_group = 'holdout' then 'holdout' else policy end as arm,
                   min(decision_date) as first_day
            from journeyman.decisions
            where exclusion_reason is distinct from 'not_eligible'
            group by 1, 2
        )
        select f.customer_id, f.arm, coalesce(sum(o.amount), 0)
        from first_seen f
        left join raw.orders o
          on o.customer_id = f.customer_id
         and o.ordered_at >= cast(f.first_day as timestamp)
         and o.ordered_at < cast(date '{end.isoformat()}' as timestamp)
        group by f.customer_id, f.arm
        """
    )
    revenue: dict[str, list[float]] = {}
    ids: dict[str, list[str]] = {}
    values: list[dict[str, list[float]]] = [{} for _ in weekly]
    for customer, arm, amount in rows:
        revenue.setdefault(arm, []).append(float(amount))
        ids.setdefault(arm, []).append(customer)
        for week, value in zip(weekly, values, strict=True):
            value.setdefault(arm, []).append(week.get(customer, 0.0))
    as_arrays = lambda d: {k: np.array(v) for k, v in d.items()}  # noqa: E731
    return as_arrays(revenue), [as_arrays(v) for v in values], as_arrays(ids)


def _decision_values(warehouse: Warehouse, day: date, agents: Sequence[str]) -> dict[str, float]:
    """customer → expected incremental value of the day's decision under the current truth."""
    names = ", ".join(f"'{a}'" for a in agents)
    rows = warehouse.rows(
        f"""
        select customer_id, channel, local_hour, message_id
        from journeyman.decisions
        where agent in ({names}) and decision_date = date '{day.isoformat()}'
          and exclusion_reason is null and message_id is not null
        """
    )
    truth, goal, tags = _WORLD["world"].truth, _WORLD["goal"], _WORLD["tags"]
    out: dict[str, float] = {}
    groups: dict[tuple, list[str]] = {}
    for customer, channel, hour, message in rows:
        groups.setdefault((channel, int(hour), message), []).append(customer)
    for (channel, hour, message), ids in groups.items():
        gain = _goal_gain(truth, goal, np.array(ids), channel, hour, tags[message])
        out.update(zip(ids, gain.tolist(), strict=True))
    return out


def _evidence(warehouse: Warehouse, agents: Sequence[str]) -> dict[str, dict[str, int]]:
    """Per arm, what there was to learn from: decisions whose attribution window had closed by
    the end, how many were sends, and the orders inside those windows (holdout: no sends)."""
    names = ", ".join(f"'{a}'" for a in agents)
    rows = warehouse.rows(
        f"""
        select case when experiment_group = 'holdout' then 'holdout' else policy end,
               count(*), count(message_id), coalesce(sum(orders), 0)
        from marts.decision_rewards
        where agent in ({names})
        group by 1
        """
    )
    return {
        arm: {"decisions": int(n), "sends": int(sends), "orders_in_windows": int(orders)}
        for arm, n, sends, orders in rows
    }


def audience_values(warehouse: Warehouse, config, truth, space):
    """The agent's audience now: ids, features, every action's true expected goal gain (0 for
    sending nothing) and whether it is allowed (consent per channel)."""
    features = list(config.features or [])
    consent = ", ".join(f"coalesce(consent_{c}, false)" for c in CHANNEL_INDEX)
    audience, params = config.audience_expression.sql()  # checked, literals bound
    rows = warehouse.rows(
        f"select customer_id, {', '.join(features)}, {consent} from marts.customer_features "
        f"where {audience}",
        params,
    )
    ids = np.array([r[0] for r in rows], dtype=str)
    x = np.array([[float(v) for v in r[1 : 1 + len(features)]] for r in rows])
    can = np.array([r[1 + len(features) :] for r in rows], dtype=bool).reshape(len(rows), 3)
    tags = {m.id: dict(m.tags) for m in config.dimensions.messages}
    values = np.zeros((len(ids), space.size))
    allowed = np.ones_like(values, dtype=bool)
    for a in np.flatnonzero(space.is_send):
        channel = str(space.channel[a])
        values[:, a] = _goal_gain(
            truth, config.goal, ids, channel, int(space.hour[a]), tags[str(space.message_id[a])]
        )
        allowed[:, a] = can[:, CHANNEL_INDEX[channel]]
    return ids, x, values, allowed


def _ceiling(
    warehouse: Warehouse, config, end: date
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """What each kind of knowledge is worth, at the world's state after the last day.

    Over the customers in the agent's audience, with every consented action allowed: the mean
    expected value per customer-day (the metric of `_decision_values`) of the trait oracle
    (knows the latent traits), of the best policy the agent's model class can express — the
    linear x̃ ⊗ φ(a) model least-squares fitted on the TRUE values (`feature_oracle`) — of the
    best non-personalised ranking (intercepts only), of the learned agent's greedy choice (its
    posterior mean after the run), of its own next choice (`learned_sampled`: the policy's
    `choose`, Thompson draws included) and of uniform random over the allowed actions. Returns
    the means and the per-customer values (paired: the same customers for every policy).
    """
    from journeyman.decisioning.action_features import action_features
    from journeyman.decisioning.actions import ActionSpace
    from journeyman.decisioning.policies import build_policy
    from journeyman.decisioning.store import load_arm_statistics

    space = ActionSpace.for_agent(config)
    phi = action_features(config, space).matrix
    features = config.features
    ids, x, values, allowed = audience_values(warehouse, config, _WORLD["world"].truth, space)
    if not len(ids):
        return {}, {}
    rows_idx = np.arange(len(ids))

    def value_of(scores: np.ndarray) -> np.ndarray:
        return values[rows_idx, np.where(allowed, scores, -np.inf).argmax(axis=1)]

    policy = build_policy(config.policy)
    stats = load_arm_statistics(
        warehouse, config.name, end, features, signal=config.goal.learning_signal
    ).select(features)
    policy.fit(stats, action_features(config, space), list(space.action_id))
    learned = policy.posterior.expected(x, phi)
    ctx = DecisionContext(end, space, x, list(features), {}, f"{config.name}:{end}:end")
    sampled = policy.choose(ctx, allowed, unit_uniform(ids, f"{config.name}:{end}:end")).action
    per_customer = {
        "oracle": value_of(values),
        "feature_oracle": value_of(paired_references.linear_fit(x, phi, values)),
        "non_personalised": value_of(paired_references.linear_fit(x[:, :0], phi, values)),
        "learned_greedy": value_of(learned),
        "learned_sampled": np.where(sampled >= 0, values[rows_idx, np.maximum(sampled, 0)], 0.0),
        "uniform_random": np.where(allowed, values, 0).sum(1) / allowed.sum(1),
    }
    means = {k: float(v.mean()) for k, v in per_customer.items()}
    return {"customers": len(ids), **means}, per_customer


def _gain_of(config, space) -> paired_references.Gain:
    """Expected goal gain of action index `a` for customers `ids`, under the current truth."""

    def gain(ids: np.ndarray, a: int) -> np.ndarray:
        return _goal_gain(
            _WORLD["world"].truth,
            config.goal,
            ids,
            str(space.channel[a]),
            int(space.hour[a]),
            _WORLD["tags"][str(space.message_id[a])],
        )

    return gain


def _arm_sizes_in_world(warehouse: Warehouse, config, slices: dict[str, str]) -> dict[str, int]:
    """How many of the world's valid customers each arm holds by its hashes alone, whoever
    entered the audience: what makes a value per customer comparable between agents whose
    audiences differ (the same agent with and without a feature). `slices`: the twins' arms."""
    from journeyman.decisioning.assignment import assign
    from journeyman.decisioning.audience import Audience

    ids = np.array(
        [r[0] for r in warehouse.rows("select customer_id from marts.customer_features")]
    )
    rest = np.ones(len(ids), dtype=bool)
    sizes: dict[str, int] = {}
    for arm, expression in slices.items():
        where, params = Audience.parse(expression).sql()
        inside = [
            r[0]
            for r in warehouse.rows(
                f"select customer_id from marts.customer_features where {where}", params
            )
        ]
        member = np.isin(ids, inside)
        sizes[arm] = int(member.sum())
        rest &= ~member
    served = assign(config, ids[rest].astype(str))
    names = [config.policy.name, *(b.name for b in config.baselines)]
    arms = np.where(served.group == "holdout", "holdout", np.array(names)[served.policy_index])
    sizes.update(
        {str(a): int(n) for a, n in zip(*np.unique(arms, return_counts=True), strict=True)}
    )
    return sizes


def run_seed(
    seed: int,
    customers: int,
    days: int,
    start: date,
    agent: Path,
    keep: Path | None = None,
    params: dict | None = None,
    history=None,
    peer: bool = False,
) -> dict:
    from journeyman.decisioning.action_features import action_features
    from journeyman.decisioning.actions import ActionSpace
    from journeyman.decisioning.config import load_agent
    from journeyman.orchestration.demo import DemoOptions, run_demo
    from journeyman.sandbox import SandboxWorld

    with tempfile.TemporaryDirectory(prefix="jm-learning-") as tmp:
        root = keep / f"seed{seed}" if keep else Path(tmp)
        if keep:
            shutil.rmtree(root, ignore_errors=True)
        os.environ[settings.WAREHOUSE_ENV] = str(root / "warehouse.duckdb")
        os.environ[settings.AGENTS_ENV] = str(root / "agents")
        os.environ["JOURNEYMAN_DESTINATIONS"] = str(root / "destinations.yml")
        names, slices = _agent_files(agent, root / "agents", params, peer)
        config = load_agent(root / "agents" / agent.name)
        _WORLD["goal"] = config.goal
        _WORLD["tags"] = {m.id: dict(m.tags) for m in config.dimensions.messages}
        from journeyman.orchestration.definitions import defs
        from journeyman.orchestration.project import prepare_manifest

        prepare_manifest()
        warehouse = Warehouse(root / "warehouse.duckdb")
        _WORLD["world"] = SandboxWorld(warehouse, seed=seed)
        if peer:
            peer_policy.configure(warehouse, names[-1])
        weekly: dict[int, dict[str, float]] = {}  # week of the run → customer → value
        space = ActionSpace.for_agent(config)
        gain = _gain_of(config, space)
        decided: list[paired_references.Rows] = []

        def on_step(day: date, step: str) -> None:
            if step == "customers live the day":  # decided, not yet lived: truth as it stood
                week = weekly.setdefault((day - start).days // 7, {})
                for customer, value in _decision_values(warehouse, day, names).items():
                    week[customer] = week.get(customer, 0.0) + value
                decided.append(
                    paired_references.day_rows(
                        warehouse, config, space, day, config.policy.name, gain
                    )
                )

        started = time.perf_counter()
        options = DemoOptions(customers, days, seed, start, history)
        run_demo(options, defs(), warehouse, root / "outbox", on_step)
        elapsed = time.perf_counter() - started
        end = date.fromordinal(start.toordinal() + days)
        revenue, by_week, ids = _per_customer(warehouse, end, [weekly[w] for w in sorted(weekly)])
        value = {arm: sum(week[arm] for week in by_week) for arm in revenue}
        references = paired_references.per_customer(
            paired_references.Rows.concat(decided),
            action_features(config, space).matrix,
            ids.get(config.policy.name, np.array([], dtype=str)),
        )
        world_sizes = _arm_sizes_in_world(warehouse, config, slices)
        ceiling, end_values = _ceiling(warehouse, config, end)
        evidence = _evidence(warehouse, names)
    summary = {arm: _mean_ci(values) for arm, values in revenue.items()}
    value_summary = {arm: _mean_ci(values) for arm, values in value.items()}
    per_world = {
        arm: np.concatenate([v, np.zeros(max(world_sizes.get(arm, 0) - len(v), 0))])
        for arm, v in value.items()
    }
    print(
        f"seed {seed}: {elapsed:.0f} s  "
        + "  ".join(
            f"{arm}={s['mean']:.2f} [{s['low']:.2f}, {s['high']:.2f}] "
            f"ev={value_summary[arm]['mean']:.3f} (n={s['n']})"
            for arm, s in sorted(summary.items())
        ),
        file=sys.stderr,
    )
    gap_by_week = [_gap({arm: _mean_ci(v) for arm, v in week.items()}) for week in by_week]
    print(f"seed {seed}: value per customer-day at the end: {ceiling}", file=sys.stderr)
    print(f"seed {seed}: gap closed by week of the run: {gap_by_week}", file=sys.stderr)
    print(f"seed {seed}: closed windows per arm: {evidence}", file=sys.stderr)
    print(
        f"seed {seed}: on the learned arm's customer-days: "
        + "  ".join(f"{k}={_mean_ci(v)['mean']:.4f}" for k, v in references.items()),
        file=sys.stderr,
    )
    return {
        "seed": seed,
        "ceiling": ceiling,
        "evidence": evidence,
        "seconds": round(elapsed, 1),
        "arms": summary,
        "value_arms": value_summary,
        "raw": {k: v.tolist() for k, v in revenue.items()},
        "raw_value": {k: v.tolist() for k, v in value.items()},
        "raw_value_by_week": [{k: v.tolist() for k, v in week.items()} for week in by_week],
        "raw_references": {k: v.tolist() for k, v in references.items()},
        "raw_end_of_run": {k: v.tolist() for k, v in end_values.items()},
        "raw_value_per_world_customer": {k: v.tolist() for k, v in per_world.items()},
        "world_sizes": world_sizes,
    }


def _mean_ci(values: np.ndarray) -> dict:
    n = len(values)
    mean = float(values.mean()) if n else float("nan")
    half = 1.96 * float(values.std(ddof=1)) / np.sqrt(n) if n > 1 else float("nan")
    return {
        "mean": round(mean, 4),
        "low": round(mean - half, 4),
        "high": round(mean + half, 4),
        "n": n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--start", default="2026-03-02")
    parser.add_argument("--agent", default=str(settings.AGENTS_DIR / "winback.yml"))
    parser.add_argument("--keep", type=Path, help="keep each seed's warehouse under this folder")
    parser.add_argument(
        "--orders",
        choices=["synthetic", "cdnow"],
        default="synthetic",
        help="the world's purchase histories: drawn, or the CDNOW file's (as journeyman demo)",
    )
    parser.add_argument("--orders-file", type=Path, default=None, help="CDNOW-format file")
    parser.add_argument(
        "--peer",
        action="store_true",
        help="also run MABWiser's LinTS as a twin agent on its own slice (peer_policy.py)",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a parameter of the agent's policy (YAML value), e.g. exploration=0.5",
    )
    args = parser.parse_args()
    REGISTRY[Oracle.name] = Oracle
    REGISTRY[peer_policy.MabwiserLinTS.name] = peer_policy.MabwiserLinTS
    seeds = [int(s) for s in args.seeds.split(",")]
    params = {k: yaml.safe_load(v) for k, v in (p.split("=", 1) for p in args.param)}
    history = _history(args.orders, args.orders_file, args.customers)
    results = [
        run_seed(
            s,
            args.customers,
            args.days,
            date.fromisoformat(args.start),
            Path(args.agent),
            args.keep,
            params,
            history,
            args.peer,
        )
        for s in seeds
    ]
    arms = [*ARMS, *([peer_policy.MabwiserLinTS.name] if args.peer else []), "holdout"]
    pooled = {a: _pool(results, "raw", a) for a in arms}
    pooled_value = {a: _pool(results, "raw_value", a) for a in arms}
    value_ci = {a: [pooled_value[a]["low"], pooled_value[a]["high"]] for a in arms}
    references = _references(results, pooled_value)
    end_of_run = _end_of_run(results)
    per_world = {a: _pool(results, "raw_value_per_world_customer", a) for a in arms}
    print(
        json.dumps(
            {
                "agent": Path(args.agent).stem,
                "orders": args.orders,
                "customers": args.customers,
                "days": args.days,
                "seeds": seeds,
                "policy_params": params,
                "expected_value_per_customer": {a: pooled_value[a]["mean"] for a in arms},
                "expected_value_ci95": value_ci,
                "gap_closed_rule_to_oracle": _gap(pooled_value),
                **references,
                **end_of_run,
                "value_per_world_customer": {
                    a: {k: per_world[a][k] for k in ("mean", "low", "high", "n")} for a in arms
                },
                "gap_closed_per_seed": [_gap(r["value_arms"]) for r in results],
                "gap_closed_by_week": [
                    _gap({a: _pool(results, "raw_value_by_week", a, w) for a in arms})
                    for w in range(len(results[0]["raw_value_by_week"]))
                ],
                "revenue_per_customer": {a: pooled[a]["mean"] for a in arms},
                "ci95": {a: [pooled[a]["low"], pooled[a]["high"]] for a in arms},
                "revenue_gap_closed_rule_to_oracle": _gap(pooled),
                "customers_per_arm": {a: pooled[a]["n"] for a in arms},
                "value_per_customer_day_at_end": {
                    key: round(float(np.mean([r["ceiling"][key] for r in results])), 4)
                    for key in results[0]["ceiling"]
                    if key != "customers"
                },
                "closed_windows_per_arm": {
                    arm: {
                        key: sum(r["evidence"].get(arm, {}).get(key, 0) for r in results)
                        for key in ("decisions", "sends", "orders_in_windows")
                    }
                    for arm in arms
                },
                "seconds_per_seed": [r["seconds"] for r in results],
            }
        )
    )


def _end_of_run(results: list[dict]) -> dict:
    """The end-of-run values per customer-day with intervals, the learned policy's paired
    differences from the best static ranking, and the share of the static → ceiling gap its
    greedy and its sampled choices close at the end."""
    keys = list(results[0]["raw_end_of_run"])
    pooled = {k: _pool(results, "raw_end_of_run", k) for k in keys}

    static, ceiling = (pooled[k]["mean"] for k in ("non_personalised", "feature_oracle"))

    def gap(k: str) -> float | None:
        return (
            round((pooled[k]["mean"] - static) / (ceiling - static), 3)
            if ceiling != static
            else None
        )

    return {
        "end_of_run_per_customer_day": pooled,
        "end_of_run_minus_best_static_paired": {
            k: _paired(results, "raw_end_of_run", k, "non_personalised")
            for k in ("learned_greedy", "learned_sampled")
        },
        "end_of_run_gap_closed_static_to_ceiling": {
            k: gap(k) for k in ("learned_greedy", "learned_sampled")
        },
    }


def _history(orders: str, orders_file: Path | None, customers: int):
    """The CDNOW histories of the first `customers` customers (--orders cdnow), else None."""
    if orders != "cdnow":
        return None
    from journeyman.orchestration.cli import CDNOW_FILE
    from journeyman.sandbox.cdnow import read_transactions
    from journeyman.sandbox.cdnow_world import first_customers

    return first_customers(read_transactions(orders_file or CDNOW_FILE), customers)


def _references(results: list[dict], pooled_value: dict) -> dict:
    """The references on the learned arm's own customer-days (paired_references), the paired
    differences from the learned policy, the share of the gap from the best static action to
    the feature ceiling it closes, and the issue's targets."""
    refs = {k: _pool(results, "raw_references", k) for k in paired_references.REFERENCES}

    learned, static, ceiling = (
        refs[k]["mean"] for k in ("learned", "best_static", "feature_ceiling")
    )
    gap = round((learned - static) / (ceiling - static), 3) if ceiling != static else None
    rule, uniform = pooled_value["rule_based"], pooled_value["uniform_random"]
    low = refs["learned"]["low"]
    return {
        "references_on_learned_customer_days": refs,
        "learned_minus_reference_paired": {
            k: _paired(results, "raw_references", "learned", k)
            for k in ("best_static", "feature_ceiling", "uniform_random", "oracle")
        },
        "gap_closed_static_to_feature_ceiling": gap,
        "targets": {
            "above_business_as_usual": bool(low > rule["high"]),
            "above_uniform_random": bool(low > uniform["high"]),
            "above_best_static": bool(low > refs["best_static"]["high"]),
            "gap_closed_static_to_ceiling_at_least_0.6": gap is not None and gap >= 0.6,
        },
    }


def _paired(results: list[dict], key: str, a: str, b: str) -> dict:
    """Mean and interval of a − b per customer over all seeds (the same customers in both)."""
    diffs = [np.array(r[key][a]) - np.array(r[key][b]) for r in results]
    return _mean_ci(np.concatenate(diffs))


def _pool(results: list[dict], key: str, arm: str, week: int | None = None) -> dict:
    """One arm's values over all seeds (of one week of the run when `week` is given)."""
    pick = (lambda r: r[key]) if week is None else (lambda r: r[key][week])  # noqa: E731
    return _mean_ci(np.concatenate([np.array(pick(r).get(arm, [])) for r in results]))


def _gap(summary: dict) -> float | None:
    """(learned − rule_based) / (oracle − rule_based)."""
    learned, rule, oracle = (summary[a]["mean"] for a in ("linear_ts", "rule_based", "oracle"))
    return round((learned - rule) / (oracle - rule), 3) if oracle != rule else None


if __name__ == "__main__":
    main()
