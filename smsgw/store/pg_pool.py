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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from ..errors import Unavailable
from .errors import StoreError

CONNECT_TIMEOUT = 5.0      # seconds to open a connection (each host of a multi-host URL)
ACQUIRE_TIMEOUT = 5.0      # seconds to wait for a pooled connection
COMMAND_TIMEOUT = 10.0     # seconds for one statement
POOL_SIZE = 10

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


async def create_pool(url: str, *, max_size: int = POOL_SIZE) -> asyncpg.Pool:
    """A pool on `url`; StoreError (for the command line) when the database cannot be reached now."""
    try:
        return await asyncpg.create_pool(url, min_size=1, max_size=max_size, timeout=CONNECT_TIMEOUT,
                                         command_timeout=COMMAND_TIMEOUT)
    except BaseException as exc:
        raise _refused(url, exc) from None


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


@asynccontextmanager
async def connection(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection; Unavailable when the database cannot be reached, or the store was
    closed (as SQLite's writer says: a request still in flight at shutdown gets a 503, not a 500)."""
    if pool.is_closing():
        raise Unavailable("the message store is closed")
    try:
        async with pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn:
            yield conn
    except BaseException as exc:
        if is_connection_error(exc):
            raise unreachable(exc) from exc
        raise


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
