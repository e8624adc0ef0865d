"""The insurance service: one inbound text and its sender in, one reply (with billing) out.

language (parse) -> dispatch (lookups, decision) -> replies (wording) -> gsm (encoding,
segments). The CLI's `send` and `replay` and the HTTP gateway all enter here, so that what
testers replay is exactly what carriers get.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from .billing import MessageType
from .config import Config
from .dispatch import Dispatcher
from .gsm import measure
from .language import ParseError, parse
from .records import RecordStore
from .replies import render


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
    def __init__(self, records: RecordStore, config: Config, *, today: Callable[[], date] | None = None):
        self.config = config
        self.today = today or date.today
        self.dispatcher = Dispatcher(records, config.owner_only)

    async def handle(self, text: str, sender: str) -> Outcome:
        """Answer `text` from `sender` (normalised MSISDN digits, e.g. '84912345678')."""
        today = self.today()
        command = parse(text, today=today)
        answer = await self.dispatcher.answer(command, sender, today)
        body = render(answer, unicode=self.config.unicode)
        size = measure(body)
        reply = Reply(body, size.encoding, size.segments, answer.message_type)
        if isinstance(command, ParseError):
            return Outcome(command.command, command.error, reply)
        return Outcome(command.name, None, reply)
