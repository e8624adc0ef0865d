"""The message store's writer: group commit of its operations on one SQLite connection.

An operation is a function of the connection (sqlite_messages.py's statements); `submit` queues
it and returns a future of its result. The writer takes all operations queued while it was busy
and runs them in one transaction (one fsync). A failing operation fails alone:
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

Before each BEGIN and after each COMMIT the writer checks the files (files.py); while they
cannot be written safely, every operation fails with Unavailable and `refusal` says why.

Logs: an operation runs in the context of the request that submitted it (its structlog context
variables: `request_id`, `mo_id`), so a line logged while it runs carries them; a line about a
whole batch (the files refused, a BEGIN or COMMIT that failed) lists the `request_ids` of the
operations it failed, so the operator can go from a carrier's request id to the store's line.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

from ..errors import Unavailable
from ..logs import get_logger
from .files import StoreFiles
from .sqlite_tables import connect

log = get_logger(component="messages")

T = TypeVar("T")


@dataclass
class _Operation:
    run: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future
    context: contextvars.Context   # the submitter's: its log context (request_id, mo_id)
    heavy: bool = False

    def __call__(self, conn: sqlite3.Connection) -> Any:
        return self.context.run(self.run, conn)


LOGGED_IDS = 20   # request ids listed at most on one line about a batch


def _request_ids(operations: Any) -> list[str]:
    """The request ids of the first LOGGED_IDS `operations` that have one."""
    ids = []
    for operation in operations:
        request_id = operation.context.run(structlog.contextvars.get_contextvars).get("request_id")
        if request_id is not None:
            ids.append(request_id)
            if len(ids) == LOGGED_IDS:
                break
    return ids


class GroupCommitWriter:
    """Runs operations on one connection, a batch per transaction; `await GroupCommitWriter.open(path)`."""

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
        self._refusal: str | None = None   # why the files cannot be written now (files.py)
        self._refusal_checked = 0.0
        self._task: asyncio.Task | None = None

    @classmethod
    async def open(cls, path: str, *, batch_delay: float = 0.0, max_batch: int = 512,
                   on_batch: Callable[[int], None] | None = None,
                   on_commit: Callable[[float], None] | None = None) -> "GroupCommitWriter":
        """Open the file (creating the message tables when missing) and start writing.

        `batch_delay` seconds are waited before each batch is taken (0: take what is queued).
        `on_batch(size)` and `on_commit(seconds, from BEGIN to the end of COMMIT)` see every batch.
        """
        writer = cls(path, batch_delay=batch_delay, max_batch=max_batch, on_batch=on_batch, on_commit=on_commit)
        loop = asyncio.get_running_loop()
        try:
            writer._conn = await loop.run_in_executor(writer._executor, connect, path)
            writer._conn.execute("PRAGMA busy_timeout = 0")   # from here on the writer's BEGIN waits in _begin
            writer._files = await loop.run_in_executor(writer._executor, StoreFiles, path)
        except BaseException:
            writer._executor.shutdown(wait=False)
            raise
        writer._task = asyncio.create_task(writer._write_loop(), name="smsgw-messages-writer")
        return writer

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done() and not self._closing

    @property
    def refusal(self) -> str | None:
        """Why the store's files cannot take a write now (deleted, replaced, unwritable), or None.

        Set by the writer's checks (files.py); while set, it is checked again here at most
        every REFUSAL_RECHECK seconds, so that the store takes messages again once the files are
        back without a write having to try first.
        """
        if self._refusal is not None and self._files is not None and time.monotonic() - self._refusal_checked > REFUSAL_RECHECK:
            self._refused(self._files.check() or self._files.still_there())
        return self._refusal

    async def close(self) -> None:
        """Run every queued operation, commit, and close the connection."""
        if self._task is None:
            return
        self._closing = True
        self._wakeup.set()
        await self._task
        self._task = None
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._conn.close)
        self._executor.shutdown(wait=True)

    def submit(self, run: Callable[[sqlite3.Connection], T], *, heavy: bool = False) -> "asyncio.Future[T]":
        """Run `run(conn)` in the next batch's transaction. `heavy`: it takes long (an API batch of
        100,000 rows, seconds), so that batch's statements run in the writer's thread instead of on
        the event loop, which goes on serving meanwhile."""
        if self._closing or self._task is None:
            raise Unavailable("the message store is closed")
        future = asyncio.get_running_loop().create_future()
        self._queue.append(_Operation(run, future, contextvars.copy_context(), heavy))
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
                log.error("message store BEGIN failed: the waiting messages get 503", error=str(exc),
                          request_ids=_request_ids(self._queue))
                self._fail(len(self._queue), Unavailable(f"message store: {exc}"))
                self._isolate = 0
                continue
            self._refused(refusal, self._queue)
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
                if any(operation.heavy for operation in batch):
                    results = await loop.run_in_executor(self._executor, _run_together, self._conn, batch)
                else:
                    results = _run_together(self._conn, batch)
                if results is None:   # one failed and the transaction was rolled back: again, isolated
                    self._queue.extendleft(reversed(batch))
                    self._isolate = len(batch)
                    continue
            if self._conn.in_transaction:   # not rolled back by _run_isolated
                try:   # waits for the fsync
                    lost = await loop.run_in_executor(self._executor, _checked_commit, self._conn, self._files)
                except Exception as exc:   # nothing of the batch was written: every operation failed
                    log.error("message store COMMIT failed: the batch's messages get 503", error=str(exc),
                              request_ids=_request_ids(batch))
                    results = [(False, Unavailable(f"message store: {exc}")) for _ in batch]
                else:
                    with contextlib.suppress(sqlite3.Error):   # the read mark (_checked_commit), on the loop
                        self._conn.execute(_READ_MARK).fetchall()   # committed into a file the path no longer names: it will not survive a restart
                    if lost is not None:
                        self._refused(lost, batch)
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

    def _refused(self, refusal: str | None, failed: Any = ()) -> None:
        """Record the files' state; one log line when it changes, not one per operation (with the
        request ids of the `failed` operations that found it)."""
        self._refusal_checked = time.monotonic()
        if refusal == self._refusal:
            return
        if refusal is not None:
            log.error("message store refuses writes: messages get 503 until this is fixed", reason=refusal,
                      path=self.path, request_ids=_request_ids(failed))
        else:
            log.warning("message store takes writes again", path=self.path)
        self._refusal = refusal

    def _fail(self, count: int, error: Exception) -> None:
        for _ in range(count):
            operation = self._queue.popleft()
            if not operation.future.done():
                operation.future.set_exception(error)


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

    Checked first because the BEGIN itself writes SQLite's shared memory (files.py).
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
        return [(True, operation(conn)) for operation in batch]
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
                results.append((True, operation(conn)))
            except Exception as exc:
                conn.execute("ROLLBACK TO operation")
                results.append((False, exc))
            conn.execute("RELEASE operation")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        return [(False, Unavailable(f"message store: {exc}")) for _ in batch]
    return results
