"""The store's error, and the operator's wording of what a database driver raised.

`StoreError` is what the store raises when a database cannot be used; its message is meant for
the operator. `explain` words an error of a backend's driver (sqlite3's, asyncpg's) that reached the
command line without being caught on the way: a second backend adds its driver's errors there.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path

from ..errors import SmsgwError


class StoreError(SmsgwError):
    """The records database cannot be used; the message is meant for the operator."""


def explain(path: str, exc: BaseException) -> str | None:
    """Why the database at `path` refused, in the operator's terms; None when `exc` is not a database error."""
    asyncpg = sys.modules.get("asyncpg")
    if asyncpg is not None and isinstance(exc, asyncpg.PostgresError):
        if isinstance(exc, asyncpg.UndefinedTableError):
            return f"PostgreSQL: {exc}: the schema is missing; run smsgw db migrate --db URL"
        return f"PostgreSQL refused: {type(exc).__name__}: {exc}"
    if not isinstance(exc, sqlite3.Error):
        return None
    if _read_only(path):
        return (f"on a read-only file system ({exc}): the message store is opened for writing "
                "(its tables are created when missing); copy the file to a writable place")
    if isinstance(exc, sqlite3.DatabaseError) and "not a database" in str(exc):
        return f"not an SQLite database ({exc})"
    return f"cannot use the database: {exc}"


def _read_only(path: str) -> bool:
    try:
        return bool(os.statvfs(Path(path).resolve().parent).f_flag & os.ST_RDONLY)
    except OSError:
        return False


class DatabaseRefused(StoreError):
    """A database file the store cannot open: its `path` and, apart, the `reason` (`explain`'s words)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason

    @classmethod
    def of(cls, path: str, error: StoreError) -> "DatabaseRefused":
        """`error` (which may begin `--db PATH: `, as pg_pool's do) as the refusal of `path`."""
        reason, prefix = str(error), f"--db {path}: "
        return cls(path, reason[len(prefix):] if reason.startswith(prefix) else reason)
