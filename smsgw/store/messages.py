"""The message store as the gateway sees it: the data it keeps and returns, and its interface.

`MessageStore` is what the intake, the outbox and the notices call; sqlite_messages.py
implements it on the records database file, and a PostgreSQL store can implement it beside it.
`MessageReports` is what the reports and the ledger read (sqlite_reports.py).

An MO, its MTs and their charge rows are written by one `store_mo` call, in one transaction:
an MO is either stored with its answer or not at all. `store_mo` returns the MO already stored
under the same carrier id, untouched, when there is one.

A policy decided inside that transaction (protection.py's rate limit and loop guard) comes in
as data: a `Screening`, whose `decide` is a pure function of the sender's `SenderHistory`,
which the store counts in the transaction. The store never imports the policy's module; the
policy imports these types.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from ..billing import MessageType
from ..wire import DeliveryReport, DeliveryState, InboundMessage, OutboundMessage

HOUR = 3600.0
MINUTE = 60.0
RATED_WITHIN = 24 * HOUR   # a rating is of the phone's last answered MO within this time

TEST_CARRIER = "console:simulator"
"""The carrier of the console simulator's test traffic (smsgw/console/simulator.py): it goes the
real path (intake, service, store) but under this name, which no configured carrier can have
(':' is not allowed in a carrier name), and every report, billing total and ledger export leaves
it out (`REAL_TRAFFIC`): never billed, never counted."""
REAL_TRAFFIC = f"carrier != '{TEST_CARRIER}'"
# a rating (`ratings AS r`) sent from the simulator is test traffic too
NOT_TEST_RATING = (f"NOT EXISTS (SELECT 1 FROM mo_messages AS own WHERE own.id = r.mo_id"
                   f" AND own.carrier = '{TEST_CARRIER}')")


class Guard(str, Enum):
    """Why an MO was not answered as usual (protection.py's rules); stored with the MO."""

    RATE_LIMITED = "rate_limited"   # over the hourly limit: answered with the one polite reply
    OVER_LIMIT = "over_limit"       # over it again within the hour of that reply: no reply
    LOOP = "loop"                   # the same text too often within a minute: no reply
    SHORT_CODE = "short_code"       # the sender is a short code: never answered
    ALPHANUMERIC = "alphanumeric"   # the sender is a brandname: never answered

    @property
    def silent(self) -> bool:
        return self is not Guard.RATE_LIMITED


@dataclass(frozen=True)
class SenderHistory:
    """A phone's MOs before the one being decided (that one not counted)."""

    answered: int      # answered normally within the last hour (counted up to the screening's cap)
    warned: bool       # one of them within the last hour got the polite rate-limit reply
    repeats: int       # MOs with exactly the same text within the last minute, whatever their outcome


@dataclass(frozen=True)
class Screening:
    """What `MessageStore.store_mo` needs to decide, in its transaction, how an MO is answered."""

    decide: Callable[[SenderHistory], Guard | None]   # a pure function: no I/O, called inside the transaction
    instead: OutboundMessage       # the reply sent in place of the answer when the guard is RATE_LIMITED
    cap: int                       # counts stop here: decide needs no more
    hour: float = HOUR
    minute: float = MINUTE


@dataclass(frozen=True)
class StoredMO:
    mo_id: str
    carrier: str
    carrier_id: str
    mode: str                  # "sync" or "async", as it was when the MO was first stored
    status: str                # answered | queued | sent | failed
    command: str | None
    error: str | None
    replies: tuple[OutboundMessage, ...]
    created: bool              # False: the carrier id was stored already and this is that MO
    guard: str | None = None   # the rule that withheld or replaced its reply (Guard)


def stored_statuses(mode: str, guard: Guard | None, replies: Sequence[OutboundMessage]) -> tuple[str, str]:
    """(the MO's status, its replies' status) when an MO is stored: `queued` / `pending` in async
    mode, `answered` / `sent` in sync mode (the reply went back in the response); an MO a guard
    kept from the service and left without reply is `withheld`."""
    status = "queued" if mode == "async" else "answered"
    if guard is not None and not replies:
        status = "withheld"
    return status, "pending" if mode == "async" else "sent"


# The outbox's lanes (SHARED-INTERFACES §2): on each carrier a lower lane goes first.
REPLY_LANE = 0      # replies to citizens, answers to their questions, one-time codes: never held
MESSAGE_LANE = 1    # single API messages of class notice or info
NOTICE_LANE = 2     # notices (card expiry, payment reminders, dossier results), API batches


@dataclass(frozen=True)
class Lease:
    """A shared outbox's hold on the MTs a gateway stores (PostgreSQL): for how long, and whose."""

    seconds: float
    owner: str


@dataclass(frozen=True)
class PendingMT:
    mt: OutboundMessage
    attempts: int
    created_at: float          # Unix seconds
    next_attempt_at: float
    request_id: str | None = None   # of the carrier's request that brought its MO, when this process took it
    lane: int = REPLY_LANE
    not_before: float | None = None   # held until then (quiet hours, a scheduled send); None: not held

    @property
    def due_at(self) -> float:
        """When its next attempt may start: its retry time, never before `not_before`."""
        return self.next_attempt_at if self.not_before is None else max(self.next_attempt_at, self.not_before)

    @property
    def waiting_since(self) -> float:
        """When it became due for the first time: stored, or released from its hold."""
        return self.created_at if self.not_before is None else max(self.created_at, self.not_before)


@dataclass(frozen=True)
class MTState:
    status: str                # sent | pending | failed
    attempts: int
    last_error: str | None
    delivery: DeliveryState | None


@dataclass(frozen=True)
class BillingRow:
    kind: str                  # charge (every reply, amount 0 when not charged) | refund | push
    carrier: str
    mo_id: str
    mt_id: str
    msisdn: str                # masked
    amount_vnd: int
    message_type: MessageType
    at: str


@dataclass(frozen=True)
class Notice:
    """A push to one phone; queued once per (kind, target, occasion)."""

    kind: str                  # card_expiry | payment_reminder | dossier_result
    target: str                # what it is about: a card number, an ssn, a dossier code
    occasion: str              # what makes it a new notice (notices.py says which): an ISO date, a status
    mt: OutboundMessage        # mo_id and in_reply_to empty: no MO asked for it
    lane: int = NOTICE_LANE
    not_before: float | None = None   # quiet hours (quiet_hours.py): held until the morning


@dataclass(frozen=True)
class Effect:
    """The durable effect of a conversation command (CONTRACT §7), written by `store_mo` in its
    MO's transaction (see `written`)."""

    kind: str                      # question | rating | opt_out | opt_in
    text: str | None = None        # the question as typed, or the rating's comment
    rating: int | None = None      # 1-5
    faq_id: str | None = None      # the FAQ entry whose answer follows the acknowledgment at once
    numbered: Callable[[str], Sequence[OutboundMessage]] | None = None
    """A question: its number ("Q" and digits) -> its replies, in place of `replies` (a pure function)."""

    def written(self, guard: Guard | None) -> bool:
        """Whether it is written for an MO that `guard` decided on: always for an opt-out or an
        opt-in (the citizen's wish about notices stands, even when the reply is withheld), never
        for a question or a rating over a limit."""
        return guard is None or self.kind in ("opt_out", "opt_in")


@dataclass(frozen=True)
class Question:
    number: str                    # "Q" and digits
    mo_id: str
    carrier: str
    sender: str
    text: str
    asked_at: float
    faq_id: str | None             # auto-answered by this FAQ entry
    answered_by: str | None        # the staff member who answered; None: no staff answer yet
    answered_at: float | None
    answer: str | None


QUESTION_PREFIX = "Q"
QUESTION_COLUMNS = "number, mo_id, carrier, sender, text, asked_at, faq_id, answered_by, answered_at, answer"


def question_digits(number: str) -> int | None:
    """The stored number of question `number` ("Q12", "q12" or "12"); None when it cannot be one."""
    digits = number[len(QUESTION_PREFIX):] if number.upper().startswith(QUESTION_PREFIX) else number
    return int(digits) if digits.isascii() and digits.isdigit() and len(digits) <= 18 else None


def question_of(row: Sequence[Any]) -> Question:
    """A `Question` from a row of QUESTION_COLUMNS."""
    return Question(f"{QUESTION_PREFIX}{row[0]}", *row[1:])


@dataclass(frozen=True)
class StaffAnswer:
    """What `MessageStore.answer_question` did: the MT stored, the question closed without one, or
    who answered (or closed it) before and when."""

    question: Question
    mt: OutboundMessage | None     # None: closed now (`closed`), or refused: answered before
    closed: bool = False           # closed now without an SMS (`word` gave None)
    no_entry: bool = False         # nothing stored: the stored FAQ has no entry `example_of`

    @property
    def refused(self) -> bool:
        return self.mt is None and not self.closed and not self.no_entry


class MessageStore(abc.ABC):
    """The MOs, the MT outbox, billing rows and delivery states; every method is one transaction."""

    path: str

    @property
    @abc.abstractmethod
    def alive(self) -> bool:
        """False once closed, or when its writer stopped."""

    @property
    @abc.abstractmethod
    def refusal(self) -> str | None:
        """Why the store cannot take a write now (its files deleted, replaced, unwritable), or None."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Write every operation submitted, and close."""

    @abc.abstractmethod
    async def store_mo(self, inbound: InboundMessage, *, mo_id: str, mode: str, command: str | None,
                       error: str | None, replies: Sequence[OutboundMessage], now: float,
                       guard: Guard | None = None, screening: Screening | None = None,
                       effect: Effect | None = None) -> StoredMO:
        """Store an MO with its replies and their charges, or return the one stored under its carrier id.

        `effect` (a conversation command's) is written with the MO when it is answered as usual:
        a question numbered (its replies then `effect.numbered(number)`), a rating tied to the
        sender's last answered MO within 24 hours, an opt-out recorded or removed.

        `guard` stores an MO already judged (a sender that is not a phone): `replies` should be
        empty. With `screening`, the sender's history decides in this transaction whether the
        replies go, the screening's polite reply goes instead, or nothing does.
        """

    @abc.abstractmethod
    async def store_notices(self, notices: Sequence[Notice], *, now: float) -> list[PendingMT]:
        """Queue each notice not queued before as a pending MT with its push billing row (amount 0).

        Returns the ones queued by this call; a notice whose (kind, target, occasion) is stored
        already is left out, whatever became of it, and so is a notice to a phone that opted out
        (BH TC): neither stored nor sent (`opted_out` counts them).
        """

    @abc.abstractmethod
    async def find_mo(self, carrier: str, carrier_id: str) -> StoredMO | None: ...

    @abc.abstractmethod
    async def questions(self, *, open_only: bool = False) -> list[Question]:
        """The questions asked, oldest first; `open_only`: neither answered by staff nor by the FAQ."""

    @abc.abstractmethod
    async def answer_question(self, number: str, word: Callable[[Question], OutboundMessage], *, by: str,
                              now: float, lease: float, example_of: str | None = None) -> StaffAnswer | None:
        """Store a staff answer to question `number` (None: no such question) in one transaction
        with the question's answered state: the MT `word(question)` pending, leased to this
        process for `lease` seconds (its sender delivers it; a gateway takes it once the lease
        has run out), with its push billing row. Refused (`refused`) when staff answered or closed
        it before. `word` returning None closes the question without an SMS (`closed`): answered
        by staff, no answer text (a question needing none, or whose asker's number was erased);
        None when the asker's number was erased and `word` gave an MT. `example_of` (an FAQ
        entry's id, the answer being that entry's): the question's text is stored as an example
        of that entry in the same transaction; nothing at all is stored (`no_entry`) when the
        stored FAQ has no such entry."""

    @abc.abstractmethod
    async def opted_out(self, phones: Sequence[str]) -> set[str]:
        """Which of `phones` sent BH TC and not BH DK since."""

    @abc.abstractmethod
    async def pending(self) -> list[PendingMT]:
        """Every MT still to deliver, by lane, oldest first (held ones with their `not_before`)."""

    @abc.abstractmethod
    async def mark_sent(self, mt_id: str) -> None: ...

    @abc.abstractmethod
    async def schedule_retry(self, mt_id: str, *, attempts: int, next_attempt_at: float, error: str) -> None: ...

    @abc.abstractmethod
    async def give_up(self, mt_id: str, *, error: str, now: float) -> bool:
        """Fail a pending MT and its MO, and refund its charge; False when it was not pending."""

    @abc.abstractmethod
    async def record_delivery(self, report: DeliveryReport) -> DeliveryState | None:
        """Apply a delivery report; the MT's state after it, or None for an MT we do not know."""

    @abc.abstractmethod
    async def mt_state(self, mt_id: str) -> MTState | None: ...

    @abc.abstractmethod
    async def billing(self, mo_id: str | None = None) -> list[BillingRow]:
        """Billing rows in the order written, of one MO or of all."""

    @abc.abstractmethod
    async def probe(self) -> None:
        """Succeeds when a write reaches the disk now; fails (Unavailable, with the reason) when not."""

    # The outbox shared by several gateways (PostgreSQL). A store only one process delivers from
    # (SQLite: the gateway, or --workers' worker 0) keeps these defaults: `pending` at start-up is all.
    shared: bool = False          # True: other gateways deliver from the same outbox
    lease_seconds: float = 0.0    # how long a claimed MT stays this gateway's without renewal

    async def claim(self) -> list[PendingMT]:
        """Claim the MTs due that no gateway holds (never claimed, or their lease run out), oldest first.

        An MT held (`not_before`) further than a lease ahead is left alone until its time is near.
        """
        return []

    async def held(self, until: float) -> list[PendingMT]:
        """The pending MTs held until a time up to `until` (a store only one process delivers from:
        those another process stored held, for its outbox to wake them on time)."""
        return []

    async def renew(self, mt_ids: Sequence[str]) -> set[str]:
        """Extend this gateway's leases of `mt_ids`; the ids still held (a lease run out may be another's now)."""
        return set(mt_ids)

    async def release(self, mt_ids: Sequence[str]) -> None:
        """Give up the leases of `mt_ids` (still pending) so another gateway takes them at once."""

    async def watch(self, wake: Callable[[], None]) -> None:
        """Call `wake` whenever another gateway makes MTs claimable (idempotent: re-arms a lost watch)."""

    async def unwatch(self) -> None:
        """Stop calling the `wake` of `watch`."""


class MessageReports(Protocol):
    """The reading queries of the reports and the ledger; rows, in the order stated."""

    def billing_rows_between(self, start: float, end: float, carrier: str | None = None) -> Iterator[BillingRow]:
        """Billing rows written in [start, end) (Unix seconds), of one carrier or all, in the order written."""

    def billing_totals_between(self, start: float, end: float,
                               carrier: str | None = None) -> list[tuple[str, int, str, int, int]]:
        """(carrier, message_type, kind, rows, amount VND) of the billing rows written in [start, end)."""

    def mo_outcomes(self, since: float | None = None) -> list[tuple[str | None, str | None, int]]:
        """(command, error, MOs) of the MOs from phones taken since `since` (Unix seconds; None: all)."""

    def ratings_between(self, start: float, end: float) -> list[tuple[float, str, int, str | None, str | None]]:
        """(rated at, phone, rating, comment, the rated MO's command or None: the service) of the
        ratings (BH DG) given in [start, end), in that order."""

    def misunderstood_texts(self, since: float | None = None,
                            window: float = 600.0) -> Iterator[tuple[str, float, str, str | None]]:
        """(MO id, taken at, text, a following text) of every MO from a phone that the language did
        not understand: once for each understood MO the same phone sent within `window` seconds
        after it (the following text), or once with None when there was none."""

    def close(self) -> None: ...
