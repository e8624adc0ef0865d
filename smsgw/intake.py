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

    async def take(self, inbound: InboundMessage, *, mode: str) -> StoredMO:
        key = (inbound.carrier, inbound.carrier_id)
        first = self._in_flight.get(key)
        if first is not None:
            stored = await asyncio.shield(first)
            return replace(stored, created=False)
        future: asyncio.Future[StoredMO] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            stored = await self._answer_and_store(inbound, mode)
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

    async def _answer_and_store(self, inbound: InboundMessage, mode: str) -> StoredMO:
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
"""The carrier of the MOs `smsgw send` and an in-process `smsgw replay` take (each with a new id)."""


async def take_locally(intake: Intake, sender: str, text: str) -> StoredMO:
    """One message taken in-process as a carrier's sync MO would be: stored with its reply and its
    effect (a question numbered, an opt-out recorded), so that `send` and `replay` answer exactly
    what a carrier gets."""
    inbound = InboundMessage(LOCAL_CARRIER, new_id(), sender, intake.shortcode, text, datetime.now(timezone.utc))
    return await intake.take(inbound, mode="sync")
