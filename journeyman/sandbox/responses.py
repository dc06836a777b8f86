"""How a customer responds to one delivered message — one model shared by simulation and truth.

Stages (per message, each a probability computed vectorised):

1. **Delivery.** Opted-out / never-consented channels are suppressed by the ESP (no events).
   Dead or malformed addresses and earlier hard bounces bounce (hard); otherwise a soft bounce
   happens at a small per-channel rate. Everything else is `delivered`.
2. **Seen** (e-mail: the `open` event; SMS and push: latent). E-mail: engagement × channel
   preference^½ × hour × fatigue. SMS is nearly always read; push is noticed about half the time.
3. **Click** (e-mail and SMS: `click`; push: the tap, reported as `open`), given seen: a base rate ×
   interest in the message's category × offer appeal × channel preference^½ × fatigue^½.
4. **Incremental order**, given seen: higher after a click (q_click) than without one (q_seen),
   both × M where M = category match × offer × cycle phase × tone × value proposition ×
   channel preference^½ × fatigue. Lapsed customers respond more to discounts (win-back); dropped-
   out customers convert at a quarter of the rate of due ones, and come back alive if they do.
5. **Unsubscribe / complaint**, given delivered: base rate × fatigue × (disliked channel) × tone ×
   (SMS at night).

Hour effect: 0.7 + 0.6·exp(-½(d/w)²) with d the circular distance between the local send hour
(its middle) and the customer's preferred hour, w their width; sends between 0h and 6h local × 0.75.
Fatigue k = messages delivered to the customer in the previous 7 days (all channels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from journeyman.sandbox.creative import ANY_CATEGORY, OFFER_LIFT, OFFER_PAY
from journeyman.sandbox.population import Traits
from journeyman.sandbox.purchases import cycle_rate, lapse, readiness
from journeyman.sandbox.randomness import Draws
from journeyman.sandbox.state import CustomerState

# per channel: email, sms, push
SOFT_BOUNCE = np.array([0.0061, 0.004, 0.01])
SEEN_BASE = np.array([1.0, 0.90, 0.45])
CLICK_BASE = np.array([0.11, 0.07, 0.12])
Q_CLICK = np.array([0.13, 0.07, 0.085])
Q_SEEN = np.array([0.019, 0.003, 0.005])
UNSUB_BASE = np.array([0.0021, 0.006, 0.001])
COMPLAINT_BASE = np.array([0.0001, 0.0004, 0.0])

FATIGUE_SEEN, FATIGUE_CONV, FATIGUE_UNSUB, FATIGUE_COMPLAINT = 0.18, 0.15, 0.6, 0.8
DROPPED_OUT_CONVERSION = 0.25
WIN_BACK_DISCOUNT_BOOST = 1.0
# tone -> (conversion intercept, conversion × readiness slope, unsubscribe multiplier)
TONE_EFFECTS = np.array([[1.0, 0.0, 1.0], [0.8, 0.4, 1.4], [0.95, 0.0, 0.9], [1.0, 0.0, 1.1]])
ATTRIBUTION_DELAY = ((0.6, 4.0 / 24), (0.4, 3.0))  # (weight, mean days) of exponential delays
MAX_DELAY_DAYS = 10.0


@dataclass
class Actions:
    """Candidate or delivered messages: one row per (customer position, action)."""

    idx: np.ndarray
    channel: np.ndarray  # 0 email, 1 sms, 2 push
    local_hour: np.ndarray
    category: np.ndarray
    offer: np.ndarray
    tone: np.ndarray
    value_prop: np.ndarray


@dataclass
class Response:
    """Stage probabilities for each action (see module docstring)."""

    suppressed: np.ndarray  # bool: the ESP drops it, no events
    hard_bounce: np.ndarray  # bool
    soft_bounce: np.ndarray
    seen: np.ndarray
    click: np.ndarray
    conv_click: np.ndarray
    conv_seen: np.ndarray
    unsubscribe: np.ndarray
    complaint: np.ndarray
    pay: np.ndarray  # share of the order value paid (offer)

    @property
    def delivered(self) -> np.ndarray:
        """P(delivered)."""
        return np.where(self.suppressed | self.hard_bounce, 0.0, 1.0 - self.soft_bounce)

    @property
    def opt_out(self) -> np.ndarray:
        """P(the message makes the customer unsubscribe or complain)."""
        quit_ = 1 - (1 - self.unsubscribe) * (1 - self.complaint)
        return self.delivered * quit_

    @property
    def conversion(self) -> np.ndarray:
        """P(an incremental order caused by the message, at any delay)."""
        per_seen = self.click * self.conv_click + (1 - self.click) * self.conv_seen
        return self.delivered * self.seen * per_seen


def hour_effect(pref_hour: np.ndarray, width: np.ndarray, local_hour: np.ndarray) -> np.ndarray:
    """Response multiplier of a local send hour (peaks at the preferred hour)."""
    d = np.abs(np.mod(local_hour + 0.5 - pref_hour + 12.0, 24.0) - 12.0)
    night = np.where(local_hour < 6, 0.75, 1.0)
    return (0.7 + 0.6 * np.exp(-0.5 * (d / width) ** 2)) * night


def delay_cdf(days: np.ndarray | float) -> np.ndarray:
    """P(an incremental order comes within `days` of the message)."""
    x = np.minimum(np.asarray(days, dtype=float), MAX_DELAY_DAYS)

    def raw(v: np.ndarray | float) -> np.ndarray:
        return sum(w * (1 - np.exp(-np.asarray(v) / m)) for w, m in ATTRIBUTION_DELAY)

    return raw(x) / raw(MAX_DELAY_DAYS)


def draw_delays(rng: Draws, size: int) -> np.ndarray:
    """Days from a message being seen to the incremental order (truncated mixture)."""
    weights = np.array([w for w, _ in ATTRIBUTION_DELAY])
    means = np.array([m for _, m in ATTRIBUTION_DELAY])
    kind = rng.choice(len(weights), size=size, p=weights / weights.sum())
    u = rng.random(size)
    cap = 1 - np.exp(-MAX_DELAY_DAYS / means[kind])
    return -means[kind] * np.log1p(-u * cap)


def respond(
    traits: Traits, state: CustomerState, actions: Actions, fatigue: np.ndarray, today: int
) -> Response:
    """Stage probabilities of each action, given the world's state at day number `today`."""
    i, ch = actions.idx, actions.channel
    suppressed = ~state.consent[i, ch]
    hard = ~traits.deliverable[i, ch] | state.hard_bounced[i, ch]
    pref = traits.channel_pref[i, ch]
    hour = hour_effect(traits.pref_hour[i], traits.hour_width[i], actions.local_hour)
    k = fatigue.astype(float)

    seen = np.where(ch == 0, traits.engagement[i] * np.sqrt(pref) * hour, SEEN_BASE[ch])
    seen = np.where(ch == 1, SEEN_BASE[1] * np.sqrt(hour), seen)
    seen = np.where(ch == 2, SEEN_BASE[2] * np.sqrt(pref) * hour, seen)
    seen = np.clip(seen / (1 + FATIGUE_SEEN * k), 0.0, 0.97)

    cat = actions.category.astype(np.int64)
    specific = cat != ANY_CATEGORY
    aff = np.where(specific, traits.affinity[i, np.minimum(cat, ANY_CATEGORY - 1)], 0.2)
    match = 0.3 + 3.5 * aff  # 1.0 at an average affinity (0.2)
    interest = match**0.3
    offer = actions.offer.astype(np.int64)
    click = CLICK_BASE[ch] * interest * (1 + 0.5 * OFFER_LIFT[offer]) * np.sqrt(pref)
    click = np.clip(click / np.sqrt(1 + FATIGUE_SEEN * k), 0.0, 0.9)

    mu = cycle_rate(traits.purchase_rate[i], state.n_orders[i])
    t = today - state.last_order_day[i]
    ready, lapsed = readiness(mu, t), lapse(mu, t)
    alive = state.alive[i]
    phase = np.where(alive, 0.35 + 1.3 * ready, DROPPED_OUT_CONVERSION)
    lapsed = np.where(alive, lapsed, 1.0)
    offer_effect = 1 + OFFER_LIFT[offer] * traits.price_sensitivity[i] * (
        1 + WIN_BACK_DISCOUNT_BOOST * lapsed
    )
    tone = TONE_EFFECTS[actions.tone.astype(np.int64)]
    tone_effect = tone[:, 0] + tone[:, 1] * ready
    vp = actions.value_prop.astype(np.int64)
    value_prop_effect = np.select(
        [vp == 1, vp == 2, vp == 3, vp == 5],
        [
            0.7 + 0.6 * ready,
            0.8 + 0.7 * lapsed,
            0.9 + 0.25 * (1 - lapsed),
            0.8 + 0.1 * np.minimum(state.n_orders[i], 4),
        ],
        1.0,
    )
    m = (
        np.sqrt(match)
        * offer_effect
        * phase
        * tone_effect
        * value_prop_effect
        * np.sqrt(pref)
        / (1 + FATIGUE_CONV * k)
    )
    night_sms = np.where((ch == 1) & (actions.local_hour < 7), 3.0, 1.0)
    unsub = UNSUB_BASE[ch] * (1 + FATIGUE_UNSUB * k) * tone[:, 2] * night_sms / np.sqrt(pref)
    complaint = COMPLAINT_BASE[ch] * (1 + FATIGUE_COMPLAINT * k) * night_sms
    return Response(
        suppressed=suppressed,
        hard_bounce=hard & ~suppressed,
        soft_bounce=SOFT_BOUNCE[ch],
        seen=seen,
        click=click,
        conv_click=np.clip(Q_CLICK[ch] * m, 0.0, 0.9),
        conv_seen=np.clip(Q_SEEN[ch] * m, 0.0, 0.5),
        unsubscribe=np.clip(unsub, 0.0, 0.5),
        complaint=np.clip(complaint, 0.0, 0.2),
        pay=OFFER_PAY[offer],
    )
