"""A revenue goal's hurdle model: P(order) × the value of an order, from summed statistics."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from scipy import stats as scistats

from journeyman import settings
from journeyman.decisioning import replay as rp
from journeyman.decisioning.action_features import action_features
from journeyman.decisioning.actions import ActionSpace
from journeyman.decisioning.config import AgentConfigError, PolicySpec, load_agent
from journeyman.decisioning.decide import AgentDecider, contact_history, decide_batch
from journeyman.decisioning.hashing import unit_uniform
from journeyman.decisioning.learning import ArmStatistics, LinearPosterior
from journeyman.decisioning.policies import build_policy
from journeyman.decisioning.policies.base import DecisionContext
from journeyman.decisioning.policies.hurdle import HurdlePosterior, fit_hurdle, order_weights
from tests.test_decisioning import DAY, _agent_dict, _write, customers
from tests.test_replay import _write as _csv  # one logged-data CSV writer

NAMES = ["f0", "f1"]
ARMS = ["a", "b", "c"]


def _arms() -> tuple[ActionSpace, object]:
    """Three disjoint arms sharing a baseline (the replay's action space)."""
    return rp.replay_actions(ARMS)


def _heavy_tailed(
    n: int, seed: int, rates: list[float], values: list[float], penalty: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """x, arm, reward, ordered: arm k orders with probability rates[k], log-normal order values
    (σ = 1.2: a heavy right tail) with mean values[k]; without an order, a penalty of
    `penalty` one time in twenty."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(NAMES)))
    arm = rng.integers(0, len(ARMS), n)
    ordered = rng.random(n) < np.asarray(rates)[arm]
    sigma = 1.2
    value = np.asarray(values)[arm] * np.exp(sigma * rng.normal(size=n) - sigma**2 / 2)
    reward = np.where(ordered, value, 0.0)
    if penalty:
        reward -= penalty * ((rng.random(n) < 0.05) & ~ordered)
    return x, np.array(ARMS)[arm], reward, ordered


def _close(a: ArmStatistics, b: ArmStatistics) -> None:
    assert a.action_ids == b.action_ids
    for name in ("n", "xx", "xr", "rr"):
        assert getattr(a, name) == pytest.approx(getattr(b, name), rel=1e-9, abs=1e-9), name


def test_order_statistics_match_a_direct_computation():
    x, arm, r, ordered = _heavy_tailed(6000, 1, [0.02, 0.01, 0.0], [80, 120, 50], penalty=5.0)
    stats = ArmStatistics.from_observations(NAMES, x, arm, r, ordered=ordered)
    c = ordered.astype(float)
    _close(stats.without_orders(), ArmStatistics.from_observations(NAMES, x, arm, r))
    # the order indicator over every decision: Σx̃c is the ordered decisions' Σx̃, Σc² their count
    _close(stats.order_indicator(), ArmStatistics.from_observations(NAMES, x, arm, c))
    # the order values: the decisions with an order (arm c has none: zeros, aligned)
    direct = ArmStatistics.from_observations(NAMES, x[ordered], arm[ordered], r[ordered])
    values = stats.order_values()
    assert values.action_ids == ARMS and values.n[2] == 0 and not values.xx[2].any()
    _close(values.select([]), _aligned_select(direct))
    assert values.xr[:2] == pytest.approx(direct.xr, rel=1e-9)
    # the rest: rewards of decisions without an order (penalties), over every decision
    rest = ArmStatistics.from_observations(NAMES, x, arm, r * (1 - c))
    _close(stats.without_order_rewards(), rest)
    # sums of days equal the whole, order statistics included; so does selecting features
    days = np.array_split(np.arange(len(r)), 4)
    summed = ArmStatistics.empty(NAMES, ordered=True)
    for rows in days:
        summed = summed + ArmStatistics.from_observations(
            NAMES, x[rows], arm[rows], r[rows], ordered=ordered[rows]
        )
    assert summed.digest() == stats.digest() != stats.without_orders().digest()
    _close(summed.order_values(), stats.order_values())
    picked = stats.select(NAMES[1:])
    _close(picked.order_values(), stats.order_values().select(NAMES[1:]))
    assert (stats + ArmStatistics.from_observations(NAMES, x, arm, r)).ordered is None


def _aligned_select(direct: ArmStatistics) -> ArmStatistics:
    """`direct` (arms a, b only) over the three arms, intercept only."""
    d = direct.select([])
    return ArmStatistics(
        [],
        ARMS,
        np.append(d.n, 0.0),
        np.concatenate([d.xx, np.zeros((1, 1, 1))]),
        np.concatenate([d.xr, np.zeros((1, 1))]),
        np.append(d.rr, 0.0),
    )


def test_the_expected_reward_picks_the_best_arm_on_a_heavy_tailed_problem():
    """b orders least but its orders are worth most: 2 % × $60 = 1.2, 1 % × $150 = 1.5,
    3 % × $30 = 0.9 per decision. The hurdle ranks the arms by P(order) × order value and
    recovers each within 12 %."""
    space, phi = _arms()
    rates, values = [0.02, 0.01, 0.03], [60.0, 150.0, 30.0]
    x, arm, r, ordered = _heavy_tailed(90_000, 2, rates, values)
    stats = ArmStatistics.from_observations(NAMES, x, arm, r, ordered=ordered)
    posterior, ridges = fit_hurdle(stats, phi, ARMS)
    assert posterior.rest is None and ridges["rest"] is None
    expected = posterior.expected(np.zeros((1, len(NAMES))), phi.matrix)[0]
    truth = np.array(rates) * np.array(values)
    assert expected.argmax() == 1
    assert expected == pytest.approx(truth, rel=0.12)
    assert posterior.order_values(phi.matrix) == pytest.approx(values, rel=0.12)


def test_one_huge_order_does_not_outweigh_twice_the_orders():
    """Two arms with the same order values, a converting twice as often as b; one of b's orders
    is a $6,000 outlier. Averaged revenue says b; the hurdle, whose value model pools the
    arms' values when they do not differ beyond their noise, says a."""
    space, phi = _arms()
    x, arm, r, ordered = _heavy_tailed(9000, 3, [0.02, 0.01, 0.005], [100.0, 100.0, 100.0])
    big = np.flatnonzero((arm == "b") & ordered)[0]
    r[big] = 6000.0
    stats = ArmStatistics.from_observations(NAMES, x, arm, r, ordered=ordered)
    means = [r[arm == a].mean() for a in ARMS]
    assert np.argmax(means) == 1  # the plain average is fooled
    policy = build_policy(PolicySpec(name="linear_ts"))
    policy.fit(stats, phi, ARMS)
    assert isinstance(policy.posterior, HurdlePosterior)
    assert np.argmax(policy.scores(_ctx(space, np.zeros((1, 2))))[0]) == 0
    linear = build_policy(PolicySpec(name="linear_ts", params={"revenue_model": "linear"}))
    linear.fit(stats, phi, ARMS)
    assert isinstance(linear.posterior, LinearPosterior)
    assert np.argmax(linear.scores(_ctx(space, np.zeros((1, 2))))[0]) == 1


def test_the_parts_combine_with_penalties_and_draws_center_on_the_mean():
    """Expected reward = P(order) · v + the rest, each part standardized its own way (the order
    model's statistics are weighted); Thompson draws average to the mean."""
    space, phi = _arms()
    x, arm, r, ordered = _heavy_tailed(30_000, 4, [0.03, 0.02, 0.01], [50, 80, 120], penalty=8.0)
    x[:, 1] = 3.0 + 2.0 * x[:, 1]  # a feature far from standard
    stats = ArmStatistics.from_observations(NAMES, x, arm, r, ordered=ordered)
    posterior, _ = fit_hurdle(stats, phi, ARMS)
    assert posterior.rest is not None
    assert not np.allclose(posterior.order.mean, posterior.rest.mean)
    probe = np.random.default_rng(5).normal(size=(50, 2)) * [1.0, 2.0] + [0.0, 3.0]
    direct = posterior.order.expected(probe, phi.matrix) * posterior.order_values(phi.matrix)
    direct += posterior.rest.expected(probe, phi.matrix)
    assert posterior.expected(probe, phi.matrix) == pytest.approx(direct, rel=1e-9, abs=1e-12)
    draws = posterior.sample_weights(phi.matrix, 4000, np.random.default_rng(6))
    center = posterior.center_weights(phi.matrix)
    spread = draws.std(axis=0) / np.sqrt(len(draws))
    assert np.abs(draws.mean(axis=0) - center).max() < 5 * spread.max()
    assert (posterior.uncertainty(probe, phi.matrix) > 0).all()
    weights = order_weights(stats.order_indicator())
    assert weights[2] > weights[1] > weights[0]  # rarer orders: a smaller Bernoulli variance


def test_separate_arms_start_from_jeffreys_prior_and_pooled_actions_do_not():
    """Three disjoint arms: each order rate gets half an order in one pseudo-decision, so an
    arm without an order after 150 decisions is not written off at zero. An agent's factored
    actions (pooled action effects) learn from the real decisions alone."""
    space, phi = _arms()
    x, arm, r, ordered = _heavy_tailed(450, 11, [0.02, 0.02, 0.02], [80, 80, 80])
    ordered &= arm != "a"
    r[arm == "a"] = 0.0
    stats = ArmStatistics.from_observations(NAMES, x, arm, r, ordered=ordered)
    posterior, _ = fit_hurdle(stats, phi, ARMS)
    assert posterior.order.observations == stats.observations + len(ARMS)
    p = posterior.order.expected(x.mean(axis=0, keepdims=True), phi.matrix)[0]
    n_a = int((arm == "a").sum())
    assert p[0] == pytest.approx(0.5 / (n_a + 1), rel=0.35) and p[0] > 0
    fixed, _ = fit_hurdle(stats, phi, ARMS, prior="fixed")
    assert fixed.order.observations == stats.observations + len(ARMS)
    agent = load_agent(settings.AGENTS_DIR / "cross_sell.yml")
    agent_space = ActionSpace.for_agent(agent)
    agent_phi = action_features(agent, agent_space)
    rng = np.random.default_rng(12)
    a = agent_space.action_id[rng.integers(0, agent_space.size, 3000)]
    bought = rng.random(3000) < 0.02
    many = ArmStatistics.from_observations(
        NAMES, rng.normal(size=(3000, 2)), a, np.where(bought, 60.0, 0.0), ordered=bought
    )
    pooled, _ = fit_hurdle(many, agent_phi, list(agent_space.action_id))
    assert pooled.order.observations == many.observations


def _ctx(space: ActionSpace, x: np.ndarray) -> DecisionContext:
    return DecisionContext(
        day=date(2026, 3, 2),
        actions=space,
        features=x,
        feature_names=NAMES,
        columns={},
        seed_key="hurdle:2026-03-02",
    )


def test_thompson_propensities_are_exact_under_the_hurdle():
    space, phi = _arms()
    x, arm, r, ordered = _heavy_tailed(1500, 7, [0.03, 0.03, 0.03], [80, 80, 80])
    stats = ArmStatistics.from_observations(NAMES, x, arm, r, ordered=ordered)
    policy = build_policy(PolicySpec(name="linear_ts", params={"draws": 16}))
    policy.fit(stats, phi, ARMS)
    n = 30_000
    context = np.repeat(np.random.default_rng(8).normal(size=(1, 2)), n, axis=0)
    allowed = np.ones((n, 3), dtype=bool)
    u = unit_uniform([f"c{i}" for i in range(n)], "hurdle-prop")
    choice = policy.choose(_ctx(space, context), allowed, u)
    chosen, counts = np.unique(choice.action, return_counts=True)
    assert len(chosen) >= 2, "the test needs a randomizing policy state"
    for action, count in zip(chosen, counts, strict=True):
        p = choice.propensity[choice.action == action]
        assert np.allclose(p, p[0])
        assert scistats.binomtest(int(count), n, float(p[0])).pvalue > 1e-4
    again = build_policy(PolicySpec(name="linear_ts", params={"draws": 16}))
    again.fit(stats, phi, ARMS)
    assert again.version == policy.version
    assert (again.choose(_ctx(space, context), allowed, u).action == choice.action).all()


def test_revenue_agents_learn_through_the_hurdle_and_others_through_one_model(tmp_path):
    data = _agent_dict()
    data["goal"] = {"metric": "revenue", "attribution_window_days": 7}
    revenue = load_agent(_write(tmp_path, data))
    conversion = load_agent(_write(tmp_path, {**data, "goal": {"metric": "conversion"}}))
    space = ActionSpace.for_agent(revenue)
    rng = np.random.default_rng(9)
    n = 4000
    x = rng.normal(size=(n, 1))
    a = space.action_id[rng.integers(0, space.size, n)]
    ordered = rng.random(n) < 0.05
    r = np.where(ordered, rng.lognormal(4.0, 1.0, n), 0.0)
    stats = ArmStatistics.from_observations(["recency"], x, a, r, ordered=ordered)
    learned = {}
    for agent in (revenue, conversion):
        decider = AgentDecider.build(agent, ["recency"], stats)
        learned[agent.goal.metric] = decider.policies[0]
        batch = customers(200)
        rows = decide_batch(decider, batch, DAY, contact_history(batch))
        assert rows.num_rows == 200
    assert isinstance(learned["revenue"].posterior, HurdlePosterior)
    assert isinstance(learned["conversion"].posterior, LinearPosterior)
    # the new parameter at its default leaves the version's params digest as it was
    plain = build_policy(PolicySpec(name="linear_ts", params={"ridge": 1.0}))
    linear = build_policy(PolicySpec(name="linear_ts", params={"revenue_model": "linear"}))
    assert plain.version.split("#")[0] == "linear_ts@" + _digest(plain.params)
    assert plain.version.split("#")[0] != linear.version.split("#")[0]


def _digest(params: dict) -> str:
    import hashlib
    import json

    shown = {k: v for k, v in params.items() if k != "revenue_model"}
    return hashlib.sha256(json.dumps(shown, sort_keys=True).encode()).hexdigest()[:8]


def test_an_unknown_revenue_model_fails_at_load(tmp_path):
    data = _agent_dict()
    data["policy"]["params"]["revenue_model"] = "tobit"
    with pytest.raises(AgentConfigError, match=r"policy\.params: `revenue_model` must be one of"):
        load_agent(_write(tmp_path, data))


def test_the_replay_learns_a_revenue_column_as_a_revenue_goal(tmp_path):
    x, arm, r, ordered = _heavy_tailed(6000, 10, [0.03, 0.01, 0.02], [60, 80, 40])
    path = _csv(
        tmp_path / "logs.csv",
        {"f0": x[:, 0].round(3), "arm": arm, "spend": r.round(2), "bought": ordered.astype(int)},
    )
    spend = rp.load_logs(path, "arm", "spend", ["f0"])
    bought = rp.load_logs(path, "arm", "bought", ["f0"])
    assert rp.is_revenue(spend.rewards) and not rp.is_revenue(bought.rewards)
    assert not rp.is_revenue(np.array([1.5, 2.0, 0.0]))  # mostly non-zero: not a hurdle
    assert not rp.is_revenue(np.array([-1.0, 0.0, 0.0, 2.5]))
    one = rp.replay(spend, seed=3, batch_size=500)
    two = rp.replay(spend, seed=3, batch_size=500)
    assert one.revenue and one.to_json()["revenue"] is True
    assert one.value == two.value and one.policy_version == two.policy_version
    assert not rp.replay(bought, seed=3, batch_size=500).revenue
    forced = rp.replay(spend, seed=3, batch_size=500, revenue=False)
    assert not forced.revenue and forced.policy_version != one.policy_version
