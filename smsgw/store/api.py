"""The sending API's data in the message store (CONTRACT §8): keys, messages, batches, callbacks.

Tables (schema step `API_STEP`, the same on both backends; `api_tables_sqlite`/`API_TABLES_PG`):
    api_keys        one row per client: the SHA-256 of its key (never the key), its callback
                    secret (in clear: it signs the callbacks), the classes it may send, its rate
                    per minute, whether it may send over 3 segments, revoked_at
    api_messages    one row per message asked for, its id the id of its MT in mt_messages (none
                    for `opted_out`); unique on (key_name, idempotency_key): a retry finds it;
                    `request_hash` (SHA-256 of the request) tells a retry from another request
                    reusing the key
    api_batches     one row per batch; its messages carry its id
    api_rate        requests taken per (key, minute): the per-key rate, counted in the store so
                    that every gateway process sees the same count
    api_callbacks   the durable callback queue: one row per status a message takes, sent in
                    order per message, retried with back-off until a 2xx (`done_at` set)
    opt_outs        phones that sent BH TC (SHARED-INTERFACES §1), read here

Personal data: `api_messages.recipient` is replaced by its keyed hash by the retention's prune
(once the message is no longer queued) and by `smsgw data erase` (retention_tables.py);
the text is only in mt_messages, pruned there.

Status changes are made by the database itself: a trigger on mt_messages maps the outbox's and
the delivery reports' changes (status sent / failed / expired, dlr_state) to the API status,
only forward (queued 0 < sent 1 < delivered, failed, expired, opted_out 2), and queues the
callback in the same transaction as the change: no change is lost between two writes.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass

from ..wire import OutboundMessage
from .messages import Lease, PendingMT

CLASSES = ("otp", "notice", "info")
STATUSES = ("queued", "sent", "delivered", "failed", "expired", "opted_out")
FINAL = ("delivered", "failed", "expired", "opted_out")


@dataclass(frozen=True)
class ApiKey:
    name: str
    classes: tuple[str, ...]
    rate: int                  # requests per minute; 0 = no limit
    long_messages: bool        # may send over 3 segments
    secret: str                # the callback secret


@dataclass(frozen=True)
class ApiMessage:
    id: str
    key_name: str
    to: str
    message_class: str
    status: str
    updated_at: float
    encoding: str
    segments: int
    batch_id: str | None = None

    def public(self) -> dict:
        """GET /api/v1/messages/{id}'s body, and each callback's."""
        from datetime import datetime, timezone

        return {"id": self.id, "to": self.to, "class": self.message_class, "status": self.status,
                "updated_at": datetime.fromtimestamp(self.updated_at, timezone.utc).isoformat()}


@dataclass(frozen=True)
class NewMessage:
    """A message to store: its MT (None when the phone opted out) and what the API keeps of it."""

    mt: OutboundMessage
    message_class: str
    callback_url: str | None
    expires_at: float | None   # an OTP's ttl end: not sent after it
    not_before: float | None   # send_at
    lane: int = 0


@dataclass(frozen=True)
class Taken:
    """What `store_message` did: `created` False for an idempotent retry (the first message),
    `retry_after` set (seconds) when the key's rate refused it (nothing stored), `mismatch` when
    the Idempotency-Key was used before with another request (the first message; nothing stored)."""

    message: ApiMessage | None
    created: bool
    pending: PendingMT | None = None
    retry_after: float | None = None
    mismatch: bool = False


@dataclass(frozen=True)
class BatchTaken:
    """What `store_batch` did, as `Taken` says for a message; `pending` the MTs stored now."""

    batch_id: str
    created: bool
    pending: list[PendingMT]
    retry_after: float | None = None
    mismatch: bool = False


@dataclass(frozen=True)
class Callback:
    seq: int
    message: ApiMessage
    status: str
    at: float
    url: str
    secret: str
    attempts: int


class ApiStore(abc.ABC):
    """The API's operations; each one transaction on the message store's database."""

    @abc.abstractmethod
    async def create_key(self, name: str, key_hash: str, secret: str, classes: Sequence[str], rate: int,
                         long_messages: bool, now: float) -> bool:
        """False when a key of that name exists (revoked or not)."""

    @abc.abstractmethod
    async def revoke_key(self, name: str, now: float) -> bool:
        """False when there is no live key of that name."""

    @abc.abstractmethod
    async def key_by_hash(self, key_hash: str) -> tuple[ApiKey, str] | None:
        """The live key whose hash is `key_hash`, with the stored hash (for a constant-time compare)."""

    @abc.abstractmethod
    async def store_message(self, key: ApiKey, idempotency_key: str | None, new: NewMessage, *,
                            now: float, lease: Lease | None, request_hash: str = "") -> Taken:
        """In one transaction: the message stored under (key, idempotency_key) already, else the
        rate counted (refused over it), the opt-out checked (notice/info), the message and its MT
        (pending, with its push billing row of 0 VND) stored, and its first callback queued."""

    @abc.abstractmethod
    async def store_batch(self, key: ApiKey, idempotency_key: str | None, batch_id: str,
                          messages: Sequence[NewMessage], *, now: float, lease: Lease | None,
                          request_hash: str = "") -> BatchTaken:
        """The whole batch in one transaction (or the one stored under its Idempotency-Key)."""

    @abc.abstractmethod
    async def message(self, key_name: str, message_id: str) -> ApiMessage | None: ...

    @abc.abstractmethod
    async def batch_counts(self, key_name: str, batch_id: str) -> dict[str, int] | None: ...

    @abc.abstractmethod
    async def expire_if_due(self, mt_id: str, now: float) -> bool:
        """Mark a pending MT `expired` when it is an API message whose ttl has passed; True if so."""

    @abc.abstractmethod
    async def due_callbacks(self, now: float, lease: float, limit: int) -> list[Callback]:
        """The first undelivered callback of each message, when due, claimed for `lease` seconds."""

    @abc.abstractmethod
    async def callback_done(self, seq: int, now: float) -> None: ...

    @abc.abstractmethod
    async def callback_retry(self, seq: int, attempts: int, at: float, error: str) -> None: ...


# -- DDL: the same tables on both backends ------------------------------------------------

def _status_of(new: str) -> str:
    """The API status an MT row `new` (NEW in a trigger) is in, or NULL: SQL, both dialects."""
    return (f"CASE WHEN {new}.status = 'expired' THEN 'expired'"
            f" WHEN {new}.status = 'failed' THEN 'failed'"
            f" WHEN {new}.dlr_state = 'delivered' THEN 'delivered'"
            f" WHEN {new}.dlr_state IN ('failed', 'expired', 'rejected') THEN 'failed'"
            f" WHEN {new}.status = 'sent' THEN 'sent' END")


def _rank(status: str) -> str:
    return (f"(CASE WHEN ({status}) IS NULL THEN -1 WHEN ({status}) = 'queued' THEN 0"
            f" WHEN ({status}) = 'sent' THEN 1 ELSE 2 END)")


_COMMON = """
CREATE TABLE IF NOT EXISTS api_keys (
    name TEXT PRIMARY KEY, key_hash TEXT NOT NULL UNIQUE, secret TEXT NOT NULL, classes TEXT NOT NULL,
    rate INTEGER NOT NULL, long_messages INTEGER NOT NULL, created_at {real} NOT NULL, revoked_at {real});
CREATE TABLE IF NOT EXISTS api_batches (
    id TEXT PRIMARY KEY, key_name TEXT NOT NULL, idempotency_key TEXT, request_hash TEXT NOT NULL,
    class TEXT NOT NULL, total INTEGER NOT NULL, created_at {real} NOT NULL, UNIQUE (key_name, idempotency_key));
CREATE TABLE IF NOT EXISTS api_messages (
    id TEXT PRIMARY KEY, key_name TEXT NOT NULL, idempotency_key TEXT, request_hash TEXT, recipient TEXT NOT NULL,
    class TEXT NOT NULL, status TEXT NOT NULL, callback_url TEXT, batch_id TEXT, encoding TEXT NOT NULL,
    segments INTEGER NOT NULL, created_at {real} NOT NULL, updated_at {real} NOT NULL, expires_at {real},
    UNIQUE (key_name, idempotency_key));
CREATE INDEX IF NOT EXISTS api_messages_batch ON api_messages (batch_id, status) WHERE batch_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS api_messages_kept ON api_messages (created_at) WHERE length(recipient) != 64;
CREATE TABLE IF NOT EXISTS api_rate (
    key_name TEXT NOT NULL, minute BIGINT NOT NULL, taken INTEGER NOT NULL, PRIMARY KEY (key_name, minute));
CREATE TABLE IF NOT EXISTS api_callbacks (
    seq {serial} PRIMARY KEY, message_id TEXT NOT NULL, status TEXT NOT NULL, at {real} NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at {real} NOT NULL, last_error TEXT, done_at {real});
CREATE INDEX IF NOT EXISTS api_callbacks_due ON api_callbacks (message_id, seq) WHERE done_at IS NULL;
CREATE TABLE IF NOT EXISTS opt_outs (phone TEXT PRIMARY KEY, since {real} NOT NULL)
"""

_CHANGE = f"""
INSERT INTO api_callbacks (message_id, status, at, next_attempt_at)
    SELECT id, {_status_of('NEW')}, {{now}}, {{now}} FROM api_messages
    WHERE id = NEW.id AND callback_url IS NOT NULL AND {_rank(_status_of('NEW'))} > {_rank('status')};
UPDATE api_messages SET status = {_status_of('NEW')}, updated_at = {{now}}
    WHERE id = NEW.id AND {_rank(_status_of('NEW'))} > {_rank('status')};
"""

_SQLITE_NOW = "((julianday('now') - 2440587.5) * 86400.0)"
_PG_NOW = "extract(epoch from clock_timestamp())"

API_TABLES_SQLITE = [s.strip() for s in _COMMON.format(real="REAL", serial="INTEGER").split(";") if s.strip()] + [
    "CREATE TRIGGER IF NOT EXISTS api_status AFTER UPDATE OF status, dlr_state ON mt_messages"
    " WHEN NEW.mo_id = '' AND EXISTS (SELECT 1 FROM api_messages WHERE id = NEW.id)"
    f" BEGIN {_CHANGE.format(now=_SQLITE_NOW)} END"
]

API_TABLES_PG = _COMMON.format(real="DOUBLE PRECISION", serial="BIGSERIAL") + f""";
CREATE OR REPLACE FUNCTION api_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {_CHANGE.format(now=_PG_NOW)}
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS api_status ON mt_messages;
CREATE TRIGGER api_status AFTER UPDATE OF status, dlr_state ON mt_messages FOR EACH ROW
    WHEN (NEW.mo_id = '' AND (NEW.status IS DISTINCT FROM OLD.status OR NEW.dlr_state IS DISTINCT FROM OLD.dlr_state))
    EXECUTE FUNCTION api_status();
"""
