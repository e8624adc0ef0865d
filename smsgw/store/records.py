"""Insurance records as the dispatcher sees them, and the store interface that serves them.

The dispatcher depends only on `RecordStore`; the embedded SQLite store (sqlite_records.py) implements it, and a
PostgreSQL store can implement it later without touching the dispatcher.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import date

from ..commands import Month

SCHEMES = ("BHXH", "BHTN")
DOSSIER_STATUSES = ("received", "processing", "needs_more", "approved", "rejected", "returned")
DOSSIER_RESULTS = ("needs_more", "approved", "rejected", "returned")
"""The statuses a dossier's holder is told of when an import changes the dossier to one (CONTRACT §7)."""


@dataclass(frozen=True)
class Person:
    ssn: str                 # 10 digits
    personal_id: str | None  # 12 digits or None
    full_name: str
    date_of_birth: date
    phone: str | None        # normalised E.164 digits (84912345678), or None


@dataclass(frozen=True)
class Period:
    ssn: str
    scheme: str              # BHXH or BHTN
    employer: str
    start: Month
    end: Month               # inclusive


@dataclass(frozen=True)
class Card:
    card_no: str
    ssn: str
    valid_from: date
    valid_to: date           # last valid day
    hospital: str


@dataclass(frozen=True)
class Dossier:
    code: str
    ssn: str
    status: str              # one of DOSSIER_STATUSES
    updated_at: date


class RecordStore(abc.ABC):
    """Read access to insurance records; every method is a point lookup on an index."""

    @abc.abstractmethod
    async def person_by_ssn(self, ssn: str) -> Person | None: ...

    @abc.abstractmethod
    async def person_by_personal_id(self, personal_id: str) -> Person | None: ...

    @abc.abstractmethod
    async def periods(self, ssn: str) -> list[Period]: ...

    @abc.abstractmethod
    async def card(self, card_no: str) -> Card | None: ...

    @abc.abstractmethod
    async def latest_card(self, ssn: str) -> Card | None:
        """The card with the latest valid_to, then latest valid_from, then highest card_no."""

    @abc.abstractmethod
    async def dossier(self, code: str) -> Dossier | None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    # Each command needs a person and what hangs off it. These compose the lookups above; a
    # store overrides them to answer in one round trip (the SQLite store does, with a join).

    async def person_with_periods(self, id: str, *, personal_id: bool = False) -> tuple[Person, list[Period]] | None:
        """The person (by ssn, or by personal id) and all of their periods."""
        person = await (self.person_by_personal_id(id) if personal_id else self.person_by_ssn(id))
        return None if person is None else (person, await self.periods(person.ssn))

    async def person_with_latest_card(self, id: str, *, personal_id: bool = False) -> tuple[Person, Card | None] | None:
        """The person (by ssn, or by personal id) and their latest card (see `latest_card`)."""
        person = await (self.person_by_personal_id(id) if personal_id else self.person_by_ssn(id))
        return None if person is None else (person, await self.latest_card(person.ssn))

    async def card_with_holder(self, card_no: str) -> tuple[Card, Person | None] | None:
        """The card and its holder (None when the holder is not in the store)."""
        card = await self.card(card_no)
        return None if card is None else (card, await self.person_by_ssn(card.ssn))
