"""The console's statements, written once for both backends (`?` placeholders; PostgreSQL's
`$n` are made from them), and `SqlConsoleStore`, `ConsoleStore` over any connection that runs
them: sqlite_console.py and pg_console.py only say how a statement is run.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Sequence
from typing import Any

from .console import MAX_ROWS, Account, AuditEntry, ConsoleStore, MessageRow, QueueRow, Session
from .console_corrections import SqlCorrectionReads
from .console_sending import SqlSendingReads
from .messages import NOT_TEST_RATING, QUESTION_COLUMNS, REAL_TRAFFIC, Question, question_digits, question_of

_ACCOUNT = "name, role, password_hash, failed_logins, locked_until, created_at"
_PHONES = "(guard IS NULL OR guard NOT IN ('short_code', 'alphanumeric'))"
MO_OUTCOME = ("CASE WHEN guard IS NOT NULL AND guard != 'rate_limited' THEN 'withheld'"
              " WHEN error IS NOT NULL THEN 'error' ELSE 'understood' END")
MT_OUTCOME = ("CASE WHEN status = 'failed' OR dlr_state IN ('failed', 'expired', 'rejected') THEN 'failed'"
              " WHEN dlr_state = 'delivered' THEN 'delivered' WHEN status = 'pending' THEN 'pending' ELSE 'sent' END")


def numbered(query: str) -> str:
    """`?` placeholders as PostgreSQL's `$1`, `$2`, ... (the statements here hold no literal '?')."""
    count = iter(range(1, 1000))
    return re.sub(r"\?", lambda _: f"${next(count)}", query)


class SqlConsoleStore(SqlSendingReads, SqlCorrectionReads, ConsoleStore):
    """`ConsoleStore` over `_fetch` (rows of one statement) and `_write` (statements in one transaction)."""

    # floor((time + offset) / bucket) as an integer, in the backend's SQL
    BUCKET: str = "CAST((({column}) + ?) / ? AS INTEGER)"

    @abc.abstractmethod
    async def _fetch(self, query: str, params: Sequence[Any] = ()) -> list[tuple]: ...

    @abc.abstractmethod
    async def _write(self, *statements: tuple[str, Sequence[Any]]) -> list[list[tuple]]:
        """Run the statements in one transaction; the rows each returned."""

    # -- accounts ---------------------------------------------------------------------------
    async def add_account(self, name: str, role: str, password_hash: str, *, now: float) -> bool:
        [rows] = await self._write((
            "INSERT INTO console_users (name, role, password_hash, failed_logins, locked_until, created_at)"
            " VALUES (?, ?, ?, 0, NULL, ?) ON CONFLICT (name) DO NOTHING RETURNING name",
            (name, role, password_hash, now)))
        return bool(rows)

    async def account(self, name: str) -> Account | None:
        rows = await self._fetch(f"SELECT {_ACCOUNT} FROM console_users WHERE name = ?", (name,))
        return Account(*rows[0]) if rows else None

    async def accounts(self) -> list[Account]:
        rows = await self._fetch(f"SELECT {_ACCOUNT} FROM console_users")
        return sorted((Account(*row) for row in rows), key=lambda account: account.name)

    async def set_role(self, name: str, role: str) -> bool:
        [rows] = await self._write(("UPDATE console_users SET role = ? WHERE name = ? RETURNING name", (role, name)))
        return bool(rows)

    async def set_password(self, name: str, password_hash: str) -> bool:
        rows, _ = await self._write(
            ("UPDATE console_users SET password_hash = ?, failed_logins = 0, locked_until = NULL WHERE name = ?"
             " RETURNING name", (password_hash, name)),
            ("DELETE FROM console_sessions WHERE name = ?", (name,)))
        return bool(rows)

    async def remove_account(self, name: str) -> bool:
        rows, _ = await self._write(("DELETE FROM console_users WHERE name = ? RETURNING name", (name,)),
                                    ("DELETE FROM console_sessions WHERE name = ?", (name,)))
        return bool(rows)

    async def login_failed(self, name: str, *, now: float, limit: int, lock_seconds: float) -> Account | None:
        [rows] = await self._write((
            "UPDATE console_users SET"
            " locked_until = CASE WHEN failed_logins + 1 >= ? THEN ? ELSE locked_until END,"
            " failed_logins = CASE WHEN failed_logins + 1 >= ? THEN 0 ELSE failed_logins + 1 END"
            f" WHERE name = ? RETURNING {_ACCOUNT}", (limit, now + lock_seconds, limit, name)))
        return Account(*rows[0]) if rows else None

    async def login_succeeded(self, name: str) -> None:
        await self._write(("UPDATE console_users SET failed_logins = 0 WHERE name = ?", (name,)))

    async def unlock(self, name: str) -> bool:
        [rows] = await self._write(("UPDATE console_users SET failed_logins = 0, locked_until = NULL WHERE name = ?"
                                    " RETURNING name", (name,)))
        return bool(rows)

    # -- sessions ---------------------------------------------------------------------------
    async def start_session(self, token_hash: str, name: str, csrf: str, *, now: float, expires_at: float,
                            address: str) -> None:
        await self._write(("DELETE FROM console_sessions WHERE expires_at <= ?", (now,)),
                          ("INSERT INTO console_sessions (token_hash, name, csrf, created_at, expires_at, address)"
                           " VALUES (?, ?, ?, ?, ?, ?)", (token_hash, name, csrf, now, expires_at, address)))

    async def session(self, token_hash: str, *, now: float) -> Session | None:
        rows = await self._fetch("SELECT s.name, u.role, s.csrf, s.expires_at FROM console_sessions AS s"
                                 " JOIN console_users AS u ON u.name = s.name"
                                 " WHERE s.token_hash = ? AND s.expires_at > ?", (token_hash, now))
        return Session(*rows[0]) if rows else None

    async def end_session(self, token_hash: str) -> None:
        await self._write(("DELETE FROM console_sessions WHERE token_hash = ?", (token_hash,)))

    # -- audit ------------------------------------------------------------------------------
    async def audit(self, *, at: float, actor: str, action: str, detail: str, address: str) -> None:
        await self._write(("INSERT INTO console_audit (at, actor, action, detail, address) VALUES (?, ?, ?, ?, ?)",
                           (at, actor, action, detail, address)))

    async def audit_log(self, limit: int = MAX_ROWS) -> list[AuditEntry]:
        rows = await self._fetch("SELECT at, actor, action, detail, address FROM console_audit"
                                 " ORDER BY at DESC, id DESC LIMIT ?", (min(limit, MAX_ROWS),))
        return [AuditEntry(*row) for row in rows]

    # -- the pages' reading queries ---------------------------------------------------------
    async def mo_buckets(self, since: float, until: float, bucket: float,
                         offset: float = 0.0) -> list[tuple[int, str, int]]:
        slot = self.BUCKET.format(column="taken_at")
        return await self._fetch(
            f"SELECT {slot} AS slot, {MO_OUTCOME} AS outcome, count(*) FROM mo_messages"
            f" WHERE taken_at >= ? AND taken_at < ? AND {REAL_TRAFFIC} GROUP BY slot, outcome",
            (offset, bucket, since, until))

    async def mt_buckets(self, since: float, until: float, bucket: float,
                         offset: float = 0.0) -> list[tuple[int, str, int]]:
        slot = self.BUCKET.format(column="created_at")
        return await self._fetch(
            f"SELECT {slot} AS slot, {MT_OUTCOME} AS outcome, count(*) FROM mt_messages"
            f" WHERE created_at >= ? AND created_at < ? AND {REAL_TRAFFIC} GROUP BY slot, outcome",
            (offset, bucket, since, until))

    async def mo_outcomes(self, since: float, until: float) -> list[tuple[str | None, str | None, int]]:
        return await self._fetch(
            "SELECT command, error, count(*) FROM mo_messages"
            f" WHERE taken_at >= ? AND taken_at < ? AND {REAL_TRAFFIC} AND {_PHONES} GROUP BY command, error",
            (since, until))

    async def misunderstood_texts(self, since: float, limit: int) -> list[str]:
        rows = await self._fetch(
            "SELECT text FROM mo_messages WHERE taken_at >= ? AND error IS NOT NULL"
            f" AND {REAL_TRAFFIC} AND {_PHONES} ORDER BY taken_at DESC LIMIT ?", (since, limit))
        return [row[0] for row in rows]

    async def billing_totals(self, start: float, end: float) -> list[tuple[str, int, str, int, int]]:
        from .sqlite_tables import iso_time

        rows = await self._fetch(
            "SELECT carrier, message_type, kind, count(*), CAST(coalesce(sum(amount_vnd), 0) AS BIGINT)"
            f" FROM billing_rows WHERE at >= ? AND at < ? AND {REAL_TRAFFIC} GROUP BY carrier, message_type, kind",
            (iso_time(start), iso_time(end)))
        return sorted(rows)

    async def queues(self) -> list[QueueRow]:
        rows = await self._fetch("SELECT carrier, count(*), min(created_at) FROM mt_messages"
                                 " WHERE status = 'pending' GROUP BY carrier")
        return sorted((QueueRow(*row) for row in rows), key=lambda queue: queue.carrier)

    async def mt_outcomes_by_carrier(self, since: float) -> list[tuple[str, str, int]]:
        return sorted(await self._fetch(
            f"SELECT carrier, {MT_OUTCOME} AS outcome, count(*) FROM mt_messages"
            f" WHERE created_at >= ? AND {REAL_TRAFFIC} GROUP BY carrier, outcome", (since,)))

    async def last_errors(self, since: float, limit: int) -> list[tuple[float, str, str, int, str]]:
        return await self._fetch(
            "SELECT created_at, carrier, id, attempts, last_error FROM mt_messages"
            f" WHERE created_at >= ? AND last_error IS NOT NULL AND {REAL_TRAFFIC}"
            " ORDER BY created_at DESC LIMIT ?", (since, min(limit, MAX_ROWS)))

    async def find_mos(self, *, mo_id: str | None = None, carrier_id: str | None = None) -> list[MessageRow]:
        column, value = ("id", mo_id) if mo_id is not None else ("carrier_id", carrier_id)
        rows = await self._fetch(f"SELECT {_MO_ROW} FROM mo_messages WHERE {column} = ?"
                                 " ORDER BY taken_at LIMIT ?", (value, MAX_ROWS))
        return [_mo_row(row) for row in rows]

    async def conversation(self, phone: str, limit: int = MAX_ROWS) -> list[MessageRow]:
        limit = min(limit, MAX_ROWS)
        mos = await self._fetch(f"SELECT {_MO_ROW} FROM mo_messages WHERE sender = ?"
                                " ORDER BY taken_at DESC LIMIT ?", (phone, limit))
        mts = await self._fetch(f"SELECT {_MT_ROW} FROM mt_messages WHERE recipient = ?"
                                " ORDER BY created_at DESC LIMIT ?", (phone, limit))
        rows = [_mo_row(row) for row in mos] + [_mt_row(row) for row in mts]
        return sorted(rows, key=lambda row: (row.at, row.kind == "mt", row.id))

    # -- questions and ratings --------------------------------------------------------------
    async def open_questions(self, limit: int = MAX_ROWS) -> list[Question]:
        rows = await self._fetch(f"SELECT {QUESTION_COLUMNS} FROM questions WHERE answered_by IS NULL AND faq_id IS NULL"
                                 f" AND {REAL_TRAFFIC} ORDER BY number LIMIT ?", (min(limit, MAX_ROWS),))
        return [question_of(row) for row in rows]

    async def question(self, number: str) -> Question | None:
        digits = question_digits(number)
        if digits is None:
            return None
        rows = await self._fetch(f"SELECT {QUESTION_COLUMNS} FROM questions WHERE number = ?", (digits,))
        return question_of(rows[0]) if rows else None

    async def answered_questions(self, limit: int = 50) -> list[Question]:
        rows = await self._fetch(f"SELECT {QUESTION_COLUMNS} FROM questions WHERE answered_by IS NOT NULL"
                                 " ORDER BY answered_at DESC LIMIT ?", (min(limit, MAX_ROWS),))
        return [question_of(row) for row in rows]

    async def rating_counts(self, start: float, end: float) -> list[tuple[int, str | None, int]]:
        return sorted(await self._fetch(
            f"SELECT r.rating, m.command, count(*) FROM ratings AS r {_RATINGS_JOIN}"
            " r.rated_at >= ? AND r.rated_at < ? GROUP BY r.rating, m.command", (start, end)),
            key=lambda row: (row[0], row[1] or ""))

    async def rating_comments(self, start: float, end: float,
                              limit: int = MAX_ROWS) -> list[tuple[float, str, int, str | None, str]]:
        return await self._fetch(
            f"SELECT r.rated_at, r.sender, r.rating, m.command, r.comment FROM ratings AS r {_RATINGS_JOIN}"
            " r.rated_at >= ? AND r.rated_at < ? AND r.comment IS NOT NULL AND r.comment != ''"
            " ORDER BY r.rated_at DESC LIMIT ?", (start, end, min(limit, MAX_ROWS)))


# the MO a rating rated (its command; none: the service); ratings sent from the simulator left out
_RATINGS_JOIN = f"LEFT JOIN mo_messages AS m ON m.id = r.rated_mo_id WHERE {NOT_TEST_RATING} AND"


_MO_ROW = "id, coalesce(taken_at, 0), carrier, sender, text, status, command, error, guard"
_MT_ROW = "id, created_at, carrier, recipient, text, status, message_type, dlr_state, mo_id"


def _mo_row(row: Sequence[Any]) -> MessageRow:
    mo_id, at, carrier, sender, text, status, command, error, guard = row
    detail = error or command or guard or ""
    return MessageRow("mo", mo_id, at, carrier, sender, text, status, detail, mo_id)


def _mt_row(row: Sequence[Any]) -> MessageRow:
    mt_id, at, carrier, recipient, text, status, message_type, dlr_state, mo_id = row
    detail = f"message_type {message_type}" + (f", {dlr_state}" if dlr_state else "")
    return MessageRow("mt", mt_id, at, carrier, recipient, text, status, detail, mo_id)
