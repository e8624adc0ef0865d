"""The reading queries of the reports and the ledger, on PostgreSQL: `MessageReports`, rows, never formatting.

The same queries and orders as sqlite_reports.py. `MessageReports` is a synchronous interface
(`smsgw report` and `smsgw billing` are plain loops over rows), and asyncpg is asynchronous: a
`PgReports` runs one connection on an event loop of its own, and the long listings (billing rows,
the misunderstood texts) come from a server-side cursor in chunks, so an export of a large month
does not hold every row in memory. It only reads, in a READ ONLY transaction per query.

Orders are SQLite's: NULLs first, texts by their bytes (COLLATE "C", whatever the database's
locale), so both backends list the same rows in the same order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg

from ..billing import MessageType
from .errors import DatabaseRefused
from .messages import NOT_TEST_RATING, REAL_TRAFFIC, BillingRow
from .pg_pool import connect_once
from .schema import shown
from .sqlite_tables import iso_time

CHUNK = 2000   # rows fetched from a cursor at a time
# citizens' MOs: phones, not the console simulator's test traffic (messages.TEST_CARRIER)
_PHONE_SENDERS = f"(guard IS NULL OR guard NOT IN ('short_code', 'alphanumeric')) AND {REAL_TRAFFIC}"
_TAKEN_AT = "coalesce(taken_at, extract(epoch FROM received_at::timestamptz))"


class PgReports:
    """`MessageReports` over one connection to a PostgreSQL database; open with `PgReports.open(url)`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, conn: asyncpg.Connection) -> None:
        self._loop = loop
        self._conn = conn

    @classmethod
    def open(cls, url: str) -> "PgReports":
        """Connect; DatabaseRefused (saying why) when the database cannot be reached."""
        from .errors import StoreError

        loop = asyncio.new_event_loop()
        try:
            return cls(loop, loop.run_until_complete(connect_once(url)))
        except StoreError as exc:
            loop.close()
            raise DatabaseRefused.of(shown(url), exc) from exc

    def close(self) -> None:
        try:
            self._loop.run_until_complete(self._conn.close(timeout=5))
        finally:
            self._loop.close()

    def billing_rows_between(self, start: float, end: float,
                             carrier: str | None = None) -> Iterator[BillingRow]:
        where, params = _billing_window(start, end, carrier)
        query = ("SELECT kind, carrier, mo_id, mt_id, msisdn, amount_vnd, message_type, at FROM billing_rows"
                 f' WHERE {where} ORDER BY at COLLATE "C", id')
        for row in self._rows(query, params):
            yield BillingRow(*row[:6], MessageType(row[6]), row[7])

    def billing_totals_between(self, start: float, end: float,
                               carrier: str | None = None) -> list[tuple[str, int, str, int, int]]:
        where, params = _billing_window(start, end, carrier)
        query = ("SELECT carrier, message_type, kind, count(*), coalesce(sum(amount_vnd), 0)::bigint FROM billing_rows"
                 f' WHERE {where} GROUP BY carrier, message_type, kind'
                 ' ORDER BY carrier COLLATE "C", message_type, kind COLLATE "C"')
        return [tuple(row) for row in self._rows(query, params)]

    def ratings_between(self, start: float, end: float) -> list[tuple[float, str, int, str | None, str | None]]:
        query = ("SELECT r.rated_at, r.sender, r.rating, r.comment, m.command FROM ratings AS r LEFT JOIN mo_messages"
                 f" AS m ON m.id = r.rated_mo_id WHERE {NOT_TEST_RATING} AND r.rated_at >= $1 AND r.rated_at < $2"
                 ' ORDER BY r.rated_at, r.mo_id COLLATE "C"')
        return [tuple(row) for row in self._rows(query, (start, end))]

    def mo_outcomes(self, since: float | None = None) -> list[tuple[str | None, str | None, int]]:
        query = f"SELECT command, error, count(*) FROM mo_messages WHERE {_PHONE_SENDERS}"
        params: tuple = ()
        if since is not None:
            query += f" AND {_TAKEN_AT} >= $1"
            params = (since,)
        query += ' GROUP BY command, error ORDER BY command COLLATE "C" NULLS FIRST, error COLLATE "C" NULLS FIRST'
        return [tuple(row) for row in self._rows(query, params)]

    def misunderstood_texts(self, since: float | None = None,
                            window: float = 600.0) -> Iterator[tuple[str, float, str, str | None]]:
        params: tuple = (window,)
        misunderstood = (f"SELECT id, sender, text, {_TAKEN_AT} AS at FROM mo_messages"
                         f" WHERE error IS NOT NULL AND {_PHONE_SENDERS}")
        if since is not None:
            misunderstood += f" AND {_TAKEN_AT} >= $2"
            params = (window, since)
        query = (f"SELECT m.id, m.at, m.text, n.text FROM ({misunderstood}) AS m LEFT JOIN mo_messages AS n"
                 " ON n.sender = m.sender AND n.error IS NULL AND n.id != m.id"
                 ' AND n.taken_at > m.at AND n.taken_at <= m.at + $1 ORDER BY m.id COLLATE "C", n.taken_at NULLS FIRST')
        for row in self._rows(query, params):
            yield tuple(row)

    def _rows(self, query: str, params: tuple) -> Iterator[asyncpg.Record]:
        """The rows of `query`, CHUNK at a time from a cursor in one read-only transaction."""
        transaction = self._conn.transaction(readonly=True)
        self._loop.run_until_complete(transaction.start())
        try:
            cursor = self._loop.run_until_complete(self._conn.cursor(query, *params))
            while chunk := self._loop.run_until_complete(cursor.fetch(CHUNK)):
                yield from chunk
        finally:
            self._loop.run_until_complete(transaction.rollback())


def _billing_window(start: float, end: float, carrier: str | None) -> tuple[str, tuple]:
    if carrier is None:
        return f"at >= $1 AND at < $2 AND {REAL_TRAFFIC}", (iso_time(start), iso_time(end))
    return "at >= $1 AND at < $2 AND carrier = $3", (iso_time(start), iso_time(end), carrier)
