"""Personal data of the conversation and API tables (CONTRACT §7, §8, §11): prune, export, erase.

What each table keeps once its rows are older than `[retention] days`, or erased on request:

    questions      sender -> its keyed hash; text -> ''; answer -> '' (NULL stays NULL). The row
                   stays, countable (number, carrier, times, faq_id, who answered: staff's name).
                   An open question erased cannot be answered (`erased_phone`): the CLI and the
                   console refuse, naming the retention; staff close it (`questions close`).
    ratings        sender -> its keyed hash; comment -> '' (NULL stays NULL). The rating, what it
                   rated and when stay: the satisfaction report counts them.
    api_messages   recipient -> its keyed hash, once no longer `queued` (a queued one is still the
                   outbox's). The text is only in mt_messages, pruned there.
    opt_outs       KEPT, in clear, while in force: a phone that sent BH TC gets no notice until it
                   sends BH DK (which deletes the row); erasing it would start the notices again.
                   The row is the least that honours the request (the phone and since when).
    api_callbacks  nothing personal (message id, status, times, the client's HTTP error): kept.
    dossier_changes  nothing personal (a dossier code of the records, a status, times): kept.
    console_audit  staff names and actions; a phone in it is masked (phones.mask): kept.

SQLite: each step is a pick (read, outside the write lock) and a short UPDATE by rowid that
re-checks the row still has its data, as sqlite_retention.py's steps. PostgreSQL: one UPDATE
statement a step, hashing on the server, as pg_retention.py's (`pg_prune_steps`). The indexes
`questions_kept` and `ratings_kept` (`KEPT_INDEXES`, schema step "retention of the conversation
tables") hold only the rows whose data is still there, oldest first.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from .retention import HASH_LENGTH, phone_hash

KEPT_INDEXES = """
CREATE INDEX IF NOT EXISTS questions_kept ON questions (asked_at) WHERE length(sender) != 64;
CREATE INDEX IF NOT EXISTS ratings_kept ON ratings (rated_at) WHERE length(sender) != 64
"""


def erased_phone(phone: str) -> bool:
    """Whether a stored phone was replaced by its keyed hash (the retention, or an erasure)."""
    return len(phone) == HASH_LENGTH


# -- SQLite ----------------------------------------------------------------------------------

def _pick_questions(conn: sqlite3.Connection, cutoff: float, key: bytes, limit: int) -> list[tuple]:
    rows = conn.execute("SELECT rowid, sender FROM questions WHERE length(sender) != 64 AND asked_at < ?"
                        " ORDER BY asked_at LIMIT ?", (cutoff, limit)).fetchall()
    return [(phone_hash(key, sender), rowid) for rowid, sender in rows]


def _pick_ratings(conn: sqlite3.Connection, cutoff: float, key: bytes, limit: int) -> list[tuple]:
    rows = conn.execute("SELECT rowid, sender FROM ratings WHERE length(sender) != 64 AND rated_at < ?"
                        " ORDER BY rated_at LIMIT ?", (cutoff, limit)).fetchall()
    return [(phone_hash(key, sender), rowid) for rowid, sender in rows]


_ERASE_QUESTION = "sender = ?, text = '', answer = CASE WHEN answer IS NULL THEN NULL ELSE '' END"
_ERASE_RATING = "sender = ?, comment = CASE WHEN comment IS NULL THEN NULL ELSE '' END"

# (table, pick, update) as sqlite_retention._PRUNE_STEPS, after its steps
SQLITE_PRUNE_STEPS: tuple[tuple[str, Callable[..., list[tuple]], str], ...] = (
    ("questions", _pick_questions, f"UPDATE questions SET {_ERASE_QUESTION} WHERE rowid = ? AND length(sender) != 64"),
    ("ratings", _pick_ratings, f"UPDATE ratings SET {_ERASE_RATING} WHERE rowid = ? AND length(sender) != 64"),
)

_QUESTIONS = ("SELECT number, mo_id, carrier, sender, text, asked_at, faq_id, answer, answered_by, answered_at"
              " FROM questions WHERE sender IN ({0}, {1}) ORDER BY number")
_RATINGS = ("SELECT mo_id, sender, rating, comment, rated_mo_id, rated_at FROM ratings WHERE sender IN ({0}, {1})"
            " ORDER BY rated_at")
_OPT_OUT = "SELECT phone, since FROM opt_outs WHERE phone = {0}"
_API_MESSAGES = ("SELECT id, key_name, recipient, class, status, batch_id, created_at, updated_at FROM api_messages"
                 " WHERE recipient IN ({0}, {1}) ORDER BY created_at")


def sqlite_export(conn: sqlite3.Connection, phone: str, hashed: str) -> dict[str, Any]:
    """The phone's questions, ratings and opt-out, in the caller's read transaction."""
    def rows(sql: str) -> list[dict[str, Any]]:
        cursor = conn.execute(sql.format("?", "?"), (phone, hashed)[:sql.count("{")])
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row)) for row in cursor]

    return {"questions": rows(_QUESTIONS), "ratings": rows(_RATINGS), "opt_outs": rows(_OPT_OUT)}


def sqlite_erase(conn: sqlite3.Connection, phone: str, hashed: str) -> dict[str, int]:
    """Erase the phone's questions and ratings in the caller's write transaction; count its opt-out, kept."""
    return {
        "questions": conn.execute(f"UPDATE questions SET {_ERASE_QUESTION} WHERE sender = ?", (hashed, phone)).rowcount,
        "ratings": conn.execute(f"UPDATE ratings SET {_ERASE_RATING} WHERE sender = ?", (hashed, phone)).rowcount,
        "opt_outs_kept": conn.execute("SELECT count(*) FROM opt_outs WHERE phone = ?", (phone,)).fetchone()[0],
    }


# -- PostgreSQL ------------------------------------------------------------------------------

def pg_prune_steps(hashed: Callable[[str], str]) -> tuple[tuple[str, bool, str], ...]:
    """(table, cutoff as ISO text?, statement) as pg_retention._PRUNE_STEPS, after its steps; `hashed`
    is its SQL of a column's keyed hash. $1 the cutoff, $2 the most rows, $3/$4 the key's pads."""
    return (
        ("api_messages", False,
         f"UPDATE api_messages SET recipient = {hashed('recipient')} WHERE id IN"
         " (SELECT id FROM api_messages WHERE length(recipient) <> 64 AND created_at < $1 AND status <> 'queued'"
         " ORDER BY created_at LIMIT $2)"),
        ("questions", False,
         f"UPDATE questions SET {_ERASE_QUESTION.replace('?', hashed('sender'))} WHERE number IN"
         " (SELECT number FROM questions WHERE length(sender) <> 64 AND asked_at < $1 ORDER BY asked_at LIMIT $2)"),
        ("ratings", False,
         f"UPDATE ratings SET {_ERASE_RATING.replace('?', hashed('sender'))} WHERE mo_id IN"
         " (SELECT mo_id FROM ratings WHERE length(sender) <> 64 AND rated_at < $1 ORDER BY rated_at LIMIT $2)"),
    )


async def pg_export(conn: Any, phone: str, hashed: str) -> dict[str, Any]:
    """The phone's questions, ratings, opt-out and API messages, in the caller's read transaction."""
    async def rows(sql: str) -> list[dict[str, Any]]:
        return [dict(row) for row in await conn.fetch(sql.format("$1", "$2"), *(phone, hashed)[:sql.count("{")])]

    return {"questions": await rows(_QUESTIONS), "ratings": await rows(_RATINGS),
            "opt_outs": await rows(_OPT_OUT), "api_messages": await rows(_API_MESSAGES)}


async def pg_erase(conn: Any, phone: str, hashed: str) -> dict[str, int]:
    """Erase the phone's questions, ratings and API messages (not queued) in the caller's
    transaction; count its opt-out, kept."""
    async def changed(sql: str) -> int:
        return int((await conn.execute(sql, hashed, phone)).rsplit(" ", 1)[1])

    return {
        "api_messages": await changed(
            "UPDATE api_messages SET recipient = $1 WHERE recipient = $2 AND status <> 'queued'"),
        "questions": await changed(f"UPDATE questions SET {_ERASE_QUESTION.replace('?', '$1')} WHERE sender = $2"),
        "ratings": await changed(f"UPDATE ratings SET {_ERASE_RATING.replace('?', '$1')} WHERE sender = $2"),
        "opt_outs_kept": await conn.fetchval("SELECT count(*) FROM opt_outs WHERE phone = $1", phone),
    }
