"""`ConsoleStore` on the SQLite file: one aiosqlite connection of the console's own (WAL: its
reads never wait for the gateway's writer; its few writes, a login or an audit line, take the
write lock for one short transaction, waiting up to busy_timeout)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from typing import Any

import aiosqlite

from .console_sql import SqlConsoleStore
from .errors import DatabaseRefused, explain


class SqliteConsoleStore(SqlConsoleStore):
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._writing = asyncio.Lock()   # one transaction at a time on the connection

    @classmethod
    async def open(cls, path: str) -> "SqliteConsoleStore":
        try:
            conn = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise DatabaseRefused(path, explain(path, exc)) from exc
        await conn.execute("PRAGMA busy_timeout = 10000")
        return cls(conn)

    async def close(self) -> None:
        await self._conn.close()

    async def _fetch(self, query: str, params: Sequence[Any] = ()) -> list[tuple]:
        async with self._conn.execute(query, tuple(params)) as cursor:
            return [tuple(row) for row in await cursor.fetchall()]

    async def _write(self, *statements: tuple[str, Sequence[Any]]) -> list[list[tuple]]:
        results = []
        async with self._writing:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                for query, params in statements:
                    async with self._conn.execute(query, tuple(params)) as cursor:
                        results.append([tuple(row) for row in await cursor.fetchall()])
                await self._conn.execute("COMMIT")
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise
        return results
