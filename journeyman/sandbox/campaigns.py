"""The brand's past campaigns: the ESP history a warehouse already holds on day one.

Before the simulation starts, the brand has been sending a weekly e-mail newsletter (Tuesdays,
10:00 local), a fortnightly push (Thursdays, 18:00 local) and a monthly SMS (every fourth Saturday,
12:00 local) to every customer who had signed up and consented, for CAMPAIGN_WEEKS weeks. The
customers answer them with the world's own response model (responses, attention): a delivery or
a hard bounce (an undeliverable address bounces once, then the ESP suppresses it), e-mail opens,
clicks and push taps, at the times the customer would notice them. So engagement rates per
channel and the hours of a customer's opens and clicks carry information from the first day, as
they would for a real brand.

Simplifications: the history holds message events only. Its orders are the purchase history's
(purchases), so a campaign causes no order, unsubscribe or complaint, and consents are those
drawn for the population. Fatigue is one message in the previous week.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pyarrow as pa

from journeyman.sandbox import creative
from journeyman.sandbox.attention import click_delay_seconds, seen_delay_hours
from journeyman.sandbox.feed import RAW_SCHEMAS, day_time, events_table
from journeyman.sandbox.population import CHANNELS, Traits
from journeyman.sandbox.randomness import day_number, stream
from journeyman.sandbox.regions import utc_offsets_hours
from journeyman.sandbox.responses import Actions, respond
from journeyman.sandbox.state import CustomerState

CAMPAIGN_WEEKS = 26


@dataclass(frozen=True)
class Cadence:
    """One recurring campaign: channel code, weekday (Monday 0), local hour, every N weeks."""

    channel: int
    weekday: int
    local_hour: int
    every_weeks: int


CADENCES = (Cadence(0, 1, 10, 1), Cadence(2, 3, 18, 2), Cadence(1, 5, 12, 4))


def campaign_days(start: date, cadence: Cadence) -> list[date]:
    """The cadence's send days in the CAMPAIGN_WEEKS weeks before `start` (oldest first)."""
    last = start - timedelta(days=7)
    last -= timedelta(days=(last.weekday() - cadence.weekday) % 7)
    first = start - timedelta(weeks=CAMPAIGN_WEEKS)
    days = []
    day = last
    while day >= first:
        days.append(day)
        day -= timedelta(weeks=cadence.every_weeks)
    return days[::-1]


def campaign_history(
    seed: int, traits: Traits, state: CustomerState, start: date
) -> tuple[pa.Table, np.ndarray]:
    """raw.message_events rows of the past campaigns, and the (n, 3) hard-bounced flags at
    `start`. `state` is the customers' state at `start` (its consents and order counts)."""
    bounced = np.zeros((traits.n, 3), dtype=bool)
    tables = []
    sends = sorted(
        ((day, cadence) for cadence in CADENCES for day in campaign_days(start, cadence)),
        key=lambda send: (send[0], send[1].channel),
    )
    for day, cadence in sends:
        tables.append(_campaign(seed, traits, state, day, cadence, bounced))
    schema = RAW_SCHEMAS["message_events"]
    return (pa.concat_tables(tables) if tables else schema.empty_table()), bounced


def _campaign(
    seed: int,
    traits: Traits,
    state: CustomerState,
    day: date,
    cadence: Cadence,
    bounced: np.ndarray,
) -> pa.Table:
    """One campaign's events; marks the addresses that bounced in `bounced`."""
    ch = cadence.channel
    today = day_number(day)
    to = np.flatnonzero(
        traits.reachable[:, ch]
        & state.consent[:, ch]
        & ~bounced[:, ch]
        & (traits.signup_day < today - 1)  # signed up before the send, in any time zone
    )
    m = len(to)
    channel = np.full(m, ch, dtype=np.int64)
    neutral = np.zeros(m, dtype=np.int8)
    actions = Actions(
        idx=to,
        channel=channel,
        local_hour=np.full(m, cadence.local_hour, dtype=np.int64),
        category=np.full(m, creative.ANY_CATEGORY, dtype=np.int8),
        offer=neutral,
        tone=neutral,
        value_prop=neutral,
    )
    resp = respond(traits, state, actions, np.ones(m), today)
    purpose = f"campaign-{CHANNELS[ch]}"
    rng = stream(seed, purpose, day)
    u = rng.random((2, m))
    hard = ~traits.deliverable[to, ch]
    got = ~hard
    seen = got & (u[0] < resp.seen)
    click = seen & (u[1] < resp.click)
    bounced[to[hard], ch] = True

    offset = utc_offsets_hours(day)[traits.region[to]]
    local_send = cadence.local_hour + rng.random(m) / 60  # within the first minute
    t_send = today + (local_send - offset) / 24
    t_delivered = t_send + rng.uniform(2, 60, m) / 86400
    local_delivered = np.mod(local_send + (t_delivered - t_send) * 24, 24.0)
    seen_h = seen_delay_hours(
        rng, stream(seed, f"{purpose}-attention", day), traits, to, channel, local_delivered
    )
    t_seen = t_delivered + seen_h / 24
    t_click = t_seen + click_delay_seconds(rng, m) / 86400
    emitted = [("delivered", got, t_delivered), ("bounce", hard, t_delivered)]
    if ch == 2:  # a push tap is reported as an open
        emitted.append(("open", click, t_click))
    else:
        emitted.append(("click", click, t_click))
        if ch == 0:
            emitted.append(("open", seen, t_seen))
    message = np.char.add(f"cmp-{day:%Y%m%d}-{CHANNELS[ch]}-", traits.customer_id[to].astype(str))
    parts = []
    for kind, mask, at in emitted:
        keep = mask & (at < today + 6)  # answered within six days: all before `start`
        occurred = day_time(at[keep])
        loaded = occurred.astype("datetime64[D]") + np.timedelta64(26, "h")  # nightly export
        parts.append(
            events_table(
                message[keep],
                message[keep],
                traits.customer_id[to[keep]],
                np.full(int(keep.sum()), CHANNELS[ch]),
                kind,
                occurred,
                loaded,
            )
        )
    return pa.concat_tables(parts)
