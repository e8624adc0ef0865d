"""The operator console's tables and the indexes its pages read through (schema step "console").

    console_users     one row per account: role, argon2 hash, failed logins since the last
                      success, and until when it is locked (five failures: 15 minutes)
    console_sessions  one row per session, keyed by the SHA-256 of the random token in the
                      cookie (a copy of the table gives no usable session), with its CSRF token
    console_audit     who did what, when, from which address: logins, answers, exports,
                      revealed numbers, account changes

Indexes for the pages (console_reads: each page reads a bounded range of one index):
    mo_messages_console     MOs by time, covering the overview's and the understanding's counts
    mo_messages_carrier_id  a search by the carrier's id alone
    mt_messages_console     MTs by time, covering the overview's and the carriers' counts
    mt_messages_recipient   one phone's MTs (replies, notices) in order
    billing_rows_console    a month's billing rows, covering the totals per carrier and type
    questions_open          the open questions (no staff answer, no FAQ answer), oldest first
    questions_answered      the latest staff answers

The same statements on both backends but for the types; schema.py applies them as one step.
"""

from __future__ import annotations

_INDEXES = """
CREATE INDEX IF NOT EXISTS mo_messages_console ON mo_messages (taken_at, carrier, command, error, guard);
CREATE INDEX IF NOT EXISTS mo_messages_carrier_id ON mo_messages (carrier_id);
CREATE INDEX IF NOT EXISTS mt_messages_console ON mt_messages (created_at, carrier, status, dlr_state);
CREATE INDEX IF NOT EXISTS mt_messages_recipient ON mt_messages (recipient, created_at);
CREATE INDEX IF NOT EXISTS billing_rows_console ON billing_rows (at, carrier, message_type, kind, amount_vnd);
CREATE INDEX IF NOT EXISTS console_sessions_name ON console_sessions (name);
CREATE INDEX IF NOT EXISTS console_audit_at ON console_audit (at);
CREATE INDEX IF NOT EXISTS questions_open ON questions (number) WHERE answered_by IS NULL AND faq_id IS NULL;
CREATE INDEX IF NOT EXISTS questions_answered ON questions (answered_at) WHERE answered_by IS NOT NULL;
"""

SQLITE_CONSOLE_STEP = """
CREATE TABLE IF NOT EXISTS console_users (
    name TEXT PRIMARY KEY, role TEXT NOT NULL, password_hash TEXT NOT NULL,
    failed_logins INTEGER NOT NULL DEFAULT 0, locked_until REAL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS console_sessions (
    token_hash TEXT PRIMARY KEY, name TEXT NOT NULL, csrf TEXT NOT NULL,
    created_at REAL NOT NULL, expires_at REAL NOT NULL, address TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS console_audit (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
    detail TEXT NOT NULL, address TEXT NOT NULL);
""" + _INDEXES

PG_CONSOLE_STEP = """
CREATE TABLE IF NOT EXISTS console_users (
    name TEXT PRIMARY KEY, role TEXT NOT NULL, password_hash TEXT NOT NULL,
    failed_logins INTEGER NOT NULL DEFAULT 0, locked_until DOUBLE PRECISION, created_at DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS console_sessions (
    token_hash TEXT PRIMARY KEY, name TEXT NOT NULL, csrf TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION NOT NULL, address TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS console_audit (
    id BIGSERIAL PRIMARY KEY, at DOUBLE PRECISION NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
    detail TEXT NOT NULL, address TEXT NOT NULL);
""" + _INDEXES


def statements(script: str) -> list[str]:
    return [statement.strip() for statement in script.split(";") if statement.strip()]
