"""The FAQ kept in the database: `smsgw faq import FILE [--examples EXAMPLES] --db DB` writes it,
the gateway loads it.

An import reads and checks the whole file first (`Faq.from_csv`: CSV `id,question,answer`, UTF-8,
every refusal `file:line: reason`), and the examples file when given (CSV `id,question`: citizens'
questions that staff labelled with the entry answering them, each `id` an entry of the file), so
a bad file changes nothing, not even an absent database file; then it migrates the database and
replaces the stored FAQ as a whole. The stored examples whose entry id is still in the new FAQ
are kept (staff labelled them: `smsgw questions answer --faq`), the others dropped, and the
examples file's are added (one stored already, same id and text, not twice); with
`--replace-examples` every stored example goes, the file's alone remain. `load_faq` builds the
matcher from what is stored, or None when nothing was imported (every `BH HOI` question then
goes to staff).

A running gateway keeps its matcher up to date (`keep_faq_fresh`): every minute it reads the
stored FAQ again (41 entries and a few hundred examples: one small read), and when an import or
a staff label (`questions answer --faq`, the console's suggestion) changed it, builds the new
matcher in a thread and swaps it in; a question matched meanwhile uses the old one. Every gateway
on a database does the same, so a label reaches all of them within the minute, no restart needed.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from .faq import Faq, FaqEntry, FaqExample
from .logs import get_logger
from .store import migrate
from .store.faq_entries import ExamplesKept, read_faq_entries, replace_faq_entries


async def import_faq(path: str | os.PathLike[str], db: str, examples: str | os.PathLike[str] | None = None, *,
                     keep_examples: bool = True) -> tuple[Faq, ExamplesKept]:
    """Check the file at `path` (and the examples file `examples`) and make them the stored FAQ
    of `db` (`--db`), with the stored examples of its entries unless not `keep_examples`; the
    FAQ read from the files, and what became of the examples.

    FaqImportError (nothing stored) for a bad file; StoreError when the database cannot be used."""
    faq = Faq.from_csv(path, examples)
    await migrate(db)
    kept = await replace_faq_entries(db, [(entry.id, entry.question, entry.answer) for entry in faq.entries],
                                     [(example.id, example.question) for example in faq.examples],
                                     keep=keep_examples)
    return faq, kept


log = get_logger(component="faq")
REFRESH_SECONDS = 60.0


def _built(rows, examples) -> Faq | None:
    return Faq([FaqEntry(*row) for row in rows], [FaqExample(*row) for row in examples]) if rows else None


async def load_faq(db: str) -> Faq | None:
    """The FAQ stored in `db` (`--db`), ready to match; None when none was imported. Built in a
    thread, as a reload is: with a thousand examples its classifier takes seconds to train."""
    return await asyncio.to_thread(_built, *await read_faq_entries(db))


async def keep_faq_fresh(db: str, swap: Callable[[Faq | None], None], stop: asyncio.Event, *,
                         every: float = REFRESH_SECONDS) -> None:
    """Until `stop`: every `every` seconds, read the stored FAQ of `db`; when it differs from the
    last one read (the first read is the baseline: the gateway loaded that one at its start),
    build its matcher in a thread and hand it to `swap`. A failed read is logged and tried again."""
    seen = None
    while True:
        try:
            stored = await read_faq_entries(db)
            if seen is not None and stored != seen:
                swap(await asyncio.to_thread(_built, *stored))
                log.info("faq reloaded", entries=len(stored[0]), examples=len(stored[1]))
            seen = stored
        except Exception as exc:   # the database unreachable for now: the current matcher stays
            log.warning("faq not read, the current one stays", error=str(exc) or type(exc).__name__)
        try:
            await asyncio.wait_for(stop.wait(), every)
            return
        except TimeoutError:
            pass
