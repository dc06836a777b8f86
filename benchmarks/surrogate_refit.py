"""What the agent would have learned from engagement: refit a kept run on other learning rewards.

Reads warehouses kept by `benchmarks/learning.py --keep DIR` (DIR/seedN). For each, it takes the
agent's own decisions whose learning window closed (marts.decision_learning_rewards), with their
decision-time features (journeyman.decision_features) and what the customer did with the message
(int_messages_delivered: opened, clicked), and fits the agent's policy on three learning rewards:

- `outcome`: the learning reward itself (revenue in the learning window minus penalties), what
  the agent learns from today;
- `surrogate_channel`: a surrogate index — each decision's reward replaced by the mean reward of
  all decisions with the same channel and engagement (not opened / opened / clicked; no send is
  its own cell), so that opens and clicks, far more frequent than orders (seed 1 of a shipped
  run: 7,911 of 149,519 decisions opened or clicked, 922 clicked, 340 with an order), carry the
  signal while revenue sets its scale — what `goal.learning_signal: surrogate` does;
- `surrogate_message`: the same with one cell per message and engagement (a discount's lower
  order value stays in its cells).

Each fit's greedy choice is valued on the ground truth at the end of the run, over the customers
then in the audience (the `learned_greedy` of learning.py, which `outcome` reproduces). The cell
means use every closed window of the run (in-sample), so this measures what the signal is worth,
not yet a live policy.

Usage: python benchmarks/surrogate_refit.py --kept DIR/seed1 [DIR/seed2 ...]
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from learning import audience_values  # noqa: E402

from journeyman.decisioning.action_features import action_features  # noqa: E402
from journeyman.decisioning.actions import ActionSpace  # noqa: E402
from journeyman.decisioning.config import load_agent  # noqa: E402
from journeyman.decisioning.learning import ArmStatistics  # noqa: E402
from journeyman.decisioning.policies import build_policy  # noqa: E402
from journeyman.decisioning.store import cell_means  # noqa: E402
from journeyman.sandbox import SandboxWorld  # noqa: E402
from journeyman.warehouse import Warehouse  # noqa: E402


def refit(kept: Path, agent_name: str = "winback") -> dict[str, float | int]:
    """Greedy value per customer-day of the agent refitted on each learning reward."""
    seed = int(kept.name.removeprefix("seed")) if kept.name.startswith("seed") else 1
    config = load_agent(kept / "agents" / f"{agent_name}.yml")
    warehouse = Warehouse(kept / "warehouse.duckdb")
    space = ActionSpace.for_agent(config)
    phi = action_features(config, space)
    features = list(config.features or [])
    truth = SandboxWorld(warehouse, seed=seed).truth
    _, x, values, allowed = audience_values(warehouse, config, truth, space)
    columns = ", ".join(f"f.{f}" for f in features)
    rows = warehouse.rows(
        "select coalesce(r.action_id, 'no_send'), r.learning_reward, "
        "coalesce(r.channel, 'none'), coalesce(r.message_id, 'none'), "
        "coalesce(m.was_opened, 0) + coalesce(m.was_clicked, 0) * 2, "
        f"{columns} from marts.decision_learning_rewards r "
        "join journeyman.decision_features f using (decision_id) "
        "left join intermediate.int_messages_delivered m using (decision_id) "
        "where r.agent = :agent",
        {"agent": config.name},
    )
    known = set(space.action_id)
    rows = [r for r in rows if r[0] in known and all(v is not None for v in r[5:])]
    action = np.array([r[0] for r in rows], dtype=str)
    reward = np.array([r[1] for r in rows], dtype=float)
    engagement = np.array([f"{r[2]}|{min(r[4], 2)}" for r in rows])
    by_message = np.array([f"{r[3]}|{e}" for r, e in zip(rows, engagement, strict=True)])
    xd = np.array([[float(v) for v in r[5:]] for r in rows])
    n = len(values)

    def greedy_value(learning_reward: np.ndarray) -> float:
        stats = ArmStatistics.from_observations(features, xd, action, learning_reward)
        policy = build_policy(config.policy)
        policy.fit(stats, phi, list(space.action_id))
        scores = np.where(allowed, policy.posterior.expected(x, phi.matrix), -np.inf)
        return round(float(values[np.arange(n), scores.argmax(axis=1)].mean()), 4)

    return {
        "decisions": len(rows),
        "customers": n,
        "outcome": greedy_value(reward),
        "surrogate_channel": greedy_value(cell_means(engagement, reward, np.ones(len(reward)))),
        "surrogate_message": greedy_value(cell_means(by_message, reward, np.ones(len(reward)))),
        "oracle": round(
            float(values[np.arange(n), np.where(allowed, values, -np.inf).argmax(1)].mean()), 4
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kept", type=Path, nargs="+", required=True, help="DIR/seedN folders")
    parser.add_argument("--agent", default="winback")
    args = parser.parse_args()
    results = {}
    for kept in args.kept:
        results[str(kept)] = refit(kept, args.agent)
        print(f"{kept}: {results[str(kept)]}", file=sys.stderr)
    keys = ("outcome", "surrogate_channel", "surrogate_message", "oracle")
    mean = {k: round(float(np.mean([r[k] for r in results.values()])), 4) for k in keys}
    print(json.dumps({"runs": results, "mean": mean}))


if __name__ == "__main__":
    main()
