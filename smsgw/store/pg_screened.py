"""Screened MOs stored together on PostgreSQL: per-phone protection decided for a batch at once.

An MO that per-phone protection screens (protection.py) is decided on its sender's history, the
phone's MOs of the last hour and minute. The screened MOs that arrive while a transaction is
under way go together in the next one (pg_batches.py), which pg_messages.py runs as:

1. `lock`: the advisory transaction locks of all the batch's senders, in the order of their keys
   (`hashtext(sender)`, the key the single-MO path locks too), so that two gateways' batches
   never wait for each other in a cycle;
2. `histories`: in the next statement, whose snapshot sees every MO committed by whoever held one
   of those locks before, each MO's sender history as sqlite_messages.py counts it, and whether
   its (carrier, id) is stored already;
3. `decide`: in Python, in arrival order, each new MO decided by its screening's own rule on that
   history plus the batch's earlier MOs of the same phone, counted as the SQL counts them;
4. the MOs with their guards, MTs and charges in one statement (pg_messages.py).

A phone's MOs are decided one transaction at a time whichever gateway takes them, so its counts
stay exact across gateways: five round trips for a batch instead of five or six for each MO.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from .messages import Guard, Screening, SenderHistory

# One lock per sender, taken in key order (the aggregate reads its ordered subquery row by row).
_LOCK = ("SELECT count(pg_advisory_xact_lock(key)) FROM"
         " (SELECT DISTINCT hashtext(sender) AS key FROM unnest($1::text[]) AS sender ORDER BY key) AS keys")

# For each MO ($1-$7: carrier, id, sender, text, an hour ago, a minute ago, cap; $8 the rate-limit
# guard): whether it is stored already, then its sender's history as pg_messages' single-MO path
# reads it (answered in the hour, warned in the hour, the same text in the minute).
_HISTORIES = (
    "SELECT EXISTS (SELECT 1 FROM mo_messages WHERE carrier = i.carrier AND carrier_id = i.carrier_id),"
    " (SELECT count(*) FROM (SELECT 1 FROM mo_messages WHERE sender = i.sender AND guard IS NULL"
    "  AND taken_at > i.hour_ago LIMIT i.cap) AS a),"
    " EXISTS (SELECT 1 FROM mo_messages WHERE sender = i.sender AND guard = $8 AND taken_at > i.hour_ago),"
    " (SELECT count(*) FROM (SELECT 1 FROM mo_messages WHERE sender = i.sender AND guard IS NULL"
    "  AND taken_at > i.minute_ago AND text = i.text LIMIT i.cap) AS b)"
    " + (SELECT count(*) FROM (SELECT 1 FROM mo_messages WHERE sender = i.sender AND guard IS NOT NULL"
    "  AND taken_at > i.minute_ago AND text = i.text LIMIT i.cap) AS c)"
    " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[], $6::float8[], $7::int[])"
    " WITH ORDINALITY AS i(carrier, carrier_id, sender, text, hour_ago, minute_ago, cap, n) ORDER BY i.n")


@dataclass(frozen=True)
class Candidate:
    """A screened MO to decide: what its sender's history is read and counted by."""

    carrier: str
    carrier_id: str
    sender: str
    text: str
    now: float
    screening: Screening


@dataclass(frozen=True)
class Found:
    """What the database holds for a candidate: whether its (carrier, id) is stored, and its sender's history."""

    stored: bool
    history: SenderHistory


async def lock(conn: asyncpg.Connection, senders: Sequence[str]) -> None:
    """Take every sender's advisory transaction lock (in key order): held until the transaction ends."""
    await conn.fetchval(_LOCK, sorted(set(senders)))


async def histories(conn: asyncpg.Connection, candidates: Sequence[Candidate]) -> list[Found]:
    """Each candidate's `Found`, read in one statement (run it after `lock`)."""
    rows = await conn.fetch(
        _HISTORIES, [c.carrier for c in candidates], [c.carrier_id for c in candidates],
        [c.sender for c in candidates], [c.text for c in candidates],
        [c.now - c.screening.hour for c in candidates], [c.now - c.screening.minute for c in candidates],
        [c.screening.cap for c in candidates], Guard.RATE_LIMITED.value)
    return [Found(stored, SenderHistory(answered=answered, warned=warned, repeats=repeats))
            for stored, answered, warned, repeats in rows]


@dataclass(frozen=True)
class Decision:
    new: bool                 # False: stored already (or earlier in this batch): the stored MO is the answer
    guard: Guard | None = None


def decide(candidates: Sequence[Candidate], found: Sequence[Found]) -> list[Decision]:
    """Decide the candidates in order: each on its history in the database plus the batch's
    earlier new MOs of its phone (an MO answered normally, the polite reply, the same text)."""
    earlier: dict[str, list[tuple[str, Guard | None]]] = {}
    seen: set[tuple[str, str]] = set()
    decisions = []
    for candidate, held in zip(candidates, found, strict=True):
        key = (candidate.carrier, candidate.carrier_id)
        if held.stored or key in seen:
            decisions.append(Decision(new=False))
            continue
        seen.add(key)
        before = earlier.setdefault(candidate.sender, [])
        history = SenderHistory(
            answered=held.history.answered + sum(guard is None for _, guard in before),
            warned=held.history.warned or any(guard is Guard.RATE_LIMITED for _, guard in before),
            repeats=held.history.repeats + sum(text == candidate.text for text, _ in before))
        guard = candidate.screening.decide(history)
        before.append((candidate.text, guard))
        decisions.append(Decision(new=True, guard=guard))
    return decisions
