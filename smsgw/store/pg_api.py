"""The sending API's operations on PostgreSQL: one short transaction each, any number of gateways.

Across gateways:
- idempotency: the message's INSERT ... ON CONFLICT (key_name, idempotency_key) DO NOTHING waits
  for a concurrent transaction inserting the same pair; once it commits, this one inserts nothing
  and reads the winner's message (READ COMMITTED): one message, one MT;
- the rate: the (key, minute) row is updated in the transaction (its row lock orders the
  gateways' requests); over the rate, the transaction is rolled back, the message with it;
- the MTs a gateway stores are leased to it (`lease_until`), like its replies (pg_messages.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from ..phones import mask
from .api import ApiKey, ApiMessage, ApiStore, BatchTaken, Callback, NewMessage, Taken
from .messages import Lease, PendingMT
from .pg_pool import connection, transaction
from .sqlite_tables import iso_time

_MESSAGE = ("SELECT id, key_name, recipient, class, status, updated_at, encoding, segments, batch_id"
            " FROM api_messages")


_INSERT_MT = ("INSERT INTO mt_messages (id, mo_id, in_reply_to, carrier, sender, recipient, text, encoding, segments,"
              " message_type, seq, status, created_at, next_attempt_at, lease_until, lease_owner, lane, not_before)"
              " VALUES ($1, '', '', $2, $3, $4, $5, $6, $7, $8, 0, 'pending', $9, $10, $11, $12, $13, $14)")


def _leased(new: NewMessage, now: float, lease: Lease | None) -> tuple[float | None, str | None]:
    """This gateway's lease of an MT it stores (until, owner): none for one held beyond a lease
    (claimed when its time nears)."""
    if lease is None or (new.not_before is not None and new.not_before > now + lease.seconds):
        return None, None
    return now + lease.seconds, lease.owner


class _OverRate(Exception):
    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after


class PgApiStore(ApiStore):
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create_key(self, name, key_hash, secret, classes, rate, long_messages, now) -> bool:
        async with connection(self._pool) as conn:
            done = await conn.execute(
                "INSERT INTO api_keys (name, key_hash, secret, classes, rate, long_messages, created_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                name, key_hash, secret, ",".join(classes), rate, int(long_messages), now)
        return done.endswith(" 1")

    async def revoke_key(self, name, now) -> bool:
        async with connection(self._pool) as conn:
            done = await conn.execute("UPDATE api_keys SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL",
                                      now, name)
        return done.endswith(" 1")

    async def key_by_hash(self, key_hash):
        async with connection(self._pool) as conn:
            row = await conn.fetchrow("SELECT name, classes, rate, long_messages, secret, key_hash FROM api_keys"
                                      " WHERE key_hash = $1 AND revoked_at IS NULL", key_hash)
        return None if row is None else (ApiKey(row[0], tuple(row[1].split(",")), row[2], bool(row[3]), row[4]),
                                         row[5])

    async def store_message(self, key, idempotency_key, new, *, now, lease=None, request_hash="") -> Taken:
        try:
            async with transaction(self._pool) as conn:
                message, pending = await _insert(conn, key, idempotency_key, None, new, now, lease, request_hash)
                if message is None:
                    row = await conn.fetchrow(_MESSAGE.replace(" FROM", ", request_hash FROM")
                                              + " WHERE key_name = $1 AND idempotency_key = $2", key.name, idempotency_key)
                    return Taken(_message(row), created=False, mismatch=row[9] != request_hash)
                await _count_rate(conn, key, now)
                return Taken(message, created=True, pending=pending)
        except _OverRate as over:
            return Taken(None, created=False, retry_after=over.retry_after)

    async def store_batch(self, key, idempotency_key, batch_id, messages, *, now, lease=None, request_hash=""):
        try:
            async with transaction(self._pool) as conn:
                inserted = await conn.fetchval(
                    "INSERT INTO api_batches (id, key_name, idempotency_key, request_hash, class, total, created_at)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING id",
                    batch_id, key.name, idempotency_key, request_hash, messages[0].message_class if messages else "",
                    len(messages), now)
                if inserted is None:
                    first, first_hash = await conn.fetchrow("SELECT id, request_hash FROM api_batches WHERE key_name = $1"
                                                            " AND idempotency_key = $2", key.name, idempotency_key)
                    return BatchTaken(first, False, [], mismatch=first_hash != request_hash)
                await _count_rate(conn, key, now)
                pending = await _insert_many(conn, key, batch_id, messages, now, lease)
                return BatchTaken(batch_id, True, pending)
        except _OverRate as over:
            return BatchTaken(batch_id, False, [], retry_after=over.retry_after)

    async def message(self, key_name, message_id):
        async with connection(self._pool) as conn:
            row = await conn.fetchrow(_MESSAGE + " WHERE id = $1 AND key_name = $2", message_id, key_name)
        return None if row is None else _message(row)

    async def batch_counts(self, key_name, batch_id):
        async with connection(self._pool) as conn:
            if await conn.fetchval("SELECT 1 FROM api_batches WHERE id = $1 AND key_name = $2",
                                   batch_id, key_name) is None:
                return None
            rows = await conn.fetch("SELECT status, count(*) FROM api_messages WHERE batch_id = $1 GROUP BY status",
                                    batch_id)
        return {row[0]: row[1] for row in rows}

    async def expire_if_due(self, mt_id, now) -> bool:
        async with connection(self._pool) as conn:
            done = await conn.execute(
                "UPDATE mt_messages SET status = 'expired', next_attempt_at = NULL, lease_until = NULL"
                " WHERE id = $1 AND status = 'pending'"
                " AND EXISTS (SELECT 1 FROM api_messages WHERE id = $1 AND expires_at <= $2)", mt_id, now)
        return done.endswith(" 1")

    async def due_callbacks(self, now, lease, limit):
        async with transaction(self._pool) as conn:
            rows = await conn.fetch(
                "UPDATE api_callbacks SET next_attempt_at = $1 WHERE seq IN (SELECT c.seq FROM api_callbacks c"
                " WHERE c.done_at IS NULL AND c.next_attempt_at <= $2 AND c.seq = (SELECT min(seq) FROM"
                " api_callbacks WHERE message_id = c.message_id AND done_at IS NULL) ORDER BY c.seq LIMIT $3"
                " FOR UPDATE SKIP LOCKED) RETURNING seq, message_id, status, at, attempts", now + lease, now, limit)
            found = []
            for seq, message_id, status, at, attempts in sorted(rows):
                message = _message(await conn.fetchrow(_MESSAGE + " WHERE id = $1", message_id))
                url, secret = await conn.fetchrow("SELECT m.callback_url, k.secret FROM api_messages m JOIN api_keys k"
                                                  " ON k.name = m.key_name WHERE m.id = $1", message_id)
                found.append(Callback(seq, message, status, at, url, secret, attempts))
        return found

    async def callback_done(self, seq, now):
        async with connection(self._pool) as conn:
            await conn.execute("UPDATE api_callbacks SET done_at = $1 WHERE seq = $2", now, seq)

    async def callback_retry(self, seq, attempts, at, error):
        async with connection(self._pool) as conn:
            await conn.execute("UPDATE api_callbacks SET attempts = $1, next_attempt_at = $2, last_error = $3"
                               " WHERE seq = $4", attempts, at, error, seq)


def _message(row: Sequence[Any]) -> ApiMessage:
    return ApiMessage(*row[:8], batch_id=row[8])


async def _count_rate(conn: asyncpg.Connection, key: ApiKey, now: float) -> None:
    """Count one request in the key's minute; _OverRate (rolling the transaction back) when over."""
    if key.rate <= 0:
        return
    minute = int(now // 60)
    taken = await conn.fetchval(
        "INSERT INTO api_rate (key_name, minute, taken) VALUES ($1, $2, 1) ON CONFLICT (key_name, minute)"
        " DO UPDATE SET taken = api_rate.taken + 1 RETURNING taken", key.name, minute)
    if taken > key.rate:
        raise _OverRate((minute + 1) * 60 - now)
    if taken == 1:
        await conn.execute("DELETE FROM api_rate WHERE key_name = $1 AND minute < $2", key.name, minute - 1)


async def _insert(conn: asyncpg.Connection, key: ApiKey, idempotency_key: str | None, batch_id: str | None,
                  new: NewMessage, now: float, lease: Lease | None,
                  request_hash: str | None = None) -> tuple[ApiMessage | None, PendingMT | None]:
    mt = new.mt
    opted_out = new.message_class != "otp" and await conn.fetchval(
        "SELECT 1 FROM opt_outs WHERE phone = $1", mt.to) is not None
    status = "opted_out" if opted_out else "queued"
    inserted = await conn.fetchval(
        "INSERT INTO api_messages (id, key_name, idempotency_key, recipient, class, status, callback_url, batch_id,"
        " encoding, segments, created_at, updated_at, expires_at, request_hash) VALUES ($1, $2, $3, $4, $5, $6, $7,"
        " $8, $9, $10, $11, $11, $12, $13) ON CONFLICT (key_name, idempotency_key) DO NOTHING RETURNING id",
        mt.id, key.name, idempotency_key, mt.to, new.message_class, status, new.callback_url, batch_id,
        mt.encoding, mt.segments, now, new.expires_at, request_hash)
    if inserted is None:
        return None, None
    if new.callback_url is not None:
        await conn.execute("INSERT INTO api_callbacks (message_id, status, at, next_attempt_at) VALUES ($1, $2, $3, $3)",
                           mt.id, status, now)
    message = ApiMessage(mt.id, key.name, mt.to, new.message_class, status, now, mt.encoding, mt.segments, batch_id)
    if opted_out:
        return message, None
    await conn.execute(_INSERT_MT, mt.id, mt.carrier, mt.sender, mt.to, mt.text, mt.encoding, mt.segments,
                       int(mt.message_type), now, now, *_leased(new, now, lease), new.lane, new.not_before)
    await conn.execute(
        "INSERT INTO billing_rows (kind, carrier, mo_id, mt_id, msisdn, amount_vnd, message_type, at)"
        " VALUES ($1, $2, '', $3, $4, 0, $5, $6)",
        f"api:{key.name}", mt.carrier, mt.id, mask(mt.to), int(mt.message_type), iso_time(now))
    return message, PendingMT(mt, 0, now, now, lane=new.lane, not_before=new.not_before)


async def _insert_many(conn: asyncpg.Connection, key: ApiKey, batch_id: str, messages: Sequence[NewMessage],
                       now: float, lease: Lease | None) -> list[PendingMT]:
    """A batch's messages in a few statements (executemany), not one round trip each."""
    opted = {row[0] for row in await conn.fetch(
        "SELECT phone FROM opt_outs WHERE phone = ANY($1::text[])",
        [new.mt.to for new in messages if new.message_class != "otp"])}
    api_rows, mt_rows, bill_rows, pending = [], [], [], []
    at = iso_time(now)
    for new in messages:
        mt = new.mt
        out = mt.to in opted and new.message_class != "otp"
        api_rows.append((mt.id, key.name, mt.to, new.message_class, "opted_out" if out else "queued",
                         new.callback_url, batch_id, mt.encoding, mt.segments, now, new.expires_at))
        if out:
            continue
        mt_rows.append((mt.id, mt.carrier, mt.sender, mt.to, mt.text, mt.encoding, mt.segments,
                        int(mt.message_type), now, now, *_leased(new, now, lease), new.lane, new.not_before))
        bill_rows.append((f"api:{key.name}", mt.carrier, mt.id, mask(mt.to), int(mt.message_type), at))
        pending.append(PendingMT(mt, 0, now, now, lane=new.lane, not_before=new.not_before))
    await conn.executemany(
        "INSERT INTO api_messages (id, key_name, recipient, class, status, callback_url, batch_id, encoding,"
        " segments, created_at, updated_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11)",
        api_rows)
    await conn.executemany(
        "INSERT INTO api_callbacks (message_id, status, at, next_attempt_at) VALUES ($1, $2, $3, $3)",
        [(row[0], row[4], now) for row in api_rows if row[5] is not None])
    await conn.executemany(_INSERT_MT, mt_rows)
    await conn.executemany(
        "INSERT INTO billing_rows (kind, carrier, mo_id, mt_id, msisdn, amount_vnd, message_type, at)"
        " VALUES ($1, $2, '', $3, $4, 0, $5, $6)", bill_rows)
    return pending
