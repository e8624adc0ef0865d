"""The schema's version and its numbered steps, on both backends (`smsgw db migrate`).

Each backend keeps `schema_version`, one row per step applied (version, applied_at). A step is
applied once, in the transaction that records it; running `migrate` again does nothing. Step 1
on SQLite is the schema the files made before versions existed already have, written with
CREATE ... IF NOT EXISTS (and the columns added since the first release): such a file is
recognised as it is and gets its version row. On PostgreSQL, concurrent `migrate` runs (two
gateways' hosts) are serialised by an advisory lock held by the migrating transaction.

`serve` opens nothing on a schema older than `CURRENT`: `require_current` refuses it, naming
the command that upgrades it.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from .console_sending import SENDING_INDEXES
from .console_tables import PG_CONSOLE_STEP, SQLITE_CONSOLE_STEP, statements
from .dossier_changes import PG_TABLE as DOSSIER_CHANGES_PG
from .dossier_changes import SQLITE_TABLE as DOSSIER_CHANGES_SQLITE
from .errors import StoreError
from .retention_tables import KEPT_INDEXES as CONVERSATION_KEPT_INDEXES

CURRENT = 11
_MIGRATE_LOCK = 0x736D7367   # "smsg": pg_advisory_xact_lock key of a migration

_VERSION_TABLE = ("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY,"
                  " applied_at TEXT NOT NULL)")


def is_postgres(db: str | os.PathLike[str]) -> bool:
    """Whether `--db` names a PostgreSQL database (a URL) rather than an SQLite file (a path)."""
    return isinstance(db, str) and db.startswith(("postgresql://", "postgres://"))


class OutdatedSchema(StoreError):
    """The database's schema is older than this smsgw's; the message names `smsgw db migrate`."""

    def __init__(self, db: str, version: int) -> None:
        super().__init__(f"--db {shown(db)}: schema version {version}, this smsgw needs {CURRENT}: "
                         f"run smsgw db migrate --db {shown(db)}")
        self.version = version


def shown(db: str) -> str:
    """`--db` as it may be printed: a URL without its password."""
    if not is_postgres(db) or "@" not in db:
        return db
    scheme, rest = db.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}{':***' if ':' in credentials else ''}@{host}"


# The FAQ (`smsgw faq import`, store/faq_entries.py): its entries in file order (`position`), the
# whole table replaced by each import.
FAQ_STEP = {
    "sqlite": "CREATE TABLE IF NOT EXISTS faq_entries (position INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,"
              " question TEXT NOT NULL, answer TEXT NOT NULL, imported_at REAL NOT NULL)",
    "postgresql": "CREATE TABLE IF NOT EXISTS faq_entries (position INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,"
                  " question TEXT NOT NULL, answer TEXT NOT NULL, imported_at DOUBLE PRECISION NOT NULL)",
}

# The FAQ's examples (`smsgw faq import FILE --examples EXAMPLES`, store/faq_entries.py): citizens'
# questions labelled with the entry that answers them, in file order, replaced with the FAQ.
FAQ_EXAMPLES_STEP = {
    "sqlite": "CREATE TABLE IF NOT EXISTS faq_examples (position INTEGER PRIMARY KEY, id TEXT NOT NULL,"
              " question TEXT NOT NULL, imported_at REAL NOT NULL)",
    "postgresql": "CREATE TABLE IF NOT EXISTS faq_examples (position INTEGER PRIMARY KEY, id TEXT NOT NULL,"
                  " question TEXT NOT NULL, imported_at DOUBLE PRECISION NOT NULL)",
}


# -- SQLite ----------------------------------------------------------------------------------

def _sqlite_step_1(conn: sqlite3.Connection) -> None:
    from .sqlite_records import RECORD_INDEXES, RECORD_TABLES
    from .sqlite_tables import create_message_tables

    for statement in (*RECORD_TABLES, *RECORD_INDEXES.values()):
        conn.execute(statement)
    create_message_tables(conn)


def _sqlite_step_retention(conn: sqlite3.Connection) -> None:
    """Retention (CONTRACT section 11): nothing to add on SQLite. Its `retention_state` table and
    `*_kept` indexes are in sqlite_tables.py, made IF NOT EXISTS by step 1 and by every `connect`."""


def _sqlite_step_faq(conn: sqlite3.Connection) -> None:
    conn.execute(FAQ_STEP["sqlite"])


def _sqlite_step_faq_examples(conn: sqlite3.Connection) -> None:
    conn.execute(FAQ_EXAMPLES_STEP["sqlite"])


def _sqlite_step_notices(conn: sqlite3.Connection) -> None:
    """The notices' step: the outbox's lanes and holds (mt_messages.lane, not_before:
    sqlite_tables.add_outbox_lanes) and the dossier status changes (dossier_changes.py)."""
    from .sqlite_tables import add_outbox_lanes

    add_outbox_lanes(conn)
    for statement in DOSSIER_CHANGES_SQLITE:
        conn.execute(statement)


def _sqlite_step_api(conn: sqlite3.Connection) -> None:
    """The sending API's tables and status trigger (store/api.py)."""
    from .sqlite_api import ensure_api_tables

    ensure_api_tables(conn)


def _sqlite_step_conversations(conn: sqlite3.Connection) -> None:
    """The conversation commands (CONTRACT §7): questions, ratings, opt-outs; MT leases."""
    from .sqlite_tables import create_message_tables

    create_message_tables(conn)   # CONVERSATION_TABLES and mt_messages.lease_until, when missing


def _sqlite_console_step(conn: sqlite3.Connection) -> None:
    for statement in statements(SQLITE_CONSOLE_STEP):
        conn.execute(statement)


def _sqlite_step_conversation_retention(conn: sqlite3.Connection) -> None:
    """The retention of the conversation tables: their `*_kept` indexes (retention_tables.py)."""
    for statement in statements(CONVERSATION_KEPT_INDEXES):
        conn.execute(statement)


def _sqlite_console_sending_step(conn: sqlite3.Connection) -> None:
    """The console's "notices and batches" page: its indexes (console_sending.py)."""
    for statement in statements(SENDING_INDEXES):
        conn.execute(statement)


def _sqlite_step_pacing(conn: sqlite3.Connection) -> None:
    """The carriers' MT pacing shared by the processes sending from the file (sqlite_pacing.py)."""
    from .sqlite_pacing import SQLITE_TABLE

    conn.execute(SQLITE_TABLE)


_SQLITE_STEPS = {1: _sqlite_step_1, 2: _sqlite_step_notices, 3: _sqlite_step_api,
                 4: _sqlite_step_conversations, 5: _sqlite_step_faq, 6: _sqlite_step_retention,
                 7: _sqlite_console_step, 8: _sqlite_step_conversation_retention,
                 9: _sqlite_console_sending_step, 10: _sqlite_step_faq_examples, 11: _sqlite_step_pacing}


def sqlite_version(conn: sqlite3.Connection) -> int:
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").fetchone():
        return 0
    return conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]


def sqlite_migrate(path: str | os.PathLike[str]) -> tuple[int, int]:
    """Apply the steps the file at `path` lacks (creating it); (version before, version after)."""
    from .sqlite_tables import iso_time

    import time

    try:
        conn = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error as error:
        raise StoreError(f"cannot open {path}: {error}") from error
    try:
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            before = sqlite_version(conn)
            conn.execute(_VERSION_TABLE)
            for step in range(before + 1, CURRENT + 1):
                _SQLITE_STEPS[step](conn)
                conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                             (step, iso_time(time.time())))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    except sqlite3.DatabaseError as error:
        raise StoreError(f"{path} is not a usable database: {error}") from error
    finally:
        conn.close()
    return before, max(before, CURRENT)


def sqlite_current_version(path: str) -> int:
    """The version of the file at `path` (0: made before versions, or empty)."""
    if not Path(path).exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return sqlite_version(conn)
        finally:
            conn.close()
    except sqlite3.DatabaseError as error:
        raise StoreError(f"{path} is not a usable database: {error}") from error


# -- PostgreSQL ------------------------------------------------------------------------------

_PG_STEP_1 = """
CREATE TABLE IF NOT EXISTS persons (
    ssn TEXT PRIMARY KEY, personal_id TEXT UNIQUE, full_name TEXT NOT NULL,
    date_of_birth DATE NOT NULL, phone TEXT);
CREATE TABLE IF NOT EXISTS periods (
    ssn TEXT NOT NULL, scheme TEXT NOT NULL, employer TEXT NOT NULL,
    from_month INTEGER NOT NULL, to_month INTEGER NOT NULL,
    UNIQUE (ssn, scheme, from_month, to_month, employer));
CREATE TABLE IF NOT EXISTS cards (
    card_no TEXT PRIMARY KEY, ssn TEXT NOT NULL, valid_from DATE NOT NULL,
    valid_to DATE NOT NULL, hospital TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS cards_ssn ON cards (ssn, valid_to, valid_from, card_no);
CREATE INDEX IF NOT EXISTS cards_valid_to ON cards (valid_to);
CREATE TABLE IF NOT EXISTS dossiers (
    dossier_code TEXT PRIMARY KEY, ssn TEXT NOT NULL, status TEXT NOT NULL, updated_at DATE NOT NULL);
CREATE TABLE IF NOT EXISTS paid_up (ssn TEXT PRIMARY KEY, paid_until DATE NOT NULL);
CREATE INDEX IF NOT EXISTS paid_up_until ON paid_up (paid_until);
CREATE TABLE IF NOT EXISTS mo_messages (
    id TEXT PRIMARY KEY, carrier TEXT NOT NULL, carrier_id TEXT NOT NULL, sender TEXT NOT NULL,
    recipient TEXT NOT NULL, text TEXT NOT NULL, received_at TEXT NOT NULL, mode TEXT NOT NULL,
    command TEXT, error TEXT, status TEXT NOT NULL, taken_at DOUBLE PRECISION, guard TEXT,
    UNIQUE (carrier, carrier_id));
CREATE INDEX IF NOT EXISTS mo_messages_sender ON mo_messages (sender, guard, taken_at);
CREATE TABLE IF NOT EXISTS mt_messages (
    id TEXT PRIMARY KEY, mo_id TEXT NOT NULL, seq INTEGER NOT NULL, carrier TEXT NOT NULL,
    in_reply_to TEXT NOT NULL, sender TEXT NOT NULL, recipient TEXT NOT NULL, text TEXT NOT NULL,
    encoding TEXT NOT NULL, segments INTEGER NOT NULL, message_type INTEGER NOT NULL,
    status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, created_at DOUBLE PRECISION NOT NULL,
    next_attempt_at DOUBLE PRECISION, last_error TEXT, dlr_state TEXT, dlr_time TEXT,
    lease_until DOUBLE PRECISION);
CREATE INDEX IF NOT EXISTS mt_messages_mo ON mt_messages (mo_id, seq);
CREATE INDEX IF NOT EXISTS mt_messages_pending ON mt_messages (created_at) WHERE status = 'pending';
CREATE TABLE IF NOT EXISTS billing_rows (
    id BIGSERIAL PRIMARY KEY, kind TEXT NOT NULL, carrier TEXT NOT NULL, mo_id TEXT NOT NULL,
    mt_id TEXT NOT NULL, msisdn TEXT NOT NULL, amount_vnd INTEGER NOT NULL,
    message_type INTEGER NOT NULL, at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS billing_rows_mo ON billing_rows (mo_id);
CREATE INDEX IF NOT EXISTS billing_rows_at ON billing_rows (at);
CREATE TABLE IF NOT EXISTS notices (
    kind TEXT NOT NULL, target TEXT NOT NULL, occasion TEXT NOT NULL, mt_id TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (kind, target, occasion));
CREATE TABLE IF NOT EXISTS store_probe (id INTEGER PRIMARY KEY CHECK (id = 1), at DOUBLE PRECISION NOT NULL);
"""
# Retention (CONTRACT section 11, pg_retention.py): the store's hash key (or only its check value),
# and partial indexes holding only the rows whose personal data is still there, oldest first, so
# that a prune step finds its rows without a scan. Built inside the migration's transaction: on a
# large database, migrate with the gateways stopped (writes wait for the index builds).
# And the holder of an MT's lease (pg_messages.py), so that only the holder renews or changes it.
_PG_STEP_RETENTION = """
ALTER TABLE mt_messages ADD COLUMN IF NOT EXISTS lease_owner TEXT;
CREATE TABLE IF NOT EXISTS retention_state (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS mo_messages_kept ON mo_messages (taken_at) WHERE sender <> '';
CREATE INDEX IF NOT EXISTS mt_messages_kept ON mt_messages (created_at) WHERE text <> '';
CREATE INDEX IF NOT EXISTS billing_rows_kept ON billing_rows (at) WHERE length(msisdn) <> 64;
CREATE INDEX IF NOT EXISTS notices_kept ON notices (created_at) WHERE length(target) <> 64;
"""
# The notices' step: the outbox's lanes and holds (SHARED-INTERFACES §2: each MT's lane, 0 replies
# first, and the time a held MT waits for, NULL: not held) and the dossier status changes.
_PG_STEP_NOTICES = """
ALTER TABLE mt_messages ADD COLUMN IF NOT EXISTS lane INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mt_messages ADD COLUMN IF NOT EXISTS not_before DOUBLE PRECISION;
CREATE INDEX IF NOT EXISTS mt_messages_held ON mt_messages (not_before)
    WHERE status = 'pending' AND not_before IS NOT NULL;
""" + DOSSIER_CHANGES_PG


def _pg_step_api() -> str:
    from .api import API_TABLES_PG

    return API_TABLES_PG



# The conversation commands (CONTRACT §7): questions numbered by a sequence (unique across
# gateways), ratings, opt-outs (SHARED-INTERFACES §1).
_PG_STEP_CONVERSATIONS = """
CREATE TABLE IF NOT EXISTS questions (
    number BIGSERIAL PRIMARY KEY, mo_id TEXT NOT NULL UNIQUE, carrier TEXT NOT NULL, sender TEXT NOT NULL,
    text TEXT NOT NULL, asked_at DOUBLE PRECISION NOT NULL, faq_id TEXT, answer TEXT, answered_by TEXT,
    answered_at DOUBLE PRECISION, answer_mt_id TEXT);
CREATE INDEX IF NOT EXISTS questions_sender ON questions (sender, answered_at);
CREATE TABLE IF NOT EXISTS ratings (
    mo_id TEXT PRIMARY KEY, sender TEXT NOT NULL, rating INTEGER NOT NULL, comment TEXT, rated_mo_id TEXT,
    rated_at DOUBLE PRECISION NOT NULL);
CREATE INDEX IF NOT EXISTS ratings_at ON ratings (rated_at);
CREATE TABLE IF NOT EXISTS opt_outs (phone TEXT PRIMARY KEY, since DOUBLE PRECISION NOT NULL);
"""
# The carriers' MT pacing shared by the gateways of one database (pg_pacing.py): one row per carrier.
# UNLOGGED: a take commits without waiting for a WAL flush (5-7x faster measured); after a crash
# or a failover the table is empty and each carrier's bucket starts full.
_PG_STEP_PACING = ("CREATE UNLOGGED TABLE IF NOT EXISTS carrier_pacing (carrier TEXT PRIMARY KEY,"
                   " free_at DOUBLE PRECISION NOT NULL, rate DOUBLE PRECISION NOT NULL,"
                   " checked_at DOUBLE PRECISION NOT NULL, granted DOUBLE PRECISION NOT NULL)")
_PG_STEPS = {1: _PG_STEP_1, 2: _PG_STEP_NOTICES, 3: _pg_step_api, 4: _PG_STEP_CONVERSATIONS,
             5: FAQ_STEP["postgresql"], 6: _PG_STEP_RETENTION, 7: PG_CONSOLE_STEP, 8: CONVERSATION_KEPT_INDEXES,
             9: SENDING_INDEXES, 10: FAQ_EXAMPLES_STEP["postgresql"], 11: _PG_STEP_PACING}


async def pg_version(conn) -> int:
    if await conn.fetchval("SELECT to_regclass('schema_version')") is None:
        return 0
    return await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version")


async def pg_migrate(conn) -> tuple[int, int]:
    """Apply the steps the database lacks, in one transaction; (version before, version after)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATE_LOCK)
        before = await pg_version(conn)
        await conn.execute(_VERSION_TABLE)
        for step in range(before + 1, CURRENT + 1):
            ddl = _PG_STEPS[step]
            await conn.execute(ddl() if callable(ddl) else ddl)
            await conn.execute("INSERT INTO schema_version (version, applied_at) VALUES ($1, now()::text)", step)
    return before, max(before, CURRENT)


# -- both ------------------------------------------------------------------------------------

async def migrate(db: str | os.PathLike[str]) -> tuple[int, int]:
    """`smsgw db migrate --db DB`: (version before, version after)."""
    if not is_postgres(db):
        return sqlite_migrate(db)
    from .pg_pool import connect_once

    conn = await connect_once(db)
    try:
        return await pg_migrate(conn)
    finally:
        await conn.close()


async def current_version(db: str) -> int:
    if not is_postgres(db):
        return sqlite_current_version(db)
    from .pg_pool import connect_once

    conn = await connect_once(db)
    try:
        return await pg_version(conn)
    finally:
        await conn.close()


async def require_current(db: str) -> None:
    """Refuse (OutdatedSchema) a database whose schema is older than this smsgw's."""
    version = await current_version(db)
    if version < CURRENT:
        raise OutdatedSchema(db, version)
