"""The billing outcome that travels with every reply, from the dispatcher to the carrier adapter."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

PRICE_VND = 1_000


class MessageType(IntEnum):
    FREE = 0             # help
    CHARGED = 1          # an answer was given
    PUSH = 3             # operator-initiated notice, not charged to the citizen
    REFUND_SYNTAX = 21   # wrong syntax (every parse error, unknown keyword too)
    REFUND_CONTENT = 22  # nothing found, or not the owner's phone


@dataclass(frozen=True)
class Billing:
    message_type: MessageType

    @property
    def amount_vnd(self) -> int:
        return PRICE_VND if self.message_type is MessageType.CHARGED else 0
