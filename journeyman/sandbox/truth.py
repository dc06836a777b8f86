"""Ground truth: the expected outcome of any action for any customer, so an oracle is computable.

For customer i on day d (state at the start of d) and window N days:

- organic purchase probability p_org = alive · (1 − S(t+N)/S(t)), with S the Erlang-2 survival
  of the purchase cycle and t the days since the last order (see purchases);
- incremental conversion of a message p_inc = P(delivered) · P(seen) · (P(click)·q_click +
  (1−P(click))·q_seen) · F(N), with the stage probabilities of responses and F the delay CDF;
- conversion = 1 − (1 − p_org)(1 − p_inc);
- revenue = v · [p_org · pay_org + p_inc · pay_offer], v the customer's mean order value,
  pay_offer the share paid under the message's offer, and pay_org the share an organic buyer
  pays (a discount coupon seen in the message is used by organic buyers too — cannibalisation).

Approximations, all second order at these rates: at most one organic order in the window; an
incremental order does not shorten the organic cycle within the window; the state is that at the
start of the day (later days in the window do not add fatigue).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np

from journeyman.sandbox import creative
from journeyman.sandbox.population import CHANNELS, Traits, channel_codes
from journeyman.sandbox.purchases import buy_probability, cycle_rate
from journeyman.sandbox.randomness import day_number
from journeyman.sandbox.responses import Actions, delay_cdf, respond
from journeyman.sandbox.state import CustomerState

NO_SEND = ("", "none", "no_send")


@dataclass(frozen=True)
class Action:
    """One candidate action: a channel (None = send nothing), a local hour and message tags."""

    channel: str | None
    local_hour: int = 10
    tags: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Reward:
    """Expected outcomes within the attribution window, one entry per (customer, action)."""

    conversion: np.ndarray  # P(at least one order)
    revenue: np.ndarray  # expected revenue of all orders
    baseline_conversion: np.ndarray  # same, had nothing been sent
    baseline_revenue: np.ndarray
    opt_out: np.ndarray  # P(unsubscribe or complaint caused by the message; 0 for no send)
    unsubscribe: np.ndarray  # P(an unsubscribe event); 0 for no send
    complaint: np.ndarray  # P(a complaint event: e-mail only); 0 for no send

    def penalty(self, penalties: Mapping[str, float]) -> np.ndarray:
        """Expected goal penalty, Σ penalty × P(event), as the agent's learning reward counts it."""
        per_unsubscribe = penalties.get("unsubscribe", 0.0)
        return per_unsubscribe * self.unsubscribe + penalties.get("complaint", 0.0) * self.complaint

    @property
    def incremental_conversion(self) -> np.ndarray:
        return self.conversion - self.baseline_conversion

    @property
    def incremental_revenue(self) -> np.ndarray:
        return self.revenue - self.baseline_revenue


def _broadcast(value: object, n: int) -> np.ndarray:
    if isinstance(value, str) or value is None or np.isscalar(value):
        return np.full(n, value, dtype=object)
    arr = np.asarray(value, dtype=object)
    if arr.shape != (n,):
        raise ValueError(f"expected {n} values, got shape {arr.shape}")
    return arr


class GroundTruth:
    """The world's latent traits and state at the start of `day`, and what actions would yield."""

    def __init__(
        self, traits: Traits, state: CustomerState, fatigue: np.ndarray, day: date
    ) -> None:
        self.traits = traits
        self.state = state
        self.fatigue = fatigue
        self.day = day

    def expected_reward(
        self,
        customer_ids: Sequence[str] | np.ndarray,
        channel: str | None | Sequence[str | None] | np.ndarray,
        local_hour: int | Sequence[int] | np.ndarray = 10,
        tags: Mapping[str, str | Sequence[str] | np.ndarray] | None = None,
        *,
        window_days: int = 7,
    ) -> Reward:
        """Expected conversion and revenue within `window_days` of sending each action on `day`.

        All arguments are arrays of one length (scalars broadcast): `channel` is `email`, `sms`,
        `push`, or None / `none` for no send (the organic baseline); `local_hour` is the
        customer's local clock hour of the send; `tags` maps `category`, `offer`, `tone`,
        `value_prop` to values. Unknown customer ids raise ValueError.
        """
        ids = np.asarray(customer_ids, dtype=str)
        n = len(ids)
        idx = self.traits.index_of(ids)
        if (idx < 0).any():
            raise ValueError(f"unknown customer ids: {ids[idx < 0][:5].tolist()}")
        today = day_number(self.day)
        st = self.state
        mu = cycle_rate(self.traits.purchase_rate[idx], st.n_orders[idx])
        p_org = np.where(
            st.alive[idx],
            buy_probability(mu, today - st.last_order_day[idx], float(window_days)),
            0.0,
        )
        value = self.traits.value_median[idx]
        coupon = np.where(st.coupon_until[idx] >= today, st.coupon_pay[idx], 1.0)
        base_conv, base_rev = p_org, p_org * value * coupon

        channels = _broadcast(channel, n)
        names = np.array([c if c is not None else "" for c in channels], dtype=str)
        send = ~np.isin(names, NO_SEND)
        unknown = send & ~np.isin(names, CHANNELS)
        if unknown.any():
            raise ValueError(f"unknown channels: {sorted(set(names[unknown]))}")
        tag_map = dict(tags or {})
        actions = Actions(
            idx=idx,
            channel=np.maximum(channel_codes(names), 0),
            local_hour=np.asarray(_broadcast(local_hour, n), dtype=np.int64) % 24,
            category=creative.category_codes(_broadcast(tag_map.get("category"), n)),
            offer=creative.offer_codes(_broadcast(tag_map.get("offer"), n)),
            tone=creative.tone_codes(_broadcast(tag_map.get("tone"), n)),
            value_prop=creative.value_prop_codes(_broadcast(tag_map.get("value_prop"), n)),
        )
        resp = respond(self.traits, st, actions, self.fatigue[idx], today)
        p_inc = np.where(send, resp.conversion * delay_cdf(window_days), 0.0)
        saw_offer = np.where(send & (resp.pay < 1.0), resp.delivered * resp.seen, 0.0)
        pay_org = coupon * (1 - saw_offer) + np.minimum(coupon, resp.pay) * saw_offer
        conversion = 1 - (1 - p_org) * (1 - p_inc)
        revenue = value * (p_org * pay_org + p_inc * resp.pay)
        opt_out = np.where(send, resp.opt_out, 0.0)
        unsubscribe = np.where(send, resp.delivered * resp.unsubscribe, 0.0)
        email = actions.channel == 0
        complaint = np.where(send & email, resp.delivered * resp.complaint, 0.0)
        return Reward(conversion, revenue, base_conv, base_rev, opt_out, unsubscribe, complaint)

    def best_actions(
        self,
        customer_ids: Sequence[str] | np.ndarray,
        actions: Sequence[Action],
        *,
        objective: str = "revenue",
        window_days: int = 7,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The oracle: per customer, the index of the best action and its expected value.

        `objective` is `revenue` or `conversion`. Include Action(None) to allow sending nothing.
        """
        if objective not in ("revenue", "conversion"):
            raise ValueError("objective must be 'revenue' or 'conversion'")
        ids = np.asarray(customer_ids, dtype=str)
        values = np.empty((len(actions), len(ids)))
        for a, action in enumerate(actions):
            reward = self.expected_reward(
                ids, action.channel, action.local_hour, action.tags, window_days=window_days
            )
            values[a] = getattr(reward, objective)
        best = values.argmax(axis=0)
        return best, values[best, np.arange(len(ids))]
