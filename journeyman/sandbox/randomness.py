"""Seeded random streams: every draw derives from (world seed, purpose, day), never from history.

A day's randomness depends only on the seed and the day, so running days in separate processes (or
re-running one) gives the same world as running them in one.
"""

from __future__ import annotations

import zlib
from datetime import date, timedelta

import numpy as np

_EPOCH = date(1970, 1, 1)


def day_number(day: date) -> int:
    """Days since 1970-01-01 (the integer day used throughout the world's state)."""
    return (day - _EPOCH).days


def day_of(number: int) -> date:
    """The date of a day number (inverse of day_number)."""
    return _EPOCH + timedelta(days=number)


def stream(seed: int, purpose: str, day: date | None = None) -> np.random.Generator:
    """An independent generator for one purpose (and optionally one day) of one world."""
    key = [int(seed) & 0xFFFFFFFF, zlib.crc32(purpose.encode())]
    if day is not None:
        key.append(day_number(day) + 100_000)
    return np.random.default_rng(np.random.SeedSequence(key))
