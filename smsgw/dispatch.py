"""Command -> records lookups -> Answer (facts and the billing outcome). No wording, no I/O but
the record store's lookups.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from .answers import (
    Answer, CardAnswer, DossierAnswer, HelpAnswer, NotFoundAnswer, NotOwnerAnswer, QTAnswer,
    SyntaxAnswer, Totals,
)
from .commands import HS, QT, THE, Command, Help, IdKind, Month
from .language import ParseError
from .store import Card, Period, Person, RecordStore


def covered_months(spans: Iterable[tuple[int, int]], start: int | None = None, end: int | None = None) -> int:
    """Distinct months covered by inclusive (first, last) month-index spans, within [start, end].

    Overlapping spans (concurrent jobs) count once.
    """
    clipped = []
    for first, last in spans:
        if start is not None:
            first = max(first, start)
        if end is not None:
            last = min(last, end)
        if first <= last:
            clipped.append((first, last))
    clipped.sort()
    total = 0
    run_first = run_last = None
    for first, last in clipped:
        if run_last is not None and first <= run_last + 1:
            run_last = max(run_last, last)
            continue
        if run_last is not None:
            total += run_last - run_first + 1
        run_first, run_last = first, last
    if run_last is not None:
        total += run_last - run_first + 1
    return total


def participation(periods: list[Period], start: Month | None, end: Month | None) -> Totals:
    """BHXH and BHTN months within [start, end] (the whole history when both are None)."""
    lo = start.index if start else None
    hi = end.index if end else None

    def months(scheme: str) -> int:
        return covered_months(((p.start.index, p.end.index) for p in periods if p.scheme == scheme), lo, hi)

    return Totals(bhxh_months=months("BHXH"), bhtn_months=months("BHTN"))


class Dispatcher:
    """Answers commands from a RecordStore under the `owner_only` policy."""

    def __init__(self, records: RecordStore, owner_only: frozenset[str]):
        self.records = records
        self.owner_only = owner_only

    async def answer(self, command: Command | ParseError, sender: str, today: date) -> Answer:
        if isinstance(command, ParseError):
            return SyntaxAnswer(command.error, command.command, command.correction, command.detail)
        if isinstance(command, Help):
            return HelpAnswer()
        if isinstance(command, QT):
            return await self._qt(command, sender)
        if isinstance(command, THE):
            return await self._the(command, sender, today)
        if isinstance(command, HS):
            return await self._hs(command, sender)
        raise TypeError(f"not a command: {command!r}")

    def _not_found(self, name: str, ident: str) -> Answer:
        """No record: under `owner_only` worded and billed exactly as another person's record, so
        that a stranger cannot probe which numbers exist; elsewhere `khong tim thay`."""
        return NotOwnerAnswer(name) if name in self.owner_only else NotFoundAnswer(name, ident)

    def _denied(self, name: str, person: Person | None, sender: str) -> bool:
        return name in self.owner_only and (person is None or person.phone is None or person.phone != sender)

    async def _qt(self, command: QT, sender: str) -> Answer:
        found = await self.records.person_with_periods(
            command.person, personal_id=command.id_kind is IdKind.PERSONAL_ID)
        if found is None:
            return self._not_found("QT", command.person)
        person, periods = found
        if self._denied("QT", person, sender):
            return NotOwnerAnswer("QT")
        if command.start is None and command.end is None:
            return QTAnswer(person.ssn, None, None, participation(periods, None, None), None)
        asked = participation(periods, command.start, command.end)
        whole = participation(periods, None, None)
        return QTAnswer(person.ssn, command.start, command.end, asked, whole, command.until_now)

    async def _the(self, command: THE, sender: str, today: date) -> Answer:
        card: Card | None
        if command.id_kind is IdKind.CARD:   # the card asked for, and its holder
            found = await self.records.card_with_holder(command.id)
            card, person = found if found is not None else (None, None)
        else:                                # the person asked for, and their latest card if any
            found = await self.records.person_with_latest_card(
                command.id, personal_id=command.id_kind is IdKind.PERSONAL_ID)
            person, card = found if found is not None else (None, None)
        if found is None:
            return self._not_found("THE", command.id)
        if self._denied("THE", person, sender):
            return NotOwnerAnswer("THE")
        if card is None:                     # a person without a card
            return NotFoundAnswer("THE", command.id)
        return CardAnswer(card.card_no, card.valid_to, expired=card.valid_to < today)

    async def _hs(self, command: HS, sender: str) -> Answer:
        dossier = await self.records.dossier(command.dossier)
        if dossier is None:
            return self._not_found("HS", command.dossier)
        if "HS" in self.owner_only and self._denied("HS", await self.records.person_by_ssn(dossier.ssn), sender):
            return NotOwnerAnswer("HS")
        return DossierAnswer(dossier.code, dossier.status, dossier.updated_at)
