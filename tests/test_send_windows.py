"""Send windows: the latest instant a late message may still leave — never after the customer's
local day, never into the quiet hours that follow its send time, never past the agent's
`send_window_hours` — computed per time zone, DST included."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from journeyman.decisioning.send_time import hour_table, send_deadlines

DAY = date(2026, 3, 2)


def _local(instant: np.datetime64, zone: str) -> datetime:
    return instant.astype(datetime).replace(tzinfo=UTC).astimezone(ZoneInfo(zone))


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/Los_Angeles", "Asia/Kolkata"])
def test_without_quiet_hours_the_window_ends_at_local_midnight(zone):
    hours = np.array([8, 13, 19])
    until = send_deadlines(np.array([zone] * 3), hours, DAY)
    for hour, end in zip(hours, until, strict=True):
        due = hour_table(zone, DAY)[hour]
        local_due, local_end = _local(due, zone), _local(end, zone)
        assert end > due
        assert (local_end.hour, local_end.minute) == (0, 0)
        assert (local_end.date() - local_due.date()).days == 1  # the midnight that ends its day


def test_quiet_hours_after_the_send_time_close_the_window_first():
    zone = "Europe/Berlin"
    until = send_deadlines(np.array([zone, zone]), np.array([10, 21]), DAY, quiet_start=21)
    assert _local(until[0], zone).hour == 21  # 10:00 may go out late until 21:00
    assert _local(until[1], zone).hour == 0  # quiet hours that began earlier do not cut it


def test_send_window_hours_is_the_tighter_bound_when_shorter():
    zone = "America/New_York"
    until = send_deadlines(np.array([zone]), np.array([9]), DAY, quiet_start=21, window_hours=2)
    due = hour_table(zone, DAY)[9]
    assert until[0] - due == np.timedelta64(2 * 3600, "s")


def test_a_day_with_a_dst_jump_keeps_windows_inside_the_local_day():
    zone = "America/New_York"
    spring = date(2026, 3, 8)  # 02:00 → 03:00 locally
    hours = np.array([1, 10, 22])
    until = send_deadlines(np.array([zone] * 3), hours, spring)
    for hour, end in zip(hours, until, strict=True):
        due = hour_table(zone, spring)[hour]
        assert end > due
        assert _local(end, zone).hour == 0


def test_an_hour_that_does_not_exist_has_no_window():
    zone = "America/New_York"
    until = send_deadlines(np.array([zone]), np.array([2]), date(2026, 3, 8))
    assert np.isnat(until[0])
