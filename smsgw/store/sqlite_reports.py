"""The reading queries of the reports and the ledger, on SQLite: rows, never formatting.

`smsgw report` and `smsgw billing` read with a plain connection of their own while a server
may be writing (WAL: readers do not wait for the writer). The message tables are created when
missing, so that a records file no gateway has served yet reports nothing rather than failing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from ..billing import MessageType
from .errors import DatabaseRefused, explain
from .messages import NOT_TEST_RATING, REAL_TRAFFIC, BillingRow
from .sqlite_tables import connect, iso_time

# citizens' MOs: phones, not the console simulator's test traffic (messages.TEST_CARRIER)
_PHONE_SENDERS = f"(guard IS NULL OR guard NOT IN ('short_code', 'alphanumeric')) AND {REAL_TRAFFIC}"
# MOs stored before `taken_at` existed have only the carrier's ISO `received_at`.
_TAKEN_AT = "coalesce(taken_at, CAST(strftime('%s', received_at) AS REAL))"


class SqliteReports:
    """`MessageReports` over one connection to the records database file; open with `SqliteReports.open(path)`."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @classmethod
    def open(cls, path: str) -> "SqliteReports":
        """Open the file for reading (the message tables are created when missing); DatabaseRefused if SQLite cannot."""
        try:
            return cls(connect(path))
        except sqlite3.Error as exc:
            raise DatabaseRefused(path, explain(path, exc)) from exc

    def close(self) -> None:
        self._conn.close()

    def billing_rows_between(self, start: float, end: float,
                             carrier: str | None = None) -> Iterator[BillingRow]:
        """Billing rows written in [start, end) (Unix seconds), of one carrier or all, in the order written."""
        where, params = _billing_window(start, end, carrier)
        query = ("SELECT kind, carrier, mo_id, mt_id, msisdn, amount_vnd, message_type, at FROM billing_rows"
                 f" WHERE {where}")
        for row in self._conn.execute(query + " ORDER BY at, id", params):
            yield BillingRow(*row[:6], MessageType(row[6]), row[7])

    def billing_totals_between(self, start: float, end: float,
                               carrier: str | None = None) -> list[tuple[str, int, str, int, int]]:
        """(carrier, message_type, kind, rows, amount VND) of the billing rows written in [start, end)."""
        where, params = _billing_window(start, end, carrier)
        query = ("SELECT carrier, message_type, kind, count(*), coalesce(sum(amount_vnd), 0) FROM billing_rows"
                 f" WHERE {where}")
        return self._conn.execute(query + " GROUP BY carrier, message_type, kind ORDER BY carrier, message_type, kind",
                                  params).fetchall()

    def ratings_between(self, start: float, end: float) -> list[tuple[float, str, int, str | None, str | None]]:
        """(rated at, phone, rating, comment, the rated MO's command or None: the service) of the
        ratings (BH DG) given in [start, end), in that order."""
        return self._conn.execute(
            "SELECT r.rated_at, r.sender, r.rating, r.comment, m.command FROM ratings AS r LEFT JOIN mo_messages AS m"
            f" ON m.id = r.rated_mo_id WHERE {NOT_TEST_RATING} AND r.rated_at >= ? AND r.rated_at < ?"
            " ORDER BY r.rated_at, r.mo_id",
            (start, end)).fetchall()

    def mo_outcomes(self, since: float | None = None) -> list[tuple[str | None, str | None, int]]:
        """(command, error, MOs) of the MOs from phones taken since `since` (Unix seconds; None: all)."""
        query = f"SELECT command, error, count(*) FROM mo_messages WHERE {_PHONE_SENDERS}"
        params: tuple = ()
        if since is not None:
            query += f" AND {_TAKEN_AT} >= ?"
            params = (since,)
        return self._conn.execute(query + " GROUP BY command, error ORDER BY command, error", params).fetchall()

    def misunderstood_texts(self, since: float | None = None,
                            window: float = 600.0) -> Iterator[tuple[str, float, str, str | None]]:
        """(MO id, taken at, text, a following text) of every MO from a phone that the language did
        not understand: once for each understood MO the same phone sent within `window` seconds
        after it (the following text), or once with None when there was none."""
        misunderstood = f"SELECT id, sender, text, {_TAKEN_AT} AS at FROM mo_messages WHERE error IS NOT NULL AND {_PHONE_SENDERS}"
        params: tuple = ()
        if since is not None:
            misunderstood += f" AND {_TAKEN_AT} >= ?"
            params = (since,)
        query = (f"SELECT m.id, m.at, m.text, n.text FROM ({misunderstood}) AS m LEFT JOIN mo_messages AS n"
                 " ON n.sender = m.sender AND n.error IS NULL AND n.id != m.id"
                 " AND n.taken_at > m.at AND n.taken_at <= m.at + ? ORDER BY m.id, n.taken_at")
        yield from self._conn.execute(query, params + (window,))


def _billing_window(start: float, end: float, carrier: str | None) -> tuple[str, tuple]:
    """The WHERE clause and its parameters of the billing rows written in [start, end), of `carrier` or all."""
    if carrier is None:
        return f"at >= ? AND at < ? AND {REAL_TRAFFIC}", (iso_time(start), iso_time(end))
    return "at >= ? AND at < ? AND carrier = ?", (iso_time(start), iso_time(end), carrier)
