"""Personal data of the PostgreSQL message store: prune by age, export and erase by phone (retention.py).

What each table keeps is retention.py's; this module says it in PostgreSQL's SQL:

- A prune step is ONE statement (autocommit): `UPDATE ... WHERE key IN (SELECT ... ORDER BY time
  LIMIT n)`, the rows found through the partial indexes `*_kept` (schema step 2), which hold only
  the rows whose data is still there. The keyed hash is computed by the server: HMAC-SHA256 written
  out with its two `sha256()` calls over the key's inner and outer pads (`hmac_pads`, given as
  parameters; the key itself never leaves this process), so no row comes to Python and back.
  The order is billing rows, MTs, MOs, notices, as on SQLite: a billing row's hash is made from its
  MT's recipient, so billing rows go before their MT; an MT still pending is left until it is sent
  or given up. A step locks only the rows it changes: the gateways' writes (new MOs, MTs, charges)
  never wait for it; a delivery report for an MT being erased waits for the end of that statement.
- One prune at a time per database: `take_prune_lock` takes a session advisory lock, held until
  `close` (or until the connection is lost: the server releases it).
- Export and erase by phone are rare operator commands: erase is one transaction.

The interface is synchronous (`smsgw db prune` is a plain loop; the gateway runs each step in a
thread): a `PgRetention` drives one connection on an event loop of its own, as pg_reports.py does.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import asyncpg

from .errors import DatabaseRefused, StoreError
from .pg_pool import connect_once
from .retention import PersonalData, phone_hash, resolve_key
from .retention_tables import pg_erase, pg_export, pg_prune_steps
from .schema import CURRENT, OutdatedSchema, pg_version, shown
from .sqlite_tables import iso_time

PRUNE_LOCK = 0x736D7370     # "smsp": pg_try_advisory_lock key of the prune (one at a time per database)
_KEY_LOCK = 0x736D736B      # "smsk": pg_advisory_xact_lock key while the store's hash key is chosen
_BLOCK = 64                 # SHA-256's block size, in bytes


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """HMAC's inner and outer padded keys for SHA-256 (RFC 2104), so that the server computes
    `sha256(outer || sha256(inner || message))` = HMAC-SHA256(key, message), as `phone_hash` does."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def _hashed(column: str, inner: str = "$3", outer: str = "$4") -> str:
    """SQL: `column` as its keyed hash (phone_hash), or as it is when it is a hash already (64 characters)."""
    return (f"CASE WHEN length({column}) = 64 THEN {column} ELSE encode(sha256({outer}::bytea"
            f" || sha256({inner}::bytea || convert_to({column}, 'UTF8'))), 'hex') END")


# $1 the cutoff, $2 the most rows, $3/$4 the key's inner/outer pads
_PRUNE_STEPS = (
    ("billing_rows", True,
     "WITH picked AS (SELECT b.id, coalesce(m.recipient, b.msisdn) AS phone FROM billing_rows AS b"
     " LEFT JOIN mt_messages AS m ON m.id = b.mt_id WHERE length(b.msisdn) <> 64 AND b.at < $1"
     " ORDER BY b.at LIMIT $2)"
     f" UPDATE billing_rows SET msisdn = {_hashed('picked.phone')} FROM picked WHERE billing_rows.id = picked.id"),
    ("mt_messages", False,
     f"UPDATE mt_messages SET recipient = {_hashed('recipient')}, text = '', last_error = NULL WHERE id IN"
     " (SELECT id FROM mt_messages WHERE text <> '' AND created_at < $1 AND status <> 'pending'"
     " ORDER BY created_at LIMIT $2)"),
    ("mo_messages", False,
     "UPDATE mo_messages SET sender = '', text = '' WHERE id IN"
     " (SELECT id FROM mo_messages WHERE sender <> '' AND taken_at < $1 ORDER BY taken_at LIMIT $2)"),
    ("notices", False,
     f"UPDATE notices SET target = {_hashed('target')} WHERE (kind, target, occasion) IN"
     " (SELECT kind, target, occasion FROM notices WHERE length(target) <> 64 AND created_at < $1"
     " ORDER BY created_at LIMIT $2)"),
)
_PRUNE_STEPS += pg_prune_steps(_hashed)   # API messages, questions, ratings (retention_tables.py)
_USES_PADS = {"billing_rows", "mt_messages", "notices", *(table for table, _, _ in pg_prune_steps(_hashed))}


class PgRetention(PersonalData):
    """The personal data of the message tables of a PostgreSQL database; open with `PgRetention.open(url)`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, conn: asyncpg.Connection) -> None:
        self._loop = loop
        self._conn = conn

    @classmethod
    def open(cls, url: str) -> "PgRetention":
        """Connect; DatabaseRefused when the database cannot be reached, OutdatedSchema before step 2."""
        loop = asyncio.new_event_loop()
        try:
            conn = loop.run_until_complete(connect_once(url))
        except StoreError as exc:
            loop.close()
            raise DatabaseRefused.of(shown(url), exc) from exc
        try:
            version = loop.run_until_complete(pg_version(conn))
            if version < CURRENT:
                raise OutdatedSchema(url, version)
        except BaseException:
            loop.run_until_complete(conn.close(timeout=5))
            loop.close()
            raise
        return cls(loop, conn)

    def close(self) -> None:
        try:
            self._loop.run_until_complete(self._conn.close(timeout=5))
        finally:
            self._loop.close()

    def _run(self, coroutine: Any) -> Any:
        return self._loop.run_until_complete(coroutine)

    def take_prune_lock(self) -> bool:
        return bool(self._run(self._conn.fetchval("SELECT pg_try_advisory_lock($1)", PRUNE_LOCK)))

    def hash_key(self, configured: str | None) -> bytes:
        async def choose() -> bytes:
            async with self._conn.transaction():
                await self._conn.execute("SELECT pg_advisory_xact_lock($1)", _KEY_LOCK)
                state = {row[0]: row[1] for row in await self._conn.fetch("SELECT name, value FROM retention_state")}
                key, added = resolve_key(configured, state)
                await self._conn.executemany("INSERT INTO retention_state (name, value) VALUES ($1, $2)",
                                             list(added.items()))
                return key

        return self._run(choose())

    def prune_step(self, cutoff: float, key: bytes, limit: int) -> tuple[str, int]:
        inner, outer = hmac_pads(key)
        for table, iso, statement in _PRUNE_STEPS:
            arguments = [iso_time(cutoff) if iso else cutoff, limit]
            if table in _USES_PADS:
                arguments += [inner, outer]
            rows = _count(self._run(self._conn.execute(statement, *arguments)))
            if rows:
                return table, rows
        return "", 0

    def export_phone(self, phone: str, key: bytes) -> dict[str, Any]:
        hashed = phone_hash(key, phone)

        async def read() -> dict[str, Any]:
            async with self._conn.transaction(readonly=True, isolation="repeatable_read"):   # one snapshot
                mos = await self._conn.fetch(
                    "SELECT id, carrier, carrier_id, sender, recipient, text, received_at, command, error, status, guard"
                    " FROM mo_messages WHERE sender = $1 ORDER BY taken_at", phone)
                mts = await self._conn.fetch(
                    "SELECT id, mo_id, carrier, sender, recipient, text, message_type, status, attempts, created_at,"
                    " dlr_state, dlr_time FROM mt_messages WHERE recipient IN ($1, $2) ORDER BY created_at",
                    phone, hashed)
                billing = await self._conn.fetch(
                    "SELECT kind, carrier, mo_id, mt_id, msisdn, amount_vnd, message_type, at FROM billing_rows"
                    " WHERE msisdn = $1 OR mt_id IN (SELECT id FROM mt_messages WHERE recipient = $2) ORDER BY id",
                    hashed, phone)
                notices = await self._conn.fetch(
                    "SELECT kind, target, occasion, mt_id, created_at FROM notices WHERE mt_id IN"
                    " (SELECT id FROM mt_messages WHERE recipient IN ($1, $2)) ORDER BY created_at", phone, hashed)
                more = await pg_export(self._conn, phone, hashed)
            return {"phone": phone, "phone_hash": hashed, "mo_messages": _dicts(mos), "mt_messages": _dicts(mts),
                    "billing_rows": _dicts(billing), "notices": _dicts(notices), **more}

        return self._run(read())

    def erase_phone(self, phone: str, key: bytes) -> dict[str, int]:
        hashed = phone_hash(key, phone)
        inner, outer = hmac_pads(key)
        mine = "SELECT id FROM mt_messages WHERE recipient = $1 AND status <> 'pending'"

        async def erase() -> dict[str, int]:
            conn = self._conn
            async with conn.transaction():
                billing = await conn.execute(f"UPDATE billing_rows SET msisdn = $2 WHERE mt_id IN ({mine})"
                                             " AND length(msisdn) <> 64", phone, hashed)
                notices = await conn.execute(f"UPDATE notices SET target = {_hashed('target', '$2', '$3')}"
                                             f" WHERE mt_id IN ({mine}) AND length(target) <> 64", phone, inner, outer)
                mts = await conn.execute("UPDATE mt_messages SET recipient = $2, text = '', last_error = NULL"
                                         " WHERE recipient = $1 AND status <> 'pending'", phone, hashed)
                pending = await conn.fetchval("SELECT count(*) FROM mt_messages WHERE recipient = $1", phone)
                mos = await conn.execute("UPDATE mo_messages SET sender = '', text = '' WHERE sender = $1", phone)
                more = await pg_erase(conn, phone, hashed)
            return {"mo_messages": _count(mos), "mt_messages": _count(mts), "billing_rows": _count(billing),
                    "notices": _count(notices), "mt_pending_kept": pending, **more}

        return self._run(erase())


def _count(status: str) -> int:
    """The rows an UPDATE changed, from its command status (`UPDATE 1000`)."""
    return int(status.rsplit(" ", 1)[1])


def _dicts(rows: list[asyncpg.Record]) -> list[dict[str, Any]]:
    return [dict(row) for row in rows]
