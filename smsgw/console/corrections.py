"""Corrections taken up (CONTRACT §1b), for the understanding page: of the MOs not understood
whose reply quoted a corrected message, the share after which the same phone sent that message
(understood as the same command) within 10 minutes (reports.taken_up, as `smsgw report
understanding` counts them).

Finding whether a correction was offered means parsing each failing text again: too slow for a
page over a month, so it is done one whole Vietnam day at a time, off the event loop, and a
day's figure is kept once the day is over and its last MO's 10 minutes have passed (daily.py);
today is left out. The last 31 days are counted in the background at start (`warm`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from itertools import groupby

from ..reports import TAKE_UP_WINDOW, taken_up
from ..store import ConsoleStore
from .daily import DailyCounts, day_number

WARM_DAYS = 31


@dataclass(frozen=True)
class Corrections:
    offered: int
    taken: int
    first: int      # the Vietnam days counted, first..last (none when first > last)
    last: int

    @property
    def share(self) -> float | None:
        return self.taken / self.offered if self.offered else None


def _count(rows: list[tuple[str, float, str, str | None]], routes: frozenset[str]) -> tuple[int, int]:
    offered = taken = 0
    for _, of_one in groupby(rows, key=lambda row: row[0]):
        result = taken_up(list(of_one), routes)
        if result is not None:
            offered += 1
            taken += result
    return offered, taken


def last_whole_day(clock: Callable[[], float] = time.time) -> int:
    """The latest Vietnam day that is over, with its last MO's take-up window."""
    return day_number(clock() - TAKE_UP_WINDOW) - 1


async def corrections(store: ConsoleStore, daily: DailyCounts, first: int, last: int, *,
                      routes: frozenset[str], clock: Callable[[], float] = time.time) -> Corrections:
    """Offered and taken up over the whole days `first`..`last` (at most the last one over)."""
    last = min(last, last_whole_day(clock))
    loop = asyncio.get_running_loop()

    async def fetch(since: float, until: float) -> list[tuple[int, int]]:
        rows = await store.misunderstood_followed(since, until, TAKE_UP_WINDOW)
        return [await loop.run_in_executor(None, partial(_count, rows, routes))]

    by_day = await daily.days("corrections", first, last, fetch)
    offered = sum(rows[0][0] for rows in by_day.values())
    taken = sum(rows[0][1] for rows in by_day.values())
    return Corrections(offered, taken, first, last)


async def warm(store: ConsoleStore, daily: DailyCounts, *, routes: frozenset[str]) -> None:
    """Count the last WARM_DAYS whole days (at start: the first understanding page is then fast)."""
    last = last_whole_day()
    await corrections(store, daily, last - WARM_DAYS + 1, last, routes=routes)
