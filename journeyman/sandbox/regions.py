"""Where customers live: IANA time zones on five continents, their countries and phone prefixes.

Local hours are converted with the real tz database (daylight saving included).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

#: (time zone, ISO country, phone country code, national digits, share of the list)
REGIONS: tuple[tuple[str, str, str, int, float], ...] = (
    ("America/New_York", "US", "1", 10, 0.18),
    ("America/Chicago", "US", "1", 10, 0.08),
    ("America/Los_Angeles", "US", "1", 10, 0.10),
    ("America/Toronto", "CA", "1", 10, 0.04),
    ("America/Sao_Paulo", "BR", "55", 11, 0.06),
    ("America/Mexico_City", "MX", "52", 10, 0.04),
    ("Europe/London", "GB", "44", 10, 0.10),
    ("Europe/Berlin", "DE", "49", 10, 0.08),
    ("Europe/Paris", "FR", "33", 9, 0.06),
    ("Europe/Madrid", "ES", "34", 9, 0.03),
    ("Asia/Tokyo", "JP", "81", 10, 0.05),
    ("Asia/Kolkata", "IN", "91", 10, 0.05),
    ("Asia/Singapore", "SG", "65", 8, 0.02),
    ("Australia/Sydney", "AU", "61", 9, 0.05),
    ("Africa/Johannesburg", "ZA", "27", 9, 0.03),
    ("Africa/Lagos", "NG", "234", 10, 0.03),
)

TIME_ZONES: tuple[str, ...] = tuple(r[0] for r in REGIONS)
COUNTRIES: tuple[str, ...] = tuple(r[1] for r in REGIONS)
PHONE_CODES: tuple[str, ...] = tuple(r[2] for r in REGIONS)
PHONE_DIGITS: tuple[int, ...] = tuple(r[3] for r in REGIONS)
SHARES = np.array([r[4] for r in REGIONS]) / sum(r[4] for r in REGIONS)


def utc_offsets_hours(day: date, utc_hour: np.ndarray | None = None) -> np.ndarray:
    """UTC offset in hours of every region at `day` 12:00 UTC, or per (region, UTC hour) grid.

    Without `utc_hour`: shape (n_regions,). With it: shape (n_regions, 24), exact at each hour.
    """
    zones = [ZoneInfo(tz) for tz in TIME_ZONES]
    if utc_hour is None:
        instant = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
        return np.array([instant.astimezone(z).utcoffset().total_seconds() / 3600 for z in zones])
    base = datetime(day.year, day.month, day.day, tzinfo=UTC)
    grid = np.empty((len(zones), 24))
    for h in range(24):
        instant = base + timedelta(hours=h)
        grid[:, h] = [instant.astimezone(z).utcoffset().total_seconds() / 3600 for z in zones]
    return grid


def local_clock_hours(region: np.ndarray, at_utc: np.ndarray, day: date) -> np.ndarray:
    """Local time of day in fractional hours [0, 24) of UTC instants (datetime64) on `day`, for
    customers in `region` (instants outside the day use its first / last hour's offset)."""
    grid = utc_offsets_hours(day, np.arange(24))
    day0 = np.datetime64(day, "s")
    seconds = (at_utc.astype("datetime64[s]") - day0).astype(np.int64)
    utc_h = np.clip(seconds // 3600, 0, 23)
    return np.mod(seconds / 3600 + grid[region, utc_h], 24.0)


def local_hours(region: np.ndarray, send_at_utc: np.ndarray, day: date) -> np.ndarray:
    """Local clock hour (0-23) of UTC instants (datetime64) for customers in `region` on `day`."""
    return np.floor(local_clock_hours(region, send_at_utc, day)).astype(np.int64) % 24
