"""Learning: exact propensities, incremental statistics, and that the learners learn."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from scipy import stats as scistats

from journeyman import settings
from journeyman.decisioning.action_features import action_features
from journeyman.decisioning.actions import ActionSpace
from journeyman.decisioning.config import PolicySpec, load_agent
from journeyman.decisioning.hashing import unit_uniform
from journeyman.decisioning.learning import ArmStatistics, fit_posterior
from journeyman.decisioning.policies import build_policy
from journeyman.decisioning.policies.base import DecisionContext

AGENT = load_agent(settings.AGENTS_DIR / "winback.yml")
SPACE = ActionSpace.for_agent(AGENT)
PHI = action_features(AGENT, SPACE)
D = 4
NAMES = [f"f{i}" for i in range(D)]


def _world(seed: int = 0):
    rng = np.random.default_rng(seed)
    theta = rng.normal(scale=0.4, size=(D + 1, PHI.matrix.shape[1]))

    def expected(x: np.ndarray) -> np.ndarray:
        return np.column_stack([np.ones(len(x)), x]) @ theta @ PHI.matrix.T

    return rng, expected


def _logged(n: int, seed: int = 0) -> tuple[ArmStatistics, callable]:
    rng, expected = _world(seed)
    x = rng.normal(size=(n, D))
    a = rng.integers(0, SPACE.size, n)
    r = expected(x)[np.arange(n), a] + rng.normal(size=n)
    return ArmStatistics.from_observations(NAMES, x, SPACE.action_id[a], r), expected


def _ctx(x: np.ndarray) -> DecisionContext:
    return DecisionContext(
        day=date(2026, 3, 2),
        actions=SPACE,
        features=x,
        feature_names=NAMES,
        columns={},
        seed_key="winback:2026-03-02",
    )


def _fitted(name: str, stats: ArmStatistics, **params):
    policy = build_policy(PolicySpec(name=name, params=params))
    if policy.learns:
        policy.fit(stats, PHI, list(SPACE.action_id))
    return policy


@pytest.mark.parametrize(
    ("name", "params"),
    [("linear_ts", {"draws": 16}), ("epsilon_greedy", {"epsilon": 0.3}), ("uniform_random", {})],
)
def test_propensities_match_empirical_choice_frequencies(name, params):
    """Many customers with the same context: each action's share of choices must agree with
    the propensity the policy recorded for it (a binomial test per action)."""
    stats, _ = _logged(400, seed=1)  # little data: a wide posterior, so choices vary
    policy = _fitted(name, stats, **params)
    n = 40_000
    x = np.repeat(np.random.default_rng(2).normal(size=(1, D)), n, axis=0)
    allowed = np.ones((n, SPACE.size), dtype=bool)
    allowed[:, SPACE.channel == "sms"] = False  # propensities are over the allowed set
    u = unit_uniform([f"c{i}" for i in range(n)], "prop-test")
    choice = policy.choose(_ctx(x), allowed, u)
    assert not (SPACE.channel[choice.action] == "sms").any()
    chosen, counts = np.unique(choice.action, return_counts=True)
    assert len(chosen) >= 2, "the test needs a randomizing policy state"
    for action, count in zip(chosen, counts, strict=True):
        p = choice.propensity[choice.action == action]
        assert np.allclose(p, p[0]), "same context, same allowed set: same propensity"
        test = scistats.binomtest(int(count), n, float(p[0]))
        assert test.pvalue > 1e-4, (SPACE.action_id[action], count / n, p[0])


def test_incremental_statistics_equal_learning_from_scratch():
    rng, expected = _world(3)
    x = rng.normal(size=(3000, D))
    a = rng.integers(0, SPACE.size, 3000)
    r = expected(x)[np.arange(3000), a] + rng.normal(size=3000)
    days = np.array_split(np.arange(3000), 5)
    incremental = ArmStatistics.empty(NAMES)
    for rows in days:
        incremental = incremental + ArmStatistics.from_observations(
            NAMES, x[rows], SPACE.action_id[a[rows]], r[rows]
        )
    scratch = ArmStatistics.from_observations(NAMES, x, SPACE.action_id[a], r)
    assert incremental.digest() == scratch.digest()
    one = fit_posterior(incremental, PHI, list(SPACE.action_id))
    two = fit_posterior(scratch, PHI, list(SPACE.action_id))
    assert np.allclose(one.theta, two.theta) and np.allclose(one.cov, two.cov)


def test_posterior_recovers_the_reward_model_and_selecting_features_is_exact():
    stats, expected = _logged(30_000, seed=4)
    post = fit_posterior(stats, PHI, list(SPACE.action_id))
    x = np.random.default_rng(5).normal(size=(2000, D))
    err = post.expected(x, PHI.matrix) - expected(x)
    assert np.sqrt((err**2).mean()) < 0.25 * expected(x).std()
    sub = stats.select(NAMES[:2])
    direct = ArmStatistics.from_observations(
        NAMES[:2], np.zeros((0, 2)), np.array([]), np.array([])
    )
    assert sub.xx.shape[1:] == (3, 3) and direct.xx.shape[1:] == (3, 3)
    assert np.allclose(sub.xx[:, :3, :3], stats.xx[:, :3, :3])


@pytest.mark.parametrize("name", ["linear_ts", "lin_ucb", "epsilon_greedy"])
def test_learners_beat_random_and_approach_the_best_action(name):
    stats, expected = _logged(20_000, seed=6)
    x = np.random.default_rng(7).normal(size=(5000, D))
    allowed = np.ones((5000, SPACE.size), dtype=bool)
    u = unit_uniform([f"c{i}" for i in range(5000)], "learn-test")
    value = expected(x)
    best = value.max(axis=1).mean()
    random = value.mean()
    choice = _fitted(name, stats).choose(_ctx(x), allowed, u)
    got = value[np.arange(5000), choice.action].mean()
    assert got - random > 0.8 * (best - random), (got, random, best)


def test_policy_version_names_the_statistics():
    stats, _ = _logged(500, seed=8)
    more, _ = _logged(600, seed=8)
    a, b = _fitted("linear_ts", stats), _fitted("linear_ts", more)
    assert a.version != b.version
    assert a.version == _fitted("linear_ts", stats).version
    assert a.version.startswith("linear_ts@") and "#n500-" in a.version


def test_five_hundred_joint_actions_share_one_factored_model():
    import yaml

    from journeyman.decisioning.config import AgentConfig

    data = yaml.safe_load((settings.AGENTS_DIR / "winback.yml").read_text())
    offers = ["none", "discount_10", "discount_20", "free_shipping"]
    data["dimensions"]["messages"] = [
        {
            "id": f"m{i}",
            "tags": {"offer": offers[i % 4], "tone": ["friendly", "urgent"][i % 2]},
            "email": {"subject": [f"s{i}a", f"s{i}b"], "body": "b"},
            "sms": {"body": "b"},
            "push": {"title": "t", "body": "b"},
        }
        for i in range(10)
    ]
    data["dimensions"]["send_hours"] = list(range(8, 21))
    data["baselines"] = []
    agent = AgentConfig.model_validate(data)
    space = ActionSpace.for_agent(agent)
    assert space.size > 500
    phi = action_features(agent, space)
    assert phi.matrix.shape[1] < 60  # factored: a few dozen action features, not one per action
    rng = np.random.default_rng(9)
    n = 3000
    x = rng.normal(size=(n, D))
    a = rng.integers(0, space.size, n)
    stats = ArmStatistics.from_observations(NAMES, x, space.action_id[a], rng.normal(size=n))
    policy = build_policy(PolicySpec(name="linear_ts", params={"draws": 8}))
    policy.fit(stats, phi, list(space.action_id))
    allowed = rng.random((n, space.size)) < 0.7
    ctx = DecisionContext(
        day=date(2026, 3, 2),
        actions=space,
        features=x,
        feature_names=NAMES,
        columns={},
        seed_key="big",
    )
    choice = policy.choose(ctx, allowed, rng.random(n))
    assert allowed[np.arange(n), choice.action].all()
    assert ((choice.propensity > 0) & (choice.propensity <= 1)).all()
    variants = {s for s in space.action_id if s.endswith(("/s1", "/s2"))}
    assert len(variants) == 10 * 13 * 2


def test_policy_version_ignores_summation_order_noise():
    """The warehouse sums doubles in parallel, in no fixed order: last-bit differences between
    two runs on the same data must not change the version (which seeds Thompson sampling)."""
    stats, _ = _logged(800, seed=10)
    # One sum sits just below a 9th-decimal rounding boundary, so that hashing doubles rounded
    # to any fixed number of decimals would see the jitter below (this made the test fail
    # against the previous digest).
    stats.xx[0, 1, 1] = 1000.0000000005 - 2e-13
    jitter = ArmStatistics(
        stats.feature_names,
        stats.action_ids,
        stats.n,
        stats.xx * (1 + 1e-15),
        stats.xr * (1 - 1e-15),
        stats.rr * (1 + 1e-15),
    )
    assert not np.array_equal(jitter.xx, stats.xx)
    assert jitter.digest() == stats.digest()
    assert _fitted("linear_ts", jitter).version == _fitted("linear_ts", stats).version


@pytest.mark.parametrize("threads", ["2", "3"])
def test_thompson_choices_do_not_depend_on_the_number_of_threads(monkeypatch, threads):
    """Chunks are scored in parallel: the same customers, masks and draws give the same
    actions and propensities on one thread as on several (groups with and without masks)."""
    stats, _ = _logged(400, seed=4)
    policy = _fitted("linear_ts", stats, draws=16)
    rng = np.random.default_rng(5)
    n = 30_000  # many chunks
    x = rng.normal(size=(n, D))
    allowed = np.ones((n, SPACE.size), dtype=bool)
    allowed[: n // 3, SPACE.channel == "sms"] = False  # a large group with its own allowed set
    rare = rng.random(n) < 0.01  # rare allowed sets: scored together with their mask
    allowed[rare] = rng.random((int(rare.sum()), SPACE.size)) < 0.5
    u = rng.random(n)
    monkeypatch.setenv(settings.THREADS_ENV, "1")
    one = policy.choose(_ctx(x), allowed, u)
    monkeypatch.setenv(settings.THREADS_ENV, threads)
    many = policy.choose(_ctx(x), allowed, u)
    assert np.array_equal(one.action, many.action)
    assert np.array_equal(one.propensity, many.propensity)
    chosen = one.action >= 0
    assert allowed[np.flatnonzero(chosen), one.action[chosen]].all()


def test_invalid_thread_setting_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(settings.THREADS_ENV, "two")
    with pytest.raises(ValueError, match="JOURNEYMAN_THREADS must be a positive whole number"):
        settings.decide_threads()
    monkeypatch.delenv(settings.THREADS_ENV)
    assert settings.decide_threads() >= 1


def test_personalise_pins_the_interactions_it_leaves_out():
    """Only the named families interact with the named features: the others' coefficients are
    zero in the posterior mean and in every Thompson draw; the baseline and the action effects
    are untouched, and the prior reports one strength per group."""
    from journeyman.decisioning.prior import OFF, prior_groups

    stats, _ = _logged(3000, seed=6)
    personalise = {"send": "all", "hour": ["f1"]}
    policy = _fitted("linear_ts", stats, draws=8, personalise=personalise)
    groups = prior_groups(NAMES, PHI, personalise).reshape(D + 1, -1)
    off = groups == OFF
    names = np.array(PHI.names)
    assert not off[0].any()  # the constant row: baseline and action effects
    hour = np.char.startswith(names, "hour=")
    assert not off[:, names == "send"].any() and not off[2, hour].any()
    assert off[1, hour].all() and off[1:, names == "channel=sms"].all()
    theta = policy.posterior.theta
    assert np.abs(theta[off]).max() < 1e-6 < np.abs(theta[~off]).max()
    variance = np.diag(policy.posterior.cov).reshape(off.shape)  # Thompson draws do not move them
    assert variance[off].max() < 1e-8 < variance[~off].min()
    assert len(policy.prior_ridges) == 4
    x = np.random.default_rng(7).normal(size=(500, D))
    choice = policy.choose(_ctx(x), np.ones((500, SPACE.size), dtype=bool), np.linspace(0, 1, 500))
    assert (choice.action >= 0).all() and ((choice.propensity > 0) & (choice.propensity <= 1)).all()
    full = _fitted("linear_ts", stats, draws=8)
    assert np.abs(full.posterior.theta[off]).max() > 1e-3  # without it they are learned
