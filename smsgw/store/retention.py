"""Personal data in the message store, kept only as long as needed (CONTRACT §11): the interface.

What is personal in the message tables, and what erasing it leaves:

    mo_messages   sender and text                -> '' (the row stays: ids, carrier, times, outcome)
    mt_messages   recipient, text, last_error    -> recipient: the phone's keyed hash; text ''; NULL
    billing_rows  msisdn (masked)                -> the phone's keyed hash (the row stays, for
                                                    reconciliation with the carrier)
    notices       target (a card or BHXH number) -> its keyed hash (a notice is still queued once)

The keyed hash of a phone is HMAC-SHA256 over the normalised MSISDN (`84912345678`, UTF-8)
with the retention key, in lower-case hex (64 characters): `phone_hash`. The key is the
config's `[retention] hash_key`, or when none is given a random one made at the first prune and
kept in the store; the store also keeps a check value of the key it hashed with, and refuses a
different one (the hashes already written would no longer match).

sqlite_retention.py implements it on the SQLite file; each step is one short transaction.
"""

from __future__ import annotations

import abc
import hashlib
import hmac
from typing import Any

HASH_LENGTH = 64


def phone_hash(key: bytes, phone: str) -> str:
    """The keyed hash that stands for `phone` (a normalised MSISDN) once its data is erased."""
    return hmac.new(key, phone.encode(), hashlib.sha256).hexdigest()


class KeyMismatch(Exception):
    """The configured hash key is not the one the store's hashes were made with."""


class PersonalData(abc.ABC):
    """Prune, export and erase the personal data of the message store."""

    @abc.abstractmethod
    def hash_key(self, configured: str | None) -> bytes:
        """The key to hash with: `configured` (checked against the store's), else the store's own."""

    @abc.abstractmethod
    def prune_step(self, cutoff: float, key: bytes, limit: int) -> tuple[str, int]:
        """Erase the personal data of at most `limit` rows of one table written before `cutoff`
        (Unix seconds), in one transaction: (table, rows); rows 0 when nothing older is left."""

    @abc.abstractmethod
    def export_phone(self, phone: str, key: bytes) -> dict[str, Any]:
        """Everything stored about `phone`: its MOs, MTs, billing rows (also those kept under its
        hash) and notices, as JSON-ready values."""

    @abc.abstractmethod
    def erase_phone(self, phone: str, key: bytes) -> dict[str, int]:
        """Erase `phone`'s data at any age, as a prune does, in one transaction: rows per table."""

    @abc.abstractmethod
    def close(self) -> None: ...
