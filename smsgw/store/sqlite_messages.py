"""The message store on SQLite: `MessageStore`'s operations as SQL on the records database file.

The tables are in sqlite_tables.py. Each operation is a function of the connection, run by the
group-commit writer (writer.py) inside the transaction of its batch: a few microseconds of
statements on the event loop's thread, between the writer's BEGIN and COMMIT.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..billing import MessageType
from ..phones import mask
from ..wire import DeliveryReport, DeliveryState, InboundMessage, OutboundMessage
from . import sqlite_conversations
from .messages import (BillingRow, Effect, Guard, MessageStore, MTState, Notice, PendingMT, Question, Screening,
                       SenderHistory, StaffAnswer, StoredMO, stored_statuses)
from .sqlite_pacing import SqlitePacing
from .sqlite_tables import iso_time as _iso
from .writer import GroupCommitWriter

_MT_COLUMNS = "id, mo_id, in_reply_to, carrier, sender, recipient, text, encoding, segments, message_type"


class SqliteMessageStore(MessageStore):
    """The message tables in the records database file; open with `await SqliteMessageStore.open(path)`."""

    def __init__(self, writer: GroupCommitWriter) -> None:
        self.path = writer.path
        self._writer = writer
        self._submit = writer.submit

    @classmethod
    async def open(cls, path: str, *, batch_delay: float = 0.0, max_batch: int = 512,
                   on_batch: Callable[[int], None] | None = None,
                   on_commit: Callable[[float], None] | None = None) -> "SqliteMessageStore":
        """Open (creating the tables when missing) and start the writer.

        `batch_delay` seconds are waited before each batch is taken (0: take what is queued).
        `on_batch(size)` and `on_commit(seconds, from BEGIN to the end of COMMIT)` see every batch.
        """
        return cls(await GroupCommitWriter.open(path, batch_delay=batch_delay, max_batch=max_batch,
                                                on_batch=on_batch, on_commit=on_commit))

    @property
    def alive(self) -> bool:
        return self._writer.alive

    @property
    def refusal(self) -> str | None:
        return self._writer.refusal

    def pacing(self) -> SqlitePacing:
        """The carriers' MT pacing shared by the processes sending from this file (sqlite_pacing.py)."""
        return SqlitePacing(self._submit)

    async def close(self) -> None:
        await self._writer.close()

    async def store_mo(self, inbound: InboundMessage, *, mo_id: str, mode: str, command: str | None,
                       error: str | None, replies: Sequence[OutboundMessage], now: float,
                       guard: Guard | None = None, screening: Screening | None = None,
                       effect: Effect | None = None) -> StoredMO:
        status, mt_status = stored_statuses(mode, guard, replies)
        at = _iso(now)

        def run(conn: sqlite3.Connection) -> StoredMO:
            inserted = conn.execute(
                "INSERT INTO mo_messages (id, carrier, carrier_id, sender, recipient, text, received_at,"
                " mode, command, error, status, taken_at, guard) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (carrier, carrier_id) DO NOTHING",
                (mo_id, inbound.carrier, inbound.carrier_id, inbound.sender, inbound.to, inbound.text,
                 inbound.received_at.isoformat(), mode, command, error, status, now,
                 guard.value if guard else None),
            ).rowcount
            if not inserted:
                return _load_mo(conn, inbound.carrier, inbound.carrier_id)
            decided = guard
            sent = replies
            if screening is not None and decided is None:
                decided = screening.decide(_history(conn, mo_id, inbound.sender, inbound.text, now, screening))
                if decided is not None:
                    sent = [screening.instead] if decided is Guard.RATE_LIMITED else []
                    conn.execute("UPDATE mo_messages SET guard = ?, status = ? WHERE id = ?",
                                 (decided.value, status if sent else "withheld", mo_id))
            if effect is not None and effect.written(decided):
                number = sqlite_conversations.write_effect(conn, effect, mo_id=mo_id, carrier=inbound.carrier,
                                                           sender=inbound.sender, now=now)
                if number is not None and effect.numbered is not None:
                    sent = list(effect.numbered(number))
            for seq, mt in enumerate(sent):
                conn.execute(
                    f"INSERT INTO mt_messages ({_MT_COLUMNS}, seq, status, created_at, next_attempt_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (mt.id, mt.mo_id, mt.in_reply_to, mt.carrier, mt.sender, mt.to, mt.text, mt.encoding,
                     mt.segments, int(mt.message_type), seq, mt_status, now, now if mode == "async" else None),
                )
                _bill(conn, "charge", mt, mt.billing.amount_vnd, at)
            return StoredMO(mo_id, inbound.carrier, inbound.carrier_id, mode, status if sent else "withheld",
                            command, error, tuple(sent), created=True,
                            guard=decided.value if decided else None)

        return await self._submit(run)

    async def store_notices(self, notices: Sequence[Notice], *, now: float) -> list[PendingMT]:
        at = _iso(now)

        def run(conn: sqlite3.Connection) -> list[PendingMT]:
            queued = []
            stopped = sqlite_conversations.opted_out(conn, [notice.mt.to for notice in notices])
            for notice in notices:
                mt = notice.mt
                if mt.to in stopped:   # BH TC: neither stored nor sent (a run after BH DK sends it)
                    continue
                if not conn.execute(
                    "INSERT INTO notices (kind, target, occasion, mt_id, created_at) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT DO NOTHING", (notice.kind, notice.target, notice.occasion, mt.id, now),
                ).rowcount:
                    continue
                conn.execute(
                    f"INSERT INTO mt_messages ({_MT_COLUMNS}, seq, status, created_at, next_attempt_at, lane,"
                    " not_before) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 'pending', ?, ?, ?, ?)",
                    (mt.id, mt.mo_id, mt.in_reply_to, mt.carrier, mt.sender, mt.to, mt.text, mt.encoding,
                     mt.segments, int(mt.message_type), now, now, notice.lane, notice.not_before),
                )
                _bill(conn, "push", mt, 0, at)
                queued.append(PendingMT(mt, 0, now, now, lane=notice.lane, not_before=notice.not_before))
            return queued

        return await self._submit(run)

    async def find_mo(self, carrier: str, carrier_id: str) -> StoredMO | None:
        return await self._submit(lambda conn: _load_mo(conn, carrier, carrier_id))

    async def questions(self, *, open_only: bool = False) -> list[Question]:
        return await self._submit(lambda conn: sqlite_conversations.questions(conn, open_only))

    async def answer_question(self, number: str, word: Callable[[Question], OutboundMessage], *, by: str,
                              now: float, lease: float, example_of: str | None = None) -> StaffAnswer | None:
        return await self._submit(lambda conn: sqlite_conversations.answer_question(
            conn, number, word, by=by, now=now, lease_until=now + lease, insert_mt=_insert_pending, at=_iso(now),
            example_of=example_of))

    async def release(self, mt_ids: Sequence[str]) -> None:
        """End this process's leases of `mt_ids` (still pending): the gateway takes them (`claim`)."""
        await self._submit(lambda conn: conn.executemany(
            "UPDATE mt_messages SET lease_until = 0 WHERE id = ? AND status = 'pending'", [(i,) for i in mt_ids]))

    async def claim(self) -> list[PendingMT]:
        """The MTs another process stored and left (its lease released or run out), oldest first,
        each taken once: their lease is cleared as they are taken (handover.py)."""
        def run(conn: sqlite3.Connection) -> list[PendingMT]:
            rows = conn.execute(
                "UPDATE mt_messages SET lease_until = NULL WHERE status = 'pending' AND lease_until IS NOT NULL"
                f" AND lease_until < ? RETURNING {_PENDING_COLUMNS}", (time.time(),)).fetchall()
            return [_pending(row) for row in sorted(rows, key=lambda row: (row[13], row[11]))]

        return await self._submit(run)

    async def opted_out(self, phones: Sequence[str]) -> set[str]:
        return await self._submit(lambda conn: sqlite_conversations.opted_out(conn, phones))

    async def pending(self) -> list[PendingMT]:
        """Every MT still to deliver, oldest first, but those another process delivers under its
        lease (`smsgw questions answer`) until the lease runs out."""
        def run(conn: sqlite3.Connection) -> list[PendingMT]:
            # MTs left by another process are taken now, once: their lease cleared (see `claim`)
            conn.execute("UPDATE mt_messages SET lease_until = NULL WHERE status = 'pending'"
                         " AND lease_until IS NOT NULL AND lease_until < ?", (time.time(),))
            rows = conn.execute(f"SELECT {_PENDING_COLUMNS} FROM mt_messages WHERE status = 'pending'"
                                " AND lease_until IS NULL ORDER BY lane, created_at, mo_id, seq").fetchall()
            return [_pending(row) for row in rows]

        return await self._submit(run)

    async def held(self, until: float) -> list[PendingMT]:
        def run(conn: sqlite3.Connection) -> list[PendingMT]:
            rows = conn.execute(f"SELECT {_PENDING_COLUMNS} FROM mt_messages WHERE status = 'pending'"
                                " AND not_before IS NOT NULL AND not_before <= ?"
                                " AND (lease_until IS NULL OR lease_until < ?) ORDER BY not_before",
                                (until, time.time()))
            return [_pending(row) for row in rows]

        return await self._submit(run)

    async def mark_sent(self, mt_id: str) -> None:
        def run(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE mt_messages SET status = 'sent', next_attempt_at = NULL, last_error = NULL"
                         " WHERE id = ? AND status = 'pending'", (mt_id,))
            conn.execute("UPDATE mo_messages SET status = 'sent' WHERE status = 'queued' AND id ="
                         " (SELECT mo_id FROM mt_messages WHERE id = ?) AND NOT EXISTS (SELECT 1 FROM"
                         " mt_messages WHERE mo_id = mo_messages.id AND status = 'pending')", (mt_id,))

        await self._submit(run)

    async def schedule_retry(self, mt_id: str, *, attempts: int, next_attempt_at: float, error: str) -> None:
        await self._submit(lambda conn: conn.execute(
            "UPDATE mt_messages SET attempts = ?, next_attempt_at = ?, last_error = ?"
            " WHERE id = ? AND status = 'pending'", (attempts, next_attempt_at, error, mt_id)))

    async def give_up(self, mt_id: str, *, error: str, now: float) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            row = conn.execute(f"SELECT {_MT_COLUMNS} FROM mt_messages WHERE id = ? AND status = 'pending'",
                               (mt_id,)).fetchone()
            if row is None:
                return False
            mt = _mt(row)
            conn.execute("UPDATE mt_messages SET status = 'failed', next_attempt_at = NULL, last_error = ?"
                         " WHERE id = ?", (error, mt_id))
            conn.execute("UPDATE mo_messages SET status = 'failed' WHERE id = ?", (mt.mo_id,))
            # The charge row of an MT is its billing amount (written with it, never changed), and
            # an MT is given up once (it was pending): no need to sum the ledger, which has no
            # index by MT and would be scanned whole in the writer.
            _bill(conn, "refund", mt, -mt.billing.amount_vnd, _iso(now))
            return True

        return await self._submit(run)

    async def record_delivery(self, report: DeliveryReport) -> DeliveryState | None:
        def run(conn: sqlite3.Connection) -> DeliveryState | None:
            row = conn.execute("SELECT dlr_state FROM mt_messages WHERE id = ? AND carrier = ?",
                               (report.mt_id, report.carrier)).fetchone()
            if row is None:
                return None
            current = DeliveryState(row[0]) if row[0] else None
            if not report.state.advances(current):
                return current
            conn.execute("UPDATE mt_messages SET dlr_state = ?, dlr_time = ? WHERE id = ?",
                         (report.state.value, report.time.isoformat() if report.time else None, report.mt_id))
            return report.state

        return await self._submit(run)

    async def mt_state(self, mt_id: str) -> MTState | None:
        def run(conn: sqlite3.Connection) -> MTState | None:
            row = conn.execute("SELECT status, attempts, last_error, dlr_state FROM mt_messages WHERE id = ?",
                               (mt_id,)).fetchone()
            if row is None:
                return None
            return MTState(row[0], row[1], row[2], DeliveryState(row[3]) if row[3] else None)

        return await self._submit(run)

    async def billing(self, mo_id: str | None = None) -> list[BillingRow]:
        def run(conn: sqlite3.Connection) -> list[BillingRow]:
            query = "SELECT kind, carrier, mo_id, mt_id, msisdn, amount_vnd, message_type, at FROM billing_rows"
            rows = conn.execute(query + " WHERE mo_id = ? ORDER BY id", (mo_id,)) if mo_id is not None \
                else conn.execute(query + " ORDER BY id")
            return [BillingRow(*row[:6], MessageType(row[6]), row[7]) for row in rows]

        return await self._submit(run)

    async def probe(self) -> None:
        """Succeeds when a write reaches the disk now: one row rewritten and committed (fsync).

        Fails (Unavailable, with the reason) when the files cannot be trusted, the disk is full
        (SQLITE_FULL), the files are read-only or the database was deleted or replaced.
        """
        def run(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO store_probe (id, at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE"
                         " SET at = excluded.at", (time.time(),))

        await self._submit(run)


def _load_mo(conn: sqlite3.Connection, carrier: str, carrier_id: str) -> StoredMO | None:
    row = conn.execute("SELECT id, mode, status, command, error, guard FROM mo_messages WHERE carrier = ? AND"
                       " carrier_id = ?", (carrier, carrier_id)).fetchone()
    if row is None:
        return None
    mo_id, mode, status, command, error, guard = row
    mts = conn.execute(f"SELECT {_MT_COLUMNS} FROM mt_messages WHERE mo_id = ? ORDER BY seq", (mo_id,))
    return StoredMO(mo_id, carrier, carrier_id, mode, status, command, error,
                    tuple(_mt(mt) for mt in mts), created=False, guard=guard)


# The sender's recent MOs, through the index (sender, guard, taken_at): each count is a bounded
# range of that index, whatever the sender sent before.
_ANSWERED = ("SELECT count(*) FROM (SELECT 1 FROM mo_messages WHERE sender = ? AND guard IS NULL"
             " AND taken_at > ? AND id != ? LIMIT ?)")
_WARNED = "SELECT EXISTS (SELECT 1 FROM mo_messages WHERE sender = ? AND guard = ? AND taken_at > ?)"
_REPEATS = (
    "SELECT (SELECT count(*) FROM (SELECT 1 FROM mo_messages WHERE sender = :sender AND guard IS NULL"
    " AND taken_at > :since AND text = :text AND id != :id LIMIT :cap))"
    " + (SELECT count(*) FROM (SELECT 1 FROM mo_messages WHERE sender = :sender AND guard IN"
    f" ({', '.join(repr(guard.value) for guard in Guard)}) AND taken_at > :since AND text = :text LIMIT :cap))"
)


def _history(conn: sqlite3.Connection, mo_id: str, sender: str, text: str, now: float,
             screening: Screening) -> SenderHistory:
    hour_ago, minute_ago = now - screening.hour, now - screening.minute
    answered = conn.execute(_ANSWERED, (sender, hour_ago, mo_id, screening.cap)).fetchone()[0]
    warned = conn.execute(_WARNED, (sender, Guard.RATE_LIMITED.value, hour_ago)).fetchone()[0]
    repeats = conn.execute(_REPEATS, {"sender": sender, "since": minute_ago, "text": text, "id": mo_id,
                                      "cap": screening.cap}).fetchone()[0]
    return SenderHistory(answered=answered, warned=bool(warned), repeats=repeats)


def _insert_pending(conn: sqlite3.Connection, mt: OutboundMessage, now: float, lease_until: float) -> None:
    """An MT pending, leased to the process storing it until `lease_until`."""
    conn.execute(
        f"INSERT INTO mt_messages ({_MT_COLUMNS}, seq, status, created_at, next_attempt_at, lease_until)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 'pending', ?, ?, ?)",
        (mt.id, mt.mo_id, mt.in_reply_to, mt.carrier, mt.sender, mt.to, mt.text, mt.encoding,
         mt.segments, int(mt.message_type), now, now, lease_until))


def _mt(row: Sequence[Any]) -> OutboundMessage:
    return OutboundMessage(id=row[0], mo_id=row[1], in_reply_to=row[2], carrier=row[3], sender=row[4],
                           to=row[5], text=row[6], encoding=row[7], segments=row[8],
                           message_type=MessageType(row[9]))


_PENDING_COLUMNS = f"{_MT_COLUMNS}, attempts, created_at, next_attempt_at, lane, not_before"


def _pending(row: Sequence[Any]) -> PendingMT:
    """A PendingMT from a row of _PENDING_COLUMNS."""
    return PendingMT(_mt(row[:10]), row[10], row[11], row[12] or row[11], lane=row[13], not_before=row[14])


def _bill(conn: sqlite3.Connection, kind: str, mt: OutboundMessage, amount: int, at: str) -> None:
    conn.execute(
        "INSERT INTO billing_rows (kind, carrier, mo_id, mt_id, msisdn, amount_vnd, message_type, at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (kind, mt.carrier, mt.mo_id, mt.id, mask(mt.to), amount, int(mt.message_type), at),
    )
