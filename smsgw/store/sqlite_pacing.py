"""Each carrier's MT pacing shared by the processes sending from one SQLite file (`carrier_pacing`).

The processes are `smsgw serve --workers N`'s workers (each delivers the MTs it stores) and a
`smsgw notify` run beside the gateway: without a shared bucket each would send its own `tps`.
A take is an operation of the message store's group-commit writer (writer.py): it reads and
writes the carrier's row inside the writer's transaction, which holds SQLite's write lock, so
the processes take their turns; its clock is the host's (`time.time()`), the one clock the
processes sharing a file have. The rule is pacing.py's.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .pacing import Reservation, grant, wait_after_refusal

# Schema step 11 (schema.py), and made when missing by the first take (a file made before it).
SQLITE_TABLE = ("CREATE TABLE IF NOT EXISTS carrier_pacing (carrier TEXT PRIMARY KEY, free_at REAL NOT NULL,"
                " rate REAL NOT NULL)")

Submit = Callable[[Callable[[sqlite3.Connection], Any]], Awaitable[Any]]


class SqlitePacing:
    """The `carrier_pacing` rows of an SQLite file, through its message store's writer."""

    def __init__(self, submit: Submit, *, clock: Callable[[], float] = time.time) -> None:
        self._submit = submit
        self._clock = clock
        self._table_made = False

    async def take(self, carrier: str, *, need: float, want: float, rate: float, burst: float) -> Reservation:
        """Take `need` SMS parts of `carrier`'s line, and up to `want` when the bucket holds them
        now; or learn the wait. Fails as the writer's operations fail (the file refused, closed)."""

        def run(conn: sqlite3.Connection) -> Reservation:
            if not self._table_made:
                conn.execute(SQLITE_TABLE)
            now = self._clock()
            row = conn.execute("SELECT free_at, rate FROM carrier_pacing WHERE carrier = ?", (carrier,)).fetchone()
            free_at, last_rate = (row[0], row[1]) if row else (None, rate)
            parts, after = grant(free_at, now, need=need, want=max(need, want), rate=rate, burst=burst)
            if parts <= 0:
                return Reservation(0.0, wait_after_refusal(after - now, need, rate=rate, burst=burst), last_rate)
            conn.execute("INSERT INTO carrier_pacing (carrier, free_at, rate) VALUES (?, ?, ?)"
                         " ON CONFLICT (carrier) DO UPDATE SET free_at = excluded.free_at, rate = excluded.rate",
                         (carrier, after, rate))
            return Reservation(parts, 0.0, rate)

        answer = await self._submit(run)
        self._table_made = True
        return answer
