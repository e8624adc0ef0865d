"""A recording carrier for tests, shipped beside the real ones like httpx's `MockTransport`.

It speaks the generic carrier's wire format (JSON, `X-Smsgw-Signature`) and records what it
sees: `received` MOs, `reports` (delivery reports), `sent` (every MT send attempt) and
`delivered` (the attempts that succeeded). MTs never touch the network: each goes to
`handler(mt)` (plain or async), which accepts it by returning and refuses it by raising a
`DeliveryError`; without a handler every MT is accepted.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from datetime import datetime

import aiohttp

from ..wire import CarrierRequest, DeliveryReport, InboundMessage, OutboundMessage
from .generic import GenericAdapter, GenericSettings

MTHandler = Callable[[OutboundMessage], Awaitable[None] | None]


class MockAdapter(GenericAdapter):
    def __init__(self, config: GenericSettings, *, shortcode: str, handler: MTHandler | None = None) -> None:
        super().__init__(config, shortcode=shortcode)
        self.handler = handler
        self.received: list[InboundMessage] = []
        self.reports: list[DeliveryReport] = []
        self.sent: list[OutboundMessage] = []
        self.delivered: list[OutboundMessage] = []

    def parse_inbound(self, request: CarrierRequest, *, received_at: datetime) -> InboundMessage:
        message = super().parse_inbound(request, received_at=received_at)
        self.received.append(message)
        return message

    def parse_delivery_report(self, request: CarrierRequest) -> DeliveryReport:
        report = super().parse_delivery_report(request)
        self.reports.append(report)
        return report

    async def send(self, session: aiohttp.ClientSession, mt: OutboundMessage) -> None:
        self.sent.append(mt)
        if self.handler is not None:
            result = self.handler(mt)
            if inspect.isawaitable(result):
                await result
        self.delivered.append(mt)
