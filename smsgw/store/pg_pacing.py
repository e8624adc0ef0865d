"""Each carrier's MT pacing shared by every gateway on one PostgreSQL database (`carrier_pacing`).

The rule (a GCRA row per carrier, `free_at` the time the carrier's line is free again) is
pacing.py's; here it is one statement on the database's clock (epoch seconds of
`clock_timestamp()`), so the gateways' own clocks play no part. `take` is an upsert on the
carrier's row: the row lock serialises the gateways, and the clock is read after the lock is held
(the ON CONFLICT branch evaluates its SET on the locked row). A refusal writes the row too
(`checked_at`, `granted` 0), which is how the one statement returns both the answer and the wait.

The table is UNLOGGED: a take's commit waits for no WAL flush (measured 5-7x faster), and its rows
are not replicated. After the database crashes or fails over the table is empty: each carrier's
bucket starts full, so the carrier may get one more burst then.
"""

from __future__ import annotations

from .pacing import Reservation, wait_after_refusal
from .pg_pool import Pool, connection

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


class PgPacing:
    """The `carrier_pacing` rows of a database, through the message store's pool."""

    def __init__(self, pool: Pool) -> None:
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
        return Reservation(0.0, wait_after_refusal(ahead, need, rate=rate, burst=burst), last_rate)
