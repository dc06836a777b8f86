"""Decisioning without the warehouse: config validation, holdout stickiness, guardrails,
policies and send times."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import yaml

from journeyman import settings
from journeyman.decisioning.assignment import HOLDOUT, assign
from journeyman.decisioning.config import AgentConfigError, load_agent, load_agents
from journeyman.decisioning.decide import (
    AgentDecider,
    audience_column,
    contact_history,
    decide_batch,
    own_contact_column,
)
from journeyman.decisioning.send_time import hour_table

WINBACK = settings.AGENTS_DIR / "winback.yml"
DAY = date(2026, 3, 2)


def _agent_dict() -> dict:
    return yaml.safe_load(WINBACK.read_text())


def _write(tmp_path: Path, data: dict, name: str = "winback") -> Path:
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def customers(n: int, **overrides) -> pa.Table:
    """A batch shaped like marts.customer_features, with the winback audience column."""
    rng = np.random.default_rng(0)
    zones = np.array(["Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney"])
    cols = {
        "customer_id": [f"c{i:06d}" for i in range(n)],
        "time_zone": zones[np.arange(n) % 4].tolist(),
        "email": [f"u{i}@example.com" for i in range(n)],
        "phone": [f"+1415555{i:04d}" for i in range(n)],
        "push_token": [f"tok{i}" for i in range(n)],
        "consent_email": [True] * n,
        "consent_sms": [True] * n,
        "consent_push": [True] * n,
        "has_ordered": [1] * n,
        "days_since_last_order": rng.integers(21, 60, n).tolist(),
        "messages_last_7d": [0] * n,
        "email_messages_last_7d": [0] * n,
        "sms_messages_last_7d": [0] * n,
        "push_messages_last_7d": [0] * n,
        "last_message_at": pa.array([None] * n, type=pa.timestamp("s")),
        "recency": rng.random(n).tolist(),
        audience_column(load_agent(WINBACK)): [True] * n,
    }
    cols.update(overrides)
    return pa.table(cols)


# -- configuration --------------------------------------------------------------------------


def test_shipped_agents_are_valid():
    agents = load_agents(settings.AGENTS_DIR)
    assert [a.name for a in agents] == sorted(a.name for a in agents)
    assert all(a.goal.metric in ("conversion", "revenue", "retention") for a in agents)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["goal"].update(metric="clicks"), "goal.metric"),
        (
            lambda d: d["goal"].update(learning_window_days=9),
            "`learning_window_days` must not exceed `attribution_window_days` (7)",
        ),
        (lambda d: d["guardrails"].update(holdout_share=1.5), "guardrails.holdout_share"),
        (lambda d: d["guardrails"].update(quiet_hourz=1), "guardrails.quiet_hourz: unknown field"),
        (lambda d: d["dimensions"].update(send_hours=[25]), "dimensions.send_hours"),
        (lambda d: d.pop("goal"), "goal: required field is missing"),
        (lambda d: d["policy"].update(name="magic"), "policy.name: unknown policy 'magic'"),
        (
            lambda d: d["policy"].update(params={"exploraton": 0.5}),
            "policy.params: unknown parameter(s) ['exploraton'] for policy 'linear_ts'",
        ),
        (
            lambda d: d["policy"].update(params={"prior": "flat"}),
            "policy.params: `prior` must be one of fixed, empirical_bayes",
        ),
        (
            lambda d: d["policy"]["params"].update(personalise={"hours": "all"}),
            "policy.params.personalise: unknown family 'hours'; use some of ['send', 'channel',",
        ),
        (
            lambda d: d["policy"]["params"].update(personalise={"hour": ["order_hour"]}),
            "policy.params.personalise.hour: ['order_hour'] are not in the agent's `features`",
        ),
        (
            lambda d: d["policy"]["params"].update(personalise={"hour": "order_hour_cos"}),
            "`personalise.hour` must be `all` or a list of customer features",
        ),
        (lambda d: d["destinations"].pop("sms"), "no entry for channel(s) ['sms']"),
        (
            lambda d: (
                d["guardrails"].update(quiet_hours={"start": 0, "end": 0})
                or d["dimensions"].update(send_hours=[22])
                or d["guardrails"].update(quiet_hours={"start": 21, "end": 8})
            ),
            "falls inside `guardrails.quiet_hours`",
        ),
        (
            lambda d: d["guardrails"].update(consent_required=False),
            "consent cannot be switched off",
        ),
    ],
)
def test_invalid_config_names_file_field_and_fix(tmp_path, mutate, expected):
    data = _agent_dict()
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(AgentConfigError) as err:
        load_agent(path)
    message = str(err.value)
    assert str(path) in message
    assert expected in message


def test_personalise_names_discovered_features_when_the_agent_lists_none(tmp_path):
    from journeyman.decisioning.features import agent_features

    data = _agent_dict()
    data.pop("features", None)
    data["policy"]["params"] = {"personalise": {"send": "all", "hour": ["order_hour_cosine"]}}
    agent = load_agent(_write(tmp_path, data))
    available = ["days_since_last_order", "order_hour_cos", "order_hour_sin"]
    with pytest.raises(AgentConfigError, match=r"names \['order_hour_cosine'\]"):
        agent_features(agent, available)
    data["policy"]["params"]["personalise"]["hour"] = ["order_hour_cos"]
    agent = load_agent(_write(tmp_path, data))
    assert agent_features(agent, available) == available


def test_file_name_must_match_agent_name(tmp_path):
    path = _write(tmp_path, _agent_dict(), name="other")
    with pytest.raises(AgentConfigError, match="rename the file to winback.yml"):
        load_agent(path)


def test_yaml_syntax_error_is_clear(tmp_path):
    path = tmp_path / "winback.yml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(AgentConfigError, match="not valid YAML"):
        load_agent(path)


# -- holdout --------------------------------------------------------------------------------


def test_holdout_is_sticky_across_runs_and_batches():
    agent = load_agent(WINBACK)
    ids = np.array([f"c{i:06d}" for i in range(20_000)])
    first = assign(agent, ids)
    shuffled = np.random.default_rng(1).permutation(len(ids))
    second = assign(agent, ids[shuffled])
    assert (first.group[shuffled] == second.group).all()
    assert (first.policy_index[shuffled] == second.policy_index).all()
    share = (first.group == HOLDOUT).mean()
    assert abs(share - agent.guardrails.holdout_share) < 0.01
    baseline = (first.policy_index == 1).mean()
    assert abs(baseline - 0.9 * agent.baselines[0].share) < 0.015
    assert (first.policy_index[first.group == HOLDOUT] == 0).all()


def test_holdout_depends_on_salt():
    agent = load_agent(WINBACK)
    other = agent.model_copy(update={"salt": "another-salt"})
    ids = np.array([f"c{i:06d}" for i in range(5000)])
    assert (assign(agent, ids).group != assign(other, ids).group).any()


# -- guardrails and policies ----------------------------------------------------------------


def _decide(batch: pa.Table, agent=None):
    agent = agent or load_agent(WINBACK)
    decider = AgentDecider.build(agent, ["recency"])
    history = contact_history(batch)
    return decide_batch(decider, batch, DAY, history).to_pylist(), history


def test_no_message_without_consent_and_row_says_why():
    n = 400
    batch = customers(
        n,
        consent_email=[False] * n,
        consent_sms=[i % 2 == 0 for i in range(n)],
        consent_push=[False] * n,
    )
    rows, _ = _decide(batch)
    by_id = {r["customer_id"]: r for r in rows}
    for i in range(n):
        row = by_id[f"c{i:06d}"]
        if row["channel"] is not None:
            assert row["channel"] == "sms" and i % 2 == 0
        if i % 2 == 1 and row["experiment_group"] == "treatment":
            assert row["message_id"] is None
            assert row["exclusion_reason"] == "no_consent"


def test_every_row_has_decision_fields_and_propensity():
    rows, _ = _decide(customers(1000))
    ids = [r["decision_id"] for r in rows]
    assert len(set(ids)) == len(ids) == 1000
    acted = [r for r in rows if r["exclusion_reason"] is None]
    assert acted and all(0 < r["propensity"] <= 1 for r in acted)
    sent = [r for r in rows if r["message_id"] is not None]
    assert sent and all(r["send_at"] is not None for r in sent)
    assert all(r["exclusion_reason"] == "holdout" for r in rows if r["experiment_group"] == HOLDOUT)


def test_quiet_hours_and_caps_hold_for_every_send():
    n = 2000
    rng = np.random.default_rng(3)
    last = np.datetime64("2026-03-01T12:00:00") - rng.integers(0, 96, n).astype("timedelta64[h]")
    batch = customers(
        n,
        messages_last_7d=rng.integers(0, 4, n).tolist(),
        last_message_at=pa.array(last.astype("datetime64[s]"), type=pa.timestamp("s")),
    )
    rows, _ = _decide(batch)
    agent = load_agent(WINBACK)
    by_id = {r["customer_id"]: r for r in rows}
    for i, cid in enumerate(batch["customer_id"].to_pylist()):
        row = by_id[cid]
        if row["message_id"] is None:
            continue
        assert not agent.guardrails.quiet_hours.contains(row["local_hour"])
        assert batch["messages_last_7d"][i].as_py() < agent.guardrails.max_per_week
        gap = (np.datetime64(row["send_at"]) - last[i]) / np.timedelta64(1, "h")
        assert gap >= agent.guardrails.min_gap_hours
    reasons = {r["exclusion_reason"] for r in rows}
    assert {"cap_reached", "min_gap"} <= reasons


def test_not_in_audience_and_null_features_are_excluded_with_reasons():
    n = 50
    agent = load_agent(WINBACK)
    batch = customers(
        n,
        **{audience_column(agent): [i >= 10 for i in range(n)]},
        recency=[None if i in (20, 21) else 0.5 for i in range(n)],
    )
    rows, _ = _decide(batch)
    by_id = {r["customer_id"]: r for r in rows}
    assert all(by_id[f"c{i:06d}"]["exclusion_reason"] == "not_eligible" for i in range(10))
    assert by_id["c000020"]["exclusion_reason"] == "null_feature"
    assert by_id["c000021"]["message_id"] is None


def test_business_as_usual_journey_sends_each_step_once_when_it_comes_due():
    """The shipped win-back journey: an e-mail once 30 days pass without an order and no
    message since (on a later day when a guardrail blocked the first), a 10 %-off reminder
    from day 44, nothing before day 30 or after the last step's window."""
    agent = load_agent(WINBACK)
    assert agent.baselines[0].experiment_group == "business_as_usual"
    only_rule = agent.model_copy(
        update={
            "policy": agent.baselines[0],
            "baselines": [],
            "guardrails": agent.guardrails.model_copy(update={"holdout_share": 0.0}),
        }
    )
    #  (days since the last order, hours since the last message, expected message)
    cases = [
        (29, 2000.0, None),  # not due yet
        (30, 2000.0, "we_miss_you"),  # due today, nothing sent in a long while
        (30, 10.0, "we_miss_you"),  # a message yesterday, before the step came due
        (33, 2000.0, "we_miss_you"),  # due since day 30 and never sent (blocked until now)
        (33, 50.0, None),  # sent on day 31: once is enough
        (44, 300.0, "ten_off"),  # the reminder two weeks later
        (50, 100.0, None),  # the reminder went out on day 45
        (58, 2000.0, None),  # past the last step's window (44 + 14 days)
    ]
    n = len(cases) * 10
    batch = customers(
        n,
        days_since_last_order=[cases[i % len(cases)][0] for i in range(n)],
        hours_since_last_message=[cases[i % len(cases)][1] for i in range(n)],
    )
    rows, _ = _decide(batch, only_rule)
    for row in rows:
        i = int(row["customer_id"][1:])
        expected = cases[i % len(cases)][2]
        assert row["propensity"] == 1.0
        assert row["experiment_group"] == "treatment"  # the agent's own policy here
        if expected is None:
            assert row["message_id"] is None and row["action_id"] == "no_send", cases[i % 8]
        else:
            assert (row["message_id"], row["channel"], row["local_hour"]) == (
                expected,
                "email",
                10,
            ), cases[i % len(cases)]


def test_business_as_usual_journey_counts_only_its_own_agents_messages():
    """Another agent's message (any-agent hours_since_last_message) does not stop the journey;
    its own (the agent's contact history, own_contact_column) does; NULL there: never sent."""
    agent = load_agent(WINBACK)
    only_rule = agent.model_copy(
        update={
            "policy": agent.baselines[0],
            "baselines": [],
            "guardrails": agent.guardrails.model_copy(update={"holdout_share": 0.0}),
        }
    )
    #  (hours since any agent's last message, since this agent's, whether the step is sent)
    cases = [(10.0, None, True), (10.0, 2000.0, True), (10.0, 50.0, False), (80.0, 80.0, True)]
    n = len(cases) * 10
    batch = customers(
        n,
        days_since_last_order=[33] * n,  # due since day 30
        hours_since_last_message=[cases[i % len(cases)][0] for i in range(n)],
        **{
            own_contact_column(agent): pa.array(
                [cases[i % len(cases)][1] for i in range(n)], type=pa.float64()
            )
        },
    )
    rows, _ = _decide(batch, only_rule)
    for row in rows:
        case = cases[int(row["customer_id"][1:]) % len(cases)]
        assert (row["message_id"] == "we_miss_you") is case[2], case
        assert (row["message_id"] is None) is not case[2], case


def test_decisions_are_reproducible():
    a, _ = _decide(customers(500))
    b, _ = _decide(customers(500))
    assert a == b


# -- send time ------------------------------------------------------------------------------


def test_send_time_follows_daylight_saving():
    before = hour_table("America/New_York", date(2026, 3, 7))
    after = hour_table("America/New_York", date(2026, 3, 9))
    assert str(before[10]) == "2026-03-07T15:00:00"  # EST, UTC-5
    assert str(after[10]) == "2026-03-09T14:00:00"  # EDT, UTC-4
    assert np.isnat(hour_table("America/New_York", date(2026, 3, 8))[2])  # 02:00 does not exist
