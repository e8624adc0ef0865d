"""The insurance service: one inbound text and its sender in, one reply (with billing) out.

language (parse) -> dispatch (lookups, decision) -> replies (wording) -> gsm (encoding,
segments). The CLI's `send` and `replay` and the HTTP gateway all enter here, so that what
testers replay is exactly what carriers get; `smsgw parse` enters at the language and prints
`parse_result`, with the reply a parse error gets from replies.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

import aiohttp

from .clock import VIETNAM, vietnam_today
from .commands import Conversation
from .config import Config
from .conversation import Conversations, conversation_fields
from .dispatch import Dispatcher
from .language import ParseError, parse
from .replies import Reply, reply
from .store import Effect, RecordStore
from .routing import Router
from .syntax_replies import syntax_reply_for

if TYPE_CHECKING:   # the FAQ loads scikit-learn: only where an FAQ is built
    from .faq import Faq


@dataclass(frozen=True)
class Outcome:
    command: str | None  # QT, HS, THE, HELP, HOI, DG, TC, DK; for a parse error the command recognised, if any
    error: str | None    # a CONTRACT §1 error code, or None when understood
    reply: Reply
    effect: Effect | None = None   # a conversation command's, written with its MO (store_mo)
    numbered: Callable[[str], list[Reply]] | None = None   # a question: its number -> its replies, in place of `reply`


class Service:
    def __init__(self, records: RecordStore, config: Config, *, today: Callable[[], date] | None = None,
                 session: aiohttp.ClientSession | None = None, faq: Faq | None = None,
                 now: Callable[[], datetime] | None = None):
        """`session` is the HTTP client for routed keywords (one per request when None);
        `today` gives the day (default: today in Vietnam, which decides the current month);
        `faq` answers questions (BH HOI) it matches with confidence; `now` is the clock of the
        working hours (default: now, Vietnam time)."""
        self.config = config
        self.today = today or vietnam_today
        self.now = now or (lambda: datetime.now(VIETNAM))
        self.conversations = Conversations(config.questions, faq, unicode=config.unicode)
        self.route_keywords = frozenset(config.routes)
        self.dispatcher = Dispatcher(records, config.owner_only)
        self.router = Router(config.routes, config.shortcode, session)

    async def handle(self, text: str, sender: str) -> Outcome:
        """Answer `text` from `sender` (normalised MSISDN digits, e.g. '84912345678')."""
        route = self.router.match(text)
        if route is not None:
            answer = await self.router.answer(route, text, sender)
            return Outcome(route.keyword, None, reply(answer, unicode=self.config.unicode))
        today = self.today()
        command = parse(text, today=today, routes=self.route_keywords)
        if isinstance(command, Conversation):
            handled = self.conversations.handle(command, self.now())
            return Outcome(command.name, None, handled.reply, handled.effect, handled.numbered)
        answer = await self.dispatcher.answer(command, sender, today)
        worded = reply(answer, unicode=self.config.unicode)
        if isinstance(command, ParseError):
            return Outcome(command.command, command.error, worded)
        return Outcome(command.name, None, worded)


@asynccontextmanager
async def open_service(db_path: str, config: Config, *, session: aiohttp.ClientSession | None = None,
                       faq: Faq | None = None) -> AsyncIterator[Service]:
    """A `Service` over the records at `db_path` (`--db`), closed on leaving."""
    from .store import open_records

    records = await open_records(db_path)
    try:
        yield Service(records, config, session=session, faq=faq)
    finally:
        await records.close()


def parse_result(text: str, today: date | None = None) -> dict:
    """The JSON object `smsgw parse` prints for one message (CONTRACT §2)."""
    result = parse(text, today=today)
    if isinstance(result, ParseError):
        return {"ok": False, "error": result.error, "reply": syntax_reply_for(result)}
    if isinstance(result, Conversation):
        return {"ok": True, "command": result.name, **conversation_fields(result)}
    kind = getattr(result, "id_kind", None)
    ident = getattr(result, "person", None) or getattr(result, "id", None) or getattr(result, "dossier", None)
    start = getattr(result, "start", None)
    end = getattr(result, "end", None)
    return {
        "ok": True, "command": result.name, "id": ident, "id_kind": kind.value if kind else None,
        "from": str(start) if start else None, "to": str(end) if end else None,
    }
