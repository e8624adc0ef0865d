"""The operator console's store: accounts, sessions, the audit log, and the pages' reading queries.

`ConsoleStore` is what smsgw/console/ calls; sqlite_console.py and pg_console.py implement it
with the same statements (console_sql.py). Every reading query is a bounded range of one index
(console_tables.py) and returns at most a fixed number of rows, so a page costs the same on a
store of a thousand MOs or of millions. The console simulator's test traffic
(`messages.TEST_CARRIER`) is left out of every count and total; it shows in a phone's
conversation, marked.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass

from .console_corrections import CorrectionReads
from .console_sending import SendingReads
from .messages import Question

ROLES = ("viewer", "staff", "admin")   # each may do what the ones before it may
MAX_ROWS = 200                          # the most rows a listing returns


@dataclass(frozen=True)
class Account:
    name: str
    role: str
    password_hash: str
    failed_logins: int          # failures since the last success or lock
    locked_until: float | None  # Unix seconds
    created_at: float


@dataclass(frozen=True)
class Session:
    name: str
    role: str
    csrf: str
    expires_at: float


@dataclass(frozen=True)
class AuditEntry:
    at: float
    actor: str
    action: str
    detail: str
    address: str


@dataclass(frozen=True)
class MessageRow:
    """One line of a conversation or a search: an MO, or an MT (reply or notice)."""

    kind: str                # "mo" | "mt"
    id: str
    at: float                # Unix seconds: taken (MO), stored (MT)
    carrier: str
    phone: str               # the citizen's number, in full: the page masks it
    text: str
    status: str
    detail: str              # MO: command or error; MT: message_type and delivery state
    mo_id: str


@dataclass(frozen=True)
class QueueRow:
    carrier: str
    depth: int
    oldest: float | None     # Unix seconds the oldest pending MT was stored


class ConsoleStore(SendingReads, CorrectionReads, abc.ABC):
    """Accounts, sessions, audit, and the console's reading queries; every method one short transaction."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    # -- accounts ---------------------------------------------------------------------------
    @abc.abstractmethod
    async def add_account(self, name: str, role: str, password_hash: str, *, now: float) -> bool:
        """False when the name is taken."""

    @abc.abstractmethod
    async def account(self, name: str) -> Account | None: ...

    @abc.abstractmethod
    async def accounts(self) -> list[Account]: ...

    @abc.abstractmethod
    async def set_role(self, name: str, role: str) -> bool: ...

    @abc.abstractmethod
    async def set_password(self, name: str, password_hash: str) -> bool:
        """The new hash, failures forgotten, lock lifted, every session of the account ended."""

    @abc.abstractmethod
    async def remove_account(self, name: str) -> bool:
        """The account and its sessions gone."""

    @abc.abstractmethod
    async def login_failed(self, name: str, *, now: float, limit: int, lock_seconds: float) -> Account | None:
        """Count a failed login, in one statement (gateways sharing a database count together):
        the `limit`th failure locks the account until now + lock_seconds and starts the count again."""

    @abc.abstractmethod
    async def login_succeeded(self, name: str) -> None: ...

    @abc.abstractmethod
    async def unlock(self, name: str) -> bool: ...

    # -- sessions ---------------------------------------------------------------------------
    @abc.abstractmethod
    async def start_session(self, token_hash: str, name: str, csrf: str, *, now: float, expires_at: float,
                            address: str) -> None: ...

    @abc.abstractmethod
    async def session(self, token_hash: str, *, now: float) -> Session | None:
        """The live session with this token hash, with its account's current role; None when
        unknown, expired or its account removed."""

    @abc.abstractmethod
    async def end_session(self, token_hash: str) -> None: ...

    # -- audit ------------------------------------------------------------------------------
    @abc.abstractmethod
    async def audit(self, *, at: float, actor: str, action: str, detail: str, address: str) -> None: ...

    @abc.abstractmethod
    async def audit_log(self, limit: int = MAX_ROWS) -> list[AuditEntry]:
        """The latest entries, newest first."""

    # -- the pages' reading queries ---------------------------------------------------------
    @abc.abstractmethod
    async def mo_buckets(self, since: float, until: float, bucket: float,
                         offset: float = 0.0) -> list[tuple[int, str, int]]:
        """(bucket number, outcome, MOs) of the real MOs taken in [since, until); a bucket is
        floor((taken_at + offset) / bucket); outcome `understood`, `error` or `withheld`."""

    @abc.abstractmethod
    async def mt_buckets(self, since: float, until: float, bucket: float,
                         offset: float = 0.0) -> list[tuple[int, str, int]]:
        """(bucket number, outcome, MTs) of the real MTs stored in [since, until); outcome
        `delivered`, `failed` (given up or reported failed), `pending` or `sent`."""

    @abc.abstractmethod
    async def mo_outcomes(self, since: float, until: float) -> list[tuple[str | None, str | None, int]]:
        """(command, error, MOs) of the real MOs from phones taken in [since, until)."""

    @abc.abstractmethod
    async def misunderstood_texts(self, since: float, limit: int) -> list[str]:
        """The texts of the latest `limit` real MOs from phones not understood since `since`."""

    @abc.abstractmethod
    async def billing_totals(self, start: float, end: float) -> list[tuple[str, int, str, int, int]]:
        """(carrier, message_type, kind, rows, amount VND) of the real billing rows written in [start, end)."""

    @abc.abstractmethod
    async def queues(self) -> list[QueueRow]:
        """The pending MTs per carrier."""

    @abc.abstractmethod
    async def mt_outcomes_by_carrier(self, since: float) -> list[tuple[str, str, int]]:
        """(carrier, outcome as in mt_buckets, MTs) of the real MTs stored since `since`."""

    @abc.abstractmethod
    async def last_errors(self, since: float, limit: int) -> list[tuple[float, str, str, int, str]]:
        """(stored at, carrier, MT id, attempts, last error) of the latest MTs with an error since `since`."""

    @abc.abstractmethod
    async def find_mos(self, *, mo_id: str | None = None, carrier_id: str | None = None) -> list[MessageRow]:
        """The MOs with this id, or this carrier id (on any carrier), at most MAX_ROWS."""

    @abc.abstractmethod
    async def conversation(self, phone: str, limit: int = MAX_ROWS) -> list[MessageRow]:
        """One phone's latest `limit` MOs and `limit` MTs (replies, notices), oldest first."""

    # -- questions and ratings (CONTRACT §7) ------------------------------------------------
    @abc.abstractmethod
    async def open_questions(self, limit: int = MAX_ROWS) -> list[Question]:
        """The questions neither staff nor the FAQ answered, oldest first (test traffic left out)."""

    @abc.abstractmethod
    async def question(self, number: str) -> Question | None: ...

    @abc.abstractmethod
    async def answered_questions(self, limit: int = 50) -> list[Question]:
        """The latest questions answered by staff, newest answer first."""

    @abc.abstractmethod
    async def rating_counts(self, start: float, end: float) -> list[tuple[int, str | None, int]]:
        """(rating, the rated MO's command or None: the service, ratings) given in [start, end)."""

    @abc.abstractmethod
    async def rating_comments(self, start: float, end: float,
                              limit: int = MAX_ROWS) -> list[tuple[float, str, int, str | None, str]]:
        """(rated at, phone, rating, rated command, comment) of the latest ratings with a comment."""


def outcome_rows(rows: Sequence[Sequence]) -> list[tuple]:
    """Rows as plain tuples (asyncpg's Records, sqlite's tuples alike)."""
    return [tuple(row) for row in rows]
