"""The console's "notices and batches" reads (CONTRACT §9): the API's batches and their progress,
the notices per kind and outcome, the opted-out phones, and what the outbox holds back.

`SendingReads` is the interface (a part of `ConsoleStore`); `SqlSendingReads` its statements,
written once for both backends (`?` placeholders, console_sql.py numbers them for PostgreSQL),
run through the console store's `_fetch`. Every statement reads a bounded range of an index
(`SENDING_INDEXES`, schema step "console sending"; the held MTs through the outbox's
`mt_messages_held`) and returns counts, never a phone number.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

LATEST_BATCHES = 20   # the batches a page lists, newest first

# The indexes these reads go through (both backends; schema.py's step "console sending"):
#   api_batches_created   the latest batches
#   notices_console       a day's notices, covering kind and MT id
SENDING_INDEXES = """
CREATE INDEX IF NOT EXISTS api_batches_created ON api_batches (created_at);
CREATE INDEX IF NOT EXISTS notices_console ON notices (created_at, kind, mt_id);
"""

# A notice's outcome, from its MT: `held` (pending, not before a time still to come), `queued`
# (pending), `failed` (given up, expired, or reported failed), `sent` (delivered or not yet reported)
NOTICE_OUTCOME = ("CASE WHEN m.status = 'pending' AND m.not_before > ? THEN 'held'"
                  " WHEN m.status = 'pending' THEN 'queued'"
                  " WHEN m.status IN ('failed', 'expired') OR m.dlr_state IN ('failed', 'expired', 'rejected')"
                  " THEN 'failed' ELSE 'sent' END")


@dataclass(frozen=True)
class BatchProgress:
    id: str
    key_name: str
    message_class: str
    created_at: float
    total: int
    counts: dict[str, int] = field(default_factory=dict)   # API status -> messages
    held: int = 0                                          # of the queued, held by a not_before to come
    released_at: float | None = None                       # when those are released (one hold a batch)


@dataclass(frozen=True)
class Hold:
    """The pending MTs of one carrier and lane held until a time to come (quiet hours, send_at)."""

    carrier: str
    lane: int
    count: int
    first_release: float
    last_release: float


class SendingReads(abc.ABC):
    @abc.abstractmethod
    async def latest_batches(self, now: float, limit: int = LATEST_BATCHES) -> list[BatchProgress]:
        """The latest `limit` API batches, newest first, with their messages counted by status and
        the queued ones held past `now`."""

    @abc.abstractmethod
    async def notice_outcomes(self, since: float, until: float, now: float) -> list[tuple[str, str, int]]:
        """(kind, outcome as NOTICE_OUTCOME, notices) of the notices created in [since, until)."""

    @abc.abstractmethod
    async def opted_out(self) -> int:
        """How many phones are opted out (BH TC)."""

    @abc.abstractmethod
    async def holds(self, now: float) -> list[Hold]:
        """The pending MTs held past `now`, per carrier and lane."""


class SqlSendingReads(SendingReads):
    @abc.abstractmethod
    async def _fetch(self, query: str, params: Sequence[Any] = ()) -> list[tuple]: ...

    async def latest_batches(self, now: float, limit: int = LATEST_BATCHES) -> list[BatchProgress]:
        limit = min(limit, LATEST_BATCHES)
        batches = await self._fetch("SELECT id, key_name, class, created_at, total FROM api_batches"
                                    " ORDER BY created_at DESC, id LIMIT ?", (limit,))
        if not batches:
            return []
        ids = [row[0] for row in batches]
        marks = ", ".join("?" for _ in ids)
        counts: dict[str, dict[str, int]] = {}
        for batch_id, status, count in await self._fetch(
                f"SELECT batch_id, status, count(*) FROM api_messages WHERE batch_id IN ({marks})"
                " GROUP BY batch_id, status", ids):
            counts.setdefault(batch_id, {})[status] = count
        # A batch's messages share one hold (its send_at or the quiet hours at the request: one
        # `not_before` for all, api_messages.py), so one queued message's MT says whether the
        # batch's queued messages are held: one look-up per batch, not one per message.
        waiting = [batch_id for batch_id in ids if counts.get(batch_id, {}).get("queued")]
        holds: dict[str, float] = {}
        if waiting:
            rows = await self._fetch(
                "SELECT b.id, (SELECT m.not_before FROM api_messages AS a JOIN mt_messages AS m ON m.id = a.id"
                " WHERE a.batch_id = b.id AND a.status = 'queued' AND m.status = 'pending' LIMIT 1)"
                f" FROM api_batches AS b WHERE b.id IN ({', '.join('?' for _ in waiting)})", waiting)
            holds = {batch_id: until for batch_id, until in rows if until is not None and until > now}
        return [BatchProgress(batch_id, key_name, message_class, created_at, total, counts.get(batch_id, {}),
                              counts.get(batch_id, {}).get("queued", 0) if batch_id in holds else 0,
                              holds.get(batch_id))
                for batch_id, key_name, message_class, created_at, total in batches]

    async def notice_outcomes(self, since: float, until: float, now: float) -> list[tuple[str, str, int]]:
        return sorted(await self._fetch(
            f"SELECT n.kind, {NOTICE_OUTCOME} AS outcome, count(*) FROM notices AS n"
            " JOIN mt_messages AS m ON m.id = n.mt_id"
            " WHERE n.created_at >= ? AND n.created_at < ? GROUP BY n.kind, outcome", (now, since, until)))

    async def opted_out(self) -> int:
        [(count,)] = await self._fetch("SELECT count(*) FROM opt_outs")
        return count

    async def holds(self, now: float) -> list[Hold]:
        rows = await self._fetch(
            "SELECT carrier, lane, count(*), min(not_before), max(not_before) FROM mt_messages"
            " WHERE status = 'pending' AND not_before IS NOT NULL AND not_before > ?"
            " GROUP BY carrier, lane", (now,))
        return sorted((Hold(*row) for row in rows), key=lambda hold: (hold.carrier, hold.lane))
