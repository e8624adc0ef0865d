"""The message store on PostgreSQL: `MessageStore`'s operations for any number of gateways on one database.

The tables are made by schema.py (`smsgw db migrate`). Each operation is one short transaction
on a pooled asyncpg connection (pg_pool.py), on the event loop. The MOs, and the MTs marked
sent, that arrive while a statement is under way go together in the next one (group commit,
pg_batches.py): one round trip for many, or one transaction for the MOs that per-phone
protection screens (pg_screened.py).

Across gateways:
- one answer and one charge per (carrier, id): the MO's INSERT ... ON CONFLICT DO NOTHING on
  the unique key waits for a concurrent transaction inserting the same key; when that one
  commits, this one inserts nothing and reads the winner's MO and replies (READ COMMITTED: the
  next statement sees the committed rows);
- per-phone protection: a transaction that decides on senders' histories first takes
  `pg_advisory_xact_lock(hashtext(sender))` for each of them (a batch's in key order), so the
  MOs of one phone are counted one transaction at a time whichever gateway takes them;
- delivery reports: the MT's row is locked (FOR UPDATE) while the state only moves forward;
- MTs pending in the outbox: see `pending` (claimed with a lease). A lease names its holder
  (`lease_owner`, this store's `owner`, made at open): renewing, releasing and recording a retry
  change only the MTs whose lease this gateway still holds, so a gateway whose lease ran out and
  was taken over cannot extend, free or overwrite (attempts, next attempt) the new holder's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import asyncpg

from ..billing import MessageType
from ..ids import new_id
from ..phones import mask
from ..wire import DeliveryReport, DeliveryState, InboundMessage, OutboundMessage
from . import pg_conversations, pg_screened
from .messages import (BillingRow, Effect, Guard, MessageStore, MTState, Notice, PendingMT, Question, Screening,
                       SenderHistory, StaffAnswer, StoredMO, stored_statuses)
from .pg_batches import Batches
from .pg_pacing import PgPacing
from .pg_pool import CONNECT_TIMEOUT, connection, create_pool, is_connection_error, transaction, unreachable
from .errors import StoreError
from .schema import shown
from .sqlite_tables import iso_time as _iso

_MT_COLUMNS = "id, mo_id, in_reply_to, carrier, sender, recipient, text, encoding, segments, message_type"
_INSERT_MT = (f"INSERT INTO mt_messages ({_MT_COLUMNS}, seq, status, created_at, next_attempt_at, lease_until,"
              " lease_owner, lane, not_before) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,"
              " $15, $16, $17, $18)")
# How long an MT claimed by a gateway stays its own without renewal (see `pending`); the outbox
# renews its leases every third of it. SMSGW_LEASE_SECONDS overrides it (every gateway the same).
LEASE_SECONDS = 60.0
LEASE_VARIABLE = "SMSGW_LEASE_SECONDS"
# The channel on which a gateway tells the others that MTs are claimable now (LISTEN/NOTIFY).
CHANNEL = "smsgw_outbox"
# UPDATEs marking MTs sent under way at once (each for the sends that ended meanwhile): the
# outbox's sends wait for theirs, so one slow commit does not hold every send slot. Each waits
# MARK_LINGER seconds before taking its batch: a send slot waits that much longer (there are 256,
# gateway.MT_CONCURRENCY_SHARED), and a statement marks 24 MTs instead of 15 at 1,000-1,500 MT/s
# (46 with one under way at a time; the server's CPU per async MO 185-214 -> 138-184 µs).
MARKING = 2
MARK_LINGER = 0.01


def lease_seconds() -> float:
    """The lease length: SMSGW_LEASE_SECONDS when set, else LEASE_SECONDS; StoreError for a bad value."""
    value = os.environ.get(LEASE_VARIABLE)
    if value is None:
        return LEASE_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not 1.0 <= seconds <= 86400.0:
        raise StoreError(f"{LEASE_VARIABLE}={value!r}: a number of seconds from 1 to 86400 is needed")
    return seconds


class PgMessageStore(MessageStore):
    """The message tables of a PostgreSQL database; open with `await PgMessageStore.open(url)`."""

    shared = True

    def __init__(self, pool: asyncpg.Pool, url: str, *, lease: float = LEASE_SECONDS,
                 on_batch: Callable[[int], None] | None = None,
                 on_commit: Callable[[float], None] | None = None) -> None:
        self.path = shown(url)
        self.lease_seconds = lease
        self._on_batch = on_batch
        self._on_commit = on_commit
        self._url = url
        self._pool = pool
        self._closed = False
        self._listener: asyncpg.Connection | None = None
        self._stores: Batches[_MO, bool] = Batches(self._store_together, "smsgw-store-mos")
        self._marks: Batches[str, None] = Batches(self._mark_together, "smsgw-mark-sent", parallel=MARKING,
                                                   linger=MARK_LINGER)
        self._screened: Batches[_Screened, StoredMO | None] = Batches(self._screen_together, "smsgw-store-screened")
        self.owner = new_id()   # names this gateway's leases

    @classmethod
    async def open(cls, url: str, *, on_batch: Callable[[int], None] | None = None,
                   on_commit: Callable[[float], None] | None = None) -> "PgMessageStore":
        """`on_batch`/`on_commit` see each statement storing MOs, as SQLite's writer reports its
        batches: how many MOs it stored and its time (a screened MO's transaction: 1)."""
        lease = lease_seconds()
        return cls(await create_pool(url), url, lease=lease, on_batch=on_batch, on_commit=on_commit)

    @property
    def alive(self) -> bool:
        return not self._closed

    @property
    def refusal(self) -> str | None:
        return None   # an unreachable database fails each operation with Unavailable (pg_pool.py)

    def pacing(self) -> PgPacing:
        """The carriers' MT pacing shared by the gateways on this database (pg_pacing.py)."""
        return PgPacing(self._pool)

    async def close(self) -> None:
        self._closed = True
        for batches in (self._stores, self._screened, self._marks):   # what was queued, written before the pool closes
            await batches.finished()
        await self.unwatch()
        await self._pool.close()

    async def store_mo(self, inbound: InboundMessage, *, mo_id: str, mode: str, command: str | None,
                       error: str | None, replies: Sequence[OutboundMessage], now: float,
                       guard: Guard | None = None, screening: Screening | None = None,
                       effect: Effect | None = None) -> StoredMO:
        status, mt_status = stored_statuses(mode, guard, replies)
        mo = (mo_id, inbound.carrier, inbound.carrier_id, inbound.sender, inbound.to, inbound.text,
              inbound.received_at.isoformat(), mode, command, error, status, now, guard.value if guard else None)
        queued = mode == "async"
        outbox = (mt_status, now, now if queued else None, now + self.lease_seconds if queued else None,
                  self.owner if queued else None, _iso(now))
        if effect is None and (screening is None or guard is not None):
            # nothing to decide on the sender's history: with the MOs stored at the same moment, in one statement
            if await self._stores.add(_MO(mo, replies, outbox)):
                return StoredMO(mo_id, inbound.carrier, inbound.carrier_id, mode, status if replies else "withheld",
                                command, error, tuple(replies), created=True, guard=guard.value if guard else None)
            async with connection(self._pool) as conn:
                return await _load_mo(conn, inbound.carrier, inbound.carrier_id)
        if effect is None:
            # decided on the sender's history with the screened MOs stored at the same moment
            stored = await self._screened.add(_Screened(_MO(mo, replies, outbox), screening))
            if stored is not None:
                return stored
            return await self.find_mo(inbound.carrier, inbound.carrier_id)
        started = time.perf_counter()
        stored = await self._store_screened(inbound, mo, status, outbox, replies=replies, guard=guard,
                                            screening=screening, effect=effect)
        self._report(1, started)
        return stored

    async def _store_together(self, batch: list[_MO]) -> list[bool | BaseException]:
        """Store the MOs of `batch` (each with its MTs and charges) in one statement: for each,
        whether it was inserted (False: its (carrier, id) was known). A batch failing on the
        server (not the connection) is stored again one MO at a time."""
        started = time.perf_counter()
        try:
            async with connection(self._pool) as conn:
                inserted = await _insert_mos(conn, batch)
        except asyncpg.PostgresError as exc:
            if len(batch) == 1:
                return [exc]
            return [result for item in batch for result in await self._store_together([item])]
        self._report(len(batch), started)
        return [item.mo[0] in inserted for item in batch]

    async def _screen_together(self, batch: list[_Screened]) -> list[StoredMO | None | BaseException]:
        """Decide and store the screened MOs of `batch` in one transaction (pg_screened.py): for
        each, what was stored, or None when its (carrier, id) was stored already. A batch failing
        on the server (not the connection) is stored again one MO at a time."""
        started = time.perf_counter()
        candidates = [pg_screened.Candidate(carrier=item.mo.mo[1], carrier_id=item.mo.mo[2], sender=item.mo.mo[3],
                                            text=item.mo.mo[5], now=item.mo.mo[11], screening=item.screening)
                      for item in batch]
        try:
            async with transaction(self._pool) as conn:
                await pg_screened.lock(conn, [candidate.sender for candidate in candidates])
                found = await pg_screened.histories(conn, candidates)
                decided = [_decided(item, decision) if decision.new else None
                           for item, decision in zip(batch, pg_screened.decide(candidates, found))]
                new = [one for one in decided if one is not None]
                inserted = await _insert_mos(conn, [mo for mo, _ in new]) if new else set()
        except asyncpg.PostgresError as exc:
            if len(batch) == 1:
                return [exc]
            return [result for item in batch for result in await self._screen_together([item])]
        self._report(len(batch), started)
        return [one[1] if one is not None and one[1].mo_id in inserted else None for one in decided]

    def _report(self, stored: int, started: float) -> None:
        if self._on_batch is not None:
            self._on_batch(stored)
        if self._on_commit is not None:
            self._on_commit(time.perf_counter() - started)

    async def _store_screened(self, inbound: InboundMessage, mo: tuple[Any, ...], status: str, outbox: tuple[Any, ...],
                              *, replies: Sequence[OutboundMessage], guard: Guard | None,
                              screening: Screening | None, effect: Effect | None) -> StoredMO:
        mo_id, mode, command, error, now = mo[0], mo[7], mo[8], mo[9], mo[11]
        async with transaction(self._pool) as conn:
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", inbound.sender)
            decided = guard
            sent = replies
            if screening is None or guard is not None:
                if not await conn.fetchval(_INSERT_MO, *mo):
                    return await _load_mo(conn, inbound.carrier, inbound.carrier_id)
            else:
                # the history in the statement after the lock: its snapshot sees the MOs of whoever held it
                inserted, *history = await conn.fetchrow(_STORE_MO_WITH_HISTORY, *mo, now - screening.hour,
                                                         screening.cap, Guard.RATE_LIMITED.value,
                                                         now - screening.minute)
                if not inserted:
                    return await _load_mo(conn, inbound.carrier, inbound.carrier_id)
                answered, warned, repeats = history
                decided = screening.decide(SenderHistory(answered=answered, warned=bool(warned), repeats=repeats))
                if decided is not None:
                    sent = [screening.instead] if decided is Guard.RATE_LIMITED else []
                    await conn.execute("UPDATE mo_messages SET guard = $1, status = $2 WHERE id = $3",
                                       decided.value, status if sent else "withheld", mo_id)
            if effect is not None and effect.written(decided):
                number = await pg_conversations.write_effect(conn, effect, mo_id=mo_id, carrier=inbound.carrier,
                                                             sender=inbound.sender, now=now)
                if number is not None and effect.numbered is not None:
                    sent = list(effect.numbered(number))
            if sent:
                await conn.execute(_STORE_MTS, *_mt_arrays([(mt, seq, outbox) for seq, mt in enumerate(sent)]))
            return StoredMO(mo_id, inbound.carrier, inbound.carrier_id, mode, status if sent else "withheld",
                            command, error, tuple(sent), created=True, guard=decided.value if decided else None)

    async def store_notices(self, notices: Sequence[Notice], *, now: float) -> list[PendingMT]:
        at = _iso(now)
        queued = []
        async with transaction(self._pool) as conn:
            stopped = await pg_conversations.opted_out(conn, [notice.mt.to for notice in notices])
            for notice in notices:
                mt = notice.mt
                if mt.to in stopped:   # BH TC: neither stored nor sent (a run after BH DK sends it)
                    continue
                if not await conn.fetchval(
                    "INSERT INTO notices (kind, target, occasion, mt_id, created_at) VALUES ($1, $2, $3, $4, $5)"
                    " ON CONFLICT DO NOTHING RETURNING true", notice.kind, notice.target, notice.occasion, mt.id, now,
                ):
                    continue
                # held beyond a lease: no gateway's until one claims it as its time nears (see `claim`)
                held = notice.not_before is not None and notice.not_before > now + self.lease_seconds
                await conn.execute(_INSERT_MT, *_mt_values(mt), 0, "pending", now, now,
                                   None if held else now + self.lease_seconds, None if held else self.owner,
                                   notice.lane, notice.not_before)
                queued.append(PendingMT(mt, 0, now, now, lane=notice.lane, not_before=notice.not_before))
            await _bill(conn, [("push", pending.mt, 0) for pending in queued], at)
        return queued

    async def find_mo(self, carrier: str, carrier_id: str) -> StoredMO | None:
        async with connection(self._pool) as conn:
            return await _load_mo(conn, carrier, carrier_id)

    async def questions(self, *, open_only: bool = False) -> list[Question]:
        async with connection(self._pool) as conn:
            return await pg_conversations.questions(conn, open_only)

    async def answer_question(self, number: str, word: Callable[[Question], OutboundMessage], *, by: str,
                              now: float, lease: float, example_of: str | None = None) -> StaffAnswer | None:
        async with transaction(self._pool) as conn:
            return await pg_conversations.answer_question(
                conn, number, word, by=by, now=now, lease_until=now + lease, owner=self.owner, insert_mt=_INSERT_MT,
                mt_values=_mt_values, at=_iso(now), example_of=example_of)

    async def opted_out(self, phones: Sequence[str]) -> set[str]:
        async with connection(self._pool) as conn:
            return await pg_conversations.opted_out(conn, phones)

    async def pending(self) -> list[PendingMT]:
        """Claim the MTs to deliver that no gateway holds (never claimed, or its lease run out), oldest first.

        Each is claimed for `lease_seconds` (FOR UPDATE SKIP LOCKED: two gateways claiming at once
        take different MTs); the ones this gateway stored itself are claimed as they are stored.
        """
        return await self.claim()

    async def claim(self) -> list[PendingMT]:
        """Also the MTs held until a time within a lease from now: claimed before their time, sent on time;
        those held longer are left to the claims nearer their time (nobody renews their leases for hours)."""
        now = time.time()
        async with transaction(self._pool) as conn:
            rows = await conn.fetch(
                f"UPDATE mt_messages SET lease_until = $1, lease_owner = $3 WHERE id IN (SELECT id FROM mt_messages"
                " WHERE status = 'pending' AND (lease_until IS NULL OR lease_until < $2)"
                " AND (not_before IS NULL OR not_before <= $1) FOR UPDATE SKIP LOCKED)"
                f" RETURNING {_MT_COLUMNS}, attempts, created_at, next_attempt_at, lane, not_before, mo_id, seq",
                now + self.lease_seconds, now, self.owner)
        rows = sorted(rows, key=lambda row: (row[13], row[11], row[15], row[16]))
        return [PendingMT(_mt(row), row[10], row[11], row[12] or row[11], lane=row[13], not_before=row[14])
                for row in rows]

    async def mark_sent(self, mt_id: str) -> None:
        """Mark `mt_id` sent (and its MO, once its last MT is): returns once committed. The MTs
        whose sends end while an UPDATE is under way are marked together by the next one."""
        await self._marks.add(mt_id)

    async def _mark_together(self, mt_ids: list[str]) -> list[None]:
        async with connection(self._pool) as conn:
            await conn.execute(_MARK_SENT, mt_ids)
        return [None] * len(mt_ids)

    async def schedule_retry(self, mt_id: str, *, attempts: int, next_attempt_at: float, error: str) -> None:
        async with transaction(self._pool) as conn:
            await conn.execute(
                "UPDATE mt_messages SET attempts = $1, next_attempt_at = $2, last_error = $3, lease_until = $4"
                " WHERE id = $5 AND status = 'pending' AND lease_owner = $6",
                attempts, next_attempt_at, error, next_attempt_at + self.lease_seconds, mt_id, self.owner)

    async def renew(self, mt_ids: Sequence[str]) -> set[str]:
        """Extend this gateway's leases not yet run out (one run out may be another gateway's by now)."""
        now = time.time()
        async with transaction(self._pool) as conn:
            rows = await conn.fetch(
                "UPDATE mt_messages SET lease_until = GREATEST(lease_until, $1) WHERE id = ANY($2::text[])"
                f" AND {_STILL_PENDING} AND lease_until >= $3 AND lease_owner = $4 RETURNING id",
                now + self.lease_seconds, list(mt_ids), now, self.owner)
        return {row[0] for row in rows}

    async def release(self, mt_ids: Sequence[str]) -> None:
        async with transaction(self._pool) as conn:
            await conn.execute("UPDATE mt_messages SET lease_until = NULL, lease_owner = NULL WHERE"
                               f" id = ANY($1::text[]) AND {_STILL_PENDING} AND lease_owner = $2",
                               list(mt_ids), self.owner)
            await conn.execute("SELECT pg_notify($1, '')", CHANNEL)   # delivered at COMMIT

    async def watch(self, wake: Callable[[], None]) -> None:
        """LISTEN on a connection of its own (not pooled); a lost one is replaced at the next call."""
        if self._listener is not None and not self._listener.is_closed():
            return
        await self.unwatch()
        try:
            listener = await asyncpg.connect(self._url, timeout=CONNECT_TIMEOUT)
            try:
                await listener.add_listener(CHANNEL, lambda *_: wake())
            except BaseException:   # cancelled (a gateway stopped right after start) or failed: not left open
                listener.terminate()
                raise
        except BaseException as exc:
            if is_connection_error(exc):
                raise unreachable(exc) from exc
            raise
        self._listener = listener

    async def unwatch(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.terminate()

    async def give_up(self, mt_id: str, *, error: str, now: float) -> bool:
        async with transaction(self._pool) as conn:
            row = await conn.fetchrow(f"SELECT {_MT_COLUMNS} FROM mt_messages WHERE id = $1 AND status = 'pending'"
                                      " FOR UPDATE", mt_id)
            if row is None:
                return False
            mt = _mt(row)
            await conn.execute("UPDATE mt_messages SET status = 'failed', next_attempt_at = NULL, last_error = $1,"
                               " lease_until = NULL WHERE id = $2", error, mt_id)
            await conn.execute("UPDATE mo_messages SET status = 'failed' WHERE id = $1", mt.mo_id)
            await _bill(conn, [("refund", mt, -mt.billing.amount_vnd)], _iso(now))
            return True

    async def record_delivery(self, report: DeliveryReport) -> DeliveryState | None:
        async with transaction(self._pool) as conn:
            row = await conn.fetchrow("SELECT dlr_state FROM mt_messages WHERE id = $1 AND carrier = $2 FOR UPDATE",
                                      report.mt_id, report.carrier)
            if row is None:
                return None
            current = DeliveryState(row[0]) if row[0] else None
            if not report.state.advances(current):
                return current
            await conn.execute("UPDATE mt_messages SET dlr_state = $1, dlr_time = $2 WHERE id = $3",
                               report.state.value, report.time.isoformat() if report.time else None, report.mt_id)
            return report.state

    async def mt_state(self, mt_id: str) -> MTState | None:
        async with connection(self._pool) as conn:
            row = await conn.fetchrow("SELECT status, attempts, last_error, dlr_state FROM mt_messages WHERE id = $1",
                                      mt_id)
        if row is None:
            return None
        return MTState(row[0], row[1], row[2], DeliveryState(row[3]) if row[3] else None)

    async def billing(self, mo_id: str | None = None) -> list[BillingRow]:
        query = "SELECT kind, carrier, mo_id, mt_id, msisdn, amount_vnd, message_type, at FROM billing_rows"
        async with connection(self._pool) as conn:
            rows = await (conn.fetch(query + " WHERE mo_id = $1 ORDER BY id", mo_id) if mo_id is not None
                          else conn.fetch(query + " ORDER BY id"))
        return [BillingRow(*row[:6], MessageType(row[6]), row[7]) for row in rows]

    async def probe(self) -> None:
        """Succeeds when a write commits now (one row rewritten); Unavailable when the database cannot be reached."""
        async with transaction(self._pool) as conn:
            await conn.execute("INSERT INTO store_probe (id, at) VALUES (1, $1) ON CONFLICT (id) DO UPDATE"
                               " SET at = excluded.at", time.time())


async def _load_mo(conn: asyncpg.Connection, carrier: str, carrier_id: str) -> StoredMO | None:
    row = await conn.fetchrow("SELECT id, mode, status, command, error, guard FROM mo_messages"
                              " WHERE carrier = $1 AND carrier_id = $2", carrier, carrier_id)
    if row is None:
        return None
    mo_id, mode, status, command, error, guard = row
    mts = await conn.fetch(f"SELECT {_MT_COLUMNS} FROM mt_messages WHERE mo_id = $1 ORDER BY seq", mo_id)
    return StoredMO(mo_id, carrier, carrier_id, mode, status, command, error,
                    tuple(_mt(mt) for mt in mts), created=False, guard=guard)


# Whether an MT found by its id or its MO is still pending, written so that the planner cannot
# answer it from the partial index mt_messages_pending: that index keeps an entry for every MT
# pending since the table's last VACUUM (an MT sent leaves a dead entry), so that ANDing it with
# the primary key's few rows reads thousands of entries (measured: marking 16 MTs sent took 3.3
# ms, 0.5 ms with the rows tested one by one), and the planner, counting live entries only,
# takes it for a small index.
_STILL_PENDING = "status || '' = 'pending'"

# MTs sent, $1 their ids; an MO moves to sent with its last pending MT. One statement: the second
# UPDATE sees the table as it was before the first, hence `id <> ALL($1)` in place of the MTs' new status.
_MARK_SENT = (
    "WITH mt AS (UPDATE mt_messages SET status = 'sent', next_attempt_at = NULL, last_error = NULL,"
    f" lease_until = NULL WHERE id = ANY($1::text[]) AND {_STILL_PENDING} RETURNING mo_id)"
    " UPDATE mo_messages SET status = 'sent' WHERE status = 'queued' AND id IN (SELECT mo_id FROM mt)"
    f" AND NOT EXISTS (SELECT 1 FROM mt_messages WHERE mo_id = mo_messages.id AND {_STILL_PENDING}"
    " AND id <> ALL($1::text[]))")

_INSERT_MO = (
    "INSERT INTO mo_messages (id, carrier, carrier_id, sender, recipient, text, received_at, mode, command, error,"
    " status, taken_at, guard) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    " ON CONFLICT (carrier, carrier_id) DO NOTHING RETURNING id")


_MT_ROW = ("id text, mo_id text, in_reply_to text, carrier text, sender text, recipient text, text text, encoding text,"
           " segments int, message_type int, msisdn text, amount int, seq int, status text, created_at float8,"
           " next_attempt_at float8, lease_until float8, lease_owner text, at text")


def _mts_from(first: int, condition: str = "") -> str:
    """The CTEs inserting MTs and their charge rows from the arrays at $first.. (see _mt_arrays)."""
    names = [column.split()[0] for column in _MT_ROW.split(", ")]
    arrays = ", ".join(f"${first + n}::{column.split()[1]}[]" for n, column in enumerate(_MT_ROW.split(", ")))
    return (f"m AS (SELECT * FROM unnest({arrays}) WITH ORDINALITY AS m({', '.join(names)}, n) {condition}),"
            f" mts AS (INSERT INTO mt_messages ({_MT_COLUMNS}, seq, status, created_at, next_attempt_at, lease_until,"
            f" lease_owner) SELECT {_MT_COLUMNS}, seq, status, created_at, next_attempt_at, lease_until, lease_owner"
            " FROM m),"
            " charges AS (INSERT INTO billing_rows (kind, carrier, mo_id, mt_id, msisdn, amount_vnd, message_type, at)"
            " SELECT 'charge', carrier, mo_id, id, msisdn, amount, message_type, at FROM m ORDER BY n)")


# MOs (arrays $1..$13, the columns of _INSERT_MO), their MTs and charges in one statement: the MTs of
# the MOs inserted, whose ids it returns (an MO whose (carrier, id) is known is left as it is)
_STORE_MOS = (
    "WITH mo AS (INSERT INTO mo_messages (id, carrier, carrier_id, sender, recipient, text, received_at, mode,"
    " command, error, status, taken_at, guard) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],"
    " $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::float8[],"
    " $13::text[]) ON CONFLICT (carrier, carrier_id) DO NOTHING RETURNING id),"
    f" {_mts_from(14, 'WHERE mo_id IN (SELECT id FROM mo)')} SELECT id FROM mo")
_STORE_MTS = f"WITH {_mts_from(1)} SELECT 1"


# The MO, and the sender's recent MOs before it, as the SQLite store counts them (sqlite_messages.py).
# $14 an hour ago, $15 the cap, $16 the rate-limit guard, $17 a minute ago.
_STORE_MO_WITH_HISTORY = (
    f"WITH mo AS ({_INSERT_MO})"
    " SELECT EXISTS (SELECT 1 FROM mo),"
    " (SELECT count(*) FROM (SELECT 1 FROM mo_messages WHERE sender = $4 AND guard IS NULL"
    "  AND taken_at > $14 AND id != $1 LIMIT $15) AS a),"
    " EXISTS (SELECT 1 FROM mo_messages WHERE sender = $4 AND guard = $16 AND taken_at > $14),"
    " (SELECT count(*) FROM (SELECT 1 FROM mo_messages WHERE sender = $4 AND guard IS NULL"
    "  AND taken_at > $17 AND text = $6 AND id != $1 LIMIT $15) AS b)"
    " + (SELECT count(*) FROM (SELECT 1 FROM mo_messages WHERE sender = $4 AND guard IS NOT NULL"
    "  AND taken_at > $17 AND text = $6 LIMIT $15) AS c)"
)


async def _insert_mos(conn: asyncpg.Connection, items: Sequence[_MO]) -> set[str]:
    """Insert the MOs (each with its MTs and charges) in one statement; the ids of those inserted.
    They go in (carrier, id) order, so that two gateways' statements wait for each other's keys in
    one order, never in a cycle."""
    ordered = sorted(items, key=lambda item: (item.mo[1], item.mo[2]))
    mos = tuple(list(column) for column in zip(*(item.mo for item in ordered)))
    mts = _mt_arrays([(mt, seq, item.outbox) for item in ordered for seq, mt in enumerate(item.replies)])
    return {row[0] for row in await conn.fetch(_STORE_MOS, *mos, *mts)}


def _decided(item: _Screened, decision: pg_screened.Decision) -> tuple[_MO, StoredMO]:
    """A new screened MO as its guard decided it: replied to as usual, with the polite reply, or
    withheld; the values to store and what `store_mo` returns."""
    mo, guard = item.mo.mo, decision.guard
    sent = [item.screening.instead] if guard is Guard.RATE_LIMITED else [] if guard is not None else item.mo.replies
    stored = StoredMO(mo[0], mo[1], mo[2], mo[7], mo[10] if sent else "withheld", mo[8], mo[9], tuple(sent),
                      created=True, guard=guard.value if guard else None)
    # as the single-MO path stores it: withheld in the table only when a guard took its reply away
    status = mo[10] if sent or guard is None else "withheld"
    return _MO((*mo[:10], status, mo[11], stored.guard), sent, item.mo.outbox), stored


class _Screened(NamedTuple):
    """An MO for `_screen_together`: its values as for `_store_together`, and its screening."""

    mo: _MO
    screening: Screening


class _MO(NamedTuple):
    """An MO for `_store_together`: the values of _INSERT_MO, its MTs, and their outbox values (see `_mt_arrays`)."""

    mo: tuple[Any, ...]
    replies: Sequence[OutboundMessage]
    outbox: tuple[Any, ...]


def _mt_arrays(mts: Sequence[tuple[OutboundMessage, int, tuple[Any, ...]]]) -> tuple[list[Any], ...]:
    """(MT, its seq, its outbox values: status, created, next attempt, lease, owner, charge time) as
    the arrays of _MT_ROW, with each one's masked phone and charge."""
    columns: tuple[list[Any], ...] = tuple([] for _ in range(19))
    for mt, seq, outbox in mts:
        for column, value in zip(columns, (*_mt_values(mt), mask(mt.to), mt.billing.amount_vnd, seq, *outbox)):
            column.append(value)
    return columns


def _mt_values(mt: OutboundMessage) -> tuple[Any, ...]:
    return (mt.id, mt.mo_id, mt.in_reply_to, mt.carrier, mt.sender, mt.to, mt.text, mt.encoding,
            mt.segments, int(mt.message_type))


def _mt(row: Sequence[Any]) -> OutboundMessage:
    return OutboundMessage(id=row[0], mo_id=row[1], in_reply_to=row[2], carrier=row[3], sender=row[4],
                           to=row[5], text=row[6], encoding=row[7], segments=row[8],
                           message_type=MessageType(row[9]))


async def _bill(conn: asyncpg.Connection, rows: Sequence[tuple[str, OutboundMessage, int]], at: str) -> None:
    if rows:
        await conn.executemany(
            "INSERT INTO billing_rows (kind, carrier, mo_id, mt_id, msisdn, amount_vnd, message_type, at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            [(kind, mt.carrier, mt.mo_id, mt.id, mask(mt.to), amount, int(mt.message_type), at)
             for kind, mt, amount in rows])
