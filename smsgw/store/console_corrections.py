"""The console's reading of corrections taken up (CONTRACT §1b, the understanding page).

`CorrectionReads` is the interface (a part of `ConsoleStore`), `SqlCorrectionReads` its one
statement for both backends (`?` placeholders, console_sql.py numbers them for PostgreSQL). It
reads one Vietnam day at a time (the console keeps a day's figure once it is over: daily.py):
the MOs not understood of the day through the `mo_messages_console` index, and each one's
following understood MOs from the same phone through `mo_messages_sender`.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

from .messages import REAL_TRAFFIC

_PHONES = "(m.guard IS NULL OR m.guard NOT IN ('short_code', 'alphanumeric'))"   # citizens, not short codes


class CorrectionReads(abc.ABC):
    @abc.abstractmethod
    async def misunderstood_followed(self, since: float, until: float,
                                     window: float) -> list[tuple[str, float, str, str | None]]:
        """(MO id, taken at, text, a following text) of every real MO from a phone not understood
        taken in [since, until): once for each understood MO the same phone sent within `window`
        seconds after it, or once with None; the rows of one MO together."""


class SqlCorrectionReads(CorrectionReads):
    @abc.abstractmethod
    async def _fetch(self, query: str, params: Sequence[Any] = ()) -> list[tuple]: ...

    async def misunderstood_followed(self, since: float, until: float,
                                     window: float) -> list[tuple[str, float, str, str | None]]:
        return await self._fetch(
            "SELECT m.id, m.taken_at, m.text, n.text FROM mo_messages AS m LEFT JOIN mo_messages AS n"
            " ON n.sender = m.sender AND n.error IS NULL AND n.id != m.id"
            " AND n.taken_at > m.taken_at AND n.taken_at <= m.taken_at + ?"
            f" WHERE m.taken_at >= ? AND m.taken_at < ? AND m.error IS NOT NULL AND m.{REAL_TRAFFIC}"
            f" AND {_PHONES} ORDER BY m.id, n.taken_at", (window, since, until))
