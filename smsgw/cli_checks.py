"""What the command line checks before it acts, and how it words any failure (`smsgw: ...`, exit 1).

Every input a command takes from the user (a database path, a file to write, an address to
listen on) is checked here before any work starts, and the refusal names the option and the
value: `--db records: is a directory, not a database file`. `describe_failure` is the one
boundary of `smsgw.cli.main`: whatever a command raises becomes one line on stderr, never a
Python traceback; what it cannot name is an internal error, shown with its type and message.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import re
import socket
import sys
from datetime import date
from pathlib import Path
from typing import NoReturn

from .errors import SmsgwError


class UserError(SmsgwError):
    """A problem to report on stderr as `smsgw: message` with exit status 1."""


CREATE_HINT = "create it with `smsgw db seed` or `smsgw db import`"
INTERNAL_HINT = ("this is a bug in smsgw, not in what you typed: please report it with the command line; "
                 "SMSGW_TRACEBACK=1 in the environment shows where it happened")
_LISTEN_ERRNOS = {errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES}
_DOTTED = re.compile(r"[0-9.]+|[0-9a-fA-F:.]*:[0-9a-fA-F:.]*")   # meant as an address, never a name to look up


def database_path(path: str, *, create: bool = False) -> str:
    """`--db PATH` as a usable SQLite file: an existing file, or (`create`) a new one in an existing folder.

    A `postgresql://` URL is returned as it is: the store connects (and says why it cannot).
    """
    from .store.schema import is_postgres

    if is_postgres(path):
        return path
    db = Path(path)
    if db.is_dir():
        return _refuse("--db", path, "is a directory, not a database file")
    if db.exists():
        return path
    if not create:
        raise UserError(f"no records database at {path}: {CREATE_HINT}")
    folder = db.parent
    if not folder.is_dir():
        return _refuse("--db", path, f"the folder {folder} does not exist")
    return path


def http_url(raw: str, option: str) -> str:
    """`raw` as the base URL of a running gateway, http or https with a host and a valid port."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(raw)
        parts.port   # noqa: B018 -- raises ValueError for a port that is not a number or out of range
    except ValueError as exc:
        raise UserError(f"{option} {raw}: not a URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(f"{option} {raw}: expected http://HOST:PORT or https://HOST:PORT")
    return raw


def day_option(raw: str | None, option: str) -> date | None:
    """A YYYY-MM-DD option's day, None when the option was not given."""
    if raw is None:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise UserError(f"{option} {raw!r}: expected a date YYYY-MM-DD") from None


def notice_day(raw_today: str | None, days: int) -> date:
    """The day a `smsgw notify` run counts from (`--today`, else today in Vietnam), `--days` checked."""
    from datetime import datetime, timedelta

    from .clock import VIETNAM

    if days < 0:
        raise UserError("--days must be 0 or more")
    today = day_option(raw_today, "--today") or datetime.now(VIETNAM).date()
    try:
        today + timedelta(days=days + 31)   # the expiry day, and the month after it
    except OverflowError:
        raise UserError(f"--days {days} from {today}: beyond the last date there is (9999-12-31)") from None
    return today


def month_option(raw: str) -> None:
    """`--month YYYY-MM` of the billing commands: a month of Vietnam time since 1970."""
    from .ledger import month_bounds

    try:
        start, _ = month_bounds(raw)
    except ValueError as exc:
        raise UserError(f"--month: {exc}") from None
    if start < 0:
        raise UserError(f"--month {raw}: before 1970, older than any SMS billed")


def phone_option(raw: str, option: str) -> str:
    """A phone option as normalised MSISDN digits (phones.normalize), refused with the reason."""
    from .phones import InvalidPhone, normalize

    try:
        return normalize(raw)
    except InvalidPhone as exc:
        raise UserError(f"{option} {raw!r}: {exc}") from None


def output_file(path: str, option: str = "--out"):
    """`path` opened for writing text (UTF-8), or a UserError naming the option and why not."""
    target = Path(path)
    if target.is_dir():
        _refuse(option, path, "is a directory; name a file to write")
    if not target.parent.is_dir():
        _refuse(option, path, f"the folder {target.parent} does not exist")
    try:
        return open(target, "w", encoding="utf-8", newline="")
    except OSError as exc:
        return _refuse(option, path, f"cannot write: {_strerror(exc)}")


def open_message_store(path: str):
    """The reports' reader (store.MessageReports) of the messages in `--db PATH`, or a UserError saying why not."""
    from .store import DatabaseRefused, open_reports

    path = database_path(path)
    try:
        return open_reports(path)
    except DatabaseRefused as exc:
        return _refuse("--db", exc.path, exc.reason)


def listen_address(host: str, port: int, *, shared: bool) -> None:
    """Refuse a port out of range, a host that is neither an address nor resolvable, a port taken.

    `shared`: the port is held by `smsgw serve --workers` for its workers (SO_REUSEPORT), so
    it is not probed.
    """
    if not 0 <= port <= 65535:
        _refuse("--port", str(port), "must be 0-65535 (0 picks a free port)")
    if _DOTTED.fullmatch(host):
        try:
            ipaddress.ip_address(host)
        except ValueError:
            _refuse("--host", host, "not an IP address")
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError) as exc:
        _refuse("--host", host, f"not an IP address or a host name this machine can resolve ({_strerror(exc)})")
    if shared:
        return
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as the server will
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                raise UserError(cannot_listen(host, port, exc)) from None


def cannot_listen(host: str, port: int, exc: OSError) -> str:
    shown = f"[{host}]" if ":" in host else host
    reason = _strerror(exc)
    if exc.errno == errno.EACCES and 0 < port < 1024:
        reason += " (ports below 1024 need privileges)"
    return f"cannot listen on {shown}:{port}: {reason}"


def is_listen_error(exc: OSError) -> bool:
    return exc.errno in _LISTEN_ERRNOS


def describe_failure(exc: BaseException, args: argparse.Namespace) -> str:
    """The `smsgw: ...` line for anything a command raised: what went wrong and where."""
    if isinstance(exc, SmsgwError):
        return exc.describe()
    db = getattr(args, "db", None)
    trouble = _database_trouble(db, exc)
    if trouble is not None:
        from .store.schema import shown

        return f"--db {shown(db)}: {trouble}"
    if isinstance(exc, UnicodeError):
        return f"text that is not valid UTF-8: {exc}"
    if isinstance(exc, OSError):
        where = exc.filename if exc.filename is not None else db
        return f"{where}: {_strerror(exc)}" if where else _strerror(exc)
    return f"internal error: {type(exc).__name__}: {exc}\n  {INTERNAL_HINT}"


def _database_trouble(db: str | None, exc: BaseException) -> str | None:
    """The store's wording of a database error about `--db` (store/errors.py); None for any other exception.

    A database error comes from the store, so the store is loaded; when it is not, `exc` is no database error.
    """
    errors = sys.modules.get(f"{__package__}.store.errors")
    return errors.explain(db, exc) if errors is not None and db else None


def _strerror(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text[:1].lower() + text[1:]


def _refuse(option: str, value: str, reason: str) -> NoReturn:
    raise UserError(f"{option} {value}: {reason}")
