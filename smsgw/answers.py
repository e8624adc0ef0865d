"""What the dispatcher decided: facts and the billing outcome, before any wording.

`replies.render(answer, unicode=...)` turns an Answer into the SMS text; the dispatcher never
writes text and the replies module never looks anything up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from .billing import MessageType
from .commands import Month


@dataclass(frozen=True)
class HelpAnswer:
    message_type = MessageType.FREE


@dataclass(frozen=True)
class SyntaxAnswer:
    """A message that could not be understood; `error` is a CONTRACT §1 error code."""

    error: str
    command: str | None  # QT, HS, THE, HELP when the command was recognised, else None
    correction: str | None = None  # the whole corrected message (CONTRACT §1b), if one is likely
    detail: str | None = None      # language.DIGIT_GROUPS: a number whose groups read two ways
    message_type = MessageType.REFUND_SYNTAX


@dataclass(frozen=True)
class NotFoundAnswer:
    command: str          # QT, HS or THE
    id: str               # the identifier asked about, upper-case
    message_type = MessageType.REFUND_CONTENT


@dataclass(frozen=True)
class NotOwnerAnswer:
    """Nothing for this phone under `owner_only`: the record is unknown, has no phone on file, or
    is registered to another phone. The three are one answer on purpose (no existence oracle)."""

    command: str          # QT, THE, or HS when HS is owner_only
    message_type = MessageType.REFUND_CONTENT


@dataclass(frozen=True)
class Totals:
    bhxh_months: int
    bhtn_months: int


@dataclass(frozen=True)
class QTAnswer:
    ssn: str
    start: Month | None   # the asked period (start None and end set: up to end), or both None
    end: Month | None
    asked: Totals         # within the asked period (the whole history when none was asked)
    whole: Totals | None  # whole-history totals, present only when a period was asked
    until_now: bool = False  # end is the current month because the citizen asked up to now
    message_type = MessageType.CHARGED


@dataclass(frozen=True)
class CardAnswer:
    card_no: str
    valid_to: date
    expired: bool
    message_type = MessageType.CHARGED


@dataclass(frozen=True)
class DossierAnswer:
    code: str
    status: str           # one of records.DOSSIER_STATUSES
    updated_at: date
    message_type = MessageType.CHARGED


@dataclass(frozen=True)
class RoutedAnswer:
    """The reply of another service sharing the short code (a `[routes]` keyword)."""

    keyword: str
    text: str
    message_type: MessageType


@dataclass(frozen=True)
class BusyAnswer:
    """A routed service that did not answer in time, or failed: a polite reply, refunded."""

    keyword: str
    message_type = MessageType.REFUND_CONTENT


@dataclass(frozen=True)
class RateLimitedAnswer:
    """The one polite reply to a phone over `limit` answers within an hour (protection.py): refunded."""

    limit: int
    message_type = MessageType.REFUND_CONTENT


@dataclass(frozen=True)
class QuestionAnswer:
    """The acknowledgment of a question (BH HOI): its number, and when to expect an answer."""

    number: str                  # "Q" and digits
    expected: datetime | None    # the next working morning; None: asked within working hours
    hours: str                   # the working hours, "08:00-17:00"
    auto_answered: bool = False  # an FAQ answer follows at once
    message_type = MessageType.CHARGED


@dataclass(frozen=True)
class QuestionReply:
    """The answer to a question, from the FAQ or from staff: a free push; `invite` asks for a rating when it fits."""

    number: str
    text: str
    invite: bool = False
    message_type = MessageType.PUSH


@dataclass(frozen=True)
class RatingAnswer:
    rating: int
    message_type = MessageType.FREE


@dataclass(frozen=True)
class OptOutAnswer:
    stopped: bool                # True: BH TC; False: BH DK (notices resume)
    message_type = MessageType.FREE


Answer = (
    HelpAnswer | SyntaxAnswer | NotFoundAnswer | NotOwnerAnswer | QTAnswer | CardAnswer | DossierAnswer
    | RoutedAnswer | BusyAnswer | RateLimitedAnswer | QuestionAnswer | QuestionReply | RatingAnswer | OptOutAnswer
)
