"""The embedded records store: one SQLite file (WAL) read and written through aiosqlite.

Tables `persons`, `periods`, `cards`, `dossiers` and `paid_up` (the date up to which a
voluntary-insurance participant has paid, for those who have one); every lookup is one indexed
point lookup and one round trip. Months are stored as `Month.index` integers, dates as ISO text. The HTTP
gateway keeps its own tables (`mo_*`, `mt_*`, `billing*`) in the same file; this module never
touches them.

Rows written by the seeder and the importer are plain tuples in column order:
`PersonRow` (ssn, personal_id or None, full_name, date_of_birth ISO, phone or None),
`PeriodRow` (ssn, scheme, employer, from_month index, to_month index),
`CardRow` (card_no, ssn, valid_from ISO, valid_to ISO, hospital),
`DossierRow` (dossier_code, ssn, status, updated_at ISO),
`PaidUpRow` (ssn, paid_until ISO).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path

import aiosqlite

from ..commands import Month
from .dossier_changes import SqliteDossierChanges
from .errors import StoreError
from .records import Card, Dossier, Period, Person, RecordStore

PersonRow = tuple[str, str | None, str, str, str | None]
PeriodRow = tuple[str, str, str, int, int]
CardRow = tuple[str, str, str, str, str]
DossierRow = tuple[str, str, str, str]
PaidUpRow = tuple[str, str]

RECORD_TABLES = (
    "CREATE TABLE IF NOT EXISTS persons ("
    " ssn TEXT NOT NULL, personal_id TEXT, full_name TEXT NOT NULL,"
    " date_of_birth TEXT NOT NULL, phone TEXT)",
    "CREATE TABLE IF NOT EXISTS periods ("
    " ssn TEXT NOT NULL, scheme TEXT NOT NULL, employer TEXT NOT NULL,"
    " from_month INTEGER NOT NULL, to_month INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS cards ("
    " card_no TEXT NOT NULL, ssn TEXT NOT NULL, valid_from TEXT NOT NULL,"
    " valid_to TEXT NOT NULL, hospital TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS dossiers ("
    " dossier_code TEXT NOT NULL, ssn TEXT NOT NULL, status TEXT NOT NULL, updated_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS paid_up (ssn TEXT NOT NULL, paid_until TEXT NOT NULL)",
)
# Built after a bulk load; `periods_row` is both the whole-row key and the covering lookup by ssn.
RECORD_INDEXES = {
    "persons_ssn": "CREATE UNIQUE INDEX IF NOT EXISTS persons_ssn ON persons (ssn)",
    "persons_personal_id": "CREATE UNIQUE INDEX IF NOT EXISTS persons_personal_id ON persons (personal_id)"
    " WHERE personal_id IS NOT NULL",
    "periods_row": "CREATE UNIQUE INDEX IF NOT EXISTS periods_row"
    " ON periods (ssn, scheme, from_month, to_month, employer)",
    "cards_card_no": "CREATE UNIQUE INDEX IF NOT EXISTS cards_card_no ON cards (card_no)",
    "cards_ssn": "CREATE INDEX IF NOT EXISTS cards_ssn ON cards (ssn, valid_to, valid_from, card_no)",
    "dossiers_code": "CREATE UNIQUE INDEX IF NOT EXISTS dossiers_code ON dossiers (dossier_code)",
    "cards_valid_to": "CREATE INDEX IF NOT EXISTS cards_valid_to ON cards (valid_to)",
    "paid_up_ssn": "CREATE UNIQUE INDEX IF NOT EXISTS paid_up_ssn ON paid_up (ssn)",
    "paid_up_until": "CREATE INDEX IF NOT EXISTS paid_up_until ON paid_up (paid_until)",
}

_MERGE = {
    "persons": "INSERT INTO persons (ssn, personal_id, full_name, date_of_birth, phone) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (ssn) DO UPDATE SET personal_id = excluded.personal_id, full_name = excluded.full_name,"
    " date_of_birth = excluded.date_of_birth, phone = excluded.phone",
    "periods": "INSERT INTO periods (ssn, scheme, employer, from_month, to_month) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT DO NOTHING",
    "cards": "INSERT INTO cards (card_no, ssn, valid_from, valid_to, hospital) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (card_no) DO UPDATE SET ssn = excluded.ssn, valid_from = excluded.valid_from,"
    " valid_to = excluded.valid_to, hospital = excluded.hospital",
    "dossiers": "INSERT INTO dossiers (dossier_code, ssn, status, updated_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (dossier_code) DO UPDATE SET ssn = excluded.ssn, status = excluded.status,"
    " updated_at = excluded.updated_at",
    "paid_up": "INSERT INTO paid_up (ssn, paid_until) VALUES (?, ?)"
    " ON CONFLICT (ssn) DO UPDATE SET paid_until = excluded.paid_until",
}
# A bulk load starts from empty tables without indexes: plain inserts, checked by the unique
# indexes built at the end.
_APPEND = {table: sql.split(" ON CONFLICT")[0] for table, sql in _MERGE.items()}

_PERSON_COLUMNS = "persons.ssn, persons.personal_id, persons.full_name, persons.date_of_birth, persons.phone"
_PERSON = f"SELECT {_PERSON_COLUMNS} FROM persons"
_CARD = "SELECT card_no, ssn, valid_from, valid_to, hospital FROM cards"
_JSON_LIST = "(SELECT value FROM json_each(?))"
_CHUNK = 50_000
# Reads through a memory map skip a system call per page: the tail of lookups on a big file
# stays that of a small one. SQLite caps this at its compile-time limit (2 GiB by default).
_MMAP_BYTES = 1 << 40


class SqliteStore(SqliteDossierChanges, RecordStore):
    """Records in one SQLite file; open with `await SqliteStore.open(path)`."""

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self._db = db
        self.path = path
        self._bulk = False

    @classmethod
    async def open(cls, path: str | os.PathLike[str], *, create: bool = False) -> SqliteStore:
        """Open the records database at `path`; with `create`, make it if it is missing (at the
        current schema version, schema.py: `serve` takes it as it is)."""
        path = Path(path)
        existed = path.exists()
        if not create and not existed:
            raise StoreError(f"no records database at {path}: create it with `smsgw db seed` or `smsgw db import`")
        try:
            # Opened once directly first: when aiosqlite's own connect fails, it queues the stop
            # of its worker thread without waiting for it, and that thread then posts to the
            # event loop asyncio.run has already closed ("RuntimeError: Event loop is closed",
            # a traceback on the operator's terminal). A path SQLite cannot open fails here,
            # before that thread exists.
            sqlite3.connect(path).close()
            db = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as error:
            raise StoreError(f"cannot open records database {path}: {error}") from error
        try:
            await db.execute("PRAGMA busy_timeout = 5000")
            await db.execute("PRAGMA journal_mode = WAL")
            await db.execute("PRAGMA synchronous = NORMAL")
            await db.execute(f"PRAGMA mmap_size = {_MMAP_BYTES}")
            for statement in (*RECORD_TABLES, *RECORD_INDEXES.values()):
                await db.execute(statement)
        except sqlite3.DatabaseError as error:
            await db.close()
            raise StoreError(f"{path} is not a usable records database: {error}") from error
        if not existed:   # a file made now is made at the current schema version (schema.py)
            from .schema import sqlite_migrate

            try:
                sqlite_migrate(path)
            except BaseException:
                await db.close()
                raise
        return cls(db, path)

    async def close(self) -> None:
        await self._db.close()

    async def __aenter__(self) -> SqliteStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- lookups (RecordStore) -------------------------------------------------------------

    async def person_by_ssn(self, ssn: str) -> Person | None:
        rows = await self._db.execute_fetchall(f"{_PERSON} WHERE ssn = ?", (ssn,))
        return _person(rows[0]) if rows else None

    async def person_by_personal_id(self, personal_id: str) -> Person | None:
        rows = await self._db.execute_fetchall(f"{_PERSON} WHERE personal_id = ?", (personal_id,))
        return _person(rows[0]) if rows else None

    async def periods(self, ssn: str) -> list[Period]:
        rows = await self._db.execute_fetchall(
            "SELECT ssn, scheme, employer, from_month, to_month FROM periods WHERE ssn = ?"
            " ORDER BY scheme, from_month, to_month, employer",
            (ssn,),
        )
        return [Period(s, scheme, employer, Month.from_index(start), Month.from_index(end))
                for s, scheme, employer, start, end in rows]

    async def card(self, card_no: str) -> Card | None:
        rows = await self._db.execute_fetchall(f"{_CARD} WHERE card_no = ?", (card_no.upper(),))
        return _card(rows[0]) if rows else None

    async def latest_card(self, ssn: str) -> Card | None:
        rows = await self._db.execute_fetchall(
            f"{_CARD} WHERE ssn = ? ORDER BY valid_to DESC, valid_from DESC, card_no DESC LIMIT 1", (ssn,)
        )
        return _card(rows[0]) if rows else None

    async def dossier(self, code: str) -> Dossier | None:
        rows = await self._db.execute_fetchall(
            "SELECT dossier_code, ssn, status, updated_at FROM dossiers WHERE dossier_code = ?", (code.upper(),)
        )
        if not rows:
            return None
        code, ssn, status, updated_at = rows[0]
        return Dossier(code, ssn, status, date.fromisoformat(updated_at))

    # -- one round trip per command (RecordStore's compositions, as joins) -------------------

    async def person_with_periods(self, id: str, *, personal_id: bool = False) -> tuple[Person, list[Period]] | None:
        key = "personal_id" if personal_id else "ssn"
        rows = await self._db.execute_fetchall(
            f"SELECT {_PERSON_COLUMNS}, r.scheme, r.employer, r.from_month, r.to_month FROM persons"
            f" LEFT JOIN periods AS r ON r.ssn = persons.ssn WHERE persons.{key} = ?", (id,))
        if not rows:
            return None
        person = _person(rows[0][:5])
        periods = [Period(person.ssn, scheme, employer, Month.from_index(start), Month.from_index(end))
                   for *_, scheme, employer, start, end in rows if scheme is not None]
        return person, periods

    async def person_with_latest_card(self, id: str, *, personal_id: bool = False) -> tuple[Person, Card | None] | None:
        key = "personal_id" if personal_id else "ssn"
        rows = await self._db.execute_fetchall(
            f"SELECT {_PERSON_COLUMNS}, c.card_no, c.ssn, c.valid_from, c.valid_to, c.hospital FROM persons"
            " LEFT JOIN cards AS c ON c.card_no = (SELECT card_no FROM cards WHERE ssn = persons.ssn"
            f" ORDER BY valid_to DESC, valid_from DESC, card_no DESC LIMIT 1) WHERE persons.{key} = ?", (id,))
        if not rows:
            return None
        row = rows[0]
        return _person(row[:5]), (_card(row[5:]) if row[5] is not None else None)

    async def card_with_holder(self, card_no: str) -> tuple[Card, Person | None] | None:
        rows = await self._db.execute_fetchall(
            f"SELECT c.card_no, c.ssn, c.valid_from, c.valid_to, c.hospital, {_PERSON_COLUMNS} FROM cards AS c"
            " LEFT JOIN persons ON persons.ssn = c.ssn WHERE c.card_no = ?", (card_no.upper(),))
        if not rows:
            return None
        row = rows[0]
        return _card(row[:5]), (_person(row[5:]) if row[5] is not None else None)

    # -- selections for notices -------------------------------------------------------------

    async def cards_expiring_on(self, day: date) -> list[tuple[Card, Person]]:
        """Every card whose last valid day is `day`, with its holder, by card number."""
        rows = await self._db.execute_fetchall(
            "SELECT c.card_no, c.ssn, c.valid_from, c.valid_to, c.hospital, p.ssn, p.personal_id, p.full_name,"
            " p.date_of_birth, p.phone FROM cards AS c JOIN persons AS p ON p.ssn = c.ssn"
            " WHERE c.valid_to = ? ORDER BY c.card_no", (day.isoformat(),)
        )
        return [(_card(row[:5]), _person(row[5:])) for row in rows]

    async def paid_up_until_between(self, first: date, last: date) -> list[tuple[Person, date]]:
        """Every person whose paid-up date is within [first, last], with that date, by ssn."""
        rows = await self._db.execute_fetchall(
            f"SELECT {_PERSON_COLUMNS}, u.paid_until FROM paid_up AS u JOIN persons ON persons.ssn = u.ssn"
            " WHERE u.paid_until BETWEEN ? AND ? ORDER BY persons.ssn", (first.isoformat(), last.isoformat())
        )
        return [(_person(row[:5]), date.fromisoformat(row[5])) for row in rows]

    # -- checks used by the importer --------------------------------------------------------

    async def existing_ssns(self, ssns: Iterable[str]) -> set[str]:
        """The subset of `ssns` that are persons in the store."""
        found: set[str] = set()
        for chunk in _chunks(list(ssns)):
            rows = await self._db.execute_fetchall(
                f"SELECT ssn FROM persons WHERE ssn IN {_JSON_LIST}", (json.dumps(chunk),)
            )
            found.update(ssn for (ssn,) in rows)
        return found

    async def personal_id_owners(self, personal_ids: Iterable[str]) -> dict[str, str]:
        """For each of `personal_ids` held by a person in the store, that person's ssn."""
        owners: dict[str, str] = {}
        for chunk in _chunks(list(personal_ids)):
            rows = await self._db.execute_fetchall(
                f"SELECT personal_id, ssn FROM persons WHERE personal_id IN {_JSON_LIST}", (json.dumps(chunk),)
            )
            owners.update(rows)
        return owners

    # -- writes -----------------------------------------------------------------------------

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """One write transaction: committed when the block ends, rolled back if it raises."""
        await self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self._db.in_transaction:
                await self._db.execute("ROLLBACK")
            raise
        await self._db.execute("COMMIT")

    @asynccontextmanager
    async def bulk_load(self) -> AsyncIterator[None]:
        """Load an empty store fast: one transaction, indexes built once at the end.

        Refuses a store that already holds records (seed into a new file instead).
        """
        if not await self.is_empty():
            raise StoreError(f"records database {self.path} already holds records: seed into a new file")
        await self._db.execute("PRAGMA synchronous = OFF")
        await self._db.execute("PRAGMA cache_size = -200000")
        await self._db.execute("PRAGMA temp_store = MEMORY")
        try:
            async with self.transaction():
                for index in RECORD_INDEXES:
                    await self._db.execute(f"DROP INDEX IF EXISTS {index}")
                self._bulk = True
                try:
                    yield
                finally:
                    self._bulk = False
                for statement in RECORD_INDEXES.values():
                    await self._db.execute(statement)
        except sqlite3.IntegrityError as error:
            raise StoreError(f"bulk load into {self.path} broke a constraint: {error}") from error
        finally:
            for statement in RECORD_INDEXES.values():
                await self._db.execute(statement)
            await self._db.execute("PRAGMA synchronous = NORMAL")
            await self._db.execute("PRAGMA cache_size = -2000")
        await self._db.execute("PRAGMA optimize")

    async def write(
        self,
        *,
        persons: Sequence[PersonRow] = (),
        periods: Sequence[PeriodRow] = (),
        cards: Sequence[CardRow] = (),
        dossiers: Sequence[DossierRow] = (),
        paid_up: Sequence[PaidUpRow] = (),
    ) -> None:
        """Merge rows (a row whose key exists replaces it); call inside `transaction` or `bulk_load`."""
        statements = _APPEND if self._bulk else _MERGE
        for table, rows in (("persons", persons), ("periods", periods), ("cards", cards), ("dossiers", dossiers),
                            ("paid_up", paid_up)):
            if rows:
                await self._db.executemany(statements[table], rows)

    async def clear_paid_up(self, ssns: Iterable[str]) -> None:
        """Forget the paid-up dates of these persons (an import that gives them none)."""
        for chunk in _chunks(list(ssns)):
            await self._db.execute(f"DELETE FROM paid_up WHERE ssn IN {_JSON_LIST}", (json.dumps(chunk),))

    async def clear_personal_ids(self, ssns: Iterable[str]) -> None:
        """Forget the personal ids of these persons (before an import hands them to others)."""
        for chunk in _chunks(list(ssns)):
            await self._db.execute(
                f"UPDATE persons SET personal_id = NULL WHERE ssn IN {_JSON_LIST}", (json.dumps(chunk),)
            )

    async def is_empty(self) -> bool:
        """True when no table of records holds a row."""
        rows = await self._db.execute_fetchall(
            "SELECT EXISTS (SELECT 1 FROM persons) OR EXISTS (SELECT 1 FROM periods)"
            " OR EXISTS (SELECT 1 FROM cards) OR EXISTS (SELECT 1 FROM dossiers) OR EXISTS (SELECT 1 FROM paid_up)"
        )
        return not rows[0][0]


def _person(row: sqlite3.Row | tuple) -> Person:
    ssn, personal_id, full_name, date_of_birth, phone = row
    return Person(ssn, personal_id, full_name, date.fromisoformat(date_of_birth), phone)


def _card(row: sqlite3.Row | tuple) -> Card:
    card_no, ssn, valid_from, valid_to, hospital = row
    return Card(card_no, ssn, date.fromisoformat(valid_from), date.fromisoformat(valid_to), hospital)


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]
