"""The stored FAQ (`smsgw faq import`): tables `faq_entries` and `faq_examples`, on both backends.

One row per entry, in the order of the imported file (`position`, from 0): `id`, `question` (its
phrasings separated by `|`, as in the file) and `answer`; one row per example (`--examples`): the
entry's `id` and a citizen's `question` it answers, or an empty `id` for a question no entry
answers. Both are checked by the caller (smsgw/faq.py) before they get here. An import replaces
the whole FAQ in one transaction, and with it the examples: by default the stored examples whose
entry id is still in the new FAQ, and those of no entry, are kept (staff labelled them, `smsgw
questions answer --faq`) and the file's are added after them, one already stored (same id and
text) not twice; `keep=False` drops every stored one. A reader sees the old
FAQ or the new one, never a mix. A staff answer with an entry (`questions answer --faq`) appends
one in its own transaction (`sqlite_append_example`, `pg_append_example`). The tables are made by the schema steps `FAQ_STEP` and
`FAQ_EXAMPLES_STEP`; the caller migrates first.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiosqlite

from .errors import StoreError
from .schema import is_postgres

FaqRow = tuple[str, str, str]   # id, question, answer
ExampleRow = tuple[str, str]    # id, question

_SELECT = "SELECT id, question, answer FROM faq_entries ORDER BY position"
_SELECT_EXAMPLES = "SELECT id, question FROM faq_examples ORDER BY position"
BUSY_TIMEOUT_MS = 10_000   # waits for a gateway's write transaction on the same SQLite file


@dataclass(frozen=True)
class ExamplesKept:
    """What an import did with the examples: `kept` of the `stored` ones (their entry is still in
    the FAQ), `added` from the file (those not stored already)."""
    stored: int
    kept: int
    added: int

    @property
    def total(self) -> int:
        return self.kept + self.added


def merged_examples(stored: Sequence[ExampleRow], examples: Sequence[ExampleRow], ids: set[str],
                    keep: bool) -> tuple[list[ExampleRow], ExamplesKept]:
    """The examples an import leaves: the stored ones of entries in `ids` and those of no entry
    (id empty: a question no entry answers) when `keep`, then those of `examples` not among them."""
    kept = [tuple(row) for row in stored if row[0] in ids or not row[0]] if keep else []
    seen = set(kept)
    added = []
    for row in examples:
        if tuple(row) not in seen:
            seen.add(tuple(row))
            added.append(tuple(row))
    return kept + added, ExamplesKept(len(stored) if keep else 0, len(kept), len(added))   # type: ignore[return-value]


async def replace_faq_entries(db: str, rows: Sequence[FaqRow], examples: Sequence[ExampleRow] = (),
                              *, keep: bool = True) -> ExamplesKept:
    """Replace every stored entry of the database at `db` (`--db`) by `rows`, all or nothing, and
    its examples by those `merged_examples` gives (`keep`: the stored ones of entries in `rows`)."""
    now = time.time()
    if is_postgres(db):
        return await _pg_replace(db, rows, examples, keep, now)
    return await _sqlite_replace(db, rows, examples, keep, now)


async def read_faq_entries(db: str) -> tuple[list[FaqRow], list[ExampleRow]]:
    """The stored entries and examples, each in file order; ([], []) when none were imported."""
    if is_postgres(db):
        return await _pg_read(db)
    return await _sqlite_read(db)


_INSERT_ENTRY = "INSERT INTO faq_entries (position, id, question, answer, imported_at) VALUES ({})"
_INSERT_EXAMPLE = "INSERT INTO faq_examples (position, id, question, imported_at) VALUES ({})"


# -- SQLite ----------------------------------------------------------------------------------

async def _sqlite_replace(path: str, rows: Sequence[FaqRow], examples: Sequence[ExampleRow], keep: bool,
                          now: float) -> ExamplesKept:
    try:
        async with aiosqlite.connect(path, isolation_level=None) as conn:
            await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await conn.execute("BEGIN IMMEDIATE")
            try:
                async with conn.execute(_SELECT_EXAMPLES) as cursor:
                    stored = [tuple(row) for row in await cursor.fetchall()]
                examples, outcome = merged_examples(stored, examples, {row[0] for row in rows}, keep)
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
            return outcome
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

async def _pg_replace(url: str, rows: Sequence[FaqRow], examples: Sequence[ExampleRow], keep: bool,
                      now: float) -> ExamplesKept:
    from .pg_pool import connect_once

    conn = await connect_once(url)
    try:
        async with conn.transaction():
            # Two imports at once: the second waits for the first, then replaces its rows; a staff
            # answer adding an example (FOR SHARE of its entry) waits too, or is waited for.
            await conn.execute("LOCK TABLE faq_entries IN EXCLUSIVE MODE")
            await conn.execute("LOCK TABLE faq_examples IN EXCLUSIVE MODE")
            stored = [(row["id"], row["question"]) for row in await conn.fetch(_SELECT_EXAMPLES)]
            examples, outcome = merged_examples(stored, examples, {row[0] for row in rows}, keep)
            await conn.execute("DELETE FROM faq_entries")
            await conn.execute("DELETE FROM faq_examples")
            await conn.executemany(_INSERT_ENTRY.format("$1, $2, $3, $4, $5"),
                                   [(position, *row, now) for position, row in enumerate(rows)])
            await conn.executemany(_INSERT_EXAMPLE.format("$1, $2, $3, $4"),
                                   [(position, *row, now) for position, row in enumerate(examples)])
        return outcome
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


# -- one example, added inside a staff answer's transaction (smsgw/store/*_conversations.py) --
# The caller asks `*_has_entry` before it writes anything, and appends the example with its
# answer, so that an answer for an entry an import removed stores nothing at all.

_HAS_ENTRY = "SELECT 1 FROM faq_entries WHERE id = {}"
_APPEND_EXAMPLE = ("INSERT INTO faq_examples (position, id, question, imported_at)"
                   " SELECT COALESCE(MAX(position), -1) + 1, {}, {}, {} FROM faq_examples")


def sqlite_has_entry(conn, entry_id: str) -> bool:
    """Whether the stored FAQ has entry `entry_id` (a sqlite3 connection, the caller's transaction)."""
    return conn.execute(_HAS_ENTRY.format("?"), (entry_id,)).fetchone() is not None


def sqlite_append_example(conn, entry_id: str, question: str, now: float) -> None:
    """Store `question` as the last example of entry `entry_id` (the caller's transaction)."""
    conn.execute(_APPEND_EXAMPLE.format("?", "?", "?"), (entry_id, question, now))


async def pg_has_entry(conn, entry_id: str) -> bool:
    """`sqlite_has_entry` on PostgreSQL (an asyncpg connection in a transaction): the entry's row
    held (FOR SHARE) to the end of it, so that an import waits for the answer, or the answer for it."""
    return await conn.fetchrow(_HAS_ENTRY.format("$1") + " FOR SHARE", entry_id) is not None


async def pg_append_example(conn, entry_id: str, question: str, now: float) -> None:
    """`sqlite_append_example` on PostgreSQL: positions taken one writer at a time."""
    await conn.execute("LOCK TABLE faq_examples IN SHARE ROW EXCLUSIVE MODE")
    await conn.execute(_APPEND_EXAMPLE.format("$1", "$2", "$3"), entry_id, question, now)
