"""The message store: MOs, the MT outbox, billing rows and delivery states. The only SQL for messages.

Tables, in the records database file (WAL):
    mo_messages     one row per MO, unique on (carrier, carrier_id); status answered (sync),
                    queued -> sent | failed (async)
    mt_messages     the replies with their stable MT id; status sent (sync: given in the response),
                    pending -> sent | failed (async outbox); attempts, next attempt, DLR state
    billing_rows    one charge row per MT (amount 0 when not charged), and one refund row
                    reversing it when delivery is given up; the phone number is stored masked

An MO, its MTs and their charge rows are written by one `store_mo` call, in one transaction:
an MO is either stored with its answer or not at all. `store_mo` returns the MO already stored
under the same carrier id, untouched, when there is one.

Group commit: every operation runs on one connection in one writer thread. The writer takes
all operations queued while it was busy and runs them in one transaction (one fsync), each
inside its own SAVEPOINT so that a failing operation fails alone. Under load batches grow by
themselves; alone, an operation waits for nothing. Measured (2 cores, virtio disk,
synchronous=FULL, 64 concurrent writers storing one MO with its MT and charge each, medians of
3 runs): one transaction per MO 2,575 MOs/s (p50 22.9 ms); taking what is queued when free
12,570 MOs/s (p50 4.8 ms, p99 9.0 ms); waiting 2 ms before taking 10,340 MOs/s; 5 ms 6,100
MOs/s. A lone writer: 0.37 ms per MO without waiting, 2.7 ms with the 2 ms wait. Taking what
is queued, without waiting, is kept.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar

from .billing import MessageType
from .carrier import DeliveryReport, DeliveryState, InboundMessage, OutboundMessage
from .errors import Unavailable
from .phones import mask

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS mo_messages (
    id TEXT PRIMARY KEY,
    carrier TEXT NOT NULL,
    carrier_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    recipient TEXT NOT NULL,
    text TEXT NOT NULL,
    received_at TEXT NOT NULL,
    mode TEXT NOT NULL,
    command TEXT,
    error TEXT,
    status TEXT NOT NULL,
    UNIQUE (carrier, carrier_id)
);
CREATE TABLE IF NOT EXISTS mt_messages (
    id TEXT PRIMARY KEY,
    mo_id TEXT NOT NULL REFERENCES mo_messages (id),
    seq INTEGER NOT NULL,
    carrier TEXT NOT NULL,
    in_reply_to TEXT NOT NULL,
    sender TEXT NOT NULL,
    recipient TEXT NOT NULL,
    text TEXT NOT NULL,
    encoding TEXT NOT NULL,
    segments INTEGER NOT NULL,
    message_type INTEGER NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    next_attempt_at REAL,
    last_error TEXT,
    dlr_state TEXT,
    dlr_time TEXT
);
CREATE INDEX IF NOT EXISTS mt_messages_mo ON mt_messages (mo_id, seq);
CREATE INDEX IF NOT EXISTS mt_messages_pending ON mt_messages (created_at) WHERE status = 'pending';
CREATE TABLE IF NOT EXISTS billing_rows (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    carrier TEXT NOT NULL,
    mo_id TEXT NOT NULL,
    mt_id TEXT NOT NULL,
    msisdn TEXT NOT NULL,
    amount_vnd INTEGER NOT NULL,
    message_type INTEGER NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS billing_rows_mo ON billing_rows (mo_id);
"""
_MT_COLUMNS = "id, mo_id, in_reply_to, carrier, sender, recipient, text, encoding, segments, message_type"


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


@dataclass(frozen=True)
class PendingMT:
    mt: OutboundMessage
    attempts: int
    created_at: float          # Unix seconds
    next_attempt_at: float


@dataclass(frozen=True)
class MTState:
    status: str                # sent | pending | failed
    attempts: int
    last_error: str | None
    delivery: DeliveryState | None


@dataclass(frozen=True)
class BillingRow:
    kind: str                  # charge | refund
    carrier: str
    mo_id: str
    mt_id: str
    msisdn: str                # masked
    amount_vnd: int
    message_type: MessageType
    at: str


@dataclass
class _Operation:
    run: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future


class MessageStore:
    """Async access to the message tables; open with `await MessageStore.open(path)`."""

    def __init__(self, path: str, *, batch_delay: float, max_batch: int,
                 on_batch: Callable[[int], None] | None) -> None:
        self.path = path
        self.batch_delay = batch_delay
        self.max_batch = max_batch
        self.on_batch = on_batch
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="smsgw-messages")
        self._queue: deque[_Operation] = deque()
        self._wakeup = asyncio.Event()
        self._closing = False
        self._conn: sqlite3.Connection | None = None
        self._writer: asyncio.Task | None = None

    @classmethod
    async def open(cls, path: str, *, batch_delay: float = 0.0, max_batch: int = 512,
                   on_batch: Callable[[int], None] | None = None) -> "MessageStore":
        """Open (creating the tables when missing) and start the writer.

        `batch_delay` seconds are waited before each batch is taken (0: take what is queued).
        """
        store = cls(path, batch_delay=batch_delay, max_batch=max_batch, on_batch=on_batch)
        loop = asyncio.get_running_loop()
        try:
            store._conn = await loop.run_in_executor(store._executor, _connect, path)
        except BaseException:
            store._executor.shutdown(wait=False)
            raise
        store._writer = asyncio.create_task(store._write_loop(), name="smsgw-messages-writer")
        return store

    @property
    def alive(self) -> bool:
        return self._writer is not None and not self._writer.done() and not self._closing

    async def close(self) -> None:
        """Run every queued operation, commit, and close the connection."""
        if self._writer is None:
            return
        self._closing = True
        self._wakeup.set()
        await self._writer
        self._writer = None
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._conn.close)
        self._executor.shutdown(wait=True)

    # --- operations ---------------------------------------------------------------------

    async def store_mo(self, inbound: InboundMessage, *, mo_id: str, mode: str, command: str | None,
                       error: str | None, replies: Sequence[OutboundMessage], now: float) -> StoredMO:
        """Store an MO with its replies and their charges, or return the one stored under its carrier id."""
        status = "queued" if mode == "async" else "answered"
        mt_status = "pending" if mode == "async" else "sent"
        at = _iso(now)

        def run(conn: sqlite3.Connection) -> StoredMO:
            inserted = conn.execute(
                "INSERT INTO mo_messages (id, carrier, carrier_id, sender, recipient, text, received_at,"
                " mode, command, error, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (carrier, carrier_id) DO NOTHING",
                (mo_id, inbound.carrier, inbound.carrier_id, inbound.sender, inbound.to, inbound.text,
                 inbound.received_at.isoformat(), mode, command, error, status),
            ).rowcount
            if not inserted:
                return _load_mo(conn, inbound.carrier, inbound.carrier_id)
            for seq, mt in enumerate(replies):
                conn.execute(
                    f"INSERT INTO mt_messages ({_MT_COLUMNS}, seq, status, created_at, next_attempt_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (mt.id, mt.mo_id, mt.in_reply_to, mt.carrier, mt.sender, mt.to, mt.text, mt.encoding,
                     mt.segments, int(mt.message_type), seq, mt_status, now, now if mode == "async" else None),
                )
                _bill(conn, "charge", mt, mt.billing.amount_vnd, at)
            return StoredMO(mo_id, inbound.carrier, inbound.carrier_id, mode, status, command, error,
                            tuple(replies), created=True)

        return await self._submit(run)

    async def find_mo(self, carrier: str, carrier_id: str) -> StoredMO | None:
        return await self._submit(lambda conn: _load_mo(conn, carrier, carrier_id))

    async def pending(self) -> list[PendingMT]:
        """Every MT still to deliver, oldest first."""
        def run(conn: sqlite3.Connection) -> list[PendingMT]:
            rows = conn.execute(
                f"SELECT {_MT_COLUMNS}, attempts, created_at, next_attempt_at FROM mt_messages"
                " WHERE status = 'pending' ORDER BY created_at, mo_id, seq"
            ).fetchall()
            return [PendingMT(_mt(row[:10]), row[10], row[11], row[12] or row[11]) for row in rows]

        return await self._submit(run)

    async def mark_sent(self, mt_id: str) -> None:
        def run(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE mt_messages SET status = 'sent', next_attempt_at = NULL, last_error = NULL"
                         " WHERE id = ? AND status = 'pending'", (mt_id,))
            conn.execute("UPDATE mo_messages SET status = 'sent' WHERE status = 'queued' AND id ="
                         " (SELECT mo_id FROM mt_messages WHERE id = ?) AND NOT EXISTS (SELECT 1 FROM"
                         " mt_messages WHERE mo_id = mo_messages.id AND status = 'pending')", (mt_id,))

        await self._submit(run)

    async def schedule_retry(self, mt_id: str, *, attempts: int, next_attempt_at: float, error: str) -> None:
        await self._submit(lambda conn: conn.execute(
            "UPDATE mt_messages SET attempts = ?, next_attempt_at = ?, last_error = ?"
            " WHERE id = ? AND status = 'pending'", (attempts, next_attempt_at, error, mt_id)))

    async def give_up(self, mt_id: str, *, error: str, now: float) -> bool:
        """Fail a pending MT and its MO, and refund its charge; False when it was not pending."""
        def run(conn: sqlite3.Connection) -> bool:
            row = conn.execute(f"SELECT {_MT_COLUMNS} FROM mt_messages WHERE id = ? AND status = 'pending'",
                               (mt_id,)).fetchone()
            if row is None:
                return False
            mt = _mt(row)
            conn.execute("UPDATE mt_messages SET status = 'failed', next_attempt_at = NULL, last_error = ?"
                         " WHERE id = ?", (error, mt_id))
            conn.execute("UPDATE mo_messages SET status = 'failed' WHERE id = ?", (mt.mo_id,))
            charged = conn.execute("SELECT coalesce(sum(amount_vnd), 0) FROM billing_rows WHERE mt_id = ?",
                                   (mt_id,)).fetchone()[0]
            _bill(conn, "refund", mt, -charged, _iso(now))
            return True

        return await self._submit(run)

    async def record_delivery(self, report: DeliveryReport) -> DeliveryState | None:
        """Apply a delivery report; the MT's state after it, or None for an MT we do not know."""
        def run(conn: sqlite3.Connection) -> DeliveryState | None:
            row = conn.execute("SELECT dlr_state FROM mt_messages WHERE id = ? AND carrier = ?",
                               (report.mt_id, report.carrier)).fetchone()
            if row is None:
                return None
            current = DeliveryState(row[0]) if row[0] else None
            if not report.state.advances(current):
                return current
            conn.execute("UPDATE mt_messages SET dlr_state = ?, dlr_time = ? WHERE id = ?",
                         (report.state.value, report.time.isoformat() if report.time else None, report.mt_id))
            return report.state

        return await self._submit(run)

    async def mt_state(self, mt_id: str) -> MTState | None:
        def run(conn: sqlite3.Connection) -> MTState | None:
            row = conn.execute("SELECT status, attempts, last_error, dlr_state FROM mt_messages WHERE id = ?",
                               (mt_id,)).fetchone()
            if row is None:
                return None
            return MTState(row[0], row[1], row[2], DeliveryState(row[3]) if row[3] else None)

        return await self._submit(run)

    async def billing(self, mo_id: str | None = None) -> list[BillingRow]:
        """Billing rows in the order written, of one MO or of all."""
        def run(conn: sqlite3.Connection) -> list[BillingRow]:
            query = "SELECT kind, carrier, mo_id, mt_id, msisdn, amount_vnd, message_type, at FROM billing_rows"
            rows = conn.execute(query + " WHERE mo_id = ? ORDER BY id", (mo_id,)) if mo_id is not None \
                else conn.execute(query + " ORDER BY id")
            return [BillingRow(*row[:6], MessageType(row[6]), row[7]) for row in rows]

        return await self._submit(run)

    async def probe(self) -> None:
        """Succeeds when a write transaction can be opened and committed."""
        await self._submit(lambda conn: None)

    # --- the writer ---------------------------------------------------------------------

    def _submit(self, run: Callable[[sqlite3.Connection], T]) -> "asyncio.Future[T]":
        if self._closing or self._writer is None:
            raise Unavailable("the message store is closed")
        future = asyncio.get_running_loop().create_future()
        self._queue.append(_Operation(run, future))
        self._wakeup.set()
        return future

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if self.batch_delay:
                await asyncio.sleep(self.batch_delay)
            batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
            try:
                results = await loop.run_in_executor(self._executor, _run_batch, self._conn, batch)
            except Exception as exc:   # the connection itself failed: every operation of the batch did
                results = [(False, Unavailable(f"message store: {exc}")) for _ in batch]
            if self.on_batch is not None:
                self.on_batch(len(batch))
            for operation, (ok, value) in zip(batch, results):
                if operation.future.done():
                    continue
                if ok:
                    operation.future.set_result(value)
                else:
                    operation.future.set_exception(value)


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.executescript(_SCHEMA)
    return conn


def _run_batch(conn: sqlite3.Connection, batch: list[_Operation]) -> list[tuple[bool, Any]]:
    results: list[tuple[bool, Any]] = []
    try:
        conn.execute("BEGIN IMMEDIATE")
        for operation in batch:
            conn.execute("SAVEPOINT operation")
            try:
                results.append((True, operation.run(conn)))
            except Exception as exc:
                conn.execute("ROLLBACK TO operation")
                results.append((False, exc))
            conn.execute("RELEASE operation")
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        return [(False, Unavailable(f"message store: {exc}")) for _ in batch]
    return results


def _load_mo(conn: sqlite3.Connection, carrier: str, carrier_id: str) -> StoredMO | None:
    row = conn.execute("SELECT id, mode, status, command, error FROM mo_messages WHERE carrier = ? AND"
                       " carrier_id = ?", (carrier, carrier_id)).fetchone()
    if row is None:
        return None
    mo_id, mode, status, command, error = row
    mts = conn.execute(f"SELECT {_MT_COLUMNS} FROM mt_messages WHERE mo_id = ? ORDER BY seq", (mo_id,))
    return StoredMO(mo_id, carrier, carrier_id, mode, status, command, error,
                    tuple(_mt(mt) for mt in mts), created=False)


def _mt(row: Sequence[Any]) -> OutboundMessage:
    return OutboundMessage(id=row[0], mo_id=row[1], in_reply_to=row[2], carrier=row[3], sender=row[4],
                           to=row[5], text=row[6], encoding=row[7], segments=row[8],
                           message_type=MessageType(row[9]))


def _bill(conn: sqlite3.Connection, kind: str, mt: OutboundMessage, amount: int, at: str) -> None:
    conn.execute(
        "INSERT INTO billing_rows (kind, carrier, mo_id, mt_id, msisdn, amount_vnd, message_type, at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (kind, mt.carrier, mt.mo_id, mt.id, mask(mt.to), amount, int(mt.message_type), at),
    )


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, timezone.utc).isoformat()
