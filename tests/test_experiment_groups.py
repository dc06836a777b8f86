"""Experiment groups (treatment, holdout, business-as-usual, random control), the recorded
allowed-action mask, and each policy's probabilities of every action — what off-policy
evaluation and the inspector rebuild from the logs."""

from __future__ import annotations

import numpy as np
import pytest

from journeyman.decisioning.actions import ActionSpace, unpack_allowed
from journeyman.decisioning.assignment import assign
from journeyman.decisioning.config import AgentConfigError, load_agent
from journeyman.decisioning.decide import AgentDecider, contact_history, decide_batch
from journeyman.decisioning.hashing import unit_uniform
from journeyman.decisioning.learning import ArmStatistics
from journeyman.decisioning.policies import DecisionContext
from tests.test_decisioning import DAY, WINBACK, _agent_dict, _write, customers


def test_groups_are_contiguous_ranges_of_one_sticky_hash_with_the_configured_shares():
    agent = load_agent(WINBACK)
    ids = np.array([f"c{i:06d}" for i in range(40_000)])
    groups = assign(agent, ids).group
    shares = {g: float((groups == g).mean()) for g in set(groups)}
    h = agent.guardrails.holdout_share
    bau, rnd = agent.baselines
    assert bau.experiment_group == "business_as_usual" and rnd.experiment_group == "random_control"
    assert shares["holdout"] == pytest.approx(h, abs=0.01)
    assert shares["business_as_usual"] == pytest.approx((1 - h) * bau.share, abs=0.01)
    assert shares["random_control"] == pytest.approx((1 - h) * rnd.share, abs=0.01)
    # contiguous ranges of the hash, in the order holdout, baselines, treatment
    u = unit_uniform(ids, agent.holdout_salt)
    order = ["holdout", "business_as_usual", "random_control", "treatment"]
    ranges = [(u[groups == g].min(), u[groups == g].max()) for g in order]
    assert all(a[1] < b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    # sticky: the same customers in another order land in the same groups
    again = assign(agent, ids[::-1]).group[::-1]
    assert (again == groups).all()


def test_a_baseline_may_name_its_group_but_not_repeat_one(tmp_path):
    data = _agent_dict()
    data["baselines"][1]["group"] = "challenger"
    assert load_agent(_write(tmp_path, data)).baselines[1].experiment_group == "challenger"
    data["baselines"][1]["group"] = "business_as_usual"
    with pytest.raises(AgentConfigError, match="more than one business_as_usual"):
        load_agent(_write(tmp_path, data))


def test_rule_based_params_are_checked_at_load(tmp_path):
    data = _agent_dict()
    data["baselines"][0]["params"]["stpes"] = []
    with pytest.raises(AgentConfigError, match="unknown parameter"):
        load_agent(_write(tmp_path, data))
    data["baselines"][0]["params"].pop("stpes")
    data["baselines"][0]["params"]["steps"] = [{"after_days": 30}, {"after_days": 20}]
    with pytest.raises(AgentConfigError, match="increasing"):
        load_agent(_write(tmp_path, data))


def _decided(n: int = 600):
    agent = load_agent(WINBACK)
    decider = AgentDecider.build(agent, ["recency"], ArmStatistics.empty(["recency"]))
    batch = customers(n, consent_sms=[i % 3 != 0 for i in range(n)])
    return agent, decider, batch, decide_batch(decider, batch, DAY, contact_history(batch))


def test_every_chosen_decision_records_the_actions_the_guardrails_allowed():
    agent, decider, _, table = _decided()
    space = decider.actions
    rows = table.to_pylist()
    masks = unpack_allowed([r["allowed_actions"] for r in rows], space.size)
    sms = space.channel == "sms"
    for i, row in enumerate(rows):
        if row["action_id"] is None:
            assert row["allowed_actions"] is None
            continue
        index = list(space.action_id).index(row["action_id"])
        assert masks[i, index]  # the chosen action was allowed
        if int(row["customer_id"][1:]) % 3 == 0:  # no SMS consent: no SMS action allowed
            assert not masks[i, sms].any()


def _context(decider: AgentDecider, batch, rows: np.ndarray) -> DecisionContext:
    x = np.asarray(batch.column("recency").to_numpy(), dtype=float)[rows, None]
    columns = {c: batch.column(c).to_numpy(zero_copy_only=False)[rows] for c in batch.column_names}
    key = f"{decider.agent.name}:{DAY.isoformat()}"
    return DecisionContext(DAY, decider.actions, x, ["recency"], columns, key)


@pytest.mark.parametrize("group", ["treatment", "business_as_usual", "random_control"])
def test_recomputed_probabilities_reproduce_the_logged_propensities(group):
    agent, decider, batch, table = _decided()
    rows = np.flatnonzero(
        (np.array(table.column("experiment_group").to_pylist()) == group)
        & np.array([a is not None for a in table.column("action_id").to_pylist()])
    )
    assert len(rows) > 10
    policy_index = assign(agent, np.array(batch.column("customer_id").to_pylist())).policy_index
    space: ActionSpace = decider.actions
    allowed = unpack_allowed(table.column("allowed_actions").to_pylist(), space.size)[rows]
    policy = decider.policies[int(policy_index[rows[0]])]
    probs = policy.probabilities(_context(decider, batch, rows), allowed)
    assert np.allclose(probs.sum(axis=1), 1.0)
    assert not (probs[~allowed] > 0).any()  # never a blocked action
    index = {a: i for i, a in enumerate(space.action_id)}
    chosen = np.array([index[a] for a in np.array(table.column("action_id").to_pylist())[rows]])
    logged = np.array(table.column("propensity").to_pylist(), dtype=float)[rows]
    assert np.allclose(probs[np.arange(len(rows)), chosen], logged, atol=1e-12)


def test_epsilon_greedy_probabilities_mix_the_greedy_action_and_uniform(tmp_path):
    data = _agent_dict()
    data["policy"] = {"name": "epsilon_greedy", "params": {"epsilon": 0.2}}
    agent = load_agent(_write(tmp_path, data))
    decider = AgentDecider.build(agent, ["recency"], ArmStatistics.empty(["recency"]))
    batch = customers(50)
    rows = np.arange(50)
    allowed = np.ones((50, decider.actions.size), dtype=bool)
    allowed[:, ::2] = False
    probs = decider.policies[0].probabilities(_context(decider, batch, rows), allowed)
    assert np.allclose(probs.sum(axis=1), 1.0)
    count = allowed.sum(axis=1)
    assert np.allclose(np.sort(probs, axis=1)[:, -1], 0.8 + 0.2 / count)
