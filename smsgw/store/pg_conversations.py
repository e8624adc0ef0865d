"""The conversation commands' statements on PostgreSQL (CONTRACT §7), inside the caller's transaction.

As sqlite_conversations.py; a question's number comes from the `questions` table's sequence,
unique across gateways. Two gateways taking MOs of one phone at once: the rating's choice of
the last answered MO reads what is committed (READ COMMITTED), as a citizen would expect.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import asyncpg

from ..phones import mask
from ..wire import OutboundMessage
from .messages import (QUESTION_COLUMNS, QUESTION_PREFIX, RATED_WITHIN, REPLY_LANE, Effect, Question, StaffAnswer,
                       question_digits, question_of)
from .faq_entries import pg_append_example, pg_has_entry
from .retention_tables import erased_phone
_RATED = (
    "SELECT mo_id FROM ("
    " SELECT id AS mo_id, taken_at AS at FROM mo_messages WHERE sender = $1 AND guard IS NULL"
    "  AND taken_at > $2 AND id != $3 AND error IS NULL AND command IN ('QT', 'HS', 'THE', 'HOI')"
    " UNION ALL SELECT mo_id, answered_at FROM questions WHERE sender = $1 AND answered_at > $2"
    "  AND answer IS NOT NULL"
    ") AS answered ORDER BY at DESC LIMIT 1")


async def write_effect(conn: asyncpg.Connection, effect: Effect, *, mo_id: str, carrier: str, sender: str,
                       now: float) -> str | None:
    """Write `effect` of the MO `mo_id`; a question's number, else None."""
    if effect.kind == "question":
        number = await conn.fetchval(
            "INSERT INTO questions (mo_id, carrier, sender, text, asked_at, faq_id) VALUES ($1, $2, $3, $4, $5, $6)"
            " RETURNING number", mo_id, carrier, sender, effect.text, now, effect.faq_id)
        return f"{QUESTION_PREFIX}{number}"
    if effect.kind == "rating":
        rated = await conn.fetchval(_RATED, sender, now - RATED_WITHIN, mo_id)
        await conn.execute("INSERT INTO ratings (mo_id, sender, rating, comment, rated_mo_id, rated_at) VALUES"
                           " ($1, $2, $3, $4, $5, $6)", mo_id, sender, effect.rating, effect.text, rated, now)
    elif effect.kind == "opt_out":
        await conn.execute("INSERT INTO opt_outs (phone, since) VALUES ($1, $2) ON CONFLICT (phone) DO NOTHING",
                           sender, now)
    elif effect.kind == "opt_in":
        await conn.execute("DELETE FROM opt_outs WHERE phone = $1", sender)
    else:
        raise ValueError(f"unknown conversation effect {effect.kind!r}")
    return None


async def opted_out(conn: asyncpg.Connection, phones: Sequence[str]) -> set[str]:
    rows = await conn.fetch("SELECT phone FROM opt_outs WHERE phone = ANY($1::text[])", sorted(set(phones)))
    return {row[0] for row in rows}


async def questions(conn: asyncpg.Connection, open_only: bool) -> list[Question]:
    where = " WHERE answered_by IS NULL AND faq_id IS NULL" if open_only else ""
    return [question_of(row) for row in await conn.fetch(
        f"SELECT {QUESTION_COLUMNS} FROM questions{where} ORDER BY number")]


async def answer_question(conn: asyncpg.Connection, number: str,
                          word: Callable[[Question], OutboundMessage | None], *, by: str, now: float,
                          lease_until: float, owner: str, insert_mt: str, mt_values: Callable[[OutboundMessage], tuple],
                          at: str, example_of: str | None = None) -> StaffAnswer | None:
    """The staff answer stored with the question's answered state, or the question closed; the row
    locked (FOR UPDATE) so that two answers at once are one answer and one refusal."""
    digits = question_digits(number)
    row = None if digits is None else await conn.fetchrow(
        f"SELECT {QUESTION_COLUMNS} FROM questions WHERE number = $1 FOR UPDATE", digits)
    if row is None:
        return None
    question = question_of(row)
    if question.answered_by is not None:
        return StaffAnswer(question, None)
    if example_of is not None and not await pg_has_entry(conn, example_of):
        return StaffAnswer(question, None, no_entry=True)
    mt = word(question)
    if mt is None:
        await conn.execute("UPDATE questions SET answered_by = $1, answered_at = $2 WHERE number = $3", by, now, digits)
        return StaffAnswer(question, None, closed=True)
    if erased_phone(question.sender):   # erased by the retention since the caller looked: no one to send to
        return None
    await conn.execute(insert_mt, *mt_values(mt), 0, "pending", now, now, lease_until, owner, REPLY_LANE, None)
    await conn.execute(
        "INSERT INTO billing_rows (kind, carrier, mo_id, mt_id, msisdn, amount_vnd, message_type, at)"
        " VALUES ('push', $1, $2, $3, $4, 0, $5, $6)", mt.carrier, mt.mo_id, mt.id, mask(mt.to),
        int(mt.message_type), at)
    await conn.execute("UPDATE questions SET answer = $1, answered_by = $2, answered_at = $3, answer_mt_id = $4"
                       " WHERE number = $5", mt.text, by, now, mt.id, digits)
    if example_of is not None:
        await pg_append_example(conn, example_of, question.text, now)
    return StaffAnswer(question, mt)
