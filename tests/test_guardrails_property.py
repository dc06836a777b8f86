"""Property test: whatever the customers, histories and configuration, no decision breaks a
guardrail (consent, quiet hours, caps per day / week / channel, minimum gap, holdout,
eligibility), across several agents deciding for the same customers on the same day."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journeyman import settings as jm_settings
from journeyman.decisioning.config import AgentConfig, QuietHours
from journeyman.decisioning.decide import (
    AgentDecider,
    audience_column,
    contact_history,
    decide_batch,
)

ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "Australia/Sydney",
    "America/Sao_Paulo",
    "Pacific/Chatham",
    "UTC",
    "Africa/Johannesburg",
]
DAYS = [
    date(2026, 3, 8),
    date(2026, 3, 29),
    date(2026, 10, 25),
    date(2026, 11, 1),
    date(2026, 4, 5),
    date(2026, 6, 15),
]
BASE = yaml.safe_load((jm_settings.AGENTS_DIR / "winback.yml").read_text())


@st.composite
def agent_configs(draw, name: str) -> AgentConfig:
    data = yaml.safe_load(yaml.safe_dump(BASE))
    data["name"] = name
    start, end = draw(st.integers(0, 23)), draw(st.integers(0, 23))
    hours = sorted(draw(st.sets(st.integers(0, 23), min_size=1, max_size=6)))
    quiet = None if start == end else {"start": start, "end": end}  # equal: an error at load
    if quiet and all(QuietHours(**quiet).contains(h) for h in hours):
        quiet = None  # a config with no sendable hour is rejected at load time
    data["dimensions"]["send_hours"] = hours
    data["guardrails"] = {
        "quiet_hours": quiet,
        "max_per_day": draw(st.integers(0, 2)),
        "max_per_week": draw(st.integers(0, 5)),
        "max_per_channel_per_week": draw(
            st.dictionaries(st.sampled_from(["email", "sms", "push"]), st.integers(0, 3))
        ),
        "min_gap_hours": draw(st.sampled_from([0, 12, 24, 48, 72])),
        "holdout_share": draw(st.sampled_from([0.0, 0.1, 0.5])),
    }
    data["policy"] = {"name": draw(st.sampled_from(["uniform_random", "rule_based"])), "params": {}}
    if data["policy"]["name"] == "rule_based":
        data["policy"]["params"] = {
            "days_after_last_order": 30,
            "channel": "email",
            "local_hour": hours[0],
            "message": "we_miss_you",
        }
    data["baselines"] = []
    return AgentConfig.model_validate(data)


@st.composite
def customer_batches(draw):
    n = draw(st.integers(1, 40))
    bools = st.lists(st.booleans(), min_size=n, max_size=n)
    counts = st.lists(st.integers(0, 4), min_size=n, max_size=n)
    hours_ago = st.lists(st.one_of(st.none(), st.integers(1, 200)), min_size=n, max_size=n)
    return {
        "customer_id": [f"c{i:04d}" for i in range(n)],
        "time_zone": draw(st.lists(st.sampled_from(ZONES), min_size=n, max_size=n)),
        "consent_email": draw(bools),
        "consent_sms": draw(bools),
        "consent_push": draw(bools),
        "messages_last_7d": draw(counts),
        "email_messages_last_7d": draw(counts),
        "sms_messages_last_7d": draw(counts),
        "push_messages_last_7d": draw(counts),
        "hours_ago": draw(hours_ago),
        "days_since_last_order": draw(
            st.lists(st.sampled_from([29, 30, 31]), min_size=n, max_size=n)
        ),
        "eligible": draw(bools),
    }


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    first=agent_configs("alpha"),
    second=agent_configs("beta"),
    raw=customer_batches(),
    day=st.sampled_from(DAYS),
)
def test_no_decision_violates_a_guardrail(first, second, raw, day):
    start = datetime.combine(day, datetime.min.time())
    last = [None if h is None else start - timedelta(hours=h) for h in raw["hours_ago"]]
    n = len(raw["customer_id"])
    columns = {k: v for k, v in raw.items() if k not in ("hours_ago", "eligible")}
    columns.update(
        last_message_at=pa.array(last, type=pa.timestamp("s")),
        has_ordered=[1] * n,
        **{audience_column(a): raw["eligible"] for a in (first, second)},
    )
    batch = pa.table(columns)
    history = contact_history(batch)
    rows = []
    for agent in (first, second):
        rows += [
            (agent, r)
            for r in decide_batch(AgentDecider.build(agent, []), batch, day, history).to_pylist()
        ]

    sent_today = {c: 0 for c in raw["customer_id"]}
    sent_channel = {}
    last_send = dict(zip(raw["customer_id"], last, strict=True))
    idx = {c: i for i, c in enumerate(raw["customer_id"])}
    for agent, row in rows:
        i = idx[row["customer_id"]]
        if not raw["eligible"][i]:
            assert row["exclusion_reason"] == "not_eligible" and row["message_id"] is None
        if row["experiment_group"] == "holdout":
            assert row["message_id"] is None
        if row["message_id"] is None:
            assert row["exclusion_reason"] is not None or row["action_id"] == "no_send"
            continue
        rules, channel, c = agent.guardrails, row["channel"], row["customer_id"]
        assert raw[f"consent_{channel}"][i], "sent without consent"
        send_at = row["send_at"]
        assert start <= send_at < start + timedelta(days=1)
        local = send_at.replace(tzinfo=UTC).astimezone(ZoneInfo(raw["time_zone"][i]))
        assert local.hour == row["local_hour"] and local.minute == 0
        if rules.quiet_hours is not None:
            assert not rules.quiet_hours.contains(row["local_hour"]), "sent in quiet hours"
        sent_today[c] += 1
        sent_channel[(c, channel)] = sent_channel.get((c, channel), 0) + 1
        assert sent_today[c] <= rules.max_per_day, "daily cap"
        assert raw["messages_last_7d"][i] + sent_today[c] <= rules.max_per_week, "weekly cap"
        cap = rules.max_per_channel_per_week.get(channel)
        if cap is not None:
            used = raw[f"{channel}_messages_last_7d"][i] + sent_channel[(c, channel)]
            assert used <= cap, "channel cap"
        if last_send[c] is not None and rules.min_gap_hours:
            gap = (send_at - last_send[c]).total_seconds() / 3600
            assert gap >= rules.min_gap_hours, "minimum gap"
        last_send[c] = send_at if last_send[c] is None else max(last_send[c], send_at)
    assert np.all([r["propensity"] is None or 0 < r["propensity"] <= 1 for _, r in rows])
