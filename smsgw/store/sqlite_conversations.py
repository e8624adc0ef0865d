"""The conversation commands' statements on SQLite (CONTRACT §7), run inside the writer's transactions.

`write_effect` runs in `store_mo`'s transaction, after the MO's row: a question numbered, a
rating tied to the phone's last answered MO, an opt-out recorded or removed. The tables are
sqlite_tables.CONVERSATION_TABLES.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from ..phones import mask
from ..wire import OutboundMessage
from .messages import (QUESTION_COLUMNS, QUESTION_PREFIX, RATED_WITHIN, Effect, Question, StaffAnswer,
                       question_digits, question_of)
from .faq_entries import sqlite_append_example, sqlite_has_entry
from .retention_tables import erased_phone
# The phone's last answered MO: a lookup or a question understood and answered as usual, or a
# question staff answered (not one closed without an answer), within RATED_WITHIN; the latest of them.
_RATED = (
    "SELECT mo_id FROM ("
    " SELECT id AS mo_id, taken_at AS at FROM mo_messages WHERE sender = :sender AND guard IS NULL"
    "  AND taken_at > :since AND id != :mo_id AND error IS NULL AND command IN ('QT', 'HS', 'THE', 'HOI')"
    " UNION ALL SELECT mo_id, answered_at FROM questions WHERE sender = :sender AND answered_at > :since"
    "  AND answer IS NOT NULL"
    ") ORDER BY at DESC LIMIT 1")


def write_effect(conn: sqlite3.Connection, effect: Effect, *, mo_id: str, carrier: str, sender: str,
                 now: float) -> str | None:
    """Write `effect` of the MO `mo_id`; a question's number, else None."""
    if effect.kind == "question":
        number = conn.execute(
            "INSERT INTO questions (mo_id, carrier, sender, text, asked_at, faq_id, answered_at) VALUES"
            " (?, ?, ?, ?, ?, ?, NULL)", (mo_id, carrier, sender, effect.text, now, effect.faq_id)).lastrowid
        return f"{QUESTION_PREFIX}{number}"
    if effect.kind == "rating":
        rated = conn.execute(_RATED, {"sender": sender, "since": now - RATED_WITHIN, "mo_id": mo_id}).fetchone()
        conn.execute("INSERT INTO ratings (mo_id, sender, rating, comment, rated_mo_id, rated_at) VALUES"
                     " (?, ?, ?, ?, ?, ?)",
                     (mo_id, sender, effect.rating, effect.text, rated[0] if rated else None, now))
    elif effect.kind == "opt_out":
        conn.execute("INSERT INTO opt_outs (phone, since) VALUES (?, ?) ON CONFLICT (phone) DO NOTHING", (sender, now))
    elif effect.kind == "opt_in":
        conn.execute("DELETE FROM opt_outs WHERE phone = ?", (sender,))
    else:
        raise ValueError(f"unknown conversation effect {effect.kind!r}")
    return None


def opted_out(conn: sqlite3.Connection, phones: Sequence[str]) -> set[str]:
    found: set[str] = set()
    unique = sorted(set(phones))
    for start in range(0, len(unique), 500):
        chunk = unique[start:start + 500]
        found.update(row[0] for row in conn.execute(
            f"SELECT phone FROM opt_outs WHERE phone IN ({', '.join('?' * len(chunk))})", chunk))
    return found


def questions(conn: sqlite3.Connection, open_only: bool) -> list[Question]:
    where = " WHERE answered_by IS NULL AND faq_id IS NULL" if open_only else ""
    return [question_of(row) for row in conn.execute(
        f"SELECT {QUESTION_COLUMNS} FROM questions{where} ORDER BY number")]


def answer_question(conn: sqlite3.Connection, number: str, word: Callable[[Question], OutboundMessage | None], *,
                    by: str, now: float, lease_until: float, insert_mt: Callable[..., None],
                    at: str, example_of: str | None = None) -> StaffAnswer | None:
    """The staff answer stored with the question's answered state, or the question closed
    (see MessageStore.answer_question)."""
    digits = question_digits(number)
    row = None if digits is None else conn.execute(
        f"SELECT {QUESTION_COLUMNS} FROM questions WHERE number = ?", (digits,)).fetchone()
    if row is None:
        return None
    question = question_of(row)
    if question.answered_by is not None:
        return StaffAnswer(question, None)
    if example_of is not None and not sqlite_has_entry(conn, example_of):
        return StaffAnswer(question, None, no_entry=True)
    mt = word(question)
    if mt is None:
        conn.execute("UPDATE questions SET answered_by = ?, answered_at = ? WHERE number = ?", (by, now, digits))
        return StaffAnswer(question, None, closed=True)
    if erased_phone(question.sender):   # erased by the retention since the caller looked: no one to send to
        return None
    insert_mt(conn, mt, now, lease_until)
    conn.execute(
        "INSERT INTO billing_rows (kind, carrier, mo_id, mt_id, msisdn, amount_vnd, message_type, at)"
        " VALUES ('push', ?, ?, ?, ?, 0, ?, ?)", (mt.carrier, mt.mo_id, mt.id, mask(mt.to), int(mt.message_type), at))
    conn.execute("UPDATE questions SET answer = ?, answered_by = ?, answered_at = ?, answer_mt_id = ? WHERE number = ?",
                 (mt.text, by, now, mt.id, digits))
    if example_of is not None:
        sqlite_append_example(conn, example_of, question.text, now)
    return StaffAnswer(question, mt)
