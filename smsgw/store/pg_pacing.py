"""Each carrier's MT pacing shared by every gateway on one PostgreSQL database (`carrier_pacing`).

The table (schema.py, step 10) has one row per carrier, holding `free_at`: the time, on the
database's clock (epoch seconds of `clock_timestamp()`), at which the carrier's line is free
again, as in the virtual-scheduling form of GCRA. Sending an MT of `cost` SMS at `rate` SMS a second occupies the line for
`cost / rate` seconds from `max(free_at, now)`. The line may run ahead of the clock by at most
one bucket (`burst` SMS): an MT is granted when the backlog `max(free_at - now, 0)` leaves room
for it (`backlog <= (burst - min(cost, burst)) / rate`), exactly when today's in-process token
bucket (throttle.TokenBucket) would hold that many tokens; else nothing is taken and the caller
learns how long to wait. So over any T seconds the carrier gets at most `burst + rate * T` SMS
from all the gateways together (plus the excess of one MT of more parts than the bucket holds).

`take` is one statement, an upsert on the carrier's row: the row lock serialises the gateways,
and the database's clock is read after the lock is held (the ON CONFLICT branch evaluates its SET
on the locked row), so the gateways' own clocks play no part. A refusal writes the row too
(`checked_at`, `granted`), which is how the one statement returns both the answer and the wait.

`rate` is the asking gateway's configured rate: each MT occupies the line for its own gateway's
`parts / tps`. Gateways configured alike (the rule) share exactly `tps`; configured differently,
the carrier gets at most the highest of their rates. The row keeps the rate of the last grant,
which `take` returns so that a gateway can tell that another one is configured differently.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from .pg_pool import connection

_EPSILON = 1e-9

# $1 carrier, $2 seconds the MT occupies the line (cost / rate), $3 rate, $4 the backlog allowed
# (seconds). The first MT of a carrier finds the bucket full: granted.
_TAKE = """
INSERT INTO carrier_pacing AS p (carrier, free_at, rate, checked_at, granted)
SELECT $1, c.now + $2, $3, c.now, true FROM (SELECT extract(epoch FROM clock_timestamp())::float8 AS now) c
ON CONFLICT (carrier) DO UPDATE SET (free_at, rate, checked_at, granted) = (
    SELECT CASE WHEN d.ok THEN greatest(p.free_at, d.now) + $2 ELSE p.free_at END,
           CASE WHEN d.ok THEN $3 ELSE p.rate END, d.now, d.ok
    FROM (SELECT c.now, greatest(p.free_at - c.now, 0) <= $4 AS ok
          FROM (SELECT extract(epoch FROM clock_timestamp())::float8 AS now) c) d)
RETURNING granted, free_at - checked_at, rate
"""


@dataclass(frozen=True)
class Reservation:
    """A `take`'s answer: `wait` 0 when granted, else the seconds before asking again; `rate` the
    rate of the row's last grant (this gateway's when granted)."""

    wait: float
    rate: float


class PgPacing:
    """The `carrier_pacing` rows of a database, through the message store's pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def take(self, carrier: str, *, cost: float, rate: float, burst: float) -> Reservation:
        """Take `cost` SMS of `carrier`'s line at `rate` SMS/s with a bucket of `burst` SMS, or
        learn the wait. Unavailable when the database cannot be reached (pg_pool.py)."""
        occupies = cost / rate
        allowed = (burst - min(cost, burst)) / rate + _EPSILON
        async with connection(self._pool) as conn:
            granted, ahead, last_rate = await conn.fetchrow(_TAKE, carrier, occupies, rate, allowed)
        if granted:
            return Reservation(0.0, last_rate)
        return Reservation(max(ahead - allowed, _EPSILON), last_rate)
