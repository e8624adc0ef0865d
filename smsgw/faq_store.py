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
"""

from __future__ import annotations

import os

from .faq import Faq, FaqEntry, FaqExample
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


async def load_faq(db: str) -> Faq | None:
    """The FAQ stored in `db` (`--db`), ready to match; None when none was imported."""
    rows, examples = await read_faq_entries(db)
    return Faq([FaqEntry(*row) for row in rows], [FaqExample(*row) for row in examples]) if rows else None
