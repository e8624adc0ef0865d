"""The carrier adapter interface: what the gateway needs from a carrier, and nothing about insurance.

An adapter knows one carrier's wire format, the way httpx's transports know one way of sending a
request. The gateway hands it the raw `CarrierRequest` and gets back typed values, and hands it
typed values and gets back a `CarrierResponse`:

    CarrierRequest --authenticate / parse_inbound--> InboundMessage          (POST .../mo, or GET
                                                                               where `methods` allow)
    mo_id, [OutboundMessage] --render_sync / render_accepted--> CarrierResponse
    OutboundMessage --send (shared ClientSession)--> 2xx, or a DeliveryError  (async mode)
    Billing --billing_fields--> the carrier's own fields for the billing outcome
    CarrierRequest --parse_delivery_report--> DeliveryReport                  (POST or GET .../dlr)

Implementations live in `smsgw.adapters`; `load_adapter` picks one by the `adapter` key of the
carrier's configuration.
"""

from __future__ import annotations

import abc
import importlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, ClassVar

import aiohttp

from .billing import Billing, MessageType
from .config import CarrierConfig
from .errors import BadRequest, RequestError

ADAPTERS = {
    "generic": "smsgw.adapters.generic:GenericAdapter",
    "mock": "smsgw.adapters.mock:MockAdapter",
    "kannel": "smsgw.adapters.kannel:KannelAdapter",
    "vn-cp": "smsgw.adapters.vn_cp:VnCpAdapter",
    "twilio": "smsgw.adapters.twilio:TwilioAdapter",
}


@dataclass(frozen=True)
class CarrierRequest:
    """A carrier's HTTP request as an adapter sees it: headers, the raw body, where it came from."""

    headers: Mapping[str, str]
    content_type: str          # media type only, lower-case, e.g. "application/json"
    charset: str | None        # the content type's charset parameter, if any
    body: bytes
    method: str = "POST"
    target: str = ""           # path and query exactly as in the request line, e.g. "/carriers/k/mo?id=1"
    url: str = ""              # the URL the server saw: scheme://host[:port] + target
    peer: str | None = None    # the client's IP address (the last hop: a proxy's, behind one)

    @property
    def query(self) -> str:
        """The raw query string of `target`, without the '?'."""
        return self.target.partition("?")[2]


@dataclass(frozen=True)
class CarrierResponse:
    status: int
    body: bytes
    content_type: str = "application/json"   # media type only; the charset goes in `charset`
    headers: Mapping[str, str] = field(default_factory=dict)
    charset: str | None = None

    @classmethod
    def json(cls, status: int, data: Any) -> "CarrierResponse":
        return cls(status, json.dumps(data, ensure_ascii=False).encode())


@dataclass(frozen=True)
class InboundMessage:
    """An MO: what a citizen's phone sent, as the carrier delivered it."""

    carrier: str
    carrier_id: str            # the carrier's id for this MO, unique per carrier
    sender: str                # normalised MSISDN, e.g. "84912345678"
    to: str                    # the number it was sent to (our short code)
    text: str
    received_at: datetime


@dataclass(frozen=True)
class OutboundMessage:
    """An MT: one reply to an MO. `id` is ours and never changes, across retries and restarts."""

    id: str
    mo_id: str
    in_reply_to: str           # the carrier's id of the MO it answers
    carrier: str
    sender: str                # our short code
    to: str                    # the citizen's MSISDN
    text: str
    encoding: str              # "gsm7" or "ucs2"
    segments: int
    message_type: MessageType

    @property
    def billing(self) -> Billing:
        return Billing(self.message_type)


class DeliveryState(str, Enum):
    """Where an MT stands according to the carrier's delivery reports (DLR).

    The states are ordered by rank and an MT only ever moves to a higher rank:

        unknown (0)  <  accepted (1)  <  enroute (2)  <  delivered | failed | expired | rejected (3)

    `unknown` reports are acknowledged and change nothing. The four last states are final: the
    first final report wins and later ones are ignored. So reports may arrive out of order, be
    repeated, or name an MT we do not know (acknowledged, ignored) without error and without
    the state ever going backwards.
    """

    UNKNOWN = "unknown"
    ACCEPTED = "accepted"
    ENROUTE = "enroute"
    DELIVERED = "delivered"
    FAILED = "failed"
    EXPIRED = "expired"
    REJECTED = "rejected"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def advances(self, current: "DeliveryState | None") -> bool:
        """True when a report of this state moves an MT that is in `current`."""
        return self.rank > (current.rank if current is not None else 0)


_RANKS = {
    DeliveryState.UNKNOWN: 0, DeliveryState.ACCEPTED: 1, DeliveryState.ENROUTE: 2,
    DeliveryState.DELIVERED: 3, DeliveryState.FAILED: 3, DeliveryState.EXPIRED: 3,
    DeliveryState.REJECTED: 3,
}


@dataclass(frozen=True)
class DeliveryReport:
    """A carrier's word on one MT. Carriers that name the MO instead (vn-cp's `Request_ID`) leave
    `mt_id` empty and set `in_reply_to`, the carrier's id of that MO; the gateway finds the MT."""

    carrier: str
    mt_id: str
    state: DeliveryState
    time: datetime | None      # when the carrier saw the state, if it said so
    in_reply_to: str | None = None


class CarrierAdapter(abc.ABC):
    """One carrier's wire format. Subclasses implement the abstract methods; nothing else is needed."""

    methods: ClassVar[tuple[str, ...]] = ("POST",)   # HTTP methods the carrier calls us with
    recipient_field: ClassVar[str] = "to"            # the MO field naming the number it was sent to

    def __init__(self, config: CarrierConfig, *, shortcode: str):
        self.config = config
        self.shortcode = shortcode
        self._our_numbers = frozenset(form for number in config.numbers or (shortcode,)
                                      for form in number_forms(number))

    @property
    def name(self) -> str:
        return self.config.name

    @abc.abstractmethod
    def authenticate(self, request: CarrierRequest) -> None:
        """Raise `Unauthorized` unless the request really comes from the carrier."""

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


def load_adapter(config: CarrierConfig, *, shortcode: str) -> CarrierAdapter:
    """The adapter named by `config.adapter`, set up for that carrier."""
    module_name, _, class_name = ADAPTERS[config.adapter].partition(":")
    adapter_class = getattr(importlib.import_module(module_name), class_name)
    return adapter_class(config, shortcode=shortcode)
