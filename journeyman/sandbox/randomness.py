"""Seeded random streams: every draw derives from (world seed, purpose, day), never from history;
the keyed ones also from the customer or message drawn for (KeyedStream).

A day's randomness depends only on the seed and the day, so running days in separate processes (or
re-running one) gives the same world as running them in one.
"""

from __future__ import annotations

import zlib
from datetime import date, timedelta

import numpy as np
from scipy.special import ndtri

from journeyman.decisioning.hashing import splitmix64

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


class KeyedStream:
    """Draws that belong to keys (a customer, a message), not to positions in an array.

    The j-th value of every call is a function of (seed, purpose, day, keys[j], the call's
    number) only: the same customer or message gets the same numbers whoever else is drawn for
    alongside. So two configurations run on the same world seed meet the same luck — a message
    sent in both converts in both or in neither (common random numbers, for paired comparisons).
    Implements the numpy Generator methods the world uses; every size's last axis is len(keys).
    """

    def __init__(self, seed: int, purpose: str, day: date, keys: np.ndarray) -> None:
        base = np.uint64((int(seed) & 0xFFFFFFFF) << 32 | zlib.crc32(purpose.encode()))
        with np.errstate(over="ignore"):
            salt = splitmix64(np.array([base ^ np.uint64(day_number(day) + 100_000)]))[0]
            self._keys = splitmix64(np.asarray(keys).astype(np.uint64) ^ salt)
        self._calls = 0

    def _unit(self, size: int | tuple[int, ...] | None) -> np.ndarray:
        """Uniforms in (0, 1), shape `size`, one fresh row of keyed numbers per leading row."""
        shape = (len(self._keys),) if size is None else np.atleast_1d(size).tolist()
        if shape[-1] != len(self._keys):
            raise ValueError(f"a keyed draw's last axis must be {len(self._keys)}, got {shape}")
        rows = int(np.prod(shape[:-1], dtype=np.int64))
        calls = np.arange(self._calls, self._calls + rows, dtype=np.uint64)
        self._calls += rows
        with np.errstate(over="ignore"):
            h = splitmix64(
                self._keys[None, :] ^ splitmix64(calls * np.uint64(0x9E3779B97F4A7C15))[:, None]
            )
        u = ((h >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)
        return u.reshape(shape)

    def random(self, size: int | tuple[int, ...] | None = None) -> np.ndarray:
        return self._unit(size)

    def uniform(self, low: float = 0.0, high: float = 1.0, size: int | None = None) -> np.ndarray:
        return low + (high - low) * self._unit(size)

    def standard_normal(self, size: int | None = None) -> np.ndarray:
        return ndtri(self._unit(size))

    def normal(self, loc: float = 0.0, scale: float = 1.0, size: int | None = None) -> np.ndarray:
        return loc + scale * ndtri(self._unit(size))

    def choice(
        self, a: int | np.ndarray, size: int | None = None, p: np.ndarray | None = None
    ) -> np.ndarray:
        """Like Generator.choice with replacement: an index (or element of `a`) per key."""
        options = np.arange(a) if isinstance(a, int | np.integer) else np.asarray(a)
        u = self._unit(size)
        if p is None:
            k = np.minimum((u * len(options)).astype(np.int64), len(options) - 1)
        else:
            cum = np.cumsum(p)
            k = np.minimum(np.searchsorted(cum / cum[-1], u, side="right"), len(options) - 1)
        return options[k]


#: what the world's draw functions accept: a positional stream or a keyed one
Draws = np.random.Generator | KeyedStream
