"""The message store: MOs, the MT outbox, billing rows and delivery states. The only SQL for messages.

Tables, in the records database file (WAL):
    mo_messages     one row per MO, unique on (carrier, carrier_id); status answered (sync),
                    queued -> sent | failed (async), or withheld (no reply: see protection.py,
                    whose `guard` says why); `taken_at` is our clock (Unix seconds)
    mt_messages     the replies with their stable MT id; status sent (sync: given in the response),
                    pending -> sent | failed (async outbox); attempts, next attempt, DLR state
    billing_rows    one charge row per MT (amount 0 when not charged), and one refund row
                    reversing it when delivery is given up; one push row (amount 0) per notice;
                    the phone number is stored masked
    notices         one row per notice queued, unique on (kind, target, occasion): a notice is
                    queued once, however often `smsgw notify` runs; its MT has no MO (mo_id '')
    store_probe     one row, rewritten by each `probe` (GET /healthz): a write that must reach the disk

An MO, its MTs and their charge rows are written by one `store_mo` call, in one transaction:
an MO is either stored with its answer or not at all. `store_mo` returns the MO already stored
under the same carrier id, untouched, when there is one.

Group commit: every operation runs on one connection. The writer takes all operations queued
while it was busy and runs them in one transaction (one fsync). A failing operation fails alone:
when one raises, the transaction is rolled back and the same operations run again in a new one,
each inside its own SAVEPOINT. Savepoints are used only then: with one per operation, SQLite
copied every page an operation touched into its statement journal (a temporary file once a
batch outgrew 64 KiB), 43 µs of CPU per stored MO under load (bench/floor.py's `store` rung,
medians of 8 interleaved runs: 322 -> 280 µs per request). Under load batches grow by themselves; alone, an
operation waits for nothing. Measured (2 cores, virtio disk, synchronous=FULL, 64 concurrent writers
storing one MO with its MT and charge each, medians of 3 runs): one transaction per MO 2,575
MOs/s (p50 22.9 ms); taking what is queued when free 12,570 MOs/s (p50 4.8 ms, p99 9.0 ms);
waiting 2 ms before taking 10,340 MOs/s; 5 ms 6,100 MOs/s. Taking what is queued, without
waiting, is kept.

Where each step runs: what waits (BEGIN IMMEDIATE, which may wait for another gateway process
holding the write lock, and COMMIT, which waits for the fsync) runs in the writer's thread; the
statements of the operations, a few microseconds each, run on the event loop's thread between
the two. Run in the thread, each statement handed the GIL to the busy loop thread and waited to
get it back: 20x the context switches, and at half the maximum rate (bench/e2e.py, open loop)
p50 6.0-9.5 ms and p99 80-102 ms, against p50 3.5-4.5 ms and p99 19-62 ms now (BENCHMARKS.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar

from .billing import MessageType
from .errors import Unavailable
from .logs import get_logger
from .phones import mask
from .protection import Guard, Screening, SenderHistory
from .storefiles import StoreFiles
from .wire import DeliveryReport, DeliveryState, InboundMessage, OutboundMessage

log = get_logger(component="messages")

T = TypeVar("T")

_TABLES = """
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
    taken_at REAL,
    guard TEXT,
    UNIQUE (carrier, carrier_id)
);
CREATE TABLE IF NOT EXISTS mt_messages (
    id TEXT PRIMARY KEY,
    mo_id TEXT NOT NULL,
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
CREATE TABLE IF NOT EXISTS store_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS notices (
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    occasion TEXT NOT NULL,
    mt_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (kind, target, occasion)
);
"""
# Columns added since the first release, for message tables created before them.
_ADDED_COLUMNS = {"mo_messages": (("taken_at", "REAL"), ("guard", "TEXT"))}
_INDEXES = """
CREATE INDEX IF NOT EXISTS mt_messages_mo ON mt_messages (mo_id, seq);
CREATE INDEX IF NOT EXISTS mt_messages_pending ON mt_messages (created_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS billing_rows_mo ON billing_rows (mo_id);
CREATE INDEX IF NOT EXISTS billing_rows_at ON billing_rows (at);
CREATE INDEX IF NOT EXISTS mo_messages_sender ON mo_messages (sender, guard, taken_at);
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
    guard: str | None = None   # the protection rule that withheld or replaced its reply (protection.Guard)


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

    kind: str                  # card_expiry | payment_reminder
    target: str                # what it is about: a card number, an ssn
    occasion: str              # the ISO date that makes it a new notice (notices.py says which)
    mt: OutboundMessage        # mo_id and in_reply_to empty: no MO asked for it


@dataclass
class _Operation:
    run: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future


class MessageStore:
    """Async access to the message tables; open with `await MessageStore.open(path)`."""

    def __init__(self, path: str, *, batch_delay: float, max_batch: int,
                 on_batch: Callable[[int], None] | None, on_commit: Callable[[float], None] | None = None) -> None:
        self.path = path
        self.batch_delay = batch_delay
        self.max_batch = max_batch
        self.on_batch = on_batch
        self.on_commit = on_commit
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="smsgw-messages")
        self._queue: deque[_Operation] = deque()
        self._isolate = 0   # how many operations at the head of the queue run in savepoints of their own
        self._wakeup = asyncio.Event()
        self._closing = False
        self._conn: sqlite3.Connection | None = None
        self._files: StoreFiles | None = None
        self._refusal: str | None = None   # why the files cannot be written now (storefiles.py)
        self._refusal_checked = 0.0
        self._writer: asyncio.Task | None = None

    @classmethod
    async def open(cls, path: str, *, batch_delay: float = 0.0, max_batch: int = 512,
                   on_batch: Callable[[int], None] | None = None,
                   on_commit: Callable[[float], None] | None = None) -> "MessageStore":
        """Open (creating the tables when missing) and start the writer.

        `batch_delay` seconds are waited before each batch is taken (0: take what is queued).
        `on_batch(size)` and `on_commit(seconds, from BEGIN to the end of COMMIT)` see every batch.
        """
        store = cls(path, batch_delay=batch_delay, max_batch=max_batch, on_batch=on_batch, on_commit=on_commit)
        loop = asyncio.get_running_loop()
        try:
            store._conn = await loop.run_in_executor(store._executor, _connect, path)
            store._conn.execute("PRAGMA busy_timeout = 0")   # from here on the writer's BEGIN waits in _begin
            store._files = await loop.run_in_executor(store._executor, StoreFiles, path)
        except BaseException:
            store._executor.shutdown(wait=False)
            raise
        store._writer = asyncio.create_task(store._write_loop(), name="smsgw-messages-writer")
        return store

    @property
    def alive(self) -> bool:
        return self._writer is not None and not self._writer.done() and not self._closing

    @property
    def refusal(self) -> str | None:
        """Why the store's files cannot take a write now (deleted, replaced, unwritable), or None.

        Set by the writer's checks (storefiles.py); while set, it is checked again here at most
        every REFUSAL_RECHECK seconds, so that the store takes messages again once the files are
        back without a write having to try first.
        """
        if self._refusal is not None and self._files is not None and time.monotonic() - self._refusal_checked > REFUSAL_RECHECK:
            self._refused(self._files.check() or self._files.still_there())
        return self._refusal

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
                       error: str | None, replies: Sequence[OutboundMessage], now: float,
                       guard: Guard | None = None, screening: Screening | None = None) -> StoredMO:
        """Store an MO with its replies and their charges, or return the one stored under its carrier id.

        `guard` stores an MO already judged (a sender that is not a phone): `replies` should be
        empty. With `screening`, the sender's history decides in this transaction whether the
        replies go, the screening's polite reply goes instead, or nothing does.
        """
        status = "queued" if mode == "async" else "answered"
        if guard is not None and not replies:
            status = "withheld"
        mt_status = "pending" if mode == "async" else "sent"
        at = _iso(now)

        def run(conn: sqlite3.Connection) -> StoredMO:
            inserted = conn.execute(
                "INSERT INTO mo_messages (id, carrier, carrier_id, sender, recipient, text, received_at,"
                " mode, command, error, status, taken_at, guard) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (carrier, carrier_id) DO NOTHING",
                (mo_id, inbound.carrier, inbound.carrier_id, inbound.sender, inbound.to, inbound.text,
                 inbound.received_at.isoformat(), mode, command, error, status, now,
                 guard.value if guard else None),
            ).rowcount
            if not inserted:
                return _load_mo(conn, inbound.carrier, inbound.carrier_id)
            decided = guard
            sent = replies
            if screening is not None and decided is None:
                decided = screening.decide(_history(conn, mo_id, inbound.sender, inbound.text, now, screening))
                if decided is not None:
                    sent = [screening.instead] if decided is Guard.RATE_LIMITED else []
                    conn.execute("UPDATE mo_messages SET guard = ?, status = ? WHERE id = ?",
                                 (decided.value, status if sent else "withheld", mo_id))
            for seq, mt in enumerate(sent):
                conn.execute(
                    f"INSERT INTO mt_messages ({_MT_COLUMNS}, seq, status, created_at, next_attempt_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (mt.id, mt.mo_id, mt.in_reply_to, mt.carrier, mt.sender, mt.to, mt.text, mt.encoding,
                     mt.segments, int(mt.message_type), seq, mt_status, now, now if mode == "async" else None),
                )
                _bill(conn, "charge", mt, mt.billing.amount_vnd, at)
            return StoredMO(mo_id, inbound.carrier, inbound.carrier_id, mode, status if sent else "withheld",
                            command, error, tuple(sent), created=True,
                            guard=decided.value if decided else None)

        return await self._submit(run)

    async def store_notices(self, notices: Sequence[Notice], *, now: float) -> list[PendingMT]:
        """Queue each notice not queued before as a pending MT with its push billing row (amount 0).

        Returns the ones queued by this call; a notice whose (kind, target, occasion) is stored
        already is left out, whatever became of it.
        """
        at = _iso(now)

        def run(conn: sqlite3.Connection) -> list[PendingMT]:
            queued = []
            for notice in notices:
                mt = notice.mt
                if not conn.execute(
                    "INSERT INTO notices (kind, target, occasion, mt_id, created_at) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT DO NOTHING", (notice.kind, notice.target, notice.occasion, mt.id, now),
                ).rowcount:
                    continue
                conn.execute(
                    f"INSERT INTO mt_messages ({_MT_COLUMNS}, seq, status, created_at, next_attempt_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 'pending', ?, ?)",
                    (mt.id, mt.mo_id, mt.in_reply_to, mt.carrier, mt.sender, mt.to, mt.text, mt.encoding,
                     mt.segments, int(mt.message_type), now, now),
                )
                _bill(conn, "push", mt, 0, at)
                queued.append(PendingMT(mt, 0, now, now))
            return queued

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
            # The charge row of an MT is its billing amount (written with it, never changed), and
            # an MT is given up once (it was pending): no need to sum the ledger, which has no
            # index by MT and would be scanned whole in the writer.
            _bill(conn, "refund", mt, -mt.billing.amount_vnd, _iso(now))
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
        """Succeeds when a write reaches the disk now: one row rewritten and committed (fsync).

        Fails (Unavailable, with the reason) when the files cannot be trusted, the disk is full
        (SQLITE_FULL), the files are read-only or the database was deleted or replaced.
        """
        def run(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO store_probe (id, at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE"
                         " SET at = excluded.at", (time.time(),))

        await self._submit(run)

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
            began = time.perf_counter()
            try:   # may wait for the write lock held by another process: not on the loop
                refusal = await loop.run_in_executor(self._executor, _checked_begin, self._conn, self._files)
            except Exception as exc:
                self._fail(len(self._queue), Unavailable(f"message store: {exc}"))
                self._isolate = 0
                continue
            self._refused(refusal)
            if refusal is not None:
                self._fail(len(self._queue), Unavailable(refusal))
                self._isolate = 0
                continue
            if self._isolate:   # a batch in which an operation failed: each one alone this time
                batch = [self._queue.popleft() for _ in range(self._isolate)]
                self._isolate = 0
                results = _run_isolated(self._conn, batch)
            else:
                batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
                results = _run_together(self._conn, batch)
                if results is None:   # one failed and the transaction was rolled back: again, isolated
                    self._queue.extendleft(reversed(batch))
                    self._isolate = len(batch)
                    continue
            if self._conn.in_transaction:   # not rolled back by _run_isolated
                try:   # waits for the fsync
                    lost = await loop.run_in_executor(self._executor, _checked_commit, self._conn, self._files)
                except Exception as exc:   # nothing of the batch was written: every operation failed
                    results = [(False, Unavailable(f"message store: {exc}")) for _ in batch]
                else:
                    with contextlib.suppress(sqlite3.Error):   # the read mark (_checked_commit), on the loop
                        self._conn.execute(_READ_MARK).fetchall()   # committed into a file the path no longer names: it will not survive a restart
                    if lost is not None:
                        self._refused(lost)
                        results = [(False, Unavailable(lost)) for _ in batch]
            if self.on_batch is not None:
                self.on_batch(len(batch))
            if self.on_commit is not None:
                self.on_commit(time.perf_counter() - began)
            for operation, (ok, value) in zip(batch, results):
                if operation.future.done():
                    continue
                if ok:
                    operation.future.set_result(value)
                else:
                    operation.future.set_exception(value)

    def _refused(self, refusal: str | None) -> None:
        """Record the files' state; one log line when it changes, not one per operation."""
        self._refusal_checked = time.monotonic()
        if refusal == self._refusal:
            return
        if refusal is not None:
            log.error("message store refuses writes: messages get 503 until this is fixed", reason=refusal,
                      path=self.path)
        else:
            log.warning("message store takes writes again", path=self.path)
        self._refusal = refusal

    def _fail(self, count: int, error: Exception) -> None:
        for _ in range(count):
            operation = self._queue.popleft()
            if not operation.future.done():
                operation.future.set_exception(error)


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in _statements(_TABLES):
            conn.execute(statement)
        for table, columns in _ADDED_COLUMNS.items():
            present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            for name, declaration in columns:
                if name not in present:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {declaration}")
        for statement in _statements(_INDEXES):
            conn.execute(statement)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        conn.close()
        raise
    return conn


def _statements(script: str) -> list[str]:
    return [statement.strip() for statement in script.split(";") if statement.strip()]


# Waiting for the write lock that another gateway process holds (`serve --workers N`). SQLite's
# own busy handler sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100 ms between tries, while
# the other writer holds the lock for a millisecond or two (its batch and fsync): two workers at
# half their maximum rate then had a p99 of 136-433 ms. We try again every 0.1-1 ms instead.
LOCK_WAIT = 10.0   # seconds before the batch fails with Unavailable
_RETRY_AFTER = (0.0001, 0.0002, 0.0005, 0.001)


def _begin(conn: sqlite3.Connection) -> None:
    deadline = time.monotonic() + LOCK_WAIT
    for attempt in itertools.count():
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
        time.sleep(_RETRY_AFTER[min(attempt, len(_RETRY_AFTER) - 1)])


REFUSAL_RECHECK = 0.1   # seconds between checks of the files while they are refused


def _checked_begin(conn: sqlite3.Connection, files: StoreFiles) -> str | None:
    """BEGIN IMMEDIATE, or, when the files cannot be written safely, why not (no BEGIN then).

    Checked first because the BEGIN itself writes SQLite's shared memory (storefiles.py).
    """
    refusal = files.check()
    if refusal is None:
        _begin(conn)
    return refusal


def _checked_commit(conn: sqlite3.Connection, files: StoreFiles) -> str | None:
    """COMMIT; then None if the path still names the file committed into, else why not.

    The writer's read after the COMMIT (on the loop's thread, as the operations) leaves a read mark at the new end of the WAL in -shm, written
    here while the files were writable a moment ago: the next reader (the records lookup of
    the next MO, in this process or another worker) finds it and writes nothing to -shm, so
    it cannot fault before the next BEGIN's check. Without it, `chattr +i` after a commit
    killed a sync gateway with SIGBUS in that lookup, every time.
    """
    _commit(conn)
    return files.still_there()


_READ_MARK = "SELECT 1 FROM store_probe LIMIT 1"


def _commit(conn: sqlite3.Connection) -> None:
    try:
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _run_together(conn: sqlite3.Connection, batch: list[_Operation]) -> list[tuple[bool, Any]] | None:
    """Every operation in the open transaction, without savepoints: the common case, where none fails.

    When one raises, the transaction is rolled back and None returned: nothing of the batch is
    written, and the writer runs its operations again with `_run_isolated`.
    """
    try:
        return [(True, operation.run(conn)) for operation in batch]
    except Exception:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):   # a connection SQLite cannot roll back fails the next BEGIN
                conn.execute("ROLLBACK")
        return None


def _run_isolated(conn: sqlite3.Connection, batch: list[_Operation]) -> list[tuple[bool, Any]]:
    """Each operation in a savepoint of the open transaction: one that fails is undone alone.

    When the savepoints themselves fail (SQLite rolled the transaction back: I/O error, disk
    full), the transaction is rolled back and every operation of the batch fails.
    """
    results: list[tuple[bool, Any]] = []
    try:
        for operation in batch:
            conn.execute("SAVEPOINT operation")
            try:
                results.append((True, operation.run(conn)))
            except Exception as exc:
                conn.execute("ROLLBACK TO operation")
                results.append((False, exc))
            conn.execute("RELEASE operation")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        return [(False, Unavailable(f"message store: {exc}")) for _ in batch]
    return results


def _load_mo(conn: sqlite3.Connection, carrier: str, carrier_id: str) -> StoredMO | None:
    row = conn.execute("SELECT id, mode, status, command, error, guard FROM mo_messages WHERE carrier = ? AND"
                       " carrier_id = ?", (carrier, carrier_id)).fetchone()
    if row is None:
        return None
    mo_id, mode, status, command, error, guard = row
    mts = conn.execute(f"SELECT {_MT_COLUMNS} FROM mt_messages WHERE mo_id = ? ORDER BY seq", (mo_id,))
    return StoredMO(mo_id, carrier, carrier_id, mode, status, command, error,
                    tuple(_mt(mt) for mt in mts), created=False, guard=guard)


# The sender's recent MOs, through the index (sender, guard, taken_at): each count is a bounded
# range of that index, whatever the sender sent before.
_ANSWERED = ("SELECT count(*) FROM (SELECT 1 FROM mo_messages WHERE sender = ? AND guard IS NULL"
             " AND taken_at > ? AND id != ? LIMIT ?)")
_WARNED = "SELECT EXISTS (SELECT 1 FROM mo_messages WHERE sender = ? AND guard = ? AND taken_at > ?)"
_REPEATS = (
    "SELECT (SELECT count(*) FROM (SELECT 1 FROM mo_messages WHERE sender = :sender AND guard IS NULL"
    " AND taken_at > :since AND text = :text AND id != :id LIMIT :cap))"
    " + (SELECT count(*) FROM (SELECT 1 FROM mo_messages WHERE sender = :sender AND guard IN"
    f" ({', '.join(repr(guard.value) for guard in Guard)}) AND taken_at > :since AND text = :text LIMIT :cap))"
)


def _history(conn: sqlite3.Connection, mo_id: str, sender: str, text: str, now: float,
             screening: Screening) -> SenderHistory:
    hour_ago, minute_ago = now - screening.hour, now - screening.minute
    answered = conn.execute(_ANSWERED, (sender, hour_ago, mo_id, screening.cap)).fetchone()[0]
    warned = conn.execute(_WARNED, (sender, Guard.RATE_LIMITED.value, hour_ago)).fetchone()[0]
    repeats = conn.execute(_REPEATS, {"sender": sender, "since": minute_ago, "text": text, "id": mo_id,
                                      "cap": screening.cap}).fetchone()[0]
    return SenderHistory(answered=answered, warned=bool(warned), repeats=repeats)


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


# --- reading for reports (a plain connection: the CLI reads while a server may write) ----------

_PHONE_SENDERS = "(guard IS NULL OR guard NOT IN ('short_code', 'alphanumeric'))"
# MOs stored before `taken_at` existed have only the carrier's ISO `received_at`.
_TAKEN_AT = "coalesce(taken_at, CAST(strftime('%s', received_at) AS REAL))"


def open_reader(path: str) -> sqlite3.Connection:
    """A connection for the report functions below (the message tables are created when missing)."""
    return _connect(path)


def billing_rows_between(conn: sqlite3.Connection, start: float, end: float,
                         carrier: str | None = None) -> Iterator[BillingRow]:
    """Billing rows written in [start, end) (Unix seconds), of one carrier or all, in the order written."""
    query = ("SELECT kind, carrier, mo_id, mt_id, msisdn, amount_vnd, message_type, at FROM billing_rows"
             " WHERE at >= ? AND at < ?")
    params: tuple = (_iso(start), _iso(end))
    if carrier is not None:
        query += " AND carrier = ?"
        params += (carrier,)
    for row in conn.execute(query + " ORDER BY at, id", params):
        yield BillingRow(*row[:6], MessageType(row[6]), row[7])


def billing_totals_between(conn: sqlite3.Connection, start: float, end: float,
                           carrier: str | None = None) -> list[tuple[str, int, str, int, int]]:
    """(carrier, message_type, kind, rows, amount VND) of the billing rows written in [start, end)."""
    query = ("SELECT carrier, message_type, kind, count(*), coalesce(sum(amount_vnd), 0) FROM billing_rows"
             " WHERE at >= ? AND at < ?")
    params: tuple = (_iso(start), _iso(end))
    if carrier is not None:
        query += " AND carrier = ?"
        params += (carrier,)
    return conn.execute(query + " GROUP BY carrier, message_type, kind ORDER BY carrier, message_type, kind",
                        params).fetchall()


def mo_outcomes(conn: sqlite3.Connection, since: float | None = None) -> list[tuple[str | None, str | None, int]]:
    """(command, error, MOs) of the MOs from phones taken since `since` (Unix seconds; None: all)."""
    query = f"SELECT command, error, count(*) FROM mo_messages WHERE {_PHONE_SENDERS}"
    params: tuple = ()
    if since is not None:
        query += f" AND {_TAKEN_AT} >= ?"
        params = (since,)
    return conn.execute(query + " GROUP BY command, error ORDER BY command, error", params).fetchall()


def misunderstood_texts(conn: sqlite3.Connection, since: float | None = None,
                       window: float = 600.0) -> Iterator[tuple[str, float, str, str | None]]:
    """(MO id, taken at, text, a following text) of every MO from a phone that the language did
    not understand: once for each understood MO the same phone sent within `window` seconds
    after it (the following text), or once with None when there was none."""
    misunderstood = f"SELECT id, sender, text, {_TAKEN_AT} AS at FROM mo_messages WHERE error IS NOT NULL AND {_PHONE_SENDERS}"
    params: tuple = ()
    if since is not None:
        misunderstood += f" AND {_TAKEN_AT} >= ?"
        params = (since,)
    query = (f"SELECT m.id, m.at, m.text, n.text FROM ({misunderstood}) AS m LEFT JOIN mo_messages AS n"
             " ON n.sender = m.sender AND n.error IS NULL AND n.id != m.id"
             " AND n.taken_at > m.at AND n.taken_at <= m.at + ? ORDER BY m.id, n.taken_at")
    yield from conn.execute(query, params + (window,))
