"""Stable, vectorized string hashing: the same customer and salt give the same number forever.

FNV-1a 64-bit over the UTF-8 bytes of `salt + ":" + key`, finished with the splitmix64 mixer.
Pure numpy, independent of batch composition, process and platform.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finalizer of each uint64 (wrapping arithmetic): a bijection that spreads
    neighbouring inputs over the whole range."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def hash64(keys: Sequence[str] | np.ndarray, salt: str) -> np.ndarray:
    """uint64 hash of each key under a salt."""
    encoded = np.char.encode(np.asarray(keys, dtype=str), "utf-8")
    n = encoded.shape[0]
    h = np.full(n, _FNV_OFFSET, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for byte in (salt + ":").encode():
            h = (h ^ np.uint64(byte)) * _FNV_PRIME
        if n == 0:
            return h
        width = encoded.dtype.itemsize
        if width:
            matrix = encoded.view(np.uint8).reshape(n, width)
            lengths = np.char.str_len(encoded)
            for j in range(width):
                active = lengths > j
                mixed = (h ^ matrix[:, j].astype(np.uint64)) * _FNV_PRIME
                h = np.where(active, mixed, h)
        return splitmix64(h)


def unit_uniform(keys: Sequence[str] | np.ndarray, salt: str) -> np.ndarray:
    """A deterministic uniform number in [0, 1) per key and salt."""
    return (hash64(keys, salt) >> np.uint64(11)).astype(np.float64) / float(1 << 53)
