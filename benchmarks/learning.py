"""Learning quality in the sandbox world: the learned agent against the static rule-based
journey, uniform random and the oracle, over simulated days, for several seeds.

One world per seed; one agent (default: agents/winback.yml) whose audience is split by the
sticky assignment hash into holdout and four arms served side by side on the same days:
`linear_ts` (the agent's policy), `rule_based` (the static journey), `uniform_random`, and an
`oracle` that reads the world's ground truth and picks, per customer and day, the allowed
action with the highest expected goal value (revenue minus the agent's unsubscribe/complaint
penalties times their probabilities) — a myopic upper reference. Every day runs through the real
Dagster job (dbt build → decisions → deliveries) exactly as `journeyman demo` does.

The metric is intention-to-treat revenue per customer: each customer's order revenue from their
first in-audience day to the end of the run, averaged per arm, with a normal 95 % interval.
gap_closed = (learned − rule_based) / (oracle − rule_based).

Usage: python benchmarks/learning.py [--customers 5000] [--days 30] [--seeds 1,2,3]
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import yaml

from journeyman import settings
from journeyman.decisioning.policies import REGISTRY, Choice, DecisionContext, Policy
from journeyman.warehouse import Warehouse

ARMS = ["linear_ts", "rule_based", "uniform_random", "oracle"]
_WORLD: dict[str, object] = {}


class Oracle(Policy):
    """Best allowed action per customer under the sandbox's ground truth (benchmark only)."""

    name = "oracle"

    def choose(self, ctx: DecisionContext, allowed: np.ndarray, u: np.ndarray) -> Choice:
        from journeyman.sandbox.truth import Action

        world = _WORLD["world"]
        goal = _WORLD["goal"]
        truth = world.truth
        ids = np.asarray(ctx.columns["customer_id"]).astype(str)
        space = ctx.actions
        values = np.empty((len(ids), space.size))
        for a in range(space.size):
            if space.is_send[a]:
                tags = _WORLD["tags"][str(space.message_id[a])]
                action = Action(str(space.channel[a]), int(space.hour[a]), tags)
            else:
                action = Action(None)
            reward = truth.expected_reward(
                ids,
                action.channel,
                action.local_hour,
                action.tags,
                window_days=goal.attribution_window_days,
            )
            value = reward.revenue if goal.metric == "revenue" else reward.conversion
            penalty = goal.penalties.get("unsubscribe", 0.0) + goal.penalties.get("complaint", 0.0)
            values[:, a] = value - penalty * reward.opt_out
        masked = np.where(allowed, values, -np.inf)
        action = np.where(allowed.any(axis=1), masked.argmax(axis=1), -1)
        return Choice(action=action, propensity=np.ones(len(ids)))


def _agent_file(source: Path, target: Path) -> dict:
    data = yaml.safe_load(source.read_text())
    rule = next(b for b in data.get("baselines", []) if b["name"] == "rule_based")
    data["baselines"] = [
        {**rule, "share": 0.25},
        {"name": "uniform_random", "share": 0.25},
        {"name": "oracle", "share": 0.25},
    ]
    data["guardrails"]["holdout_share"] = 0.1
    target.mkdir(parents=True, exist_ok=True)
    (target / source.name).write_text(yaml.safe_dump(data, sort_keys=False))
    return data


def _per_customer_revenue(warehouse: Warehouse, end: date) -> dict[str, np.ndarray]:
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
        select f.arm, coalesce(sum(o.amount), 0)
        from first_seen f
        left join raw.orders o
          on o.customer_id = f.customer_id
         and o.ordered_at >= cast(f.first_day as timestamp)
         and o.ordered_at < cast(date '{end.isoformat()}' as timestamp)
        group by f.customer_id, f.arm
        """
    )
    out: dict[str, list[float]] = {}
    for arm, revenue in rows:
        out.setdefault(arm, []).append(float(revenue))
    return {k: np.array(v) for k, v in out.items()}


def run_seed(seed: int, customers: int, days: int, start: date, agent: Path) -> dict:
    from journeyman.decisioning.config import load_agent
    from journeyman.orchestration.demo import DemoOptions, run_demo
    from journeyman.sandbox import SandboxWorld

    with tempfile.TemporaryDirectory(prefix="jm-learning-") as tmp:
        root = Path(tmp)
        os.environ[settings.WAREHOUSE_ENV] = str(root / "warehouse.duckdb")
        os.environ[settings.AGENTS_ENV] = str(root / "agents")
        _agent_file(agent, root / "agents")
        config = load_agent(root / "agents" / agent.name)
        _WORLD["goal"] = config.goal
        _WORLD["tags"] = {m.id: dict(m.tags) for m in config.dimensions.messages}
        from journeyman.orchestration.definitions import defs

        warehouse = Warehouse(root / "warehouse.duckdb")
        _WORLD["world"] = SandboxWorld(warehouse, seed=seed)
        started = time.perf_counter()
        run_demo(DemoOptions(customers, days, seed, start), defs(), warehouse, root / "outbox")
        elapsed = time.perf_counter() - started
        end = date.fromordinal(start.toordinal() + days)
        revenue = _per_customer_revenue(warehouse, end)
    summary = {arm: _mean_ci(values) for arm, values in revenue.items()}
    print(
        f"seed {seed}: {elapsed:.0f} s  "
        + "  ".join(
            f"{arm}={s['mean']:.2f} [{s['low']:.2f}, {s['high']:.2f}] (n={s['n']})"
            for arm, s in sorted(summary.items())
        ),
        file=sys.stderr,
    )
    return {
        "seed": seed,
        "seconds": round(elapsed, 1),
        "arms": summary,
        "raw": {k: v.tolist() for k, v in revenue.items()},
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
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--start", default="2026-03-02")
    parser.add_argument("--agent", default=str(settings.AGENTS_DIR / "winback.yml"))
    args = parser.parse_args()
    REGISTRY[Oracle.name] = Oracle
    seeds = [int(s) for s in args.seeds.split(",")]
    results = [
        run_seed(s, args.customers, args.days, date.fromisoformat(args.start), Path(args.agent))
        for s in seeds
    ]
    pooled = {
        arm: _mean_ci(np.concatenate([np.array(r["raw"].get(arm, [])) for r in results]))
        for arm in [*ARMS, "holdout"]
    }
    learned, rule, oracle = (pooled[a]["mean"] for a in ("linear_ts", "rule_based", "oracle"))
    per_seed_gap = []
    for r in results:
        a = r["arms"]
        denominator = a["oracle"]["mean"] - a["rule_based"]["mean"]
        per_seed_gap.append(
            round((a["linear_ts"]["mean"] - a["rule_based"]["mean"]) / denominator, 3)
            if denominator
            else None
        )
    print(
        json.dumps(
            {
                "agent": Path(args.agent).stem,
                "customers": args.customers,
                "days": args.days,
                "seeds": seeds,
                "revenue_per_customer": {a: pooled[a]["mean"] for a in pooled},
                "ci95": {a: [pooled[a]["low"], pooled[a]["high"]] for a in pooled},
                "customers_per_arm": {a: pooled[a]["n"] for a in pooled},
                "gap_closed_rule_to_oracle": round((learned - rule) / (oracle - rule), 3)
                if oracle != rule
                else None,
                "gap_closed_per_seed": per_seed_gap,
                "seconds_per_seed": [r["seconds"] for r in results],
            }
        )
    )


if __name__ == "__main__":
    main()
