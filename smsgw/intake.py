"""Exactly-once intake: one inbound message to one stored MO with its reply (CONTRACT §5).

The gateway's handlers hand every parsed `InboundMessage` to `Intake.take`, which answers it
through the service (language -> dispatch -> replies), lets `protection` decide whom to answer,
and stores the MO, its reply and the billing row in one transaction (`MessageStore.store_mo`).
In async mode the stored replies go to the outbox. A carrier id seen before gets the stored MO
back, so a carrier's retry is never answered or charged twice.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import structlog

from .billing import MessageType
from .errors import Unavailable
from .ids import new_id
from .store import MessageStore, PendingMT, StoredMO
from .outbox import Outbox
from .protection import Protection
from .replies import Reply
from .wire import InboundMessage, OutboundMessage


class Intake:
    """One inbound message to one stored MO with its reply, exactly once per (carrier, carrier id).

    A carrier id seen before gets the stored MO back (the store's unique key); one still being
    answered is waited for, so that a retry racing its original never answers or charges twice.
    """

    def __init__(self, service: Any, store: MessageStore, outbox: Outbox | None, *, shortcode: str,
                 protection: Protection | None = None) -> None:
        """`protection` decides whom to answer (protection.py); by default only phones are answered.
        `outbox` None: sync mode only (`smsgw send`, an in-process replay)."""
        self.service = service
        self.store = store
        self.outbox = outbox
        self.shortcode = shortcode
        self.protection = protection or Protection(None)
        self._in_flight: dict[tuple[str, str], asyncio.Future[StoredMO]] = {}

    async def take(self, inbound: InboundMessage, *, mode: str, outcome: Any = None) -> StoredMO:
        """Answer and store `inbound` (its `outcome` from the service when already known)."""
        key = (inbound.carrier, inbound.carrier_id)
        first = self._in_flight.get(key)
        if first is not None:
            stored = await asyncio.shield(first)
            return replace(stored, created=False)
        future: asyncio.Future[StoredMO] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            stored = await self._answer_and_store(inbound, mode, outcome)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # retrieved: waiting duplicates re-raise it, if any
            raise
        else:
            future.set_result(stored)
        finally:
            del self._in_flight[key]
        return stored

    async def _answer_and_store(self, inbound: InboundMessage, mode: str, outcome: Any = None) -> StoredMO:
        refusal = self.store.refusal
        if refusal is not None:   # before the lookups: they too write SQLite's shared memory (store/files.py)
            raise Unavailable(refusal)
        mo_id = new_id()
        guard = self.protection.sender_guard(inbound.sender)
        if guard is not None:   # a short code or a brandname: stored, never answered
            now = time.time()
            stored = await self.store.store_mo(inbound, mo_id=mo_id, mode=mode, command=None, error=None,
                                               replies=[], now=now, guard=guard)
        else:
            if outcome is None:
                outcome = await self.service.handle(inbound.text, inbound.sender)

            def reply_mt(reply: Reply) -> OutboundMessage:
                return OutboundMessage(
                    id=new_id(), mo_id=mo_id, in_reply_to=inbound.carrier_id, carrier=inbound.carrier,
                    sender=self.shortcode, to=inbound.sender, text=reply.text, encoding=reply.encoding,
                    segments=reply.segments, message_type=MessageType(reply.message_type),
                )

            mt = reply_mt(outcome.reply)
            effect = outcome.effect
            numbered = outcome.numbered
            if effect is not None and numbered is not None:   # a question: its replies once numbered
                effect = replace(effect, numbered=lambda number: [reply_mt(reply) for reply in numbered(number)])
            now = time.time()
            stored = await self.store.store_mo(inbound, mo_id=mo_id, mode=mode, command=outcome.command,
                                               error=outcome.error, replies=[mt], now=now,
                                               screening=self.protection.screening(mt), effect=effect)
        if stored.created:
            self.protection.observe(inbound.carrier, stored.mo_id, inbound.sender, stored.guard)
        if stored.created and mode == "async" and self.outbox is not None:
            request_id = structlog.contextvars.get_contextvars().get("request_id")   # for the MT's send line
            for reply_mt in stored.replies:
                self.outbox.add(PendingMT(reply_mt, 0, now, now, request_id=request_id))
        return stored


LOCAL_CARRIER = "local"
"""The carrier of the conversation commands `smsgw send` and an in-process `smsgw replay` take."""


class LocalAnswers:
    """`smsgw send` and an in-process `smsgw replay`: each message answered as a carrier's sync MO is.

    A lookup, help or error is answered by the service alone, nothing stored (the replay's rate);
    a conversation command, whose answer is its durable effect (a question numbered, a rating, an
    opt-out), is taken through an `Intake` over the message store of `db` (opened at the first one)
    with a new id of carrier `local`, so that a question gets its number as over HTTP.
    """

    def __init__(self, service: Any, db: str, shortcode: str) -> None:
        self.service = service
        self.db = db
        self.shortcode = shortcode
        self._store: MessageStore | None = None

    async def answer(self, sender: str, text: str) -> tuple[Any, list[Any]]:
        """(the service's `Outcome`, the replies: each with text, encoding, segments, message_type)."""
        outcome = await self.service.handle(text, sender)
        if outcome.effect is None:
            return outcome, [outcome.reply]
        if self._store is None:
            from .store import open_messages

            self._store = await open_messages(self.db)
        intake = Intake(self.service, self._store, None, shortcode=self.shortcode)
        inbound = InboundMessage(LOCAL_CARRIER, new_id(), sender, self.shortcode, text, datetime.now(timezone.utc))
        stored = await intake.take(inbound, mode="sync", outcome=outcome)
        return outcome, list(stored.replies)

    async def close(self) -> None:
        if self._store is not None:
            await self._store.close()
