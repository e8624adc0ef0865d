"""The sending API's operations on SQLite, run by the message store's group-commit writer.

Each operation is a function of the connection run inside the writer's transaction (writer.py),
so a message, its MT, its billing row, its rate count and its first callback are committed
together, and two requests with the same (key, Idempotency-Key) are decided one after the other
in the one writer: the second finds the first's row.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..phones import mask
from .api import API_TABLES_SQLITE, ApiKey, ApiMessage, ApiStore, BatchTaken, Callback, NewMessage, Taken
from .messages import PendingMT
from .sqlite_tables import iso_time

HEAVY_BATCH = 1_000   # recipients above which a batch's statements run in the writer's thread (writer.py)
_MESSAGE = ("SELECT id, key_name, recipient, class, status, updated_at, encoding, segments, batch_id"
            " FROM api_messages")


def ensure_api_tables(conn: sqlite3.Connection) -> None:
    for statement in API_TABLES_SQLITE:
        conn.execute(statement)


class SqliteApiStore(ApiStore):
    """On the writer of a `SqliteMessageStore` (its `submit`)."""

    def __init__(self, submit: Callable[[Callable[[sqlite3.Connection], Any]], Awaitable[Any]]) -> None:
        self._submit = submit

    @classmethod
    async def on(cls, submit) -> "SqliteApiStore":
        store = cls(submit)
        await submit(ensure_api_tables)   # a file made before the API: its tables (as `db migrate` makes them)
        return store

    async def create_key(self, name, key_hash, secret, classes, rate, long_messages, now) -> bool:
        return await self._submit(lambda conn: conn.execute(
            "INSERT INTO api_keys (name, key_hash, secret, classes, rate, long_messages, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (name, key_hash, secret, ",".join(classes), rate, int(long_messages), now)).rowcount == 1)

    async def revoke_key(self, name, now) -> bool:
        return await self._submit(lambda conn: conn.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", (now, name)).rowcount == 1)

    async def key_by_hash(self, key_hash):
        def run(conn):
            row = conn.execute("SELECT name, classes, rate, long_messages, secret, key_hash FROM api_keys"
                               " WHERE key_hash = ? AND revoked_at IS NULL", (key_hash,)).fetchone()
            return None if row is None else (_key(row), row[5])

        return await self._submit(run)

    async def store_message(self, key, idempotency_key, new, *, now, lease=None, request_hash="") -> Taken:
        def run(conn):
            if idempotency_key is not None:
                row = conn.execute(_MESSAGE.replace(" FROM", ", request_hash FROM") + " WHERE key_name = ? AND"
                                   " idempotency_key = ?", (key.name, idempotency_key)).fetchone()
                if row is not None:
                    return Taken(_message(row), created=False, mismatch=row[9] != request_hash)
            retry_after = _count_rate(conn, key, now)
            if retry_after is not None:
                return Taken(None, created=False, retry_after=retry_after)
            message, pending = _insert(conn, key, idempotency_key, None, new, now, request_hash)
            return Taken(message, created=True, pending=pending)

        return await self._submit(run)

    async def store_batch(self, key, idempotency_key, batch_id, messages, *, now, lease=None, request_hash=""):
        def run(conn):
            if idempotency_key is not None:
                row = conn.execute("SELECT id, request_hash FROM api_batches WHERE key_name = ? AND idempotency_key = ?",
                                   (key.name, idempotency_key)).fetchone()
                if row is not None:
                    return BatchTaken(row[0], False, [], mismatch=row[1] != request_hash)
            retry_after = _count_rate(conn, key, now)
            if retry_after is not None:
                return BatchTaken(batch_id, False, [], retry_after=retry_after)
            conn.execute("INSERT INTO api_batches (id, key_name, idempotency_key, request_hash, class, total, created_at)"
                         " VALUES (?, ?, ?, ?, ?, ?, ?)", (batch_id, key.name, idempotency_key, request_hash,
                                                           messages[0].message_class if messages else "",
                                                           len(messages), now))
            pending = _insert_many(conn, key, batch_id, messages, now)
            return BatchTaken(batch_id, True, pending)

        return await self._submit(run, heavy=len(messages) > HEAVY_BATCH)

    async def message(self, key_name, message_id):
        def run(conn):
            row = conn.execute(_MESSAGE + " WHERE id = ? AND key_name = ?", (message_id, key_name)).fetchone()
            return None if row is None else _message(row)

        return await self._submit(run)

    async def batch_counts(self, key_name, batch_id):
        def run(conn):
            if conn.execute("SELECT 1 FROM api_batches WHERE id = ? AND key_name = ?",
                            (batch_id, key_name)).fetchone() is None:
                return None
            return dict(conn.execute("SELECT status, count(*) FROM api_messages WHERE batch_id = ? GROUP BY status",
                                     (batch_id,)).fetchall())

        return await self._submit(run)

    async def expire_if_due(self, mt_id, now) -> bool:
        return await self._submit(lambda conn: conn.execute(
            "UPDATE mt_messages SET status = 'expired', next_attempt_at = NULL WHERE id = ? AND status = 'pending'"
            " AND EXISTS (SELECT 1 FROM api_messages WHERE id = ? AND expires_at <= ?)",
            (mt_id, mt_id, now)).rowcount == 1)

    async def due_callbacks(self, now, lease, limit):
        def run(conn):
            rows = conn.execute(
                "UPDATE api_callbacks SET next_attempt_at = ? WHERE seq IN (SELECT c.seq FROM api_callbacks c"
                " WHERE c.done_at IS NULL AND c.next_attempt_at <= ? AND c.seq = (SELECT min(seq) FROM"
                " api_callbacks WHERE message_id = c.message_id AND done_at IS NULL) ORDER BY c.seq LIMIT ?)"
                " RETURNING seq, message_id, status, at, attempts", (now + lease, now, limit)).fetchall()
            return [_callback(conn, row) for row in sorted(rows)]

        return await self._submit(run)

    async def callback_done(self, seq, now):
        await self._submit(lambda conn: conn.execute("UPDATE api_callbacks SET done_at = ? WHERE seq = ?", (now, seq)))

    async def callback_retry(self, seq, attempts, at, error):
        await self._submit(lambda conn: conn.execute(
            "UPDATE api_callbacks SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE seq = ?",
            (attempts, at, error, seq)))


def _key(row: Sequence[Any]) -> ApiKey:
    return ApiKey(row[0], tuple(row[1].split(",")), row[2], bool(row[3]), row[4])


def _message(row: Sequence[Any]) -> ApiMessage:
    return ApiMessage(*row[:8], batch_id=row[8])


def _callback(conn: sqlite3.Connection, row: Sequence[Any]) -> Callback:
    seq, message_id, status, at, attempts = row
    message = _message(conn.execute(_MESSAGE + " WHERE id = ?", (message_id,)).fetchone())
    url, secret = conn.execute("SELECT m.callback_url, k.secret FROM api_messages m JOIN api_keys k"
                               " ON k.name = m.key_name WHERE m.id = ?", (message_id,)).fetchone()
    return Callback(seq, message, status, at, url, secret, attempts)


def _count_rate(conn: sqlite3.Connection, key: ApiKey, now: float) -> float | None:
    """Count one request in the key's minute; the seconds to wait instead when over its rate."""
    if key.rate <= 0:
        return None
    minute = int(now // 60)
    row = conn.execute("SELECT taken FROM api_rate WHERE key_name = ? AND minute = ?", (key.name, minute)).fetchone()
    if row is not None and row[0] >= key.rate:
        return (minute + 1) * 60 - now
    conn.execute("INSERT INTO api_rate (key_name, minute, taken) VALUES (?, ?, 1) ON CONFLICT (key_name, minute)"
                 " DO UPDATE SET taken = taken + 1", (key.name, minute))
    conn.execute("DELETE FROM api_rate WHERE key_name = ? AND minute < ?", (key.name, minute - 1))
    return None


def _insert(conn: sqlite3.Connection, key: ApiKey, idempotency_key: str | None, batch_id: str | None,
            new: NewMessage, now: float, request_hash: str | None = None) -> tuple[ApiMessage, PendingMT | None]:
    mt = new.mt
    opted_out = new.message_class != "otp" and conn.execute(
        "SELECT 1 FROM opt_outs WHERE phone = ?", (mt.to,)).fetchone() is not None
    status = "opted_out" if opted_out else "queued"
    conn.execute(
        "INSERT INTO api_messages (id, key_name, idempotency_key, request_hash, recipient, class, status, callback_url,"
        " batch_id, encoding, segments, created_at, updated_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
        " ?, ?)",
        (mt.id, key.name, idempotency_key, request_hash, mt.to, new.message_class, status, new.callback_url, batch_id,
         mt.encoding, mt.segments, now, now, new.expires_at))
    if new.callback_url is not None:
        conn.execute("INSERT INTO api_callbacks (message_id, status, at, next_attempt_at) VALUES (?, ?, ?, ?)",
                     (mt.id, status, now, now))
    message = ApiMessage(mt.id, key.name, mt.to, new.message_class, status, now, mt.encoding, mt.segments, batch_id)
    if opted_out:
        return message, None
    conn.execute(
        "INSERT INTO mt_messages (id, mo_id, in_reply_to, carrier, sender, recipient, text, encoding, segments,"
        " message_type, seq, status, created_at, next_attempt_at, lane, not_before) VALUES (?, '', '', ?, ?, ?, ?,"
        " ?, ?, ?, 0, 'pending', ?, ?, ?, ?)",
        (mt.id, mt.carrier, mt.sender, mt.to, mt.text, mt.encoding, mt.segments, int(mt.message_type), now, now,
         new.lane, new.not_before))
    conn.execute(
        "INSERT INTO billing_rows (kind, carrier, mo_id, mt_id, msisdn, amount_vnd, message_type, at)"
        " VALUES (?, ?, '', ?, ?, 0, ?, ?)",
        (f"api:{key.name}", mt.carrier, mt.id, mask(mt.to), int(mt.message_type), iso_time(now)))
    return message, PendingMT(mt, 0, now, now, lane=new.lane, not_before=new.not_before)


def _insert_many(conn: sqlite3.Connection, key: ApiKey, batch_id: str, messages: Sequence[NewMessage],
                 now: float) -> list[PendingMT]:
    """A batch's messages with executemany, a statement per table (100,000 rows: ~4x fewer calls)."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS batch_phones (phone TEXT PRIMARY KEY)")
    conn.execute("DELETE FROM batch_phones")
    conn.executemany("INSERT OR IGNORE INTO batch_phones (phone) VALUES (?)",
                     [(new.mt.to,) for new in messages if new.message_class != "otp"])
    opted = {row[0] for row in conn.execute("SELECT phone FROM batch_phones JOIN opt_outs USING (phone)")}
    conn.execute("DELETE FROM batch_phones")
    api_rows, mt_rows, bill_rows, pending = [], [], [], []
    at, kind = iso_time(now), f"api:{key.name}"
    for new in messages:
        mt = new.mt
        out = mt.to in opted and new.message_class != "otp"
        api_rows.append((mt.id, key.name, mt.to, new.message_class, "opted_out" if out else "queued",
                         new.callback_url, batch_id, mt.encoding, mt.segments, now, now, new.expires_at))
        if out:
            continue
        mt_rows.append((mt.id, mt.carrier, mt.sender, mt.to, mt.text, mt.encoding, mt.segments, int(mt.message_type),
                        now, now, new.lane, new.not_before))
        bill_rows.append((kind, mt.carrier, mt.id, mask(mt.to), int(mt.message_type), at))
        pending.append(PendingMT(mt, 0, now, now, lane=new.lane, not_before=new.not_before))
    conn.executemany(
        "INSERT INTO api_messages (id, key_name, recipient, class, status, callback_url, batch_id, encoding, segments,"
        " created_at, updated_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", api_rows)
    conn.executemany("INSERT INTO api_callbacks (message_id, status, at, next_attempt_at) VALUES (?, ?, ?, ?)",
                     [(row[0], row[4], now, now) for row in api_rows if row[5] is not None])
    conn.executemany(
        "INSERT INTO mt_messages (id, mo_id, in_reply_to, carrier, sender, recipient, text, encoding, segments,"
        " message_type, seq, status, created_at, next_attempt_at, lane, not_before) VALUES (?, '', '', ?, ?, ?, ?,"
        " ?, ?, ?, 0, 'pending', ?, ?, ?, ?)", mt_rows)
    conn.executemany(
        "INSERT INTO billing_rows (kind, carrier, mo_id, mt_id, msisdn, amount_vnd, message_type, at)"
        " VALUES (?, ?, '', ?, ?, 0, ?, ?)", bill_rows)
    return pending
