"""Counts of whole Vietnam days, computed once a day can no longer change, then kept in memory.

The 30-day charts, the understanding of a week or a month and a month's billing would each scan a
month of rows (a third of a million on a store of a million MOs): too slow for a page. But a day
that is over does not change: its MOs' outcomes are fixed when they are stored, and its billing
rows too (a refund is a new row, written on the day of the refund). So each page asks the store
for one day at a time (one range of an index), keeps the days that are over, and asks again only
for today, and for MT outcomes the two days before it (delivery reports and retries still move
those MTs along). A gateway keeps its own copy: restarted, it counts the days again, in the
background at start (`warm`), so that the first page is fast too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..store import ConsoleStore

DAY = 86400
OFFSET = 7 * 3600        # Vietnam is UTC+07:00 all year
KEPT_DAYS = 500          # entries kept (kinds x days), the oldest dropped first

Fetch = Callable[[float, float], Awaitable[list]]


def day_number(unix: float) -> int:
    """The Vietnam day of a time, counted from 1970-01-01."""
    return int((unix + OFFSET) // DAY)


def day_start(day: int) -> float:
    return day * DAY - OFFSET


class DailyCounts:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._kept: dict[tuple[str, int], list[Any]] = {}

    def today(self) -> int:
        return day_number(self._clock())

    async def days(self, kind: str, first: int, last: int, fetch: Fetch, *, settles: int = 0) -> dict[int, list]:
        """The rows `fetch(start, end)` gives for each day from `first` to `last` (no later than
        today); a day more than `settles` days before today is fetched once and kept."""
        today = self.today()
        rows_of: dict[int, list] = {}
        for day in range(first, min(last, today) + 1):
            key = (kind, day)
            rows = self._kept.get(key)
            if rows is None:
                rows = await fetch(day_start(day), day_start(day + 1))
                if day < today - settles:
                    self._keep(key, rows)
            rows_of[day] = rows
        return rows_of

    def _keep(self, key: tuple[str, int], rows: list) -> None:
        self._kept[key] = rows
        while len(self._kept) > KEPT_DAYS:
            del self._kept[min(self._kept, key=lambda kept: kept[1])]


# -- the counts the pages need, by day -----------------------------------------------------------

async def mo_per_day(store: ConsoleStore, daily: DailyCounts, first: int, last: int) -> list[tuple[int, str, int]]:
    """(day, outcome, MOs) of the days `first`..`last` (mo_buckets by Vietnam day)."""
    by_day = await daily.days("mo", first, last, lambda since, until: store.mo_buckets(since, until, DAY, OFFSET))
    return [row for rows in by_day.values() for row in rows]


async def mt_per_day(store: ConsoleStore, daily: DailyCounts, first: int, last: int) -> list[tuple[int, str, int]]:
    """(day, outcome, MTs): an MT's outcome settles within two days (retries give up, reports arrive)."""
    by_day = await daily.days("mt", first, last, lambda since, until: store.mt_buckets(since, until, DAY, OFFSET),
                              settles=2)
    return [row for rows in by_day.values() for row in rows]


async def outcomes(store: ConsoleStore, daily: DailyCounts, first: int, last: int) -> list[tuple[Any, Any, int]]:
    """(command, error, MOs) summed over the days `first`..`last`."""
    totals: dict[tuple, int] = {}
    for rows in (await daily.days("outcomes", first, last, store.mo_outcomes)).values():
        for command, error, count in rows:
            totals[command, error] = totals.get((command, error), 0) + count
    return [(command, error, count) for (command, error), count in totals.items()]


async def billing(store: ConsoleStore, daily: DailyCounts, first: int, last: int) -> list[tuple[str, int, str, int, int]]:
    """(carrier, message_type, kind, rows, amount VND) summed over the days `first`..`last`."""
    totals: dict[tuple, list[int]] = {}
    for rows in (await daily.days("billing", first, last, store.billing_totals)).values():
        for carrier, message_type, kind, count, amount in rows:
            entry = totals.setdefault((carrier, message_type, kind), [0, 0])
            entry[0] += count
            entry[1] += amount
    return sorted((*key, count, amount) for key, (count, amount) in totals.items())


async def warm(store: ConsoleStore, daily: DailyCounts, stop: asyncio.Event, days: int = 31) -> None:
    """Count the last `days` days of every kind, a day at a time (at start: the first page is then as
    fast as the next); returns between two queries once `stop` is set, never inside one."""
    last = daily.today()
    for day in range(last - days + 1, last + 1):
        for count in (mo_per_day, mt_per_day, outcomes, billing):
            if stop.is_set():
                return
            await count(store, daily, day, day)
