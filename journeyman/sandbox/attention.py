"""When a customer notices a delivered message: right away, or at their next active moment.

An SMS is read within minutes. An e-mail or a push notification is noticed right away with
probability 1 − SEEN_WHEN_ACTIVE (a lognormal delay around SEEN_DELAY_HOURS), otherwise when the
customer next turns to their phone or inbox: the next local time at their preferred hour, spread
by their hour width. So the times of a customer's opens and clicks, like their order times, hint
at the hour that suits them — what send-time optimization reads from engagement history.

Only timing is drawn here; whether a message is seen at all is the response model's (responses).
"""

from __future__ import annotations

import numpy as np

from journeyman.sandbox.population import Traits
from journeyman.sandbox.randomness import Draws

SEEN_DELAY_HOURS = np.array([1.5, 0.05, 0.2])  # median hours from delivery to seen, per channel
SEEN_WHEN_ACTIVE = np.array([0.5, 0.0, 0.5])  # share noticed at the next active moment
CLICK_DELAY_SECONDS = 90.0  # median seconds from seen to click (lognormal, σ 0.8)


def click_delay_seconds(rng: Draws, m: int) -> np.ndarray:
    """Seconds from seeing a message to clicking it, for m clicks."""
    return np.exp(rng.normal(np.log(CLICK_DELAY_SECONDS), 0.8, m))


def seen_delay_hours(
    prompt: Draws,
    active: Draws,
    traits: Traits,
    idx: np.ndarray,
    channel: np.ndarray,
    local_hour: np.ndarray,
) -> np.ndarray:
    """Hours from delivery to being seen, per message.

    `idx`: customer positions; `channel`: codes (0 email, 1 sms, 2 push); `local_hour`: the
    delivery's local time of day in fractional hours. `prompt` draws the right-away delays (one
    normal per message), `active` which messages wait and until when (two draws per message).
    """
    m = len(idx)
    right_away = SEEN_DELAY_HOURS[channel] * np.exp(prompt.normal(0, 1.1, m))
    waits = active.random(m) < SEEN_WHEN_ACTIVE[channel]
    target = traits.pref_hour[idx] + traits.hour_width[idx] * active.standard_normal(m)
    until_active = np.mod(target - local_hour, 24.0)
    return np.where(waits, until_active, right_away)
