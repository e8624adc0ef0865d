"""The records store on PostgreSQL: `RecordStore`'s lookups and the bulk load of seed and import.

Same tables as the SQLite store (made by schema.py), with dates as DATE. Each command's lookup is
one round trip (the joins of sqlite_records.py). Rows come from the seeder and the importer as
the same tuples (sqlite_records.py's `PersonRow` ...), dates as ISO text; they are loaded with
COPY (asyncpg's `copy_records_to_table`): straight into the tables for a seed of an empty store,
through a temporary table merged with INSERT ... ON CONFLICT for an import, all inside one
transaction: an import is all or nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import date

import asyncpg

from ..commands import Month
from .dossier_changes import PgDossierChanges
from .errors import StoreError
from .pg_batches import Batches
from .pg_pool import connection, create_pool
from .records import Card, Dossier, Period, Person, RecordStore
from .schema import shown
from .sqlite_records import CardRow, DossierRow, PaidUpRow, PeriodRow, PersonRow

_COLUMNS = {
    "persons": ("ssn", "personal_id", "full_name", "date_of_birth", "phone"),
    "periods": ("ssn", "scheme", "employer", "from_month", "to_month"),
    "cards": ("card_no", "ssn", "valid_from", "valid_to", "hospital"),
    "dossiers": ("dossier_code", "ssn", "status", "updated_at"),
    "paid_up": ("ssn", "paid_until"),
}
_DATE_COLUMNS = {"persons": (3,), "cards": (2, 3), "dossiers": (3,), "paid_up": (1,)}
_CONFLICT = {"persons": "(ssn)", "periods": "", "cards": "(card_no)", "dossiers": "(dossier_code)",
             "paid_up": "(ssn)"}

# Lookups under way at once (each for the MOs that arrived meanwhile, see `_lookup`).
LOOKING_UP = 2

_PERSON_COLUMNS = "persons.ssn, persons.personal_id, persons.full_name, persons.date_of_birth, persons.phone"
_PERSON = f"SELECT {_PERSON_COLUMNS} FROM persons"
_CARD = "SELECT card_no, ssn, valid_from, valid_to, hospital FROM cards"


class PgRecordStore(PgDossierChanges, RecordStore):
    """Records in a PostgreSQL database; open with `await PgRecordStore.open(url)`."""

    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        self._pool = pool
        self.path = shown(url)
        self._tx: asyncpg.Connection | None = None   # the connection of `transaction`, while one is open
        self._lookups: dict[str, Batches[str, list[tuple]]] = {}   # per query (see `_lookup`)
        self._bulk = False

    @classmethod
    async def open(cls, url: str) -> PgRecordStore:
        # its tables are loaded before serving (db seed, db import) and do not grow while it serves:
        # a plan cached once fits them, and the lookups of concurrent MOs are not planned each time
        return cls(await create_pool(url, generic_plans=True), url)

    async def close(self) -> None:
        await self._pool.close()

    async def __aenter__(self) -> PgRecordStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        if self._tx is not None:
            return await self._tx.fetch(query, *args)
        async with connection(self._pool) as conn:
            return await conn.fetch(query, *args)

    async def _lookup(self, query: str, key: str) -> list[tuple]:
        """The rows of `query` for `key` (its only parameter, $1): the lookups of the MOs answered
        at the same moment go in one statement (group lookup, pg_batches.py), one round trip for
        all. Inside `transaction` (an import), on its connection."""
        if self._tx is not None:
            return [tuple(row) for row in await self._tx.fetch(query, key)]
        batches = self._lookups.get(query)
        if batches is None:
            together = _for_each_key(query)

            async def run(keys: list[str]) -> list[list[tuple]]:
                found: list[list[tuple]] = [[] for _ in keys]
                async with connection(self._pool) as conn:
                    for row in await conn.fetch(together, keys):
                        found[row[0] - 1].append(tuple(row)[1:-1])
                return found

            batches = self._lookups[query] = Batches(run, "smsgw-records-lookup", parallel=LOOKING_UP)
        return await batches.add(key)

    # -- lookups (RecordStore) -------------------------------------------------------------

    async def person_by_ssn(self, ssn: str) -> Person | None:
        rows = await self._lookup(f"{_PERSON} WHERE ssn = $1", ssn)
        return _person(rows[0]) if rows else None

    async def person_by_personal_id(self, personal_id: str) -> Person | None:
        rows = await self._lookup(f"{_PERSON} WHERE personal_id = $1", personal_id)
        return _person(rows[0]) if rows else None

    async def periods(self, ssn: str) -> list[Period]:
        rows = await self._lookup("SELECT ssn, scheme, employer, from_month, to_month FROM periods WHERE ssn = $1"
                                 " ORDER BY scheme, from_month, to_month, employer", ssn)
        return [Period(s, scheme, employer, Month.from_index(start), Month.from_index(end))
                for s, scheme, employer, start, end in rows]

    async def card(self, card_no: str) -> Card | None:
        rows = await self._lookup(f"{_CARD} WHERE card_no = $1", card_no.upper())
        return _card(rows[0]) if rows else None

    async def latest_card(self, ssn: str) -> Card | None:
        rows = await self._lookup(f"{_CARD} WHERE ssn = $1 ORDER BY valid_to DESC, valid_from DESC, card_no DESC"
                                 " LIMIT 1", ssn)
        return _card(rows[0]) if rows else None

    async def dossier(self, code: str) -> Dossier | None:
        rows = await self._lookup("SELECT dossier_code, ssn, status, updated_at FROM dossiers WHERE dossier_code = $1",
                                 code.upper())
        return Dossier(*rows[0]) if rows else None

    # -- one round trip per command --------------------------------------------------------

    async def person_with_periods(self, id: str, *, personal_id: bool = False) -> tuple[Person, list[Period]] | None:
        key = "personal_id" if personal_id else "ssn"
        rows = await self._lookup(
            f"SELECT {_PERSON_COLUMNS}, r.scheme, r.employer, r.from_month, r.to_month FROM persons"
            f" LEFT JOIN periods AS r ON r.ssn = persons.ssn WHERE persons.{key} = $1", id)
        if not rows:
            return None
        person = _person(rows[0][:5])
        periods = [Period(person.ssn, row[5], row[6], Month.from_index(row[7]), Month.from_index(row[8]))
                   for row in rows if row[5] is not None]
        return person, periods

    async def person_with_latest_card(self, id: str, *, personal_id: bool = False) -> tuple[Person, Card | None] | None:
        key = "personal_id" if personal_id else "ssn"
        rows = await self._lookup(
            f"SELECT {_PERSON_COLUMNS}, c.card_no, c.ssn, c.valid_from, c.valid_to, c.hospital FROM persons"
            " LEFT JOIN LATERAL (SELECT * FROM cards WHERE cards.ssn = persons.ssn"
            " ORDER BY valid_to DESC, valid_from DESC, card_no DESC LIMIT 1) AS c ON true"
            f" WHERE persons.{key} = $1", id)
        if not rows:
            return None
        row = rows[0]
        return _person(row[:5]), (_card(row[5:]) if row[5] is not None else None)

    async def card_with_holder(self, card_no: str) -> tuple[Card, Person | None] | None:
        rows = await self._lookup(
            f"SELECT c.card_no, c.ssn, c.valid_from, c.valid_to, c.hospital, {_PERSON_COLUMNS} FROM cards AS c"
            " LEFT JOIN persons ON persons.ssn = c.ssn WHERE c.card_no = $1", card_no.upper())
        if not rows:
            return None
        row = rows[0]
        return _card(row[:5]), (_person(row[5:]) if row[5] is not None else None)

    # -- selections for notices -------------------------------------------------------------

    async def cards_expiring_on(self, day: date) -> list[tuple[Card, Person]]:
        rows = await self._fetch(
            f"SELECT c.card_no, c.ssn, c.valid_from, c.valid_to, c.hospital, {_PERSON_COLUMNS} FROM cards AS c"
            " JOIN persons ON persons.ssn = c.ssn WHERE c.valid_to = $1 ORDER BY c.card_no", day)
        return [(_card(row[:5]), _person(row[5:])) for row in rows]

    async def paid_up_until_between(self, first: date, last: date) -> list[tuple[Person, date]]:
        rows = await self._fetch(
            f"SELECT {_PERSON_COLUMNS}, u.paid_until FROM paid_up AS u JOIN persons ON persons.ssn = u.ssn"
            " WHERE u.paid_until BETWEEN $1 AND $2 ORDER BY persons.ssn", first, last)
        return [(_person(row[:5]), row[5]) for row in rows]

    # -- checks used by the importer --------------------------------------------------------

    async def existing_ssns(self, ssns: Iterable[str]) -> set[str]:
        rows = await self._fetch("SELECT ssn FROM persons WHERE ssn = ANY($1::text[])", list(ssns))
        return {row[0] for row in rows}

    async def personal_id_owners(self, personal_ids: Iterable[str]) -> dict[str, str]:
        rows = await self._fetch("SELECT personal_id, ssn FROM persons WHERE personal_id = ANY($1::text[])",
                                 list(personal_ids))
        return {row[0]: row[1] for row in rows}

    # -- writes -----------------------------------------------------------------------------

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """One write transaction on one connection: committed when the block ends, rolled back if it raises."""
        async with connection(self._pool) as conn:
            async with conn.transaction():
                self._tx = conn
                try:
                    yield
                finally:
                    self._tx = None

    @asynccontextmanager
    async def bulk_load(self) -> AsyncIterator[None]:
        """Load an empty store in one transaction with COPY; refuses a store that already holds records."""
        if not await self.is_empty():
            raise StoreError(f"records database {self.path} already holds records: seed into a new database")
        try:
            async with self.transaction():
                self._bulk = True
                try:
                    yield
                finally:
                    self._bulk = False
        except asyncpg.IntegrityConstraintViolationError as error:
            raise StoreError(f"bulk load into {self.path} broke a constraint: {error}") from error

    async def write(self, *, persons: Sequence[PersonRow] = (), periods: Sequence[PeriodRow] = (),
                    cards: Sequence[CardRow] = (), dossiers: Sequence[DossierRow] = (),
                    paid_up: Sequence[PaidUpRow] = ()) -> None:
        """Merge rows (a row whose key exists replaces it); call inside `transaction` or `bulk_load`."""
        if self._tx is None:
            raise RuntimeError("PgRecordStore.write outside transaction() or bulk_load()")
        for table, rows in (("persons", persons), ("periods", periods), ("cards", cards), ("dossiers", dossiers),
                            ("paid_up", paid_up)):
            if rows:
                await self._copy(table, _typed(table, rows))

    async def _copy(self, table: str, rows: list[tuple]) -> None:
        conn, columns = self._tx, _COLUMNS[table]
        if self._bulk:
            await conn.copy_records_to_table(table, records=rows, columns=columns)
            return
        staging = f"incoming_{table}"
        await conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {staging} (LIKE {table}) ON COMMIT DROP")
        await conn.execute(f"TRUNCATE {staging}")
        await conn.copy_records_to_table(staging, records=rows, columns=columns)
        key = _CONFLICT[table]
        names = ", ".join(columns)
        if key:
            updates = ", ".join(f"{c} = excluded.{c}" for c in columns if f"({c})" != key)
            action = f"{key} DO UPDATE SET {updates}"
        else:
            action = "DO NOTHING"
        await conn.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {staging} ON CONFLICT {action}")

    async def clear_paid_up(self, ssns: Iterable[str]) -> None:
        await self._fetch("DELETE FROM paid_up WHERE ssn = ANY($1::text[])", list(ssns))

    async def clear_personal_ids(self, ssns: Iterable[str]) -> None:
        await self._fetch("UPDATE persons SET personal_id = NULL WHERE ssn = ANY($1::text[])", list(ssns))

    async def is_empty(self) -> bool:
        rows = await self._fetch(
            "SELECT EXISTS (SELECT 1 FROM persons) OR EXISTS (SELECT 1 FROM periods)"
            " OR EXISTS (SELECT 1 FROM cards) OR EXISTS (SELECT 1 FROM dossiers) OR EXISTS (SELECT 1 FROM paid_up)")
        return not rows[0][0]


def _for_each_key(query: str) -> str:
    """`query` (one parameter, $1) run for each key of the array $1, its rows in order: (the key's
    position from 1, the query's columns, their order)."""
    inner = query.replace("$1", "k.key")
    return ("SELECT k.n, q.* FROM unnest($1::text[]) WITH ORDINALITY AS k(key, n) CROSS JOIN LATERAL"
            f" (SELECT s.*, row_number() OVER () AS r FROM ({inner}) AS s) AS q ORDER BY k.n, q.r")


def _typed(table: str, rows: Sequence[tuple]) -> list[tuple]:
    """The rows with their ISO dates as `date` (what COPY's binary format takes)."""
    positions = _DATE_COLUMNS.get(table, ())
    if not positions:
        return list(rows)
    return [tuple(date.fromisoformat(v) if i in positions else v for i, v in enumerate(row)) for row in rows]


def _person(row: Sequence) -> Person:
    return Person(row[0], row[1], row[2], row[3], row[4])


def _card(row: Sequence) -> Card:
    return Card(row[0], row[1], row[2], row[3], row[4])
