"""The stored FAQ (`smsgw faq import`): tables `faq_entries` and `faq_examples`, on both backends.

One row per entry, in the order of the imported file (`position`, from 0): `id`, `question` (its
phrasings separated by `|`, as in the file) and `answer`; one row per example (`--examples`): the
entry's `id` and a citizen's `question` it answers. Both are checked by the caller (smsgw/faq.py)
before they get here. An import replaces the whole FAQ, entries and examples, in one
transaction: those of the previous import are gone, and a reader sees the old FAQ or the new
one, never a mix. The tables are made by the schema steps `FAQ_STEP` and `FAQ_EXAMPLES_STEP`;
the caller migrates first.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import aiosqlite

from .errors import StoreError
from .schema import is_postgres

FaqRow = tuple[str, str, str]   # id, question, answer
ExampleRow = tuple[str, str]    # id, question

_SELECT = "SELECT id, question, answer FROM faq_entries ORDER BY position"
_SELECT_EXAMPLES = "SELECT id, question FROM faq_examples ORDER BY position"
BUSY_TIMEOUT_MS = 10_000   # waits for a gateway's write transaction on the same SQLite file


async def replace_faq_entries(db: str, rows: Sequence[FaqRow], examples: Sequence[ExampleRow] = ()) -> None:
    """Replace every stored entry and example of the database at `db` (`--db`) by `rows` and
    `examples`, all or nothing."""
    now = time.time()
    if is_postgres(db):
        await _pg_replace(db, rows, examples, now)
    else:
        await _sqlite_replace(db, rows, examples, now)


async def read_faq_entries(db: str) -> tuple[list[FaqRow], list[ExampleRow]]:
    """The stored entries and examples, each in file order; ([], []) when none were imported."""
    if is_postgres(db):
        return await _pg_read(db)
    return await _sqlite_read(db)


_INSERT_ENTRY = "INSERT INTO faq_entries (position, id, question, answer, imported_at) VALUES ({})"
_INSERT_EXAMPLE = "INSERT INTO faq_examples (position, id, question, imported_at) VALUES ({})"


# -- SQLite ----------------------------------------------------------------------------------

async def _sqlite_replace(path: str, rows: Sequence[FaqRow], examples: Sequence[ExampleRow], now: float) -> None:
    try:
        async with aiosqlite.connect(path, isolation_level=None) as conn:
            await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await conn.execute("BEGIN IMMEDIATE")
            try:
                await conn.execute("DELETE FROM faq_entries")
                await conn.execute("DELETE FROM faq_examples")
                await conn.executemany(_INSERT_ENTRY.format("?, ?, ?, ?, ?"),
                                       [(position, *row, now) for position, row in enumerate(rows)])
                await conn.executemany(_INSERT_EXAMPLE.format("?, ?, ?, ?"),
                                       [(position, *row, now) for position, row in enumerate(examples)])
                await conn.execute("COMMIT")
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
    except aiosqlite.Error as error:
        raise StoreError(f"{path}: cannot store the FAQ: {error}") from error


async def _sqlite_read(path: str) -> tuple[list[FaqRow], list[ExampleRow]]:
    try:
        async with aiosqlite.connect(f"file:{path}?mode=ro", uri=True) as conn:
            await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await conn.execute("BEGIN")   # one snapshot: the entries and the examples of one import
            async with conn.execute(_SELECT) as cursor:
                rows = [tuple(row) for row in await cursor.fetchall()]
            async with conn.execute(_SELECT_EXAMPLES) as cursor:
                examples = [tuple(row) for row in await cursor.fetchall()]
            await conn.execute("COMMIT")
            return rows, examples   # type: ignore[return-value]
    except aiosqlite.Error as error:
        raise StoreError(f"{path}: cannot read the FAQ: {error}") from error


# -- PostgreSQL ------------------------------------------------------------------------------

async def _pg_replace(url: str, rows: Sequence[FaqRow], examples: Sequence[ExampleRow], now: float) -> None:
    from .pg_pool import connect_once

    conn = await connect_once(url)
    try:
        async with conn.transaction():
            # Two imports at once: the second waits for the first, then replaces its rows.
            await conn.execute("LOCK TABLE faq_entries IN EXCLUSIVE MODE")
            await conn.execute("DELETE FROM faq_entries")
            await conn.execute("DELETE FROM faq_examples")
            await conn.executemany(_INSERT_ENTRY.format("$1, $2, $3, $4, $5"),
                                   [(position, *row, now) for position, row in enumerate(rows)])
            await conn.executemany(_INSERT_EXAMPLE.format("$1, $2, $3, $4"),
                                   [(position, *row, now) for position, row in enumerate(examples)])
    finally:
        await conn.close()


async def _pg_read(url: str) -> tuple[list[FaqRow], list[ExampleRow]]:
    from .pg_pool import connect_once

    conn = await connect_once(url)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):   # one snapshot
            rows = [(row["id"], row["question"], row["answer"]) for row in await conn.fetch(_SELECT)]
            examples = [(row["id"], row["question"]) for row in await conn.fetch(_SELECT_EXAMPLES)]
        return rows, examples
    finally:
        await conn.close()
