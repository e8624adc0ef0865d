"""Dossier status changes (CONTRACT §7): what an import changed, until its notice is queued.

Table `dossier_changes` (schema.py's step of the notices), beside the records:
    id            the change's number, in the order recorded
    dossier_code  the dossier whose status changed
    status        the status it changed to (one of records.DOSSIER_RESULTS)
    changed_at    when the import recorded it (Unix seconds)
    settled_at    when `smsgw notify dossier-results` or the gateway queued its notice, or found
                  that it had none to queue (no phone on file); NULL until then

An import records its changes in its own transaction (importer.py decides which are changes),
so a change is recorded exactly when the new status is. The notice of a change is queued in the
message store under the key (dossier_result, dossier_code, status), and only then is the change
settled: a run that stops between the two queues nothing twice (the notices key) and settles it
the next time. The two mixins below give `SqliteStore` and `PgRecordStore` these operations.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

SQLITE_TABLE = (
    "CREATE TABLE IF NOT EXISTS dossier_changes (id INTEGER PRIMARY KEY, dossier_code TEXT NOT NULL,"
    " status TEXT NOT NULL, changed_at REAL NOT NULL, settled_at REAL)",
    "CREATE INDEX IF NOT EXISTS dossier_changes_unsettled ON dossier_changes (id) WHERE settled_at IS NULL",
)
PG_TABLE = """
CREATE TABLE IF NOT EXISTS dossier_changes (
    id BIGSERIAL PRIMARY KEY, dossier_code TEXT NOT NULL, status TEXT NOT NULL,
    changed_at DOUBLE PRECISION NOT NULL, settled_at DOUBLE PRECISION);
CREATE INDEX IF NOT EXISTS dossier_changes_unsettled ON dossier_changes (id) WHERE settled_at IS NULL;
"""

# The changes not settled, with the dossier's holder as the records have them now.
_UNSETTLED = ("SELECT c.id, c.dossier_code, c.status, d.ssn, p.full_name, p.phone FROM dossier_changes AS c"
              " JOIN dossiers AS d ON d.dossier_code = c.dossier_code LEFT JOIN persons AS p ON p.ssn = d.ssn"
              " WHERE c.settled_at IS NULL ORDER BY c.id")
_CHUNK = 50_000


@dataclass(frozen=True)
class DossierChange:
    """A recorded change of a dossier's status, with its holder (name and phone None when unknown)."""

    id: int
    code: str
    status: str
    ssn: str
    full_name: str | None
    phone: str | None


class SqliteDossierChanges:
    """The dossier changes on the records' aiosqlite connection (`self._db`)."""

    async def dossier_statuses(self, codes: Iterable[str]) -> dict[str, str]:
        """The stored status of each of `codes` that is a dossier of the store."""
        found: dict[str, str] = {}
        codes = list(codes)
        for start in range(0, len(codes), _CHUNK):
            rows = await self._db.execute_fetchall(
                "SELECT dossier_code, status FROM dossiers WHERE dossier_code IN (SELECT value FROM json_each(?))",
                (json.dumps(codes[start:start + _CHUNK]),))
            found.update(rows)
        return found

    async def has_dossiers(self) -> bool:
        rows = await self._db.execute_fetchall("SELECT EXISTS (SELECT 1 FROM dossiers)")
        return bool(rows[0][0])

    async def record_dossier_changes(self, changes: Sequence[tuple[str, str]], *, at: float) -> None:
        """Record (dossier_code, status) changes; inside the import's `transaction`."""
        await self._db.executemany("INSERT INTO dossier_changes (dossier_code, status, changed_at) VALUES (?, ?, ?)",
                                   [(code, status, at) for code, status in changes])

    async def unsettled_dossier_changes(self) -> list[DossierChange]:
        return [DossierChange(*row) for row in await self._db.execute_fetchall(_UNSETTLED)]

    async def settle_dossier_changes(self, ids: Sequence[int], *, at: float) -> None:
        ids = list(ids)
        for start in range(0, len(ids), _CHUNK):
            await self._db.execute("UPDATE dossier_changes SET settled_at = ? WHERE id IN"
                                   " (SELECT value FROM json_each(?))", (at, json.dumps(ids[start:start + _CHUNK])))


class PgDossierChanges:
    """The dossier changes through the PostgreSQL records store's `self._fetch` (its transaction when open)."""

    async def dossier_statuses(self, codes: Iterable[str]) -> dict[str, str]:
        rows = await self._fetch("SELECT dossier_code, status FROM dossiers WHERE dossier_code = ANY($1::text[])",
                                 list(codes))
        return {code: status for code, status in rows}

    async def has_dossiers(self) -> bool:
        rows = await self._fetch("SELECT EXISTS (SELECT 1 FROM dossiers)")
        return bool(rows[0][0])

    async def record_dossier_changes(self, changes: Sequence[tuple[str, str]], *, at: float) -> None:
        if changes:
            await self._fetch("INSERT INTO dossier_changes (dossier_code, status, changed_at)"
                              " SELECT code, status, $3 FROM unnest($1::text[], $2::text[]) AS c(code, status)",
                              [code for code, _ in changes], [status for _, status in changes], at)

    async def unsettled_dossier_changes(self) -> list[DossierChange]:
        return [DossierChange(*row) for row in await self._fetch(_UNSETTLED)]

    async def settle_dossier_changes(self, ids: Sequence[int], *, at: float) -> None:
        await self._fetch("UPDATE dossier_changes SET settled_at = $1 WHERE id = ANY($2::bigint[])", at, list(ids))
