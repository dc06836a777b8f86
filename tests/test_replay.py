"""Offline replay (Li et al., 2011) on logged data: the method, its honesty, the CLI contract."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from journeyman import settings
from journeyman.decisioning import prior as eb
from journeyman.decisioning import replay as rp
from journeyman.decisioning.learning import fit_posterior
from journeyman.decisioning.policies import REGISTRY
from journeyman.decisioning.policies.base import Choice, Policy
from journeyman.orchestration.evaluate import evaluate

HILLSTROM = settings.PROJECT_ROOT.parent / "shared" / "datasets" / "hillstrom" / "hillstrom.csv"
ACTIONS = ["alpha", "beta", "gamma"]


def _truth(age: np.ndarray, region: np.ndarray) -> np.ndarray:
    """(n, 3) expected reward. beta is best on average; gamma is best in region 'north'."""
    base = 0.2 + 0.05 * (age - 40) / 10
    north = (region == "north").astype(float)
    return np.column_stack([base, base + 0.10, base + 0.02 + 0.18 * north])


def _logged(n: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    age = rng.normal(40, 10, n).round(1)
    region = rng.choice(["north", "south", "east"], n, p=[0.25, 0.4, 0.35])
    action = rng.integers(0, 3, n)  # uniformly random logger
    expected = _truth(age, region)
    reward = (rng.random(n) < np.clip(expected[np.arange(n), action], 0, 1)).astype(int)
    columns = {
        "age": age,
        "region": region,
        "arm": np.array(ACTIONS)[action],
        "clicked": reward,
    }
    return columns, expected


def _write(path: Path, columns: dict[str, np.ndarray]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(list(columns))
        writer.writerows(zip(*columns.values(), strict=True))
    return path


def _data(n: int, seed: int, tmp_path: Path) -> tuple[rp.LoggedData, np.ndarray]:
    columns, expected = _logged(n, seed)
    path = _write(tmp_path / f"logs{seed}.csv", columns)
    return rp.load_logs(path, "arm", "clicked", ["age", "region"]), expected


def test_features_numeric_as_is_and_categorical_one_hot(tmp_path):
    data, _ = _data(500, 0, tmp_path)
    assert data.feature_names == ["age", "region=east", "region=north", "region=south"]
    assert data.action_ids == ACTIONS
    assert np.allclose(data.features[:, 1:].sum(axis=1), 1.0)
    assert data.features[:, 0].std() > 5  # age used as-is
    assert set(data.columns) == {"age", "region"}  # the policy never sees the outcome


def test_replay_learns_the_best_action_and_the_interval_covers_the_truth(tmp_path):
    data, expected = _data(24_000, 1, tmp_path)
    runs = [rp.replay(data, "linear_ts", 1 / 3, batch_size=600, seed=s) for s in range(3)]
    static_truth = expected.mean(axis=0)
    best_static = float(static_truth.max())
    oracle = float(expected.max(axis=1).mean())
    result = runs[1]
    for a, truth in zip(ACTIONS, static_truth, strict=True):
        e = result.static[a]
        assert e.low <= truth <= e.high, (a, e, truth)
    assert result.best_static == "beta"
    assert 7000 < result.matched_events < 9000  # ≈ events × propensity
    values = sorted(r.value.value for r in runs)
    # learned per region (gamma in the north, beta elsewhere): above every static action in
    # most runs, never far below it (an unlucky start can starve gamma), below the oracle
    assert values[1] > best_static, (values, best_static, oracle)
    assert values[0] > best_static - 0.01
    assert all(r.value.low <= oracle + 0.01 for r in runs)
    assert all(r.chosen_share["beta"] > 0.5 for r in runs)
    assert abs(result.ips_value - result.value.value) < 0.02
    uniform = rp.replay(data, "uniform_random", 1 / 3, batch_size=600, seed=0)
    assert uniform.value.low <= float(static_truth.mean()) <= uniform.value.high
    assert values[0] > uniform.value.high


def test_uniform_random_interval_covers_its_true_value(tmp_path):
    """A fixed policy's value is known exactly: the 95 % interval must cover it (coverage)."""
    covered = 0
    trials = 30
    for seed in range(trials):
        columns, expected = _logged(3000, 100 + seed)
        path = _write(tmp_path / f"u{seed}.csv", columns)
        data = rp.load_logs(path, "arm", "clicked", ["age"])
        result = rp.replay(data, "uniform_random", 1 / 3, batch_size=500, seed=seed)
        truth = float(expected.mean())
        covered += result.value.low <= truth <= result.value.high
    assert covered >= 25, covered  # binomial(30, 0.95): P(< 25) < 0.3 %


class _Spy(Policy):
    """Records what the replay shows it: contexts, and statistics of matched events only."""

    name = "spy"
    learns = True
    seen: list[int] = []
    columns: set[str] = set()

    def fit(self, stats, actions, action_ids) -> None:
        type(self).seen.append(stats.observations)

    def choose(self, ctx, allowed, u) -> Choice:
        type(self).columns |= set(ctx.columns)
        return Choice(action=np.zeros(len(u), dtype=np.int64), propensity=np.ones(len(u)))


def test_only_matched_events_teach_the_policy_and_it_never_sees_rewards(tmp_path, monkeypatch):
    monkeypatch.setitem(REGISTRY, "spy", _Spy)
    _Spy.seen, _Spy.columns = [], set()
    data, _ = _data(3000, 2, tmp_path)
    result = rp.replay(data, "spy", 1 / 3, batch_size=1000, seed=5)
    logged_alpha = int((data.actions == "alpha").sum())
    assert result.matched_events == logged_alpha  # always 'alpha': matched = logged alpha
    # fitted before the first batch (no data) and after each batch but the last
    assert _Spy.seen[0] == 0 and len(_Spy.seen) == 3
    assert _Spy.seen[-1] < result.matched_events  # the last batch's rewards are never used
    assert _Spy.columns == {"age", "region"}
    assert result.static["alpha"].value == pytest.approx(result.value.value)


def test_replay_is_deterministic_per_seed(tmp_path):
    data, _ = _data(3000, 3, tmp_path)
    one = rp.replay(data, "linear_ts", 1 / 3, 500, seed=7)
    two = rp.replay(data, "linear_ts", 1 / 3, 500, seed=7)
    other = rp.replay(data, "linear_ts", 1 / 3, 500, seed=8)
    assert one.value == two.value and one.chosen_share == two.chosen_share
    assert other.value != one.value


def test_hierarchical_prior_equals_fit_posterior_at_equal_ridges_and_prunes_noise(tmp_path):
    from journeyman.decisioning.learning import ArmStatistics

    data, _ = _data(6000, 4, tmp_path)
    _, phi = rp.replay_actions(data.action_ids)
    stats = ArmStatistics.from_observations(
        data.feature_names, data.features, data.actions, data.rewards
    )
    fixed = fit_posterior(stats, phi, data.action_ids, 2.0)
    same, lam = eb.empirical_bayes_posterior(
        stats, phi, data.action_ids, 2.0, start=[2.0, 2.0, 2.0, 2.0], max_iter=0, average=False
    )
    assert lam == [2.0, 2.0, 2.0, 2.0]
    assert np.allclose(same.theta, fixed.theta) and np.allclose(same.cov, fixed.cov)
    assert np.allclose(same.mean, fixed.mean) and same.noise == pytest.approx(fixed.noise)
    # region × action interactions are real here: the evidence keeps them
    _, lam = eb.empirical_bayes_posterior(stats, phi, data.action_ids)
    assert lam[0] == 1.0 and lam[2] < 1e4
    # pure-noise features: the evidence shuts the interactions off
    rng = np.random.default_rng(0)
    noise_x = rng.normal(size=(6000, 5))
    r = rng.random(6000) < np.where(data.actions == "beta", 0.3, 0.2)
    names = [f"n{i}" for i in range(5)]
    noise_stats = ArmStatistics.from_observations(names, noise_x, data.actions, r.astype(float))
    _, lam = eb.empirical_bayes_posterior(noise_stats, phi, data.action_ids)
    assert lam[2] > 1e5


def _run(args: list[str]):
    return CliRunner().invoke(evaluate, ["replay", *args], catch_exceptions=False)


def _base(path: Path) -> list[str]:
    return [
        "--logs",
        str(path),
        "--action-column",
        "arm",
        "--reward-column",
        "clicked",
        "--propensity",
        "0.3333",
        "--features",
        "age,region",
        "--batch-size",
        "500",
    ]


def test_cli_json_contract(tmp_path):
    columns, _ = _logged(3000, 5)
    path = _write(tmp_path / "logs.csv", columns)
    result = _run([*_base(path), "--json", "--seed", "3"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output.strip().splitlines()[-1])
    for key in ("policy_value", "policy_ci", "matched_events", "static_values"):
        assert key in payload
    low, high = payload["policy_ci"]
    assert low <= payload["policy_value"] <= high
    assert isinstance(payload["matched_events"], int) and payload["matched_events"] > 500
    assert set(payload["static_values"]) == set(ACTIONS)
    assert payload["policy"] == "linear_ts" and payload["seed"] == 3
    again = _run([*_base(path), "--json", "--seed", "3", "--agent-policy", "uniform_random"])
    assert json.loads(again.output.strip().splitlines()[-1])["policy"] == "uniform_random"
    table = _run(_base(path))
    assert table.exit_code == 0 and "best static" in table.output


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--reward-column": "missing"}, "column 'missing' is not in"),
        ({"--features": "age,nope"}, "column 'nope' is not in"),
        (
            {"--reward-column": "region", "--features": "age"},
            "reward column 'region' must be numeric",
        ),
        ({"--propensity": "0"}, "must be in (0, 1]"),
        ({"--propensity": "1.5"}, "must be in (0, 1]"),
        ({"--propensity": "0.9"}, "impossible for 3 logged actions"),
        ({"--agent-policy": "bandit9000"}, "unknown policy 'bandit9000'"),
        ({"--features": "age,clicked"}, "cannot also be a feature"),
    ],
)
def test_cli_bad_input_gives_one_clear_error(tmp_path, change, message):
    columns, _ = _logged(600, 6)
    path = _write(tmp_path / "logs.csv", columns)
    args = _base(path)
    for option, value in change.items():
        if option in args:
            args[args.index(option) + 1] = value
        else:
            args += [option, value]
    result = _run(args)
    assert result.exit_code != 0
    assert message in result.output, result.output
    assert "Traceback" not in result.output


def test_cli_non_numeric_reward_names_the_value(tmp_path):
    columns, _ = _logged(600, 7)
    columns["clicked"] = columns["clicked"].astype(object)
    columns["clicked"][10] = "yes"
    path = _write(tmp_path / "logs.csv", columns)
    result = _run(_base(path))
    assert result.exit_code != 0 and "'yes'" in result.output and "row 11" in result.output


@pytest.mark.skipif(
    not (settings.PROJECT_ROOT.parent / "shared").exists(),
    reason="the shared real data sets (../shared/datasets) are not present in this checkout",
)
def test_hillstrom_replay_one_seed_is_sane():
    """The real randomized e-mail experiment: static arms match the published means and the
    learned policy beats 'No E-Mail' and approaches the best e-mail, exploration included."""
    features = [
        "recency",
        "history_segment",
        "history",
        "mens",
        "womens",
        "zip_code",
        "newbie",
        "channel",
    ]
    data = rp.load_logs(HILLSTROM, "segment", "visit", features)
    result = rp.replay(data, "linear_ts", 1 / 3, seed=1)
    static = {a: e.value for a, e in result.static.items()}
    assert static["No E-Mail"] == pytest.approx(0.106, abs=0.001)
    assert static["Mens E-Mail"] == pytest.approx(0.183, abs=0.001)
    assert static["Womens E-Mail"] == pytest.approx(0.151, abs=0.001)
    assert 20_500 < result.matched_events < 22_200  # ≈ 64,000 / 3
    assert result.value.value > 1.5 * static["No E-Mail"]
    assert result.value.value > 0.95 * static["Mens E-Mail"]
    assert result.value.high - result.value.low < 0.015
    assert result.warnings == []
    assert result.seconds < 30
