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

Every process sending from one message store shares each carrier's bucket (`SharedThrottle`,
through the store's `pacing()`, store/pacing.py): the gateways on one PostgreSQL database, the
workers of `smsgw serve --workers N` and a `smsgw notify` run on one SQLite file. One round trip
to the database for the MT about to go and the few queued behind it; none for a carrier without
`tps`. Its `measured` stays this process's own sent rate; the carrier gets the sum of the
processes', at most `tps`. The outbox asks either kind through `acquire`.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from .logs import get_logger

Clock = Callable[[], float]
_EPSILON = 1e-9
log = get_logger(component="throttle")


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

    async def acquire(self, parts: int = 1, *, ahead: int = 0, urgent: bool = True) -> float:
        """`take`, as the outbox asks every throttle (a `SharedThrottle` asks the database); this
        process's queue already puts replies first, so `urgent` changes nothing here."""
        return self.take(parts)

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


class Pacing(Protocol):
    """A store's shared carrier pacing (store/pg_pacing.PgPacing, store/sqlite_pacing.SqlitePacing)."""

    async def take(self, carrier: str, *, need: float, want: float, rate: float, burst: float) -> Any: ...


class SharedThrottle:
    """One carrier's MT pacing shared by every gateway on the store: the bucket lives in the database.

    `acquire` asks the database for the MT about to go, and for the few queued behind it (`ahead`
    parts, at most `batch`) when the bucket holds them now: never a slot in the future, so the
    next slot still goes to the head of the queue as it is then, lanes first. Parts granted beyond
    the MT are this gateway's credit for the next MTs, for `hold` seconds (then dropped: the
    carrier gets less, never more).

    Replies first across gateways (CONTRACT §8): an MT that is not `urgent` (a notice, an API
    message that is not a one-time code) may book the carrier's line only up to `burst - reserve`
    parts ahead, half the bucket (none below 2 tps). The rest of the bucket is left to replies and
    one-time codes, whichever gateway has them: one finds its slot free at once, however many
    notices the other gateways are sending. The carrier's rate is the same (notices alone still
    get `tps`); only a campaign's first burst is halved. Credit from a reply's take is never
    spent on a notice (the outbox asks for the replies behind a reply only). A refusal's wait is kept, and asking again before it ends
    answers from it without a round trip. While the database cannot be reached (or takes over
    `timeout` seconds) the MT waits `retry` seconds and asks again.
    """

    def __init__(self, carrier: str, tps: float, pacing: Pacing, *, window: float = 10.0, retry: float = 1.0,
                 timeout: float = 2.0, batch: int = 32, hold: float = 0.05, clock: Clock = time.monotonic) -> None:
        if tps <= 0:
            raise ValueError("tps must be positive")
        self.carrier = carrier
        self.limit = tps
        self.burst = max(1.0, tps)   # one second's worth, as TokenBucket
        self.reserve = float(math.floor(self.burst / 2)) if self.burst >= 2 else 0.0   # for urgent MTs only
        self.pacing = pacing
        self.retry = retry
        self.timeout = timeout
        self.batch = batch
        self.hold = hold
        self.clock = clock
        self._meter = RateMeter(window=window, clock=clock)
        self._not_before = 0.0        # refused until then (this process's monotonic clock)
        self._credit = 0.0            # parts granted and not yet sent, until `_credit_until`
        self._credit_until = 0.0
        self._credit_urgent = False   # the credit came from an urgent take: notices may not spend it
        self._refused_bulk = False    # `_not_before` was a notice's refusal: a reply asks anyway
        self._failing = False
        self._others: set[float] = set()   # other rates seen in the shared row, each logged once

    async def acquire(self, parts: int = 1, *, ahead: int = 0, urgent: bool = True) -> float:
        """0 when an MT of `parts` SMS may go now (it is counted as sent), else the seconds to
        wait; `ahead`: the parts of the MTs queued behind it, which may be granted with it;
        `urgent`: a reply or a one-time code (the whole bucket), else a notice (all but the reserve)."""
        now = self.clock()
        if (now < self._credit_until and self._credit + _EPSILON >= parts
                and (urgent or not self._credit_urgent)):
            self._credit -= parts
            self._meter.record(parts)
            return 0.0
        if now < self._not_before and not (urgent and self._refused_bulk):
            return self._not_before - now
        burst = self.burst if urgent else self.burst - self.reserve
        try:
            answer = await asyncio.wait_for(self.pacing.take(
                self.carrier, need=float(parts), want=float(parts + min(ahead, self.batch)), rate=self.limit,
                burst=burst), self.timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:   # the database unreachable or slow: the MT waits and asks again
            if not self._failing:
                log.warning("mt pacing unavailable, sends wait", carrier=self.carrier, retry_s=self.retry,
                            error=str(exc) or type(exc).__name__)
            self._failing = True
            self._not_before = self.clock() + self.retry
            self._refused_bulk = False
            return self.retry
        if self._failing:
            log.info("mt pacing available again", carrier=self.carrier)
            self._failing = False
        self._notice_rate(answer.rate)
        if answer.granted <= 0:
            self._not_before = self.clock() + answer.wait
            self._refused_bulk = not urgent
            return answer.wait
        self._refused_bulk = False
        self._credit = answer.granted - parts
        self._credit_urgent = urgent
        self._credit_until = self.clock() + self.hold
        self._meter.record(parts)
        return 0.0

    @property
    def measured(self) -> float:
        """SMS per second this gateway sent over the last `window` seconds (not the other gateways')."""
        return self._meter.rate()

    def _notice_rate(self, rate: float) -> None:
        if abs(rate - self.limit) > _EPSILON and rate not in self._others:
            self._others.add(rate)
            log.warning("mt pacing: another gateway paces this carrier at another tps", carrier=self.carrier,
                        tps=self.limit, other_tps=rate)


def throttle_for(store: object, carrier: str, tps: float | None) -> Throttle | SharedThrottle:
    """The throttle of `carrier` for an outbox on `store`: shared through the store's `pacing()`
    (both backends have one) when the carrier has a `tps`, else this process's own."""
    pacing = getattr(store, "pacing", None)
    if tps is not None and pacing is not None:
        return SharedThrottle(carrier, tps, pacing())
    return Throttle(tps)
