"""The message tables in the records database file, and the connection that creates them.

Tables (WAL):
    mo_messages     one row per MO, unique on (carrier, carrier_id); status answered (sync),
                    queued -> sent | failed (async), or withheld (no reply: see protection.py,
                    whose `guard` says why); `taken_at` is our clock (Unix seconds)
    mt_messages     the replies with their stable MT id; status sent (sync: given in the response),
                    pending -> sent | failed (async outbox); attempts, next attempt, DLR state
    billing_rows    one charge row per MT (amount 0 when not charged), and one refund row
                    reversing it when delivery is given up; one push row (amount 0) per notice;
                    the phone number is stored masked
    notices         one row per notice queued, unique on (kind, target, occasion): a notice is
                    queued once, however often `smsgw notify` runs; its MT has no MO (mo_id '')
    questions, ratings, opt_outs   the conversation commands' (CONVERSATION_TABLES below)
    store_probe     one row, rewritten by each `probe` (GET /healthz): a write that must reach the disk
    retention_state the retention's key check (and its key, when the config gives none): see
                    sqlite_retention.py; the partial indexes `*_kept` hold only the rows whose
                    personal data is still there, oldest first, so a prune finds them without a scan

`connect` opens the file for the message store's writer (writer.py) and for the reports
(sqlite_reports.py), creating the tables and indexes when missing.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone

_TABLES = """
CREATE TABLE IF NOT EXISTS mo_messages (
    id TEXT PRIMARY KEY,
    carrier TEXT NOT NULL,
    carrier_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    recipient TEXT NOT NULL,
    text TEXT NOT NULL,
    received_at TEXT NOT NULL,
    mode TEXT NOT NULL,
    command TEXT,
    error TEXT,
    status TEXT NOT NULL,
    taken_at REAL,
    guard TEXT,
    UNIQUE (carrier, carrier_id)
);
CREATE TABLE IF NOT EXISTS mt_messages (
    id TEXT PRIMARY KEY,
    mo_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    carrier TEXT NOT NULL,
    in_reply_to TEXT NOT NULL,
    sender TEXT NOT NULL,
    recipient TEXT NOT NULL,
    text TEXT NOT NULL,
    encoding TEXT NOT NULL,
    segments INTEGER NOT NULL,
    message_type INTEGER NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    next_attempt_at REAL,
    last_error TEXT,
    dlr_state TEXT,
    dlr_time TEXT
);
CREATE TABLE IF NOT EXISTS billing_rows (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    carrier TEXT NOT NULL,
    mo_id TEXT NOT NULL,
    mt_id TEXT NOT NULL,
    msisdn TEXT NOT NULL,
    amount_vnd INTEGER NOT NULL,
    message_type INTEGER NOT NULL,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS store_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS notices (
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    occasion TEXT NOT NULL,
    mt_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (kind, target, occasion)
);
CREATE TABLE IF NOT EXISTS retention_state (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""
# The conversation tables (CONTRACT §7; schema step 2): the questions of BH HOI, numbered in
# order (the number is the row's key: "Q" and its digits), with their FAQ or staff answer; the
# ratings of BH DG, each of the phone's last answered MO within 24 hours (or none); the phones
# that sent BH TC (a row: opted out; BH DK deletes it).
CONVERSATION_TABLES = """
CREATE TABLE IF NOT EXISTS questions (
    number INTEGER PRIMARY KEY AUTOINCREMENT,
    mo_id TEXT NOT NULL UNIQUE,
    carrier TEXT NOT NULL,
    sender TEXT NOT NULL,
    text TEXT NOT NULL,
    asked_at REAL NOT NULL,
    faq_id TEXT,
    answer TEXT,
    answered_by TEXT,
    answered_at REAL,
    answer_mt_id TEXT
);
CREATE INDEX IF NOT EXISTS questions_sender ON questions (sender, answered_at);
CREATE TABLE IF NOT EXISTS ratings (
    mo_id TEXT PRIMARY KEY,
    sender TEXT NOT NULL,
    rating INTEGER NOT NULL,
    comment TEXT,
    rated_mo_id TEXT,
    rated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS ratings_at ON ratings (rated_at);
CREATE TABLE IF NOT EXISTS opt_outs (phone TEXT PRIMARY KEY, since REAL NOT NULL)
"""
# Columns added since the first release, for message tables created before them. lease_until
# (step 2): an MT stored and delivered by another process (`smsgw questions answer`) is that
# process's until then; the gateway's outbox leaves it alone meanwhile.
_ADDED_COLUMNS = {"mo_messages": (("taken_at", "REAL"), ("guard", "TEXT")),
                  "mt_messages": (("lease_until", "REAL"),)}
_INDEXES = """
CREATE INDEX IF NOT EXISTS mt_messages_mo ON mt_messages (mo_id, seq);
CREATE INDEX IF NOT EXISTS mt_messages_pending ON mt_messages (created_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS billing_rows_mo ON billing_rows (mo_id);
CREATE INDEX IF NOT EXISTS billing_rows_at ON billing_rows (at);
CREATE INDEX IF NOT EXISTS mo_messages_sender ON mo_messages (sender, guard, taken_at);
CREATE INDEX IF NOT EXISTS mo_messages_kept ON mo_messages (taken_at) WHERE sender != '';
CREATE INDEX IF NOT EXISTS mt_messages_kept ON mt_messages (created_at) WHERE text != '';
CREATE INDEX IF NOT EXISTS billing_rows_kept ON billing_rows (at) WHERE length(msisdn) != 64;
CREATE INDEX IF NOT EXISTS notices_kept ON notices (created_at) WHERE length(target) != 64;
"""


def iso_time(unix: float) -> str:
    """How a time is stored in `billing_rows.at`: ISO 8601, UTC (Unix seconds in)."""
    return datetime.fromtimestamp(unix, timezone.utc).isoformat()


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("BEGIN IMMEDIATE")
    try:
        create_message_tables(conn)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        conn.close()
        raise
    return conn


def create_message_tables(conn: sqlite3.Connection) -> None:
    """Create the message tables and indexes when missing, inside the caller's transaction."""
    for statement in _statements(_TABLES):
        conn.execute(statement)
    for table, columns in _ADDED_COLUMNS.items():
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        for name, declaration in columns:
            if name not in present:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {declaration}")
    for statement in _statements(_INDEXES):
        conn.execute(statement)
    for statement in _statements(CONVERSATION_TABLES):
        conn.execute(statement)


def _statements(script: str) -> list[str]:
    return [statement.strip() for statement in script.split(";") if statement.strip()]
