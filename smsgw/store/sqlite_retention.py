"""Personal data of the SQLite message store: prune by age, export and erase by phone (retention.py).

A prune step changes at most `limit` rows of one table, found through the partial indexes
`*_kept` (sqlite_tables.py), which hold only the rows whose data is still there, oldest first: a
step reads what it changes and nothing else, however large the store. The order is billing rows,
MTs, MOs, notices: a billing row's hash is made from its MT's recipient (the phone, or already
its hash), so billing rows go before their MT, and an MT still pending (the outbox will send it)
is left until it is sent or given up.

The gateway's writer waits for SQLite's one write lock while a step holds it, so a step holds it
as briefly as it can (bench/prune.py, BENCHMARKS): the rows and their new values (the hashes)
are read and computed first, outside any write transaction; the write transaction only runs the
UPDATEs by rowid, each re-checking that the row still has its data (another pruner, or an erase,
may have been first: hashing is deterministic, so either way the row ends the same); and the
prune's connection commits without fsync (synchronous = NORMAL: a step lost in a power cut is
simply done again by the next prune; the gateway's own commits, which fsync the same WAL, stay
FULL). After each step the pages it changed are copied into the file by this connection
(checkpoint PASSIVE, outside the write lock): left in the WAL, the gateway's next COMMIT would
copy them (SQLite's auto-checkpoint) while MOs wait for it.

Export and erase by phone are rare operator commands: they read the MTs and billing rows whole
(no index by recipient or by hash, which every write would pay for).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from .retention import HASH_LENGTH, PersonalData, phone_hash, resolve_key
from .retention_tables import SQLITE_PRUNE_STEPS, sqlite_erase, sqlite_export
from .sqlite_tables import connect, iso_time


def _is_hash(value: str | None) -> bool:
    return value is not None and len(value) == HASH_LENGTH


class SqliteRetention(PersonalData):
    """The personal data of the message tables in the SQLite file `path`."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn = connect(path)
        # An erased value is overwritten with zeros, not left in the page's free space or a freed page.
        self._conn.execute("PRAGMA secure_delete = ON")

    def close(self) -> None:
        self._conn.close()

    def hash_key(self, configured: str | None) -> bytes:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            key, added = resolve_key(configured, dict(conn.execute("SELECT name, value FROM retention_state")))
            conn.executemany("INSERT INTO retention_state (name, value) VALUES (?, ?)", added.items())
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return key

    def prune_step(self, cutoff: float, key: bytes, limit: int) -> tuple[str, int]:
        self._conn.execute("PRAGMA synchronous = NORMAL")
        try:
            for table, pick, update in _PRUNE_STEPS:
                changes = pick(self._conn, cutoff, key, limit)   # read, no write lock
                if changes:
                    rows = self._write(lambda conn: conn.executemany(update, changes).rowcount)
                    # The pages this step changed go into the file now, from this connection: left in
                    # the WAL, the gateway's next COMMIT would copy them (SQLite's auto-checkpoint)
                    # while MOs wait for it.
                    self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    return table, rows
        finally:
            self._conn.execute("PRAGMA synchronous = FULL")
        self._checkpoint()
        return "", 0

    def export_phone(self, phone: str, key: bytes) -> dict[str, Any]:
        conn = self._conn
        hashed = phone_hash(key, phone)
        conn.execute("BEGIN")   # one snapshot for the four reads
        try:
            mos = _dicts(conn.execute(
                "SELECT id, carrier, carrier_id, sender, recipient, text, received_at, command, error, status, guard"
                " FROM mo_messages WHERE sender = ? ORDER BY taken_at", (phone,)))
            mts = _dicts(conn.execute(
                "SELECT id, mo_id, carrier, sender, recipient, text, message_type, status, attempts, created_at,"
                " dlr_state, dlr_time FROM mt_messages WHERE recipient IN (?, ?) ORDER BY created_at",
                (phone, hashed)))
            billing = _dicts(conn.execute(
                "SELECT kind, carrier, mo_id, mt_id, msisdn, amount_vnd, message_type, at FROM billing_rows"
                " WHERE msisdn = ? OR mt_id IN (SELECT id FROM mt_messages WHERE recipient = ?) ORDER BY id",
                (hashed, phone)))
            notices = _dicts(conn.execute(
                "SELECT kind, target, occasion, mt_id, created_at FROM notices WHERE mt_id IN"
                " (SELECT id FROM mt_messages WHERE recipient IN (?, ?)) ORDER BY created_at", (phone, hashed)))
            api = _dicts(conn.execute(
                "SELECT id, key_name, recipient, class, status, batch_id, created_at, updated_at FROM api_messages"
                " WHERE recipient IN (?, ?) ORDER BY created_at", (phone, hashed))) if _has_api(conn) else []
            conversations = sqlite_export(conn, phone, hashed)
        finally:
            conn.execute("COMMIT")
        return {"phone": phone, "phone_hash": hashed, "mo_messages": mos, "mt_messages": mts,
                "billing_rows": billing, "notices": notices, "api_messages": api, **conversations}

    def erase_phone(self, phone: str, key: bytes) -> dict[str, int]:
        hashed = phone_hash(key, phone)

        def run(conn: sqlite3.Connection) -> dict[str, int]:
            mine = "SELECT id FROM mt_messages WHERE recipient = ? AND status != 'pending'"
            billing = conn.execute(f"UPDATE billing_rows SET msisdn = ? WHERE mt_id IN ({mine})"
                                   " AND length(msisdn) != 64", (hashed, phone)).rowcount
            notices = conn.execute(f"SELECT rowid, target FROM notices WHERE mt_id IN ({mine})"
                                   " AND length(target) != 64", (phone,)).fetchall()
            conn.executemany("UPDATE notices SET target = ? WHERE rowid = ?",
                             [(phone_hash(key, target), rowid) for rowid, target in notices])
            mts = conn.execute("UPDATE mt_messages SET recipient = ?, text = '', last_error = NULL"
                               " WHERE recipient = ? AND status != 'pending'", (hashed, phone)).rowcount
            pending = conn.execute("SELECT count(*) FROM mt_messages WHERE recipient = ?", (phone,)).fetchone()[0]
            mos = conn.execute("UPDATE mo_messages SET sender = '', text = '' WHERE sender = ?", (phone,)).rowcount
            api = conn.execute("UPDATE api_messages SET recipient = ? WHERE recipient = ? AND status != 'queued'",
                               (hashed, phone)).rowcount if _has_api(conn) else 0
            return {"mo_messages": mos, "mt_messages": mts, "billing_rows": billing, "notices": len(notices),
                    "api_messages": api, "mt_pending_kept": pending, **sqlite_erase(conn, phone, hashed)}

        done = self._write(run)
        self._checkpoint()
        return done

    def _checkpoint(self) -> None:
        """Copy the WAL into the file and empty it: the pages as they were before the erasure are
        gone from disk too (best effort: a reader of the gateway's may hold part of it back)."""
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _write(self, run: Any) -> Any:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = run(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return result


def _pick_billing(conn: sqlite3.Connection, cutoff: float, key: bytes, limit: int) -> list[tuple]:
    rows = conn.execute(
        "SELECT b.id, b.msisdn, m.recipient FROM billing_rows AS b LEFT JOIN mt_messages AS m ON m.id = b.mt_id"
        " WHERE length(b.msisdn) != 64 AND b.at < ? ORDER BY b.at LIMIT ?", (iso_time(cutoff), limit)).fetchall()
    return [(recipient if _is_hash(recipient) else phone_hash(key, recipient or masked), row_id)
            for row_id, masked, recipient in rows]


def _pick_mts(conn: sqlite3.Connection, cutoff: float, key: bytes, limit: int) -> list[tuple]:
    rows = conn.execute(
        "SELECT rowid, recipient FROM mt_messages WHERE text != '' AND created_at < ? AND status != 'pending'"
        " ORDER BY created_at LIMIT ?", (cutoff, limit)).fetchall()
    return [(recipient if _is_hash(recipient) else phone_hash(key, recipient), rowid) for rowid, recipient in rows]


def _pick_mos(conn: sqlite3.Connection, cutoff: float, key: bytes, limit: int) -> list[tuple]:
    rowids = conn.execute(
        "SELECT rowid FROM mo_messages WHERE sender != '' AND taken_at < ? ORDER BY taken_at LIMIT ?",
        (cutoff, limit)).fetchall()
    if not rowids:   # MOs stored before taken_at existed: their carrier's time says how old
        rowids = conn.execute("SELECT rowid FROM mo_messages WHERE sender != '' AND taken_at IS NULL"
                              " AND received_at < ? LIMIT ?", (iso_time(cutoff), limit)).fetchall()
    return rowids


def _pick_notices(conn: sqlite3.Connection, cutoff: float, key: bytes, limit: int) -> list[tuple]:
    rows = conn.execute("SELECT rowid, target FROM notices WHERE length(target) != 64 AND created_at < ?"
                        " ORDER BY created_at LIMIT ?", (cutoff, limit)).fetchall()
    return [(phone_hash(key, target), rowid) for rowid, target in rows]


def _pick_api_messages(conn: sqlite3.Connection, cutoff: float, key: bytes, limit: int) -> list[tuple]:
    """The API's messages keep their phone until sent or ended (`queued` is still the outbox's)."""
    if not _has_api(conn):
        return []
    rows = conn.execute("SELECT rowid, recipient FROM api_messages WHERE length(recipient) != 64 AND created_at < ?"
                        " AND status != 'queued' ORDER BY created_at LIMIT ?", (cutoff, limit)).fetchall()
    return [(phone_hash(key, recipient), rowid) for rowid, recipient in rows]


def _has_api(conn: sqlite3.Connection) -> bool:
    """Whether the file has the sending API's tables (schema step api; store/api.py)."""
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'api_messages'").fetchone() is not None


# (table, what to change and to what: read outside the write lock; the UPDATE, re-checking each row)
_PRUNE_STEPS = (
    ("billing_rows", _pick_billing, "UPDATE billing_rows SET msisdn = ? WHERE id = ? AND length(msisdn) != 64"),
    ("mt_messages", _pick_mts,
     "UPDATE mt_messages SET recipient = ?, text = '', last_error = NULL WHERE rowid = ? AND text != ''"),
    ("mo_messages", _pick_mos, "UPDATE mo_messages SET sender = '', text = '' WHERE rowid = ? AND sender != ''"),
    ("notices", _pick_notices, "UPDATE notices SET target = ? WHERE rowid = ? AND length(target) != 64"),
    ("api_messages", _pick_api_messages,
     "UPDATE api_messages SET recipient = ? WHERE rowid = ? AND length(recipient) != 64"),
) + SQLITE_PRUNE_STEPS   # questions, ratings (retention_tables.py)


def _dicts(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row)) for row in cursor]
