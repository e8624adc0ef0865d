"""MT pacing per carrier: a token bucket for the configured `tps`, and the rate actually sent.

Carriers sell a throughput (`tps`: SMS per second) and drop or refuse what goes beyond it. The
outbox asks a carrier's `Throttle` before each MT send; the cost of an MT is its number of SMS
parts, since that is what the carrier's SMSC counts. The bucket holds at most one second of
tokens (`burst`, at least one), so a quiet carrier may take a burst of `tps` SMS at once and is
then held to `tps` on average.

An MT of more parts than the bucket holds is let through once the bucket is full and leaves it
in debt, so the next MT waits for the debt to be repaid: over any span of T seconds a carrier
gets at most `burst + tps * T` SMS, plus the excess of one oversized MT.

`Throttle.measured` is the rate sent over the last `window` seconds, exported in /metrics next
to the configured limit (`smsgw_mt_rate` and `smsgw_mt_rate_limit`).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

Clock = Callable[[], float]
_EPSILON = 1e-9


class TokenBucket:
    """`rate` tokens a second, holding at most `burst` (default: one second's worth, at least 1)."""

    def __init__(self, rate: float, *, burst: float | None = None, clock: Clock = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self.clock = clock
        self._tokens = self.burst
        self._updated = clock()

    def take(self, cost: float = 1.0) -> float:
        """Take `cost` tokens and return 0, or return the seconds to wait before asking again.

        Nothing is taken when a wait is returned, so a caller that gives up owes nothing.
        """
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        needed = min(cost, self.burst)
        if self._tokens + _EPSILON >= needed:
            self._tokens -= cost
            return 0.0
        return (needed - self._tokens) / self.rate


class RateMeter:
    """Events per second over the last `window` seconds."""

    def __init__(self, *, window: float = 10.0, clock: Clock = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        self._events: deque[tuple[float, float]] = deque()
        self._total = 0.0

    def record(self, count: float = 1.0) -> None:
        self._events.append((self.clock(), count))
        self._total += count
        self._forget()

    def rate(self) -> float:
        self._forget()
        return self._total / self.window

    def _forget(self) -> None:
        horizon = self.clock() - self.window
        while self._events and self._events[0][0] <= horizon:
            self._total -= self._events.popleft()[1]
        if not self._events:
            self._total = 0.0   # no drift from float sums


class Throttle:
    """One carrier's MT pacing (`tps` None: unlimited) and its measured rate."""

    def __init__(self, tps: float | None, *, window: float = 10.0, clock: Clock = time.monotonic) -> None:
        self.limit = tps
        self._bucket = TokenBucket(tps, clock=clock) if tps is not None else None
        self._meter = RateMeter(window=window, clock=clock)

    def take(self, parts: int = 1) -> float:
        """0 when an MT of `parts` SMS may go now (it is counted as sent), else the seconds to wait."""
        wait = self._bucket.take(parts) if self._bucket is not None else 0.0
        if wait == 0.0:
            self._meter.record(parts)
        return wait

    @property
    def measured(self) -> float:
        """SMS per second sent over the last `window` seconds."""
        return self._meter.rate()
