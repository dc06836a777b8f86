"""Rate limits and retry timing: a token bucket per destination and exponential backoff with
full jitter, both on an injectable clock so tests run in microseconds."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]
Sleep = Callable[[float], None]


@dataclass(frozen=True)
class RateLimit:
    """A vendor's documented request rate: `per_second` steady, `burst` requests at once."""

    per_second: float
    burst: int = 1
    source: str = ""  # where the default comes from (vendor docs), for the docs and reports

    def __post_init__(self) -> None:
        if self.per_second <= 0 or self.burst < 1:
            raise ValueError("a rate limit needs per_second > 0 and burst >= 1")


class TokenBucket:
    """Blocks until a request may go out under `limit` (thread-safe)."""

    def __init__(
        self, limit: RateLimit, *, clock: Clock = time.monotonic, sleep: Sleep = time.sleep
    ) -> None:
        self.limit = limit
        self.clock = clock
        self.sleep = sleep
        self._tokens = float(limit.burst)
        self._stamp = clock()
        self._blocked_until = float("-inf")
        self._lock = threading.Lock()
        self.waited_s = 0.0

    def acquire(self, tokens: float = 1.0) -> float:
        """Take `tokens`, sleeping as long as the bucket needs; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self.clock()
                if now < self._blocked_until:
                    need = self._blocked_until - now
                else:
                    rate, cap = self.limit.per_second, float(self.limit.burst)
                    self._tokens = min(cap, self._tokens + max(0.0, now - self._stamp) * rate)
                    self._stamp = now
                    want = min(tokens, cap)
                    if self._tokens >= want - 1e-9:
                        self._tokens -= want
                        self.waited_s += waited
                        return waited
                    need = (want - self._tokens) / rate
            need = max(need, 1e-6)
            self.sleep(need)
            waited += need

    def pause_until(self, deadline: float) -> None:
        """Hold every request until `deadline` (on this bucket's clock): the moment the vendor
        named (Retry-After / X-RateLimit-Reset)."""
        with self._lock:
            self._blocked_until = max(self._blocked_until, deadline)
            self._tokens = min(self._tokens, 1.0)


@dataclass
class RetryPolicy:
    """Exponential backoff with full jitter, bounded in attempts and in total time.

    delay(n) = uniform(0, min(max_delay, base * 2**n)); a vendor-named wait (Retry-After,
    X-RateLimit-Reset) replaces the drawn delay when longer, but never beyond `max_delay`
    — past that the batch is left failed_retryable for the next run.
    """

    max_attempts: int = 6
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    max_total_s: float = 120.0
    seed: int | None = None
    clock: Clock = field(default=time.monotonic, repr=False)
    sleep: Sleep = field(default=time.sleep, repr=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def delay(self, attempt: int, vendor_wait_s: float | None = None) -> float:
        """Seconds to wait before retry number `attempt` (0-based)."""
        drawn = self._random.uniform(0.0, min(self.max_delay_s, self.base_delay_s * 2**attempt))
        if vendor_wait_s is not None and vendor_wait_s > drawn:
            return min(vendor_wait_s, self.max_delay_s)
        return drawn
