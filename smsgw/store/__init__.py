"""The store: the only place that talks SQL. Records, messages, billing rows, and reading them back.

Interfaces and the data they carry, whatever the database:
    records.py          `RecordStore` (the dispatcher's lookups) and the record dataclasses
    messages.py         `MessageStore` (MOs, MT outbox, billing rows, notices, delivery states),
                        `MessageReports` (the reports' and the ledger's reading queries), their
                        data types, and what a policy decided in the store's transaction gets
                        (`SenderHistory`) and gives (`Screening`, `Guard`)
    errors.py           `StoreError`, and the operator's wording of a database driver's error

The embedded SQLite backend, one records database file:
    sqlite_records.py   `SqliteStore`: the records tables, lookups, bulk load for seed and import
    dossier_changes.py  the dossier status changes an import recorded, until their notices are queued
    sqlite_tables.py    the message tables and the connection that creates them
    sqlite_messages.py  `SqliteMessageStore`: the message operations as SQL
    writer.py           the group-commit writer that runs those operations, one transaction a batch
    files.py            whether the database files are still the ones opened, and writable
    sqlite_reports.py   `SqliteReports`: the reading queries, returning rows
    sqlite_retention.py `SqliteRetention`: personal data pruned by age, exported and erased by phone
                        (its interface: retention.py, `PersonalData`; the conversation and API
                        tables' steps, both backends: retention_tables.py)
    backup.py           `backup_sqlite`: a consistent copy of the file while the gateway writes
    sqlite_pacing.py    `SqlitePacing`: each carrier's `tps` shared by the processes on the file

The PostgreSQL backend, one database shared by any number of gateways (CONTRACT section 10):
    pg_pool.py          the asyncpg pool (connections kept between operations), and its connection
                        errors as `Unavailable`
    pg_batches.py       group commit: operations arriving together go in one statement
    pg_records.py       `PgRecordStore`: the records lookups, COPY for seed and import
    pg_messages.py      `PgMessageStore`: the message operations, one short transaction each
    pg_screened.py      the MOs per-phone protection screens, decided together: locks, histories, rule
    pg_pacing.py        `PgPacing`: each carrier's `tps` shared by the gateways, one statement a take
    pg_reports.py       `PgReports`: the reading queries, returning rows
    pg_retention.py     `PgRetention`: personal data pruned by age (one pruner at a time), exported
                        and erased by phone

Both:
    schema.py           the numbered schema steps and `schema_version` (`smsgw db migrate`)
    faq_entries.py      the stored FAQ and its examples (`smsgw faq import`), replaced whole by each import
    pacing.py           the shared MT pacing's rule (a GCRA row per carrier) and its `Reservation`

The `open_*` functions take the `--db` value and pick the backend: a `postgresql://` URL is a
PostgreSQL database, anything else an SQLite file. Creating a store (`db seed`, `db import`:
`open_records(create=True)`) migrates it to the current schema first.
"""

from __future__ import annotations

from collections.abc import Callable

from .console import ROLES, Account, AuditEntry, ConsoleStore, MessageRow, QueueRow, Session
from .errors import DatabaseRefused, StoreError, explain
from .messages import (MESSAGE_LANE, NOTICE_LANE, REAL_TRAFFIC, REPLY_LANE, TEST_CARRIER, BillingRow, Effect, Guard,
                       MessageReports, MessageStore, MTState, Notice, PendingMT, Question, Screening, SenderHistory,
                       StaffAnswer, StoredMO)
from .dossier_changes import DossierChange
from .records import DOSSIER_RESULTS, DOSSIER_STATUSES, SCHEMES, Card, Dossier, Period, Person, RecordStore
from .sqlite_messages import SqliteMessageStore
from .sqlite_records import CardRow, DossierRow, PaidUpRow, PeriodRow, PersonRow, SqliteStore
from .retention import KeyMismatch, PersonalData, PruneRunning, phone_hash
from .retention_tables import erased_phone
from .schema import CURRENT as SCHEMA_VERSION
from .schema import OutdatedSchema, is_postgres, migrate, require_current
from .schema import shown as schema_shown
from .sqlite_reports import SqliteReports
from .sqlite_retention import SqliteRetention

__all__ = [
    "Account", "AuditEntry", "ConsoleStore", "MessageRow", "open_console", "QueueRow", "ROLES", "Session",
    "backup_database", "BillingRow", "Effect", "Question", "StaffAnswer", "Card", "CardRow", "DatabaseRefused",
    "Dossier", "DossierChange", "erased_phone", "DOSSIER_RESULTS", "DOSSIER_STATUSES", "DossierRow", "explain", "Guard",
    "MESSAGE_LANE", "NOTICE_LANE", "REPLY_LANE", "is_postgres", "KeyMismatch", "MessageReports", "MessageStore",
    "migrate", "MTState", "Notice", "open_messages", "open_personal_data", "open_records", "open_reports",
    "OutdatedSchema", "PaidUpRow", "PendingMT", "Period", "PeriodRow", "Person", "PersonalData", "PersonRow",
    "phone_hash", "PruneRunning", "RecordStore", "require_current", "SCHEMA_VERSION", "SCHEMES", "Screening",
    "SenderHistory", "SqliteMessageStore", "SqliteReports", "SqliteStore", "StoredMO", "StoreError", "REAL_TRAFFIC",
    "TEST_CARRIER",
]


async def open_records(db: str, *, create: bool = False) -> SqliteStore:
    """The records at `db` (`--db`); with `create`, made when missing and migrated to the current schema.

    StoreError when they cannot be used. (A PgRecordStore on a URL: same methods.)
    """
    if is_postgres(db):
        from .pg_records import PgRecordStore

        if create:
            await migrate(db)
        return await PgRecordStore.open(db)   # type: ignore[return-value]
    store = await SqliteStore.open(db, create=create)
    if create:
        try:
            await migrate(db)
        except BaseException:
            await store.close()
            raise
    return store


async def open_messages(db: str, *, batch_delay: float = 0.0, max_batch: int = 512,
                        on_batch: Callable[[int], None] | None = None,
                        on_commit: Callable[[float], None] | None = None) -> MessageStore:
    """The message store at `db` (`--db`): on SQLite its tables created when missing (see
    SqliteMessageStore.open); on PostgreSQL a pool on the migrated database, the MOs arriving
    together stored in one statement (pg_batches.py; `batch_delay` and `max_batch` apply to
    SQLite's writer only; `on_batch`/`on_commit` see each stored batch on both)."""
    if is_postgres(db):
        from .pg_messages import PgMessageStore

        return await PgMessageStore.open(db, on_batch=on_batch, on_commit=on_commit)
    return await SqliteMessageStore.open(db, batch_delay=batch_delay, max_batch=max_batch, on_batch=on_batch,
                                         on_commit=on_commit)


def open_reports(db: str) -> MessageReports:
    """The reading queries over the messages at `db` (`--db`); DatabaseRefused when it cannot be opened."""
    if is_postgres(db):
        from .pg_reports import PgReports

        return PgReports.open(db)
    return SqliteReports.open(db)


async def open_console(db: str) -> "ConsoleStore":
    """The operator console's accounts, sessions, audit and reading queries at `db` (`--db`)."""
    if is_postgres(db):
        from .pg_console import PgConsoleStore

        return await PgConsoleStore.open(db)
    from .sqlite_console import SqliteConsoleStore

    return await SqliteConsoleStore.open(db)


def open_personal_data(db: str) -> PersonalData:
    """The personal data in the messages at `db` (`--db`): prune, export, erase (retention.py)."""
    if is_postgres(db):
        from .pg_retention import PgRetention

        return PgRetention.open(db)
    return SqliteRetention(db)


def backup_database(db: str, target: str) -> int:
    """A consistent copy of the store at `db` in the file `target`, while it serves; its size in bytes."""
    from .backup import backup_sqlite

    if is_postgres(db):
        raise StoreError(f"--db {schema_shown(db)}: db backup copies SQLite files; for PostgreSQL use pg_dump, or "
                         "base backups (pg_basebackup) with WAL archiving (see the README)")
    return backup_sqlite(db, target)
