"""Who is at the console: passwords, sessions, CSRF tokens, the lockout, and the roles.

- Passwords: argon2id hashes (argon2-cffi's defaults); a login for an unknown name still runs
  one verification, so the time taken does not tell whether a name exists.
- Sessions live in the store (`console_sessions`): the cookie holds a random token (256 bits),
  the store its SHA-256; the cookie is HttpOnly, SameSite=Strict, path /console/, and Secure when
  `[console] https = true` (behind a TLS proxy). A session ends at logout or `session_hours`
  after login; its account's role is read at every request, so a change applies at once.
- CSRF: every form carries the session's token (synchronizer token), compared in constant time
  on every POST; the login form, before there is a session, carries the token of a short-lived
  cookie of its own (double submit).
- Lockout: the fifth failed login in a row locks the account for 15 minutes; while locked, no
  password is even checked. Counted in the store in one statement, so gateways sharing a
  PostgreSQL database count together.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from enum import Enum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ..store import ROLES, ConsoleStore, Session

LOCK_AFTER = 5                # failed logins in a row
LOCK_SECONDS = 15 * 60.0
SESSION_COOKIE = "smsgw_console"
LOGIN_COOKIE = "smsgw_console_login"
MIN_PASSWORD = 10             # characters
MAX_PASSWORD = 1024

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))   # verified against for unknown names


class Role(str, Enum):
    VIEWER = "viewer"
    STAFF = "staff"
    ADMIN = "admin"

    def may(self, needed: "Role") -> bool:
        """Whether this role may do what `needed` may (viewer < staff < admin)."""
        return ROLES.index(self.value) >= ROLES.index(needed.value)


ROLE_LABELS = {"viewer": "Xem", "staff": "Nhân viên", "admin": "Quản trị"}


def hash_password(password: str) -> str:
    return _hasher.hash(password)


async def hash_off_loop(password: str) -> str:
    """`hash_password` in a worker thread (argon2 is slow on purpose; the event loop carries the SMS)."""
    return await asyncio.get_running_loop().run_in_executor(None, hash_password, password)


def verified(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def password_problem(password: str) -> str | None:
    """Why `password` may not be used (in Vietnamese, for the console and the CLI), or None."""
    if len(password) < MIN_PASSWORD:
        return f"mật khẩu cần ít nhất {MIN_PASSWORD} ký tự"
    if len(password) > MAX_PASSWORD:
        return f"mật khẩu dài quá {MAX_PASSWORD} ký tự"
    return None


def name_problem(name: str) -> str | None:
    if not (1 <= len(name) <= 64) or not all(char.isalnum() or char in "._-" for char in name) or not name.isascii():
        return "tên tài khoản gồm 1-64 chữ cái không dấu, chữ số, '.', '_' hoặc '-'"
    return None


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same_token(given: str | None, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())


class LoginResult(Enum):
    OK = "ok"
    WRONG = "wrong"           # unknown name or wrong password: the same answer
    LOCKED = "locked"         # locked now (by this failure or before)


@dataclass(frozen=True)
class Login:
    result: LoginResult
    locked_until: float | None = None


async def log_in(store: ConsoleStore, name: str, password: str, *, now: float | None = None) -> Login:
    """Check a login; count a failure, locking the account at the LOCK_AFTERth."""
    now = time.time() if now is None else now
    account = await store.account(name)
    if account is not None and account.locked_until is not None and account.locked_until > now:
        return Login(LoginResult.LOCKED, account.locked_until)
    # argon2 takes tens of milliseconds of CPU by design: off the event loop, which carries the SMS
    matches = await asyncio.get_running_loop().run_in_executor(
        None, verified, account.password_hash if account is not None else _DUMMY_HASH, password)
    correct = account is not None and matches
    if correct:
        await store.login_succeeded(name)
        return Login(LoginResult.OK)
    if account is None:
        return Login(LoginResult.WRONG)
    after = await store.login_failed(name, now=now, limit=LOCK_AFTER, lock_seconds=LOCK_SECONDS)
    if after is not None and after.locked_until is not None and after.locked_until > now:
        return Login(LoginResult.LOCKED, after.locked_until)
    return Login(LoginResult.WRONG)


async def start_session(store: ConsoleStore, name: str, *, hours: float, address: str) -> str:
    """A new session for `name`; the cookie's token."""
    token = new_token()
    now = time.time()
    await store.start_session(token_hash(token), name, new_token(), now=now, expires_at=now + hours * 3600,
                              address=address)
    return token


async def session_of(store: ConsoleStore, token: str | None) -> Session | None:
    if not token or len(token) > 128:
        return None
    return await store.session(token_hash(token), now=time.time())
