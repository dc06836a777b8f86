"""The guardrails engine: which actions each customer may receive today, and why not.

Vectorized over customers × actions. Checks: consent (per channel, which also requires a valid
contact point), quiet hours in the customer's local time, local hours that do not exist today
(daylight saving), caps per day / week / channel-week (history plus what earlier agents planned
today), and the minimum gap since the last message.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from journeyman.decisioning.actions import ActionSpace
from journeyman.decisioning.schema import CHANNELS, Guardrails

NO_CONSENT = "no_consent"
CAP_REACHED = "cap_reached"
MIN_GAP = "min_gap"
QUIET_HOURS = "quiet_hours"
NO_SEND_TIME = "no_send_time"
# Reason codes in the order the checks run (0 = allowed). An action records the first check it
# fails; a customer with no allowed send is reported with the check its best action got furthest
# in (the highest code): e-mail blocked by the minimum gap while SMS lacks consent is `min_gap`.
REASONS = np.array(["", NO_CONSENT, CAP_REACHED, QUIET_HOURS, NO_SEND_TIME, MIN_GAP], dtype=object)
_CODE = {r: np.uint8(i) for i, r in enumerate(REASONS)}


@dataclass
class ContactHistory:
    """What each customer already received (from features) plus what is planned today."""

    messages_last_7d: np.ndarray  # int (n,)
    channel_last_7d: dict[str, np.ndarray]  # channel -> int (n,)
    last_message_at: np.ndarray  # datetime64[s] (n,), NaT if never
    planned_today: np.ndarray = field(init=False)
    planned_channel_today: dict[str, np.ndarray] = field(init=False)

    def __post_init__(self) -> None:
        n = len(self.messages_last_7d)
        self.planned_today = np.zeros(n, dtype=np.int64)
        self.planned_channel_today = {c: np.zeros(n, dtype=np.int64) for c in CHANNELS}

    def take(self, rows: np.ndarray) -> ContactHistory:
        """The history of a subset of customers (a copy)."""
        sub = ContactHistory(
            messages_last_7d=self.messages_last_7d[rows],
            channel_last_7d={c: v[rows] for c, v in self.channel_last_7d.items()},
            last_message_at=self.last_message_at[rows],
        )
        sub.planned_today = self.planned_today[rows]
        sub.planned_channel_today = {c: v[rows] for c, v in self.planned_channel_today.items()}
        return sub

    def record(self, rows: np.ndarray, channels: np.ndarray, send_at: np.ndarray) -> None:
        """Add today's planned sends (row indices, channels, UTC instants)."""
        np.add.at(self.planned_today, rows, 1)
        for c in CHANNELS:
            np.add.at(self.planned_channel_today[c], rows[channels == c], 1)
        current = self.last_message_at[rows]
        later = np.isnat(current) | (send_at > current)
        self.last_message_at[rows[later]] = send_at[later]


@dataclass(frozen=True)
class GuardrailVerdict:
    """Allowed actions per customer, and the reason each blocked action is blocked."""

    codes: np.ndarray  # uint8 (n, K): 0 when allowed, else the first failing check's code

    @property
    def allowed(self) -> np.ndarray:
        return self.codes == 0

    def blocked_reason(self, rows: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Reason string ('' if allowed) for one action per listed row."""
        return REASONS[self.codes[rows, actions]]

    def send_block_reason(self, space: ActionSpace) -> np.ndarray:
        """Per customer, why no send action is allowed ('' if one is): the check that the
        customer's most promising action failed (see REASONS)."""
        sends = self.codes[:, space.is_send]
        if sends.shape[1] == 0:
            return np.full(len(sends), "", dtype=object)
        blocked = (sends != 0).all(axis=1)
        return REASONS[np.where(blocked, sends.max(axis=1), 0)]


def evaluate(
    rules: Guardrails,
    space: ActionSpace,
    consent: dict[str, np.ndarray],
    history: ContactHistory,
    instants: np.ndarray,
) -> GuardrailVerdict:
    """Apply every guardrail to every (customer, action) pair.

    consent: channel -> bool (n,); instants: (n, 24) UTC datetime64 of each local hour today.
    """
    n, k = len(history.messages_last_7d), space.size
    codes = np.zeros((n, k), dtype=np.uint8)

    def block(mask: np.ndarray, reason: str) -> None:
        mask = np.broadcast_to(mask, (n, k))
        codes[(codes == 0) & mask] = _CODE[reason]

    sends = space.is_send[None, :]
    for c in CHANNELS:
        channel_cols = (space.channel == c)[None, :]
        ok = consent.get(c, np.zeros(n, dtype=bool)).astype(bool)
        block(channel_cols & ~ok[:, None], NO_CONSENT)

    today = history.planned_today
    over_day = today >= rules.max_per_day
    over_week = history.messages_last_7d + today >= rules.max_per_week
    block(sends & (over_day | over_week)[:, None], CAP_REACHED)
    for c, cap in rules.max_per_channel_per_week.items():
        used = history.channel_last_7d.get(c, np.zeros(n, dtype=np.int64))
        over = used + history.planned_channel_today[c] >= cap
        block((space.channel == c)[None, :] & over[:, None], CAP_REACHED)

    if rules.quiet_hours is not None:
        quiet = np.array(
            [
                space.is_send[i] and rules.quiet_hours.contains(int(h))
                for i, h in enumerate(space.hour)
            ]
        )
        block(quiet[None, :], QUIET_HOURS)

    hours = np.where(space.is_send, space.hour, 0)
    action_instants = instants[:, hours]  # (n, K)
    block(sends & np.isnat(action_instants), NO_SEND_TIME)

    if rules.min_gap_hours > 0:
        gap = np.timedelta64(int(rules.min_gap_hours * 3600), "s")
        last = history.last_message_at[:, None]
        too_soon = ~np.isnat(last) & ~np.isnat(action_instants) & (action_instants - last < gap)
        block(sends & too_soon, MIN_GAP)

    return GuardrailVerdict(codes=codes)
