"""`smsgw db backup`: a consistent copy of the SQLite store while the gateway writes to it.

SQLite's online backup API (`sqlite3.Connection.backup`) copies the database `PAGES` pages at a
time, sleeping `PAUSE` seconds between steps, so the gateway's writer keeps taking MOs. Each
step holds a read lock only; a write from another connection restarts the copy from its first
page (it would otherwise mix two states), so under a steady load the copy of a large store is
made from one of the snapshots it saw, never a mix. The copy is written to `TARGET.partial` and
renamed over TARGET once complete (and fsynced), so a TARGET that exists is always whole; it is
a rollback-journal file (no -wal beside it) that `smsgw serve --db TARGET` opens as it is.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

PAGES = 1_024          # pages a step (4 MiB of 4 KiB pages)
PAUSE = 0.005          # s between steps


def backup_sqlite(source: str, target: str, *, pages: int = PAGES, pause: float = PAUSE) -> int:
    """Copy the database `source` to the file `target` (replaced if it exists); its size in bytes."""
    partial = Path(f"{target}.partial")
    partial.unlink(missing_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        src.execute("PRAGMA busy_timeout = 10000")
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst, pages=pages, sleep=pause)
            dst.execute("PRAGMA journal_mode = DELETE")   # one self-contained file
            problem = dst.execute("PRAGMA quick_check").fetchone()[0]
            if problem != "ok":
                raise sqlite3.DatabaseError(f"the copy fails its check: {problem}")
        finally:
            dst.close()
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        src.close()
    with open(partial, "rb") as copy:
        os.fsync(copy.fileno())
    os.replace(partial, target)
    directory = os.open(Path(target).parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return Path(target).stat().st_size
