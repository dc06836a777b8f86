"""Turn a customer's local send hour on the decision day into a UTC instant.

Decisions for logical date D are sent inside the UTC day [D 00:00, D+1 00:00): local hour h
becomes the one instant in that window whose wall-clock hour in the customer's zone is h. On
daylight-saving days a local hour that does not exist (spring forward) has no instant and is not
offered; a repeated hour (fall back) takes its first occurrence.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

NOT_AVAILABLE = np.datetime64("NaT", "s")


@lru_cache(maxsize=4096)
def hour_table(time_zone: str, day: date) -> np.ndarray:
    """datetime64[s] UTC instants for local hours 0..23 on `day`'s UTC window (NaT if none)."""
    try:
        zone = ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        return np.full(24, NOT_AVAILABLE)
    start = datetime.combine(day, time(0), tzinfo=UTC)
    end = start + timedelta(days=1)
    local_start = start.astimezone(zone).date()
    out = np.full(24, NOT_AVAILABLE)
    for local_day in (
        local_start - timedelta(days=1),
        local_start,
        local_start + timedelta(days=1),
    ):
        for hour in range(24):
            if not np.isnat(out[hour]):
                continue
            wall = datetime.combine(local_day, time(hour), tzinfo=zone)
            instant = wall.astimezone(UTC)
            if instant.astimezone(zone).hour != hour:  # skipped by a DST jump
                continue
            if start <= instant < end:
                out[hour] = np.datetime64(instant.replace(tzinfo=None), "s")
    return out


def send_instants(time_zones: np.ndarray, day: date) -> np.ndarray:
    """(n, 24) datetime64[s] matrix: UTC instant of each local hour for each customer."""
    zones, inverse = np.unique(time_zones.astype(str), return_inverse=True)
    tables = np.stack([hour_table(z, day) for z in zones]) if len(zones) else np.empty((0, 24))
    return tables[inverse].astype("datetime64[s]")


@lru_cache(maxsize=65536)
def _deadline(
    time_zone: str, day: date, hour: int, quiet_start: int | None, window_s: float | None
) -> np.datetime64:
    """The latest UTC instant a message due at local `hour` on `day` may still leave."""
    instant = hour_table(time_zone, day)[hour]
    if np.isnat(instant):
        return NOT_AVAILABLE
    zone = ZoneInfo(time_zone)
    due = instant.astype(datetime).replace(tzinfo=UTC)
    local = due.astimezone(zone)
    ends = [datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=zone)]
    if quiet_start is not None and quiet_start > local.hour:
        ends.append(datetime.combine(local.date(), time(quiet_start), tzinfo=zone))
    if window_s is not None:
        ends.append(due + timedelta(seconds=window_s))
    latest = min(end.astimezone(UTC) for end in ends)
    return np.datetime64(latest.replace(tzinfo=None), "s")


def send_deadlines(
    time_zones: np.ndarray,
    hours: np.ndarray,
    day: date,
    quiet_start: int | None = None,
    window_hours: float | None = None,
) -> np.ndarray:
    """datetime64[s] per send: the end of its send window — the end of the customer's local
    day, the start of the quiet hours that follow it, or `window_hours` after the send time,
    whichever comes first (a late send never lands at night or on another day)."""
    out = np.full(len(hours), NOT_AVAILABLE)
    window_s = None if window_hours is None else float(window_hours) * 3600
    pairs = np.rec.fromarrays([time_zones.astype(str), hours.astype(np.int64)])
    unique, inverse = np.unique(pairs, return_inverse=True)
    values = np.array(
        [_deadline(str(z), day, int(h), quiet_start, window_s) for z, h in unique],
        dtype="datetime64[s]",
    )
    if len(unique):
        out = values[inverse.reshape(-1)]
    return out
