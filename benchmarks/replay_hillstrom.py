"""Offline replay of the agent policy on the real Hillstrom e-mail experiment, several seeds.

For each outcome (default: visit, conversion and spend) the policy (default `linear_ts` with its
production defaults) is replayed through the 64,000 uniformly
randomized e-mails once per seed (a different random stream order and policy randomness each),
exactly as `journeyman evaluate replay` does; `spend` (mostly zero, rare orders up to $500) is
learned as a revenue goal is, P(order) × the value of an order (`decisioning/policies/hurdle.py`;
`--param revenue_model=linear` for one linear model of the revenue). Reported per outcome: the
mean policy value over seeds, each seed's value and 95 % interval, every static action's value
with its interval, and the ratios of the mean policy value to the best static action and to
`No E-Mail`.

Usage: python benchmarks/replay_hillstrom.py [--outcomes visit,conversion,spend] [--seeds 1,2,3,4,5]
       [--features recency,history,...] [--policy linear_ts] [--batch-size 1000]
       [--param key=value ...] [--sample 1.0]
`--sample f` replays a random fraction f of the rows (a different split per seed).
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from journeyman import settings
from journeyman.decisioning.replay import DEFAULT_BATCH_SIZE, load_logs, parse_param, replay

DATA = settings.PROJECT_ROOT.parent / "shared" / "datasets" / "hillstrom" / "hillstrom.csv"
FEATURES = "recency,history_segment,history,mens,womens,zip_code,newbie,channel"
# × best static action (issue 3, item 8; spend: issue 17, item 8)
TARGETS = {"visit": 0.98, "conversion": 0.92, "spend": 0.95}
BASELINE = "No E-Mail"


def _subsample(data, fraction: float, seed: int):
    if fraction >= 1:
        return data
    rng = np.random.default_rng(10_000 + seed)
    rows = np.sort(rng.choice(data.events, int(round(fraction * data.events)), replace=False))
    return replace(
        data,
        actions=data.actions[rows],
        rewards=data.rewards[rows],
        features=data.features[rows],
        columns={c: v[rows] for c, v in data.columns.items()},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--logs", type=Path, default=DATA)
    parser.add_argument("--outcomes", default="visit,conversion,spend")
    parser.add_argument("--seeds", default="1,2,3,4,5")
    parser.add_argument("--features", default=FEATURES)
    parser.add_argument("--policy", default="linear_ts")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--param", action="append", default=[], help="policy parameter key=value")
    parser.add_argument("--sample", type=float, default=1.0)
    args = parser.parse_args(argv)
    if not args.logs.is_file():
        print(f"Hillstrom data not found at {args.logs}", file=sys.stderr)
        return 2
    seeds = [int(s) for s in args.seeds.split(",")]
    params = dict(parse_param(p) for p in args.param)
    started = time.perf_counter()
    summary: dict[str, object] = {}
    for outcome in args.outcomes.split(","):
        data = load_logs(args.logs, "segment", outcome, args.features.split(","))
        runs = []
        for seed in seeds:
            sample = _subsample(data, args.sample, seed)
            runs.append(replay(sample, args.policy, 1 / 3, args.batch_size, seed, params))
        value = float(np.mean([r.value.value for r in runs]))
        static = {a: float(np.mean([r.static[a].value for r in runs])) for a in runs[0].static}
        best = max(static, key=static.get)
        row = {
            "policy_value": value,
            "ratio_vs_best_static": value / static[best],
            "ratio_vs_no_email": value / static[BASELINE] if static.get(BASELINE) else None,
            "target_vs_best_static": TARGETS.get(outcome),
            "best_static_action": best,
            "static_values": static,
            "static_ci": {a: [e.low, e.high] for a, e in runs[0].static.items()},
            "per_seed": [
                {
                    "seed": r.seed,
                    "value": r.value.value,
                    "ci": [r.value.low, r.value.high],
                    "matched_events": r.matched_events,
                    "ratio_vs_best_static": r.value.value / r.static[best].value,
                    "chosen_share": r.chosen_share,
                }
                for r in runs
            ],
            "ratio_range": [
                min(r.value.value / r.static[best].value for r in runs),
                max(r.value.value / r.static[best].value for r in runs),
            ],
            "revenue": runs[0].revenue,
            "seconds_per_run": float(np.mean([r.seconds for r in runs])),
            "params": runs[0].params,
        }
        summary[outcome] = row
        print(
            f"{outcome:>12}: policy {value:.5f} = {row['ratio_vs_best_static']:.3f}× best static "
            f"({best} {static[best]:.5f}), {row['ratio_vs_no_email']:.2f}× {BASELINE}; "
            f"per seed {[round(p['ratio_vs_best_static'], 3) for p in row['per_seed']]}",
            file=sys.stderr,
        )
    summary["policy"] = args.policy
    summary["features"] = args.features
    summary["batch_size"] = args.batch_size
    summary["seeds"] = seeds
    summary["sample"] = args.sample
    summary["seconds"] = round(time.perf_counter() - started, 2)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
