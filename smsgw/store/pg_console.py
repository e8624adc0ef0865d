"""`ConsoleStore` on PostgreSQL: a small asyncpg pool of the console's own (pg_pool.py: a lost
database is `Unavailable`, a 503); statements are console_sql.py's with `$n` placeholders."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from .console_sql import SqlConsoleStore, numbered
from .pg_pool import connection, create_pool, transaction

POOL_SIZE = 4


class PgConsoleStore(SqlConsoleStore):
    BUCKET = "floor((({column}) + ?) / ?)::bigint"

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, url: str) -> "PgConsoleStore":
        return cls(await create_pool(url, max_size=POOL_SIZE))

    async def close(self) -> None:
        await self._pool.close()

    async def _fetch(self, query: str, params: Sequence[Any] = ()) -> list[tuple]:
        async with connection(self._pool) as conn:
            return [tuple(row) for row in await conn.fetch(numbered(query), *params)]

    async def _write(self, *statements: tuple[str, Sequence[Any]]) -> list[list[tuple]]:
        async with transaction(self._pool) as conn:
            return [[tuple(row) for row in await conn.fetch(numbered(query), *params)]
                    for query, params in statements]
