"""Insurance records as the dispatcher sees them, and the store interface that serves them.

The dispatcher depends only on `RecordStore`; the embedded SQLite store implements it, and a
PostgreSQL store can implement it later without touching the dispatcher.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import date

from .commands import Month

SCHEMES = ("BHXH", "BHTN")
DOSSIER_STATUSES = ("received", "processing", "needs_more", "approved", "rejected", "returned")


@dataclass(frozen=True)
class Person:
    ssn: str                 # 10 digits
    personal_id: str | None  # 12 digits or None
    full_name: str
    date_of_birth: date
    phone: str | None        # normalised 84XXXXXXXXX, or None


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
