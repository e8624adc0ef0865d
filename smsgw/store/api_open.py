"""The API store on the message store the gateway (or a command) already has open: same database,
same writer (SQLite) or pool (PostgreSQL)."""

from __future__ import annotations

from .api import ApiStore
from .messages import MessageStore


async def open_api(messages: MessageStore) -> ApiStore:
    from .sqlite_messages import SqliteMessageStore

    if isinstance(messages, SqliteMessageStore):
        from .sqlite_api import SqliteApiStore

        return await SqliteApiStore.on(messages._writer.submit)
    from .pg_api import PgApiStore

    return PgApiStore(messages._pool)   # type: ignore[attr-defined]
