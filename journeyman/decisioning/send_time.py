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
