"""`smsgw db import`: load the CSV files of CONTRACT section 3 into the records store.

All or nothing: every file is read and checked first, then everything is written in one
transaction. The first bad row stops the import with `ImportFailed`, whose text is
`file:line: reason` (lines from 1, the header being line 1). Files are checked in the order
persons, periods, cards, dossiers, and rows in file order.

Choices where the contract is silent: fields are trimmed; blank lines are skipped; names,
employers and hospitals are stored in Unicode NFC; card numbers and dossier codes are stored
upper-case, schemes upper-case, statuses lower-case (both accepted in any case); the last 10
digits of a card number must be its row's ssn; `employer` and `hospital` may be empty.

Dossier results (CONTRACT §7): a dossier this import moves to needs_more, approved, rejected or
returned is recorded as a change (store/dossier_changes.py) in the import's transaction, for
`smsgw notify dossier-results` and the gateway to tell its holder. A dossier new to the store
counts, unless the store held no dossier before (a first load tells nobody of old results); a
dossier imported again with the status it has is no change.

persons.csv may carry one more column, `paid_until` (YYYY-MM-DD or empty): the date up to which
a voluntary-insurance participant has paid (`smsgw notify payment-reminder`). Where the column
is there its value replaces the stored one (empty: none); a file without it leaves the stored
dates as they are.
Reasons do not repeat personal data (ssn, personal id, name, birth date, phone): the line
number locates it.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

from . import phones
from .commands import Month
from .csvfile import BadRow, CsvFile, ImportFailed, read_rows, text
from .store import (DOSSIER_RESULTS, DOSSIER_STATUSES, SCHEMES, CardRow, DossierRow, PaidUpRow, PeriodRow,
                    PersonRow, SqliteStore, open_records)

_SSN = re.compile(r"[0-9]{10}")
_PERSONAL_ID = re.compile(r"[0-9]{12}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CARD = re.compile(r"[A-Z]{2}[1-5][0-9]{2}[0-9]{10}")
_DOSSIER = re.compile(r"[0-9]{5}\.[A-Z]/[0-9]{4}/[0-9]{5}")


@dataclass(frozen=True)
class ImportSummary:
    """How many rows each file brought (0 for an absent optional file)."""

    persons: int = 0
    periods: int = 0
    cards: int = 0
    dossiers: int = 0
    results: int = 0      # dossiers moved to a result status: each holder is notified

    def __str__(self) -> str:
        loaded = f"{self.persons} persons, {self.periods} periods, {self.cards} cards, {self.dossiers} dossiers"
        return loaded + (f"; {self.results} dossier results to notify" if self.results else "")


@dataclass
class Records:
    """The checked rows of one import, in store row form."""

    persons: list[PersonRow] = field(default_factory=list)
    periods: list[PeriodRow] = field(default_factory=list)
    cards: list[CardRow] = field(default_factory=list)
    dossiers: list[DossierRow] = field(default_factory=list)
    paid_up: list[PaidUpRow] = field(default_factory=list)
    # Persons of the store whose personal id this import gives to someone else.
    released_personal_ids: set[str] = field(default_factory=set)
    # Persons whose paid_until field is empty: their stored paid-up date goes.
    paid_up_cleared: set[str] = field(default_factory=set)

    def summary(self) -> ImportSummary:
        return ImportSummary(len(self.persons), len(self.periods), len(self.cards), len(self.dossiers))


async def import_directory(directory: str | os.PathLike[str], db_path: str | os.PathLike[str]) -> ImportSummary:
    """Merge the CSV files of `directory` into the records database at `db_path` (created if missing)."""
    existed = Path(db_path).exists()
    store = await open_records(db_path, create=True)
    loaded = False
    try:
        records = await read_directory(directory, store)
        async with store.transaction():
            results = await dossier_results(store, records.dossiers)
            await store.clear_personal_ids(records.released_personal_ids)
            await store.clear_paid_up(records.paid_up_cleared)
            await store.write(persons=records.persons, periods=records.periods,
                              cards=records.cards, dossiers=records.dossiers, paid_up=records.paid_up)
            await store.record_dossier_changes(results, at=time.time())
        loaded = True
    finally:
        await store.close()
        if not loaded and not existed:
            _remove_database(Path(db_path))
    return replace(records.summary(), results=len(results))


async def dossier_results(store: SqliteStore, dossiers: list[DossierRow]) -> list[tuple[str, str]]:
    """(dossier_code, status) of each dossier of `dossiers` whose status is a result the store does
    not have yet; read inside the import's transaction, before its rows are written."""
    results = [(code, status) for code, _, status, _ in dossiers if status in DOSSIER_RESULTS]
    if not results:
        return []
    stored = await store.dossier_statuses(code for code, _ in results)
    if not stored and not await store.has_dossiers():   # a first load: old results are no news
        return []
    return [(code, status) for code, status in results if stored.get(code) != status]


async def read_directory(directory: str | os.PathLike[str], store: SqliteStore | None) -> Records:
    """Read and check every file of `directory`; persons referred to must be in it or in `store`."""
    if not os.path.isdir(directory):
        raise ImportFailed(os.fspath(directory), None, "no such directory")
    records = Records()
    persons_path = os.path.join(os.fspath(directory), PERSONS.name)
    if not os.path.isfile(persons_path):
        raise ImportFailed(persons_path, None, "missing: persons.csv is required")
    rows, lines, failure = read_rows(persons_path, PERSONS)
    await _check_personal_ids(persons_path, rows, lines, failure, store, records)
    records.persons = [row[:5] for row in rows]
    records.paid_up = [(row[0], row[5]) for row in rows if row[5]]
    records.paid_up_cleared = {row[0] for row in rows if row[5] == ""}
    imported = {row[0] for row in rows}
    for spec, ssn_column, target in ((PERIODS, 0, records.periods), (CARDS, 1, records.cards),
                                     (DOSSIERS, 1, records.dossiers)):
        path = os.path.join(os.fspath(directory), spec.name)
        if not os.path.isfile(path):
            continue
        rows, lines, failure = read_rows(path, spec)
        await _check_persons_known(path, [row[ssn_column] for row in rows], lines, failure, imported, store)
        target.extend(rows)
    return records


def _remove_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


async def _check_personal_ids(
    path: str, rows: list[PersonRow], lines: list[int], failure: ImportFailed | None,
    store: SqliteStore | None, records: Records,
) -> None:
    """A personal id may not belong to a person of the store that this import leaves as is."""
    wanted = [row[1] for row in rows if row[1] is not None]
    owners = await store.personal_id_owners(wanted) if store is not None and wanted else {}
    imported = {row[0] for row in rows}
    for row, line in zip(rows, lines):
        owner = owners.get(row[1]) if row[1] is not None else None
        if owner is None or owner == row[0]:
            continue
        if owner not in imported:
            raise ImportFailed(path, line, "personal_id already belongs to another person in the store")
        records.released_personal_ids.add(owner)
    if failure is not None:
        raise failure


async def _check_persons_known(
    path: str, ssns: list[str], lines: list[int], failure: ImportFailed | None,
    imported: set[str], store: SqliteStore | None,
) -> None:
    """Every row must refer to a person of this import or of the store."""
    others = set(ssns) - imported
    known = await store.existing_ssns(others) if store is not None and others else set()
    for ssn, line in zip(ssns, lines):
        if ssn in others and ssn not in known:
            raise ImportFailed(path, line, "unknown person: the ssn is neither in the store nor in persons.csv")
    if failure is not None:
        raise failure


# -- fields -------------------------------------------------------------------------------


def _ssn(value: str) -> str:
    if not _SSN.fullmatch(value):
        raise BadRow("bad ssn: expected 10 digits")
    return value


def _personal_id(value: str) -> str | None:
    if not value:
        return None
    if not _PERSONAL_ID.fullmatch(value):
        raise BadRow("bad personal_id: expected 12 digits, or nothing")
    return value


def _date(value: str, column: str, *, personal: bool = False) -> str:
    shown = "" if personal else f" {value!r}"
    if not _DATE.fullmatch(value):
        raise BadRow(f"bad {column}{shown}: expected YYYY-MM-DD")
    try:
        date.fromisoformat(value)
    except ValueError:
        raise BadRow(f"bad {column}{shown}: not a real date") from None
    return value


def _month(value: str, column: str) -> int:
    try:
        return Month.parse(value).index
    except ValueError as error:
        raise BadRow(f"bad {column}: {error}") from None


def _phone(value: str) -> str | None:
    if not value:
        return None
    try:
        return phones.normalize(value)
    except phones.InvalidPhone as error:
        raise BadRow(f"bad phone: {error}") from None


def _person(fields: dict[str, str]) -> tuple:
    """A PersonRow and the paid_until field: None without the column, "" when empty, else the date."""
    paid_until = fields.get("paid_until")
    return (
        _ssn(fields["ssn"]),
        _personal_id(fields["personal_id"]),
        text(fields["full_name"], "full_name", required=True),
        _date(fields["date_of_birth"], "date_of_birth", personal=True),
        _phone(fields["phone"]),
        _date(paid_until, "paid_until") if paid_until else paid_until,
    )


def _period(fields: dict[str, str]) -> PeriodRow:
    ssn = _ssn(fields["ssn"])
    scheme = fields["scheme"].upper()
    if scheme not in SCHEMES:
        raise BadRow(f"unknown scheme {fields['scheme']!r}: expected BHXH or BHTN")
    employer = text(fields["employer"], "employer", required=False)
    start = _month(fields["from_month"], "from_month")
    end = _month(fields["to_month"], "to_month")
    if start > end:
        raise BadRow(f"from_month {fields['from_month']} is after to_month {fields['to_month']}")
    return (ssn, scheme, employer, start, end)


def _card(fields: dict[str, str]) -> CardRow:
    card_no = fields["card_no"].upper()
    if not _CARD.fullmatch(card_no):
        raise BadRow("bad card_no: expected 2 letters, a benefit level 1-5, 2 province digits"
                      " and the holder's 10-digit ssn, e.g. HC4010110129425")
    ssn = _ssn(fields["ssn"])
    if card_no[-10:] != ssn:
        raise BadRow("card_no does not end with the holder's ssn")
    valid_from = _date(fields["valid_from"], "valid_from")
    valid_to = _date(fields["valid_to"], "valid_to")
    if valid_from > valid_to:
        raise BadRow(f"valid_from {valid_from} is after valid_to {valid_to}")
    return (card_no, ssn, valid_from, valid_to, text(fields["hospital"], "hospital", required=False))


def _dossier(fields: dict[str, str]) -> DossierRow:
    code = fields["dossier_code"].upper()
    if not _DOSSIER.fullmatch(code):
        raise BadRow(f"bad dossier_code {fields['dossier_code']!r}: expected NNNNN.L/YYYY/NNNNN,"
                      " e.g. 04486.G/2019/08708")
    ssn = _ssn(fields["ssn"])
    status = fields["status"].lower()
    if status not in DOSSIER_STATUSES:
        raise BadRow(f"unknown status {fields['status']!r}: expected one of {', '.join(DOSSIER_STATUSES)}")
    return (code, ssn, status, _date(fields["updated_at"], "updated_at"))


PERSONS = CsvFile("persons.csv", ("ssn", "personal_id", "full_name", "date_of_birth", "phone", "paid_until"), _person, (
    (lambda row: row[0], "duplicate ssn: already on line {line}"),
    (lambda row: row[1], "duplicate personal_id: already given to the person on line {line}"),
), optional=("paid_until",))
PERIODS = CsvFile("periods.csv", ("ssn", "scheme", "employer", "from_month", "to_month"), _period, (
    (lambda row: row, "duplicate period: the same row is already on line {line}"),
))
CARDS = CsvFile("cards.csv", ("card_no", "ssn", "valid_from", "valid_to", "hospital"), _card, (
    (lambda row: row[0], "duplicate card_no: already on line {line}"),
))
DOSSIERS = CsvFile("dossiers.csv", ("dossier_code", "ssn", "status", "updated_at"), _dossier, (
    (lambda row: row[0], "duplicate dossier_code: already on line {line}"),
))
