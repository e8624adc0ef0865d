"""Personal data in the message store, kept only as long as needed (CONTRACT §11): the interface.

What is personal in the message tables, and what erasing it leaves:

    mo_messages   sender and text                -> '' (the row stays: ids, carrier, times, outcome)
    mt_messages   recipient, text, last_error    -> recipient: the phone's keyed hash; text ''; NULL
    billing_rows  msisdn (masked)                -> the phone's keyed hash (the row stays, for
                                                    reconciliation with the carrier)
    notices       target (a card or BHXH number) -> its keyed hash (a notice is still queued once)

The conversation and API tables (questions, ratings, opt_outs, api_messages, ...): retention_tables.py.

The keyed hash of a phone is HMAC-SHA256 over the normalised MSISDN (`84912345678`, UTF-8)
with the retention key, in lower-case hex (64 characters): `phone_hash`. The key is the
config's `[retention] hash_key`, or when none is given a random one made at the first prune and
kept in the store; the store also keeps a check value of the key it hashed with, and refuses a
different one (the hashes already written would no longer match).

sqlite_retention.py implements it on the SQLite file, pg_retention.py on PostgreSQL; each step is
one short transaction. `take_prune_lock` keeps a prune to one process at a time on a database
shared by several gateways (PostgreSQL: a session advisory lock).
"""

from __future__ import annotations

import abc
import hashlib
import hmac
import secrets
from typing import Any

from .errors import StoreError

HASH_LENGTH = 64
_CHECK_INPUT = "smsgw retention key check"


def phone_hash(key: bytes, phone: str) -> str:
    """The keyed hash that stands for `phone` (a normalised MSISDN) once its data is erased."""
    return hmac.new(key, phone.encode(), hashlib.sha256).hexdigest()


class KeyMismatch(StoreError):
    """The configured hash key is not the one the store's hashes were made with."""


class PruneRunning(StoreError):
    """Another process prunes this database now (a gateway's daily prune, or `smsgw db prune`)."""


def resolve_key(configured: str | None, state: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    """The key to hash with, from the configured one or the store's `retention_state` rows, and the
    rows to add to that table (the store's own new key, the check value): KeyMismatch when the
    configured key is not the one the store's hashes were made with."""
    added: dict[str, str] = {}
    if configured is not None:
        key = configured.encode()
    elif "hash_key" in state:
        key = bytes.fromhex(state["hash_key"])
    else:
        key = secrets.token_bytes(32)
        added["hash_key"] = key.hex()
    check = phone_hash(key, _CHECK_INPUT)
    if "hash_key_check" not in state:
        added["hash_key_check"] = check
    elif state["hash_key_check"] != check:
        raise KeyMismatch(
            "[retention] hash_key is not the key this store's hashes were made with"
            + (" (the store made its own: remove hash_key, or start a new store)" if "hash_key" in state
               else " (changing it would make the hashes already kept unmatchable)"))
    return key, added


class PersonalData(abc.ABC):
    """Prune, export and erase the personal data of the message store."""

    @abc.abstractmethod
    def hash_key(self, configured: str | None) -> bytes:
        """The key to hash with: `configured` (checked against the store's), else the store's own."""

    def take_prune_lock(self) -> bool:
        """Hold this database's prune lock until `close`; False when another process holds it.
        (One SQLite file has one pruner: worker 0 of one host; nothing to take.)"""
        return True

    @abc.abstractmethod
    def prune_step(self, cutoff: float, key: bytes, limit: int) -> tuple[str, int]:
        """Erase the personal data of at most `limit` rows of one table written before `cutoff`
        (Unix seconds), in one transaction: (table, rows changed); ("", 0) when nothing older is left."""

    @abc.abstractmethod
    def export_phone(self, phone: str, key: bytes) -> dict[str, Any]:
        """Everything stored about `phone`: its MOs, MTs, billing rows (also those kept under its
        hash) and notices, as JSON-ready values."""

    @abc.abstractmethod
    def erase_phone(self, phone: str, key: bytes) -> dict[str, int]:
        """Erase `phone`'s data at any age, as a prune does, in one transaction: rows per table."""

    @abc.abstractmethod
    def close(self) -> None: ...
