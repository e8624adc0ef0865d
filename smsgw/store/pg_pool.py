"""The PostgreSQL connections of the store: an asyncpg pool on the event loop, and what its errors mean.

asyncpg talks PostgreSQL's protocol on the event loop: no thread hand-off. Every operation takes
a pooled connection for one short transaction. When the database cannot be reached (refused,
reset, shut down, a standby not yet promoted behind a multi-host URL) the operation fails with
`Unavailable` (503 with Retry-After at the gateway): that mapping is done here, once, for every
PostgreSQL module of the store. A broken pooled connection is dropped by the pool; the next
acquire connects again through the URL, to whichever host is writable: service resumes by
itself when the database returns.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from ..errors import Unavailable
from .errors import StoreError

CONNECT_TIMEOUT = 5.0      # seconds to open a connection (each host of a multi-host URL)
ACQUIRE_TIMEOUT = 5.0      # seconds to wait for a pooled connection
COMMAND_TIMEOUT = 10.0     # seconds for one statement
POOL_SIZE = 10
# Every statement planned for the tables as they are when it runs (`create_pool`'s default). With
# PostgreSQL's default, a prepared statement's sixth run and every later one on its connection
# reuse one generic plan, made for the table sizes of that moment: the store's statements are
# prepared in a new database's first seconds, and a plan made for a nearly empty mt_messages read
# the whole table for every batch of MTs marked sent until autovacuum's first ANALYZE (measured
# on a new database: 10 ms for 46 MTs once the table held 10,000, against 0.5 ms; the server's CPU
# per async MO 226-307 -> 136-193 µs). Planning costs the server 0.1-0.3 ms per statement, and
# each statement serves a batch of MOs or MTs.
CUSTOM_PLANS = {"plan_cache_mode": "force_custom_plan"}

# What "the database cannot be reached now" looks like through asyncpg.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError, asyncio.TimeoutError, asyncpg.PostgresConnectionError, asyncpg.exceptions.OperatorInterventionError,
    asyncpg.ReadOnlySQLTransactionError, asyncpg.exceptions.InternalClientError,
)


def is_connection_error(exc: BaseException) -> bool:
    if isinstance(exc, CONNECTION_ERRORS):
        return True
    return isinstance(exc, asyncpg.InterfaceError) and "connection" in str(exc) and "closed" in str(exc)


def unreachable(exc: BaseException) -> Unavailable:
    """The Unavailable that a connection error of asyncpg becomes (its reason names no host secrets)."""
    return Unavailable(f"database unreachable ({type(exc).__name__}: {exc or 'timed out'})")


async def create_pool(url: str, *, max_size: int = POOL_SIZE, generic_plans: bool = False) -> Pool:
    """A pool on `url`; StoreError (for the command line) when the database cannot be reached now.
    `generic_plans`: PostgreSQL's default plan caching, for tables that do not grow while the pool
    serves (see CUSTOM_PLANS)."""
    try:
        return Pool(await asyncpg.create_pool(url, min_size=1, max_size=max_size, timeout=CONNECT_TIMEOUT,
                                              command_timeout=COMMAND_TIMEOUT, reset=_session_kept,
                                              server_settings={} if generic_plans else CUSTOM_PLANS))
    except BaseException as exc:
        raise _refused(url, exc) from None


class Pool:
    """asyncpg's pool, with the connections kept between operations.

    asyncpg's `acquire`/`release` cost about 25 µs of CPU per operation (a timeout, a shielded
    task to release, the holder's bookkeeping): as much as the statement itself, twice per MO.
    Here a connection taken from asyncpg's pool stays taken: an operation that ends well puts it
    on this pool's idle list (or hands it to the oldest operation waiting), and the next one takes
    it from there at no cost. asyncpg's pool still makes every connection (multi-host URLs,
    reconnection) and cleans up after an operation that failed or was cancelled: that connection
    goes back to it (rolled back, or dropped when broken) and a new one is taken when needed, as
    is one found closed on the idle list (the database restarted): service resumes by itself.
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._size = pool.get_max_size()
        self._idle: list[asyncpg.Connection] = []
        self._taken = 0                       # connections taken from asyncpg's pool: idle here or in use
        self._waiters: collections.deque[asyncio.Future[asyncpg.Connection | None]] = collections.deque()
        self._closing = False

    def is_closing(self) -> bool:
        return self._closing or self._pool.is_closing()

    async def close(self) -> None:
        self._closing = True
        while self._waiters:
            self._waiters.popleft().cancel()
        idle, self._idle = self._idle, []
        for conn in idle:
            await self.give_back(conn)
        await self._pool.close()

    async def take(self) -> asyncpg.Connection:
        """A connection for one operation: `put` it back when the operation succeeded, else `give_back`."""
        while self._idle:
            conn = self._idle.pop()
            if not broken(conn):
                return conn
            await self.give_back(conn)
        async with asyncio.timeout(ACQUIRE_TIMEOUT):
            return await self._wait()

    async def _wait(self) -> asyncpg.Connection:
        while True:
            if self._closing:
                raise Unavailable("the message store is closed")
            if self._taken < self._size:
                self._taken += 1
                try:
                    return await self._pool.acquire()
                except BaseException:
                    self._taken -= 1
                    self._wake(None)
                    raise
            waiter: asyncio.Future[asyncpg.Connection | None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                conn = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled() and waiter.result() is not None:
                    self.put(waiter.result())   # handed over as this wait was cancelled: to the next one
                elif not waiter.done():
                    self._waiters.remove(waiter)
                raise
            if conn is None:          # a connection went back to asyncpg's pool: room to take one
                continue
            if not broken(conn):
                return conn
            await self.give_back(conn)

    def put(self, conn: asyncpg.Connection) -> None:
        """A connection whose operation succeeded (no transaction left open): to the oldest waiter, or idle."""
        if not self._wake(conn):
            self._idle.append(conn)

    async def give_back(self, conn: asyncpg.Connection) -> None:
        """Return a connection to asyncpg's pool, which rolls back what was left open, waits for a
        cancelled statement and drops a broken connection (the next `take` connects again); one
        asyncpg took back by itself when it closed is only counted out."""
        self._taken -= 1
        try:
            await self._pool.release(conn)
        finally:
            self._wake(None)

    def _wake(self, conn: asyncpg.Connection | None) -> bool:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return True
        return False


async def _session_kept(conn: asyncpg.Connection) -> None:
    """What a pooled connection needs when it goes back to the pool: nothing beyond what asyncpg
    always does (a transaction left open is rolled back, listeners removed). asyncpg's default
    sends a reset query (UNLISTEN *, RESET ALL, CLOSE ALL, advisory unlock): a round trip per
    operation for state the store never leaves on a pooled connection (its LISTEN, session
    locks and cursors are on connections of their own; advisory locks are transaction-level)."""


async def connect_once(url: str) -> asyncpg.Connection:
    """One connection on `url` (migrations, the schema check); StoreError when it cannot be made."""
    try:
        return await asyncpg.connect(url, timeout=CONNECT_TIMEOUT, command_timeout=COMMAND_TIMEOUT)
    except BaseException as exc:
        raise _refused(url, exc) from None


def _refused(url: str, exc: BaseException) -> BaseException:
    from .schema import shown

    if isinstance(exc, (asyncpg.PostgresError, *CONNECTION_ERRORS, ValueError)) or is_connection_error(exc):
        return StoreError(f"--db {shown(url)}: cannot connect to PostgreSQL ({type(exc).__name__}: {exc})")
    return exc


def broken(conn: asyncpg.Connection) -> bool:
    """Whether a connection taken from asyncpg's pool was closed: when its connection closes
    (the server gone), asyncpg returns it to its pool by itself and its proxy answers nothing."""
    try:
        return conn.is_closed()
    except asyncpg.InterfaceError:   # "released back to the pool"
        return True


class connection:
    """`async with connection(pool) as conn`: a pooled connection for one operation; Unavailable
    when the database cannot be reached, or the store was closed (as SQLite's writer says: a
    request still in flight at shutdown gets a 503, not a 500). A class rather than a generator:
    this is on every operation's path."""

    __slots__ = ("_pool", "_conn")

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def __aenter__(self) -> asyncpg.Connection:
        if self._pool.is_closing():
            raise Unavailable("the message store is closed")
        try:
            self._conn = await self._pool.take()
        except BaseException as exc:
            if is_connection_error(exc):
                raise unreachable(exc) from exc
            raise
        return self._conn

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        traceback: object) -> None:
        conn = self._conn
        if exc is None and not broken(conn) and not conn.is_in_transaction() and not self._pool.is_closing():
            self._pool.put(conn)
            return
        try:
            await self._pool.give_back(conn)
        except BaseException as failed:
            if exc is None:   # else the operation's own error is the one to raise
                if is_connection_error(failed):
                    raise unreachable(failed) from failed
                raise
        if exc is not None and is_connection_error(exc):
            raise unreachable(exc) from exc


@asynccontextmanager
async def transaction(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """One transaction on a pooled connection, committed when the block ends.

    Unavailable when the database cannot be reached, also when the connection breaks during
    COMMIT (its outcome unknown): the caller acknowledges nothing, and the carrier's retry finds
    the MO stored or not, never half.
    """
    async with connection(pool) as conn:
        async with conn.transaction():
            yield conn
