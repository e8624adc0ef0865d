"""Keyword routing on a shared short code: the first word of a message chooses the service.

`BH` and the help words belong to the built-in insurance service. A keyword of the `[routes]`
table is answered by another service: forwarded to its URL (the MO as form fields `from`, `to`,
`text`, `keyword`, like Kannel's get-url; a 2xx response body is the reply) or answered with a
fixed text. A forwarded service that times out, fails (non-2xx, connection error) or answers
with an empty body gets the citizen a polite "service busy" reply, refunded. Any other keyword
keeps the `unknown_keyword` reply of the insurance service.
"""

from __future__ import annotations

import asyncio

import aiohttp

from .answers import Answer, BusyAnswer, RoutedAnswer
from .billing import MessageType
from .config import RouteConfig
from .normalize import normalize

MAX_RESPONSE = 64 * 1024


def first_word(text: str) -> str:
    """The keyword of a message as routing sees it: its first word, normalised."""
    return normalize(text).partition(" ")[0]


class Router:
    """Answers the messages of routed keywords; `match` says whether a message is one."""

    def __init__(self, routes: dict[str, RouteConfig], shortcode: str,
                 session: aiohttp.ClientSession | None = None):
        self.routes = routes
        self.shortcode = shortcode
        self.session = session

    def match(self, text: str) -> RouteConfig | None:
        if not self.routes:
            return None
        return self.routes.get(first_word(text))

    async def answer(self, route: RouteConfig, text: str, sender: str) -> Answer:
        message_type = MessageType(route.billing)
        if route.text is not None:
            return RoutedAnswer(route.keyword, route.text, message_type)
        body = await self._forward(route, text, sender)
        if not body:
            return BusyAnswer(route.keyword)
        return RoutedAnswer(route.keyword, body, message_type)

    async def _forward(self, route: RouteConfig, text: str, sender: str) -> str | None:
        form = {"from": sender, "to": self.shortcode, "text": text, "keyword": route.keyword}
        timeout = aiohttp.ClientTimeout(total=route.timeout)
        try:
            if self.session is None:
                async with aiohttp.ClientSession() as session:
                    return await self._post(session, route.url, form, timeout)
            return await self._post(self.session, route.url, form, timeout)
        except (aiohttp.ClientError, asyncio.TimeoutError, UnicodeDecodeError):
            return None

    @staticmethod
    async def _post(session: aiohttp.ClientSession, url: str, form: dict, timeout) -> str | None:
        async with session.post(url, data=form, timeout=timeout) as response:
            if not 200 <= response.status < 300:
                return None
            raw = await response.content.read(MAX_RESPONSE)
            return raw.decode(response.charset or "utf-8", errors="replace").strip()
