"""Offline replay on real logs: how would a policy have done on uniformly-random logged data?

The replay method of Li, Chu, Langford & Wang (2011), "Unbiased offline evaluation of
contextual-bandit-based news article recommendation algorithms":

1. the logged events are streamed in a random order (seeded);
2. the policy sees each event's context and chooses one of the logged actions;
3. only events where the chosen action equals the logged one count ("matched"); their rewards
   are revealed to the policy, the others are discarded as if they never happened;
4. learning happens in batches of `batch_size` streamed events, like daily runs: the policy
   chooses for a whole batch with the state it had at the start of the batch and is refitted
   from the accumulated statistics of all matched events before the next batch;
5. the policy's value is the mean reward over all matched events — from the first batch on, so
   the cost of exploring is included.

Because the logger chose uniformly at random and independently of the context, each matched
event is distributed as if the policy itself had acted on a fresh customer, so the mean reward
over matched events is an unbiased estimate of the (learning) policy's per-decision value. The
95 % interval is the normal approximation mean ± 1.96·sd/√m over the m matched rewards (a
martingale CLT covers the adaptive policy). Each static action ("always send X") is valued on the
same data as the mean reward of the events logged with X, with the same kind of interval.

Features (`features=[...]`): a column whose every value parses as a number is used as-is; any
other column (zip_code, channel, history_segment …) is one-hot encoded with one 0/1 column per
distinct value, named `column=value` (all values, sorted; the linear policies standardize
features and add an intercept, and the ridge prior absorbs the redundancy). The outcome columns
are never shown to the policy.

Actions: the distinct values of the action column form a generic action space (channel and
hour are placeholders) whose action features are a shared bias plus one indicator per action —
disjoint arms sharing a baseline — so the linear policies learn, per action, an intercept and a
slope for every customer feature.

Policies run with their production defaults (overridable per run) — for the linear ones the
hierarchical empirical-Bayes prior of `decisioning.prior`, and for `linear_ts` draws at
`exploration=0.5`. docs/evaluation.md lists the measured effect of each parameter.

Revenue: a reward column that is non-negative, zero for at least half the events and not only
0/1 (Hillstrom's `spend`) is learned as a revenue goal is in production: the statistics keep the
events with an order (reward > 0) apart, and the linear policies learn P(order) × the value of
an order (`policies.hurdle`; `revenue_model=linear` for one linear model of the revenue).
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from journeyman.decisioning.action_features import ActionFeatures
from journeyman.decisioning.actions import ActionSpace
from journeyman.decisioning.learning import ArmStatistics
from journeyman.decisioning.policies import Policy, PolicyParamsError, check_policy
from journeyman.decisioning.policies.base import DecisionContext
from journeyman.decisioning.schema import PolicySpec

Z95 = 1.959963984540054
DEFAULT_BATCH_SIZE = 1000


class ReplayError(ValueError):
    """Bad input to the replay: one clear message naming the column, value or option."""


@dataclass(frozen=True)
class LoggedData:
    """Logged bandit feedback: per event the logged action, its reward and the context."""

    actions: np.ndarray  # str (n,)
    rewards: np.ndarray  # float (n,)
    features: np.ndarray  # float (n, d), encoded
    feature_names: list[str]  # encoded names (`col` or `col=value`)
    columns: dict[str, np.ndarray]  # the raw feature columns the policy may look at
    action_ids: list[str]  # the distinct logged actions, sorted

    @property
    def events(self) -> int:
        return len(self.actions)


@dataclass(frozen=True)
class Estimate:
    """A mean with its normal-approximation 95 % interval over `n` rewards."""

    value: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, rewards: np.ndarray) -> Estimate:
        r = np.asarray(rewards, dtype=np.float64)
        n = len(r)
        if n == 0:
            return cls(math.nan, math.nan, math.nan, 0)
        mean = float(r.mean())
        half = Z95 * float(r.std(ddof=1)) / math.sqrt(n) if n > 1 else math.inf
        return cls(mean, mean - half, mean + half, n)


@dataclass(frozen=True)
class ReplayResult:
    policy: str
    policy_version: str
    params: dict[str, Any]
    value: Estimate  # the policy's value over matched events
    events: int
    batches: int
    batch_size: int
    seed: int
    static: dict[str, Estimate]  # each static action's value on the same data
    ips_value: float  # Σ matched rewards / (events · propensity): a cross-check
    chosen_share: dict[str, float]  # share of all events on which the policy chose each action
    seconds: float
    prior_ridges: list[float] | None = None  # [λ₀, λ₁, λ₂] at the last refit (empirical Bayes)
    warnings: list[str] = field(default_factory=list)
    revenue: bool = False  # learned as revenue: the order split (reward > 0) in the statistics

    @property
    def matched_events(self) -> int:
        return self.value.n

    @property
    def best_static(self) -> str:
        return max(self.static, key=lambda a: self.static[a].value)

    def to_json(self) -> dict[str, Any]:
        """The `--json` object: the contract keys first, then the details."""
        best = self.best_static
        return {
            "policy_value": _num(self.value.value),
            "policy_ci": [_num(self.value.low), _num(self.value.high)],
            "matched_events": self.matched_events,
            "static_values": {a: _num(e.value) for a, e in self.static.items()},
            "static_ci": {a: [_num(e.low), _num(e.high)] for a, e in self.static.items()},
            "static_events": {a: e.n for a, e in self.static.items()},
            "best_static_action": best,
            "ratio_vs_best_static": _ratio(self.value.value, self.static[best].value),
            "ips_value": self.ips_value,
            "chosen_share": self.chosen_share,
            "policy": self.policy,
            "policy_version": self.policy_version,
            "params": self.params,
            "prior_ridges": self.prior_ridges,
            "revenue": self.revenue,
            "events": self.events,
            "batches": self.batches,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "seconds": round(self.seconds, 3),
            "warnings": self.warnings,
        }


def _ratio(a: float, b: float) -> float | None:
    return _num(a / b) if b else None


def _num(x: float) -> float | None:
    """JSON has no NaN or infinity: an undefined number is null."""
    return float(x) if math.isfinite(x) else None


# --------------------------------------------------------------------------- loading, encoding


def _parse_float(values: Sequence[str]) -> np.ndarray | None:
    """All values as floats, or None if any is not a number (empty cells are not numbers)."""
    try:
        out = np.array([float(v) for v in values], dtype=np.float64)
    except ValueError:
        return None
    return out


def encode_features(
    columns: Mapping[str, Sequence[str]], names: Sequence[str]
) -> tuple[np.ndarray, list[str]]:
    """Numeric columns as-is; any other column one-hot (`col=value` per distinct value)."""
    blocks: list[np.ndarray] = []
    encoded: list[str] = []
    n = len(next(iter(columns.values()))) if columns else 0
    for name in names:
        raw = columns[name]
        numbers = _parse_float(raw)
        if numbers is not None:
            if not np.isfinite(numbers).all():
                bad = int(np.flatnonzero(~np.isfinite(numbers))[0])
                raise ReplayError(
                    f"feature column {name!r} has a non-finite value {raw[bad]!r} "
                    f"(data row {bad + 1}); fill or drop it"
                )
            blocks.append(numbers[:, None])
            encoded.append(name)
            continue
        values = np.asarray(raw, dtype=str)
        levels = sorted(set(values.tolist()))
        if len(levels) > 1000:
            raise ReplayError(
                f"feature column {name!r} is not numeric and has {len(levels)} distinct values; "
                "one-hot encoding it would make a huge model — pass a numeric or coarser column"
            )
        blocks.append((values[:, None] == np.array(levels)[None, :]).astype(np.float64))
        encoded += [f"{name}={level}" for level in levels]
    matrix = np.hstack(blocks) if blocks else np.zeros((n, 0))
    return matrix, encoded


def load_logs(
    path: str | Path,
    action_column: str,
    reward_column: str,
    features: Sequence[str],
) -> LoggedData:
    """Read a CSV of logged events (header row required) and encode it for the replay."""
    path = Path(path)
    if not path.is_file():
        raise ReplayError(f"log file {str(path)!r} does not exist")
    features = [f.strip() for f in features if f.strip()]
    if not features:
        raise ReplayError("no features given; pass --features col1,col2,...")
    if len(set(features)) != len(features):
        raise ReplayError(f"--features lists a column twice: {','.join(features)}")
    outcome = {action_column, reward_column} & set(features)
    if outcome:
        raise ReplayError(
            f"column {sorted(outcome)[0]!r} is the action or the reward; it cannot also be a "
            "feature (the policy must not see what it is judged on)"
        )
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise ReplayError(f"log file {str(path)!r} is empty") from None
        wanted = [action_column, reward_column, *features]
        missing = [c for c in wanted if c not in header]
        if missing:
            raise ReplayError(
                f"column {missing[0]!r} is not in {path.name}; its columns are: {', '.join(header)}"
            )
        pos = {c: header.index(c) for c in wanted}
        raw: dict[str, list[str]] = {c: [] for c in wanted}
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise ReplayError(
                    f"{path.name} line {line} has {len(row)} fields, the header has {len(header)}"
                )
            for c in wanted:
                raw[c].append(row[pos[c]].strip())
    if not raw[action_column]:
        raise ReplayError(f"log file {str(path)!r} has no data rows")

    rewards = _parse_float(raw[reward_column])
    if rewards is None or not np.isfinite(rewards).all():
        bad = next(
            v
            for v in raw[reward_column]
            if _parse_float([v]) is None or not math.isfinite(float(v))
        )
        raise ReplayError(
            f"reward column {reward_column!r} must be numeric; it holds {bad!r} "
            f"(data row {raw[reward_column].index(bad) + 1})"
        )
    actions = np.asarray(raw[action_column], dtype=str)
    if (actions == "").any():
        row = int(np.flatnonzero(actions == "")[0]) + 1
        raise ReplayError(f"action column {action_column!r} is empty in data row {row}")
    action_ids = sorted(set(actions.tolist()))
    if len(action_ids) < 2:
        raise ReplayError(
            f"action column {action_column!r} has a single value {action_ids[0]!r}; "
            "replay needs at least two logged actions"
        )
    matrix, names = encode_features({f: raw[f] for f in features}, features)
    columns = {f: _parse_float(raw[f]) if names.count(f) else np.asarray(raw[f]) for f in features}
    return LoggedData(actions, rewards, matrix, names, columns, action_ids)


# --------------------------------------------------------------------------- the replay


def replay_actions(action_ids: Sequence[str]) -> tuple[ActionSpace, ActionFeatures]:
    """A generic action space over the logged actions: bias + one indicator per action."""
    ids = np.array(list(action_ids), dtype=str)
    k = len(ids)
    space = ActionSpace(
        action_id=ids,
        message_id=ids.copy(),
        channel=np.full(k, "logged"),  # placeholder: replay actions have no channel
        hour=np.zeros(k, dtype=np.int64),  # placeholder: nor a send hour
        is_send=np.ones(k, dtype=bool),
    )
    names = ["bias"] + [f"action={a}" for a in ids]
    matrix = np.hstack([np.ones((k, 1)), np.eye(k)])
    return space, ActionFeatures(names=names, matrix=matrix)


def build_replay_policy(name: str, params: Mapping[str, Any] | None = None) -> Policy:
    """The registered policy `name` with its defaults, overridden by `params` (checked by the
    registry as an agent file's are: an unknown or invalid parameter is a ReplayError)."""
    merged = dict(params or {})
    try:
        return check_policy(PolicySpec(name=name, params=merged))
    except PolicyParamsError as exc:
        if exc.field == "name":
            raise ReplayError(str(exc)) from None
        raise ReplayError(f"policy {name!r} rejected its parameters {merged}: {exc}") from None


def check_propensity(data: LoggedData, propensity: float) -> list[str]:
    """Validate the logging propensity; return warnings for a logger that looks non-uniform."""
    if not (isinstance(propensity, int | float) and 0 < propensity <= 1):
        raise ReplayError(f"propensity must be in (0, 1]; got {propensity!r}")
    k = len(data.action_ids)
    if propensity * k > 1 + 5e-3:
        raise ReplayError(
            f"propensity {propensity:g} is impossible for {k} logged actions: "
            f"{k} × {propensity:g} > 1 (a uniform logger over them has propensity {1 / k:.4g})"
        )
    warnings: list[str] = []
    if propensity * k < 1 - 5e-3:
        warnings.append(
            f"propensity {propensity:g} < 1/{k}: the logger had actions that are not in the file; "
            "the replay values the policy restricted to the logged actions"
        )
    _, counts = np.unique(data.actions, return_counts=True)
    expected = data.events / k
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    from scipy.stats import chi2 as chi2_dist

    p = float(chi2_dist.sf(chi2, k - 1))
    if p < 1e-3:
        shares = ", ".join(
            f"{a}: {c / data.events:.3f}" for a, c in zip(data.action_ids, counts, strict=True)
        )
        warnings.append(
            f"logged action shares are not uniform ({shares}; χ² p = {p:.1e}); the replay method "
            "assumes a uniformly random logger, so its values may be biased"
        )
    return warnings


def is_revenue(rewards: np.ndarray) -> bool:
    """Whether a reward column is learned as revenue: non-negative, zero for at least half the
    events, and not only 0/1 (a conversion or visit flag is learned as it is)."""
    r = np.asarray(rewards, dtype=np.float64)
    if len(r) == 0 or (r < 0).any() or np.isin(r, (0.0, 1.0)).all():
        return False
    return bool((r == 0).mean() >= 0.5)


def replay(
    data: LoggedData,
    policy: str = "linear_ts",
    propensity: float | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = 0,
    params: Mapping[str, Any] | None = None,
    revenue: bool | None = None,
) -> ReplayResult:
    """Run `policy` through the logged events with the replay method; see the module docstring.
    `revenue` (None: `is_revenue` of the rewards) keeps the events with an order (reward > 0)
    apart in the statistics, as production does for revenue goals."""
    started = time.perf_counter()
    k = len(data.action_ids)
    if propensity is None:
        propensity = 1.0 / k
    warnings = check_propensity(data, propensity)
    if batch_size < 1:
        raise ReplayError(f"batch size must be at least 1; got {batch_size}")
    agent = build_replay_policy(policy, params)
    space, phi = replay_actions(data.action_ids)
    ids = list(data.action_ids)
    logged = np.searchsorted(np.array(ids), data.actions)

    rng = np.random.default_rng(seed)
    order = rng.permutation(data.events)
    u_all = rng.random(data.events)
    if revenue is None:
        revenue = is_revenue(data.rewards)
    stats = ArmStatistics.empty(data.feature_names, ordered=revenue)
    agent.fit(stats, phi, ids)

    matched_rewards: list[np.ndarray] = []
    chosen_counts = np.zeros(k)
    batches = 0
    for batch, start in enumerate(range(0, data.events, batch_size)):
        rows = order[start : start + batch_size]
        u = u_all[start : start + len(rows)]
        chosen = _choose_batch(agent, data, space, rows, u, f"replay:{seed}:{batch}")
        chosen_counts += np.bincount(chosen[chosen >= 0], minlength=k)
        hit = chosen == logged[rows]
        matched = rows[hit]
        matched_rewards.append(data.rewards[matched])
        batches += 1
        if agent.learns and len(matched) and start + batch_size < data.events:
            stats = stats + ArmStatistics.from_observations(
                data.feature_names,
                data.features[matched],
                data.actions[matched],
                data.rewards[matched],
                ordered=data.rewards[matched] > 0 if revenue else None,
            )
            agent.fit(stats, phi, ids)

    rewards = np.concatenate(matched_rewards) if matched_rewards else np.zeros(0)
    if len(rewards) == 0:
        raise ReplayError("no event matched the policy's choices; the replay has no estimate")
    static = {a: Estimate.of(data.rewards[data.actions == a]) for a in ids}
    return ReplayResult(
        policy=policy,
        policy_version=agent.version,
        params=dict(agent.params),
        prior_ridges=agent.prior_ridges,
        value=Estimate.of(rewards),
        events=data.events,
        batches=batches,
        batch_size=batch_size,
        seed=seed,
        static=static,
        ips_value=float(rewards.sum() / (data.events * propensity)),
        chosen_share={a: float(c / data.events) for a, c in zip(ids, chosen_counts, strict=True)},
        seconds=time.perf_counter() - started,
        warnings=warnings,
        revenue=revenue,
    )


def _choose_batch(
    agent: Policy,
    data: LoggedData,
    space: ActionSpace,
    rows: np.ndarray,
    u: np.ndarray,
    seed_key: str,
) -> np.ndarray:
    """The policy's action per event of one batch, every logged action allowed."""
    ctx = DecisionContext(
        day=date(2000, 1, 1),
        actions=space,
        features=data.features[rows],
        feature_names=list(data.feature_names),
        columns={c: v[rows] for c, v in data.columns.items()},
        seed_key=seed_key,
    )
    allowed = np.ones((len(rows), space.size), dtype=bool)
    try:
        choice = agent.choose(ctx, allowed, u)
    except (KeyError, ValueError) as exc:
        raise ReplayError(
            f"policy {agent.name!r} cannot choose on these logs: {exc}. "
            "(rule_based needs an agent's dimensions and trigger columns; the static action "
            "values in the report are what 'always send X' rules achieve)"
        ) from exc
    return np.asarray(choice.action, dtype=np.int64)


def parse_param(text: str) -> tuple[str, Any]:
    """`key=value` → (key, value); the value is read as JSON when it parses (1, 0.5, true)."""
    import json

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ReplayError(f"policy parameter {text!r} is not key=value")
    try:
        parsed: Any = json.loads(value)
    except ValueError:
        parsed = value.strip()
    return key.strip(), parsed
