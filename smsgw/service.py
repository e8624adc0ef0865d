"""The insurance service: one inbound text and its sender in, one reply (with billing) out.

language (parse) -> dispatch (lookups, decision) -> replies (wording) -> gsm (encoding,
segments). The CLI's `send` and `replay` and the HTTP gateway all enter here, so that what
testers replay is exactly what carriers get.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import aiohttp

from .billing import MessageType
from .config import Config
from .dispatch import Dispatcher
from .gsm import measure
from .language import ParseError, parse, vietnam_today
from .store import RecordStore
from .replies import render
from .routing import Router


@dataclass(frozen=True)
class Reply:
    text: str
    encoding: str        # "gsm7" or "ucs2"
    segments: int
    message_type: MessageType


@dataclass(frozen=True)
class Outcome:
    command: str | None  # QT, HS, THE, HELP; for a parse error the command recognised, if any
    error: str | None    # a CONTRACT §1 error code, or None when understood
    reply: Reply


class Service:
    def __init__(self, records: RecordStore, config: Config, *, today: Callable[[], date] | None = None,
                 session: aiohttp.ClientSession | None = None):
        """`session` is the HTTP client for routed keywords (one per request when None);
        `today` gives the day (default: today in Vietnam, which decides the current month)."""
        self.config = config
        self.today = today or vietnam_today
        self.route_keywords = frozenset(config.routes)
        self.dispatcher = Dispatcher(records, config.owner_only)
        self.router = Router(config.routes, config.shortcode, session)

    async def handle(self, text: str, sender: str) -> Outcome:
        """Answer `text` from `sender` (normalised MSISDN digits, e.g. '84912345678')."""
        route = self.router.match(text)
        if route is not None:
            answer = await self.router.answer(route, text, sender)
            return Outcome(route.keyword, None, self._reply(answer))
        today = self.today()
        command = parse(text, today=today, routes=self.route_keywords)
        answer = await self.dispatcher.answer(command, sender, today)
        if isinstance(command, ParseError):
            return Outcome(command.command, command.error, self._reply(answer))
        return Outcome(command.name, None, self._reply(answer))

    def _reply(self, answer) -> Reply:
        body = render(answer, unicode=self.config.unicode)
        size = measure(body)
        return Reply(body, size.encoding, size.segments, MessageType(answer.message_type))
