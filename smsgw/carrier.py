"""The carrier adapter interface: what the gateway needs from a carrier, and nothing about insurance.

An adapter knows one carrier's wire format, the way httpx's transports know one way of sending a
request. The gateway hands it the raw `CarrierRequest` and gets back typed values, and hands it
typed values and gets back a `CarrierResponse` (the wire types, smsgw/wire.py):

    CarrierRequest --authenticate / parse_inbound--> InboundMessage          (POST .../mo, or GET
                                                                               where `methods` allow)
    mo_id, [OutboundMessage] --render_sync / render_accepted--> CarrierResponse
    OutboundMessage --send (shared ClientSession)--> 2xx, or a DeliveryError  (async mode)
    Billing --billing_fields--> the carrier's own fields for the billing outcome
    CarrierRequest --parse_delivery_report--> DeliveryReport                  (POST or GET .../dlr)

Implementations live in `smsgw.adapters`, named in its registry (smsgw/adapters/__init__.py);
each declares its configuration keys as a `CarrierSettings` model (smsgw/settings.py), and
`load_adapter` picks one by the `adapter` key of the carrier's configuration. The base class
holds what every adapter needs: `auth = "none"`, the sender's classification, the MT request
with its errors mapped to `DeliveryError`s, the recipient check.
"""

from __future__ import annotations

import abc
import asyncio
import importlib
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar
from xml.sax.saxutils import escape

import aiohttp

from .adapters import adapter_path
from .billing import Billing
from .errors import BadRequest, PermanentDeliveryError, RequestError, TemporaryDeliveryError
from .phones import InvalidPhone, classify_sender
from .settings import CarrierSettings
from .wire import CarrierRequest, CarrierResponse, DeliveryReport, DeliveryState, InboundMessage, OutboundMessage


class CarrierAdapter(abc.ABC):
    """One carrier's wire format. Subclasses implement the abstract methods; nothing else is needed."""

    methods: ClassVar[tuple[str, ...]] = ("POST",)   # HTTP methods the carrier calls us with
    recipient_field: ClassVar[str] = "to"            # the MO field naming the number it was sent to

    settings: ClassVar[type[CarrierSettings]]          # the carrier's configuration keys and their checks

    def __init__(self, config: CarrierSettings, *, shortcode: str):
        self.config = config
        self.shortcode = shortcode
        self._our_numbers = frozenset(form for number in config.numbers or (shortcode,)
                                      for form in number_forms(number))

    @property
    def name(self) -> str:
        return self.config.name

    def authenticate(self, request: CarrierRequest) -> None:
        """Raise `Unauthorized` unless the request really comes from the carrier (any request
        does, for a carrier configured with `auth = "none"`)."""
        if self.config.auth != "none":
            self.check_credentials(request)

    @abc.abstractmethod
    def check_credentials(self, request: CarrierRequest) -> None:
        """Raise `Unauthorized` unless the request carries the carrier's credentials."""

    @abc.abstractmethod
    def parse_inbound(self, request: CarrierRequest, *, received_at: datetime) -> InboundMessage:
        """The MO in the request, or a specific `RequestError` (400, 415) saying what is wrong."""

    @abc.abstractmethod
    def render_sync(self, mo_id: str, replies: Sequence[OutboundMessage]) -> CarrierResponse:
        """The response carrying the replies, for a carrier in sync mode."""

    @abc.abstractmethod
    def render_accepted(self, mo_id: str) -> CarrierResponse:
        """The response saying the MO is stored, for a carrier in async mode."""

    @abc.abstractmethod
    async def send(self, session: aiohttp.ClientSession, mt: OutboundMessage) -> None:
        """Deliver one MT; return on a 2xx, else raise a `DeliveryError`."""

    @abc.abstractmethod
    def billing_fields(self, billing: Billing) -> dict[str, Any]:
        """The billing outcome in the carrier's own fields."""

    @abc.abstractmethod
    def parse_delivery_report(self, request: CarrierRequest) -> DeliveryReport:
        """The delivery report in the request, or a specific `RequestError`."""

    def check_recipient(self, message: InboundMessage) -> None:
        """Raise a 400 unless the MO was sent to one of our numbers: the carrier's `numbers`, else
        the gateway's short code, in any of the forms of `number_forms`."""
        if recipient_key(message.to) in self._our_numbers:
            return
        if self.config.numbers:
            ours = f"a number of carrier {self.name!r} ({', '.join(self.config.numbers)})"
        else:
            ours = f"this gateway's short code {self.shortcode}"
        shown = message.to if len(message.to) <= _SHOWN_RECIPIENT else message.to[:_SHOWN_RECIPIENT] + "..."
        raise BadRequest(f"{self.recipient_field}: {shown!r} is not {ours}", kind="wrong_recipient")

    async def call(self, session: aiohttp.ClientSession, method: str, url: str, *, url_key: str,
                   **options: Any) -> tuple[int, bytes]:
        """One MT request to the carrier (no redirects, the carrier's `timeout`): its status and
        body. A URL aiohttp cannot use is a `PermanentDeliveryError` naming `url_key`; a failed
        connection or a timeout is a `TemporaryDeliveryError` (retried)."""
        timeout = aiohttp.ClientTimeout(total=self.config.timeout)
        try:
            async with session.request(method, url, timeout=timeout, allow_redirects=False, **options) as response:
                return response.status, await response.read()
        except aiohttp.InvalidURL as exc:
            raise PermanentDeliveryError(f"{url_key} is not a usable URL: {exc}") from None
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise TemporaryDeliveryError(f"{type(exc).__name__}: {exc}".rstrip(": ")) from None

    def render_delivery_ack(self, report: DeliveryReport, state: DeliveryState | None) -> CarrierResponse:
        """The response to a delivery report; `state` is the MT's state after it (None: unknown MT)."""
        return CarrierResponse.json(200, {"id": report.mt_id, "state": state.value if state else None})

    def render_error(self, error: RequestError) -> CarrierResponse:
        return CarrierResponse.json(error.status, {"error": error.reason})

    def render_unavailable(self, reason: str) -> CarrierResponse:
        """The response to an MO the gateway cannot take now (shutting down, store failing)."""
        return CarrierResponse.json(503, {"error": f"unavailable: {reason}"})


_SHOWN_RECIPIENT = 32
_SEPARATORS = re.compile(r"[\s.\-()]")
_COUNTRY = "84"
_LONGEST_SHORT_CODE = 8


def recipient_key(raw: str) -> str:
    """An MO's recipient as comparable digits: separators, a leading '+' or '00' dropped."""
    compact = _SEPARATORS.sub("", raw)
    if compact.startswith("+"):
        return compact[1:]
    return compact[2:] if compact.startswith("00") else compact


def number_forms(number: str) -> set[str]:
    """The `recipient_key`s under which carriers deliver MOs to our `number` (digits).

    A short code (up to 8 digits) as it is or behind the country code: `8079`, `848079`
    (`+848079`, `00848079`). A long Vietnamese number in international or national form:
    `84898765432`, `0898765432`.
    """
    forms = {number}
    if len(number) <= _LONGEST_SHORT_CODE:
        forms.add(_COUNTRY + number)
    elif number.startswith(_COUNTRY):
        forms.add("0" + number[len(_COUNTRY):])
    elif number.startswith("0"):
        forms.add(_COUNTRY + number[1:])
    return forms


def sender_of(raw: str, field: str) -> str:
    """An MO's sender as stored: a phone (normalised), a short code or a brandname
    (`phones.classify_sender`), or a 400 naming the carrier's `field`."""
    try:
        return classify_sender(raw).value
    except InvalidPhone as exc:
        raise BadRequest(f"field '{field}': {exc}", kind="bad_phone") from None


def xml_text(value: str) -> str:
    """`value` escaped for XML character data, without the characters XML 1.0 cannot hold."""
    allowed = "".join(c for c in value if c in "\t\n\r" or "\x20" <= c <= "\ud7ff" or "\ue000" <= c <= "\ufffd"
                      or c >= "\U00010000")
    return escape(allowed)


def load_adapter(config: CarrierSettings, *, shortcode: str) -> CarrierAdapter:
    """The adapter named by `config.adapter` (in the registry, smsgw/adapters/__init__.py), set up for that carrier."""
    return adapter_class(config.adapter)(config, shortcode=shortcode)


def adapter_class(name: str) -> type[CarrierAdapter]:
    module_name, _, class_name = adapter_path(name).partition(":")
    return getattr(importlib.import_module(module_name), class_name)
