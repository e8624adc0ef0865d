"""The wire types: what passes between a carrier and the gateway, in both directions.

A carrier's HTTP request reaches an adapter as a `CarrierRequest` and leaves it as an
`InboundMessage` (an MO) or a `DeliveryReport` (a DLR, moving an MT along `DeliveryState`); a
reply goes out as an `OutboundMessage` (an MT) and the adapter's `CarrierResponse`. These are plain
frozen values: the store, the outbox and the notices use them without knowing any carrier's
format (that is the adapters' business: smsgw/carrier.py and smsgw/adapters/).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from .billing import Billing, MessageType


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
