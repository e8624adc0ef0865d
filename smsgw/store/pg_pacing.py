"""Each carrier's MT pacing shared by every gateway on one PostgreSQL database (`carrier_pacing`).

The table (schema.py, step 10) has one row per carrier, holding `free_at`: the time, on the
database's clock (epoch seconds of `clock_timestamp()`), at which the carrier's line is free
again, as in the virtual-scheduling form of GCRA. Sending `cost` SMS parts at `rate` SMS a
second occupies the line for `cost / rate` seconds from `max(free_at, now)`. The line may run
ahead of the clock by at most one bucket (`burst` parts): an MT is granted when the backlog
`max(free_at - now, 0)` leaves room for it (`backlog <= (burst - min(cost, burst)) / rate`),
exactly when the in-process token bucket (throttle.TokenBucket) would hold that many tokens;
else nothing is taken and the caller learns how long to wait. So over any T seconds the carrier
gets at most `burst + rate * T` SMS from all the gateways together (plus the excess of one MT of
more parts than the bucket holds).

`take` is one statement, an upsert on the carrier's row: the row lock serialises the gateways,
and the database's clock is read after the lock is held (the ON CONFLICT branch evaluates its SET
on the locked row), so the gateways' own clocks play no part. A refusal writes the row too
(`checked_at`, `granted` 0), which is how the one statement returns both the answer and the wait.
A gateway with several MTs queued may ask for more than the one about to go (`want`): it gets
what the bucket holds now, up to that, and never a slot in the future.

The table is UNLOGGED: a take's commit waits for no WAL flush (measured 5-7x faster), and its rows
are not replicated. After the database crashes or fails over the table is empty: each carrier's
bucket starts full, so the carrier may get one more burst then.

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

# $1 carrier, $2 rate, $3 burst, $4 need (the parts of the MT about to go), $5 want (>= need).
# Granted: when the backlog leaves room for `need`, the whole tokens the bucket holds now, between
# `need` and `want`. The first MT of a carrier finds the bucket full.
_TAKE = """
INSERT INTO carrier_pacing AS p (carrier, free_at, rate, checked_at, granted)
SELECT $1, c.now + g.parts / $2, $2, c.now, g.parts
FROM (SELECT extract(epoch FROM clock_timestamp())::float8 AS now) c,
     (SELECT greatest($4::float8, least($5::float8, $3::float8)) AS parts) g
ON CONFLICT (carrier) DO UPDATE SET (free_at, rate, checked_at, granted) = (
    SELECT CASE WHEN d.ok THEN greatest(p.free_at, d.now) + d.parts / $2 ELSE p.free_at END,
           CASE WHEN d.ok THEN $2 ELSE p.rate END, d.now, CASE WHEN d.ok THEN d.parts ELSE 0 END
    FROM (SELECT b.now, b.backlog <= ($3 - least($4, $3)) / $2 + 1e-9 AS ok,
                 greatest($4, least($5, floor($3 - b.backlog * $2 + 1e-9))) AS parts
          FROM (SELECT c.now, greatest(p.free_at - c.now, 0) AS backlog
                FROM (SELECT extract(epoch FROM clock_timestamp())::float8 AS now) c) b) d)
RETURNING granted, free_at - checked_at, rate
"""


@dataclass(frozen=True)
class Reservation:
    """A `take`'s answer: `granted` SMS parts to send now (0: refused), else `wait` the seconds
    before asking again; `rate` the rate of the row's last grant (this gateway's when granted)."""

    granted: float
    wait: float
    rate: float


class PgPacing:
    """The `carrier_pacing` rows of a database, through the message store's pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def take(self, carrier: str, *, need: float, want: float, rate: float, burst: float) -> Reservation:
        """Take `need` SMS parts of `carrier`'s line at `rate` SMS/s with a bucket of `burst` parts,
        and up to `want` when the bucket holds them now; or learn the wait. Unavailable when the
        database cannot be reached (pg_pool.py)."""
        async with connection(self._pool) as conn:
            granted, ahead, last_rate = await conn.fetchrow(_TAKE, carrier, float(rate), float(burst),
                                                            float(need), float(max(need, want)))
        if granted > 0:
            return Reservation(granted, 0.0, last_rate)
        allowed = (burst - min(need, burst)) / rate
        return Reservation(0.0, max(ahead - allowed, _EPSILON), last_rate)
