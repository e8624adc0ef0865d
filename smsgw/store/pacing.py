"""Each carrier's MT pacing shared by every process sending from one database: the rule.

The table `carrier_pacing` (schema.py, step 11) has one row per carrier, holding `free_at`: the
time (epoch seconds) at which the carrier's line is free again, as in the virtual-scheduling form
of GCRA. Sending `cost` SMS parts at `rate` SMS a second occupies the line for `cost / rate`
seconds from `max(free_at, now)`. The line may run ahead of the clock by at most one bucket
(`burst` parts): an MT is granted when the backlog `max(free_at - now, 0)` leaves room for it
(`backlog <= (burst - min(cost, burst)) / rate`), exactly when the in-process token bucket
(throttle.TokenBucket) would hold that many tokens; else nothing is taken and the caller learns
how long to wait. So over any T seconds the carrier gets at most `burst + rate * T` SMS from all
the processes together (plus the excess of one MT of more parts than the bucket holds).

A process with several MTs queued may ask for more than the one about to go (`want`): it gets
the whole parts the bucket holds now, up to that, and never a slot in the future.

`rate` is the asking process's configured rate: each MT occupies the line for its own gateway's
`parts / tps`. Gateways configured alike (the rule) share exactly `tps`; configured differently,
the carrier gets at most the highest of their rates. The row keeps the rate of the last grant,
returned with each answer so that a gateway can tell that another one is configured differently.

PostgreSQL computes this in one statement on its own clock (pg_pacing.py); SQLite in the
writer's transaction with `grant` below, on the host's clock (sqlite_pacing.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

EPSILON = 1e-9


@dataclass(frozen=True)
class Reservation:
    """A take's answer: `granted` SMS parts to send now (0: refused), else `wait` the seconds
    before asking again; `rate` the rate of the row's last grant (the asker's when granted)."""

    granted: float
    wait: float
    rate: float


def allowed_backlog(need: float, *, rate: float, burst: float) -> float:
    """The most seconds the line may be booked ahead for an MT of `need` parts to go now."""
    return (burst - min(need, burst)) / rate + EPSILON


def grant(free_at: float | None, now: float, *, need: float, want: float, rate: float,
          burst: float) -> tuple[float, float]:
    """(parts granted, the line's `free_at` after) for a row at `free_at` (None: no row yet, the
    bucket full); (0, `free_at`) when the MT of `need` parts must wait."""
    backlog = max((free_at if free_at is not None else now) - now, 0.0)
    if backlog > allowed_backlog(need, rate=rate, burst=burst):
        return 0.0, free_at if free_at is not None else now
    parts = max(need, min(want, math.floor(burst - backlog * rate + EPSILON)))
    return parts, now + backlog + parts / rate


def wait_after_refusal(backlog: float, need: float, *, rate: float, burst: float) -> float:
    """Seconds until an MT of `need` parts refused at `backlog` seconds booked ahead may go."""
    return max(backlog - allowed_backlog(need, rate=rate, burst=burst), EPSILON)
