"""The stored FAQ (`smsgw faq import`): table `faq_entries`, on both backends.

One row per entry, in the order of the imported file (`position`, from 0): `id`, `question` (its
phrasings separated by `|`, as in the file) and `answer`, checked by the caller (smsgw/faq.py)
before they get here. An import replaces the whole FAQ in one transaction: the entries of the
previous file are gone, and a reader sees the old FAQ or the new one, never a mix. The table is
made by schema step 2 (`FAQ_STEP`); the caller migrates first.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import aiosqlite

from .errors import StoreError
from .schema import is_postgres

FaqRow = tuple[str, str, str]   # id, question, answer

_SELECT = "SELECT id, question, answer FROM faq_entries ORDER BY position"
BUSY_TIMEOUT_MS = 10_000   # waits for a gateway's write transaction on the same SQLite file


async def replace_faq_entries(db: str, rows: Sequence[FaqRow]) -> None:
    """Replace every stored entry of the database at `db` (`--db`) by `rows`, all or nothing."""
    now = time.time()
    if is_postgres(db):
        await _pg_replace(db, rows, now)
    else:
        await _sqlite_replace(db, rows, now)


async def read_faq_entries(db: str) -> list[FaqRow]:
    """The stored entries in file order; [] when none were imported."""
    if is_postgres(db):
        return await _pg_read(db)
    return await _sqlite_read(db)


# -- SQLite ----------------------------------------------------------------------------------

async def _sqlite_replace(path: str, rows: Sequence[FaqRow], now: float) -> None:
    try:
        async with aiosqlite.connect(path, isolation_level=None) as conn:
            await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await conn.execute("BEGIN IMMEDIATE")
            try:
                await conn.execute("DELETE FROM faq_entries")
                await conn.executemany(
                    "INSERT INTO faq_entries (position, id, question, answer, imported_at) VALUES (?, ?, ?, ?, ?)",
                    [(position, *row, now) for position, row in enumerate(rows)])
                await conn.execute("COMMIT")
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
    except aiosqlite.Error as error:
        raise StoreError(f"{path}: cannot store the FAQ: {error}") from error


async def _sqlite_read(path: str) -> list[FaqRow]:
    try:
        async with aiosqlite.connect(f"file:{path}?mode=ro", uri=True) as conn:
            await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            async with conn.execute(_SELECT) as cursor:
                return [tuple(row) for row in await cursor.fetchall()]   # type: ignore[misc]
    except aiosqlite.Error as error:
        raise StoreError(f"{path}: cannot read the FAQ: {error}") from error


# -- PostgreSQL ------------------------------------------------------------------------------

async def _pg_replace(url: str, rows: Sequence[FaqRow], now: float) -> None:
    from .pg_pool import connect_once

    conn = await connect_once(url)
    try:
        async with conn.transaction():
            # Two imports at once: the second waits for the first, then replaces its rows.
            await conn.execute("LOCK TABLE faq_entries IN EXCLUSIVE MODE")
            await conn.execute("DELETE FROM faq_entries")
            await conn.executemany(
                "INSERT INTO faq_entries (position, id, question, answer, imported_at) VALUES ($1, $2, $3, $4, $5)",
                [(position, *row, now) for position, row in enumerate(rows)])
    finally:
        await conn.close()


async def _pg_read(url: str) -> list[FaqRow]:
    from .pg_pool import connect_once

    conn = await connect_once(url)
    try:
        return [(row["id"], row["question"], row["answer"]) for row in await conn.fetch(_SELECT)]
    finally:
        await conn.close()
