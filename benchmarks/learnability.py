"""How fast each model learns, on a real sandbox state: the feature ceiling, then noisy rewards.

Reads a warehouse kept by `benchmarks/learning.py --keep DIR` (DIR/seedN) and rebuilds the world's
ground truth at its last state. Over the customers then in the agent's audience (every consented
action allowed) it computes each action's TRUE expected value per customer-day (the learning
benchmark's metric: incremental revenue minus the agent's penalties) and compares models:

- `ceiling`: the best policy each model can express, least-squares fitted on the true values
  (the coefficients `personalise` pins are left out of the fit);
- `learned`: the model fitted by the production code (`ArmStatistics.from_observations` →
  `LinearThompsonSampling.fit`, evidence-fitted prior) on R simulated rewards — a customer drawn
  at random, an allowed action uniformly at random, its true value plus normal noise of sd
  --noise (default 9, above the sd of a winback learning reward: $6.7 for a send) — then its
  greedy choice, valued on the truth; mean and standard error over --repeats.

Models: `full_fixed_action_effects` (every feature × every action feature, action main effects
under the fixed ridge: the prior before pooling), `full` (every interaction, pooled action
effects) and `shipped` (the `personalise` of the project's agent file, --agent; the audience
and features are those of the kept run). Reference points: the trait oracle,
uniform random and the best non-personalised ranking.

Usage: python benchmarks/learnability.py --kept DIR/seed1 [--agent agents/winback.yml] [--rewards
       45000,150000] [--repeats 10] [--noise 9]
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

from journeyman import settings  # noqa: E402
from journeyman.decisioning import prior  # noqa: E402
from journeyman.decisioning.action_features import action_features  # noqa: E402
from journeyman.decisioning.actions import ActionSpace  # noqa: E402
from journeyman.decisioning.config import load_agent  # noqa: E402
from journeyman.decisioning.learning import ArmStatistics  # noqa: E402
from journeyman.decisioning.policies.linear import LinearThompsonSampling  # noqa: E402
from journeyman.sandbox import SandboxWorld  # noqa: E402
from journeyman.warehouse import Warehouse  # noqa: E402


def _state(kept: Path, agent_name: str, seed: int):
    """The audience's features, the true value of every action and what is allowed (the agent
    file as the run used it: its audience left out the oracle's share)."""
    config = load_agent(kept / "agents" / f"{agent_name}.yml")
    warehouse = Warehouse(kept / "warehouse.duckdb")
    truth = SandboxWorld(warehouse, seed=seed).truth
    space = ActionSpace.for_agent(config)
    phi = action_features(config, space)
    features = list(config.features or [])
    _, x, values, allowed = audience_values(warehouse, config, truth, space)
    return config, space, phi, features, x, values, allowed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kept", type=Path, required=True, help="DIR/seedN of learning.py --keep")
    parser.add_argument("--agent", default=str(settings.AGENTS_DIR / "winback.yml"))
    parser.add_argument("--rewards", default="45000,150000")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--noise", type=float, default=9.0)
    args = parser.parse_args()
    seed = int(args.kept.name.removeprefix("seed")) if args.kept.name.startswith("seed") else 1
    project_agent = load_agent(args.agent)
    config, space, phi, features, x, values, allowed = _state(args.kept, project_agent.name, seed)
    n, k = values.shape
    rows = np.arange(n)

    def value_of(scores: np.ndarray) -> float:
        return float(values[rows, np.where(allowed, scores, -np.inf).argmax(axis=1)].mean())

    shipped = project_agent.policy.params.get("personalise")
    models = {
        "full_fixed_action_effects": (None, False),
        "full": (None, True),
        "shipped": (shipped, True),
    }
    xt = np.column_stack([np.ones(n), (x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), 1)])
    z = np.einsum("ni,kp->nkip", xt, phi.matrix).reshape(n, k, -1)

    def ceiling(personalise) -> float:
        keep = prior.prior_groups(features, phi, personalise) != prior.OFF
        zz = z[:, :, keep]
        w = np.linalg.lstsq(zz.reshape(n * k, -1), values.reshape(-1), rcond=None)[0]
        return value_of(zz @ w)

    def learned(personalise, pooled: bool, size: int, rep: int) -> float:
        rng = np.random.default_rng(rep)
        who = rng.integers(0, n, size)
        action = (rng.random((size, k)) * allowed[who]).argmax(axis=1)
        reward = values[who, action] + rng.normal(0.0, args.noise, size)
        stats = ArmStatistics.from_observations(features, x[who], space.action_id[action], reward)
        saved = prior.MIN_POOLED_ACTION_EFFECTS
        prior.MIN_POOLED_ACTION_EFFECTS = saved if pooled else 10**9
        try:
            policy = LinearThompsonSampling({"personalise": personalise})
            policy.fit(stats, phi, list(space.action_id))
        finally:
            prior.MIN_POOLED_ACTION_EFFECTS = saved
        return value_of(policy.posterior.expected(x, phi.matrix))

    result: dict = {
        "agent": config.name,
        "customers": n,
        "actions": k,
        "oracle": round(value_of(values), 4),
        "uniform_random": round(
            float((np.where(allowed, values, 0).sum(1) / allowed.sum(1)).mean()), 4
        ),
        "non_personalised": round(ceiling({}), 4),
        "coefficients": {},
        "ceiling": {},
        "learned": {},
    }
    for name, (personalise, pooled) in models.items():
        keep = prior.prior_groups(features, phi, personalise) != prior.OFF
        result["coefficients"][name] = int(keep.sum())
        result["ceiling"][name] = round(ceiling(personalise), 4)
        result["learned"][name] = {}
        for size in (int(s) for s in args.rewards.split(",")):
            got = np.array([learned(personalise, pooled, size, r) for r in range(args.repeats)])
            se = float(got.std(ddof=1) / np.sqrt(len(got))) if len(got) > 1 else float("nan")
            result["learned"][name][str(size)] = [round(float(got.mean()), 4), round(se, 4)]
            print(f"{name} at {size} rewards: {got.mean():.4f} ± {se:.4f}", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
