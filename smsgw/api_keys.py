"""API keys of the sending API (CONTRACT §8): made, checked, revoked.

A key is `smsgw_` and 43 characters of base64url: 256 random bits (`secrets.token_urlsafe(32)`).
Only its SHA-256 is stored. A fast hash is enough here, and a slow one (bcrypt, scrypt,
argon2) would buy nothing: those protect low-entropy passwords from guessing, and no one can
guess through 2**256 random keys, however fast each guess; they would cost tens of milliseconds
of CPU on every request instead. The key is found by its hash (a unique index) and the stored
hash compared again with `hmac.compare_digest`, so no byte-by-byte comparison of the secret
leaks how much of it a caller got right.

The callback secret (the same size) is stored as it is: it signs the callbacks (HMAC-SHA256)
and must be known to do so. Both are printed once, by `smsgw api-keys create`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Sequence

from .errors import SmsgwError
from .store.api import CLASSES, ApiKey, ApiStore

PREFIX = "smsgw_"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class ApiKeyError(SmsgwError):
    """A key that cannot be made or revoked; the message says why."""


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_secret(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(32)


def check_classes(classes: Sequence[str]) -> tuple[str, ...]:
    unknown = [name for name in classes if name not in CLASSES]
    if unknown or not classes:
        raise ApiKeyError(f"--classes {','.join(classes)!r}: each class one of {', '.join(CLASSES)}")
    return tuple(dict.fromkeys(classes))


async def create_key(store: ApiStore, name: str, *, classes: Sequence[str] = CLASSES, rate: int = 0,
                     long_messages: bool = False) -> tuple[str, str]:
    """Store a new key `name`; (the key, its callback secret), to be shown once."""
    if not _NAME.fullmatch(name):
        raise ApiKeyError(f"key name {name!r}: 1-64 letters, digits, '.', '_' or '-', beginning with a letter or digit")
    if rate < 0:
        raise ApiKeyError(f"--rate {rate}: a number of requests per minute, 0 (no limit) or more")
    key, secret = new_secret(PREFIX), new_secret()
    if not await store.create_key(name, key_hash(key), secret, check_classes(classes), rate, long_messages,
                                  time.time()):
        raise ApiKeyError(f"a key named {name!r} exists already (revoked keys keep their name)")
    return key, secret


async def revoke_key(store: ApiStore, name: str) -> None:
    if not await store.revoke_key(name, time.time()):
        raise ApiKeyError(f"no live key named {name!r}")


async def authenticate(store: ApiStore, key: str) -> ApiKey | None:
    """The live key `key` is, or None."""
    wanted = key_hash(key)
    found = await store.key_by_hash(wanted)
    if found is None or not hmac.compare_digest(found[1], wanted):
        return None
    return found[0]
