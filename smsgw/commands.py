"""Typed values produced by the message language: one frozen dataclass per command."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class IdKind(str, Enum):
    SSN = "ssn"                  # ma so BHXH, 10 digits
    PERSONAL_ID = "personal_id"  # CCCD, 12 digits
    CARD = "card"                # BHYT card code, 15 characters
    DOSSIER = "dossier"          # NNNNN.L/YYYY/NNNNN


@dataclass(frozen=True, order=True)
class Month:
    """A calendar month; `index` counts months since year 0 so that ranges are integer ranges."""

    year: int
    month: int

    @property
    def index(self) -> int:
        return self.year * 12 + (self.month - 1)

    @classmethod
    def from_index(cls, index: int) -> "Month":
        return cls(index // 12, index % 12 + 1)

    @classmethod
    def parse(cls, text: str) -> "Month":
        """Parse `YYYY-MM` (the storage and CSV form)."""
        if len(text) != 7 or text[4] != "-" or not (text[:4] + text[5:]).isdigit() or not text.isascii():
            raise ValueError(f"not a YYYY-MM month: {text!r}")
        month = cls(int(text[:4]), int(text[5:]))
        if not 1 <= month.month <= 12:
            raise ValueError(f"month outside 01-12: {text!r}")
        return month

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


@dataclass(frozen=True)
class Help:
    name = "HELP"


@dataclass(frozen=True)
class QT:
    """Participation time of a person, optionally within [start, end] (inclusive months).

    Both None: the whole history. `start` None with `end` set: the whole history up to `end`
    (`den 2016`). `until_now`: `end` is the current month because the citizen asked up to now
    (`tu 2016`, `2016 den nay`), which the reply says so.
    """

    person: str
    id_kind: IdKind
    start: Month | None = None
    end: Month | None = None
    until_now: bool = False
    name = "QT"


@dataclass(frozen=True)
class HS:
    dossier: str
    name = "HS"

    @property
    def id_kind(self) -> IdKind:
        return IdKind.DOSSIER


@dataclass(frozen=True)
class THE:
    """Health-card validity, asked by card code or by person (ssn / personal id)."""

    id: str
    id_kind: IdKind
    name = "THE"


@dataclass(frozen=True)
class HOI:
    """A question for the agency's staff (CONTRACT §7), kept as typed, diacritics included."""

    question: str
    name = "HOI"


@dataclass(frozen=True)
class DG:
    """A satisfaction rating, 1 to 5 (5 best), with an optional comment kept as typed."""

    rating: int
    comment: str | None = None
    name = "DG"


@dataclass(frozen=True)
class TC:
    """Stop every notice to this phone but one-time codes."""

    name = "TC"


@dataclass(frozen=True)
class DK:
    """Resume the notices to this phone."""

    name = "DK"


Conversation = HOI | DG | TC | DK
Command = Help | QT | HS | THE | HOI | DG | TC | DK

LOOKUPS = (QT.name, HS.name, THE.name)
"""The commands that look a record up: the ones `[policy] owner_only` may name."""
CONVERSATIONS = (HOI.name, DG.name, TC.name, DK.name)
"""The conversation commands of CONTRACT §7: a durable effect in the MO's own transaction."""
COMMAND_NAMES = (*LOOKUPS, Help.name, *CONVERSATIONS)
"""Every command of the language, as `ParseError.command`, the stored MO and the reports name it."""

ERROR_CODES = (
    "empty", "unknown_keyword", "unknown_command", "missing_argument",
    "bad_id", "bad_period", "range_reversed", "trailing_input",
)
"""The CONTRACT §1 codes of a message that could not be understood (`language.ParseError.error`)."""
