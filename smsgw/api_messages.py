"""What an API request asks for, checked: fields, phone, carrier, text (CONTRACT §8).

`message_from_json` and `batch_from_json`/`batch_from_csv` turn a request's body into the
messages to store (`store.api.NewMessage`), or raise a `Refusal`, the HTTP status and the
reason naming the field: 400 for the shape (a missing or unknown field, a wrong type), 403 for
a class the key may not send, 422 for the content (an invalid phone, a network no carrier
takes, an empty text, over 3 SMS parts unless the key may send long messages). A batch is
checked whole: every bad recipient is listed with its index, and nothing is stored.

The phone is routed like the notices (notices.route: `phones.network`, then the carriers'
`networks`); the text is measured like the replies (gsm.measure): GSM-7 when every character is
in its alphabet, else UCS-2; with `"fold": true`, Vietnamese diacritics are dropped first
(gsm.fold), so that the text goes as GSM-7 (more characters per part), as the client chose.
A notice or info created (or scheduled by `send_at`) inside the quiet hours (quiet_hours.py) is
held until their end; a one-time code never is.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from typing import Any

from aiohttp import web

from .billing import MessageType
from .config import Config
from .gsm import fold, measure
from .ids import new_id
from .phones import InvalidPhone, network, normalize
from .quiet_hours import not_before
from .store.api import CLASSES, ApiKey, NewMessage
from .store.messages import MESSAGE_LANE, NOTICE_LANE, REPLY_LANE
from .wire import OutboundMessage

MAX_SEGMENTS = 3
MAX_RECIPIENTS = 100_000
MAX_TTL = 7 * 86400
DEFAULT_OTP_TTL = 300
MAX_SEND_AHEAD = 90 * 86400
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]{0,63})\}")
_MESSAGE_FIELDS = {"to", "text", "class", "send_at", "ttl", "callback_url", "fold"}
_BATCH_FIELDS = {"class", "text", "recipients", "send_at", "ttl", "callback_url", "fold"}


class Refusal(Exception):
    def __init__(self, status: int, reason: str, **extra: Any) -> None:
        super().__init__(reason)
        self.status, self.reason, self.extra = status, reason, extra

    def response(self) -> web.Response:
        return web.json_response({"error": self.reason, **self.extra}, status=self.status)


class _Bad(Exception):
    """A recipient's content refused (422), with the reason."""


class Common:
    """The fields a message and a batch share, checked."""

    def __init__(self, body: dict, key: ApiKey, now: float, config: Config) -> None:
        self.message_class = _string(body, "class")
        if self.message_class not in CLASSES:
            raise Refusal(400, f"class: one of {', '.join(CLASSES)}")
        if self.message_class not in key.classes:
            raise Refusal(403, f"class: this key may not send {self.message_class!r} "
                               f"(it may send {', '.join(key.classes)})")
        self.text = _string(body, "text")
        self.fold = body.get("fold", False)
        if not isinstance(self.fold, bool):
            raise Refusal(400, "fold: true or false")
        self.callback_url = _callback_url(body.get("callback_url"))
        self.not_before = _send_at(body.get("send_at"), now)
        if self.message_class != "otp":   # quiet hours hold notices until the morning, never a one-time code
            held = not_before(config.notices.quiet_hours, self.not_before or now)
            if held is not None:
                self.not_before = held
        ttl = body.get("ttl", DEFAULT_OTP_TTL if self.message_class == "otp" else None)
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= MAX_TTL):
            raise Refusal(400, f"ttl: whole seconds from 1 to {MAX_TTL}")
        self.expires_at = None if ttl is None else max(now, self.not_before or now) + ttl
        self.long_ok = key.long_messages
        self._carriers: dict[str, str | None] = {}

    def message(self, to: Any, text: str, config: Config, *, batch: bool = False) -> NewMessage:
        """The message to `to`; _Bad (the reason) when its phone, carrier or text cannot be sent."""
        if not isinstance(to, str):
            raise _Bad("to: a phone number as a string")
        try:
            phone = normalize(to)
        except InvalidPhone as exc:
            raise _Bad(f"to: {exc}") from None
        network_name = network(phone)
        carrier = self._carriers.get(network_name, False)
        if carrier is False:
            carrier = self._carriers[network_name] = config.carrier_for_network(network_name)
        if carrier is None:
            raise _Bad(f"to: no carrier takes the network {network_name or 'of this number (unknown)'}")
        if self.fold:
            text = fold(text)
        if not text.strip():
            raise _Bad("text: empty")
        size = measure(text)
        if size.segments > MAX_SEGMENTS and not self.long_ok:
            raise _Bad(f"text: {size.segments} SMS parts ({size.encoding}), over {MAX_SEGMENTS}"
                       " (this key may not send longer messages)")
        mt = OutboundMessage(id=new_id(), mo_id="", in_reply_to="", carrier=carrier, sender=config.notices.sender,
                             to=phone, text=text, encoding=size.encoding, segments=size.segments,
                             message_type=MessageType.PUSH)
        return NewMessage(mt, self.message_class, self.callback_url, self.expires_at, self.not_before,
                          lane=self.lane(batch))

    def lane(self, batch: bool) -> int:
        """The outbox lane (SHARED-INTERFACES §2): one-time codes with the replies, then single
        messages, then batches with the notices."""
        if self.message_class == "otp":
            return REPLY_LANE
        return NOTICE_LANE if batch else MESSAGE_LANE


def message_from_json(body: Any, key: ApiKey, config: Config, now: float) -> NewMessage:
    _object(body, _MESSAGE_FIELDS)
    common = Common(body, key, now, config)
    if "to" not in body:
        raise Refusal(400, "to: missing")
    try:
        return common.message(body["to"], common.text, config)
    except _Bad as bad:
        raise Refusal(422, str(bad)) from None


def batch_from_json(body: Any, key: ApiKey, config: Config, now: float) -> list[NewMessage]:
    _object(body, _BATCH_FIELDS)
    common = Common(body, key, now, config)
    recipients = body.get("recipients")
    if not isinstance(recipients, list) or not recipients:
        raise Refusal(400, "recipients: a non-empty list of objects {\"to\": ..., placeholders}")
    return _batch(common, recipients, config)


def batch_from_csv(body: bytes, query: dict[str, str], key: ApiKey, config: Config, now: float) -> list[NewMessage]:
    """A CSV batch: `to` and one column per placeholder; class, text (and send_at, ttl, callback_url,
    fold) in the query string."""
    fields: dict[str, Any] = dict(query)
    unknown = sorted(set(fields) - (_BATCH_FIELDS - {"recipients"}))
    if unknown:
        raise Refusal(400, f"{unknown[0]}: unknown query parameter")
    if "ttl" in fields:
        fields["ttl"] = _query_int(fields["ttl"], "ttl")
    if "fold" in fields:
        fields["fold"] = {"true": True, "false": False}.get(fields["fold"], fields["fold"])
    common = Common(fields, key, now, config)
    try:
        reader = csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline=""))
        rows = list(reader)
    except UnicodeDecodeError:
        raise Refusal(400, "body: not valid UTF-8") from None
    except csv.Error as exc:
        raise Refusal(400, f"body: not valid CSV ({exc})") from None
    if not reader.fieldnames or "to" not in reader.fieldnames:
        raise Refusal(400, "body: a CSV header row with a 'to' column is needed")
    if not rows:
        raise Refusal(400, "recipients: the CSV has no rows")
    return _batch(common, rows, config)


def _batch(common: Common, recipients: list, config: Config) -> list[NewMessage]:
    if len(recipients) > MAX_RECIPIENTS:
        raise Refusal(400, f"recipients: {len(recipients):,} recipients, over {MAX_RECIPIENTS:,}")
    names = set(_PLACEHOLDER.findall(common.text))
    messages, bad = [], []
    for index, recipient in enumerate(recipients):
        try:
            if not isinstance(recipient, dict):
                raise _Bad("a recipient is an object {\"to\": ..., placeholders}")
            missing = sorted(name for name in names if not isinstance(recipient.get(name), str))
            if missing:
                raise _Bad(f"{missing[0]}: missing, or not a string (the text's placeholder {{{missing[0]}}})")
            text = _PLACEHOLDER.sub(lambda m: recipient[m.group(1)] if m.group(1) in names else m.group(0),
                                    common.text) if names else common.text
            messages.append(common.message(recipient.get("to"), text, config, batch=True))
        except _Bad as reason:
            bad.append({"index": index, "reason": str(reason)})
    if bad:
        raise Refusal(422, f"{len(bad):,} of {len(recipients):,} recipients refused: nothing was queued",
                      recipients=bad)
    return messages


def _object(body: Any, allowed: set[str]) -> None:
    if not isinstance(body, dict):
        raise Refusal(400, "body: a JSON object is needed")
    unknown = sorted(set(body) - allowed)
    if unknown:
        name = unknown[0] if unknown[0].isidentifier() else repr(unknown[0])
        raise Refusal(400, f"{name}: unknown field (the fields are {', '.join(sorted(allowed))})")


def _string(body: dict, name: str) -> str:
    if name not in body:
        raise Refusal(400, f"{name}: missing")
    value = body[name]
    if not isinstance(value, str):
        raise Refusal(400, f"{name}: a string is needed")
    return value


def _query_int(value: str, name: str) -> int | str:
    return int(value) if value.isascii() and value.isdigit() and len(value) < 10 else value


def _callback_url(value: Any) -> str | None:
    from urllib.parse import urlsplit

    if value is None:
        return None
    if not isinstance(value, str):
        raise Refusal(400, "callback_url: an http or https URL as a string")
    try:
        parts = urlsplit(value)
        parts.port
    except ValueError:
        raise Refusal(400, "callback_url: not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or len(value) > 2000:
        raise Refusal(400, "callback_url: an http or https URL with a host (at most 2,000 characters)")
    return value


def _send_at(value: Any, now: float) -> float | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise Refusal(400, "send_at: an ISO 8601 time with its offset, as a string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Refusal(400, "send_at: not an ISO 8601 time (2026-12-01T08:00:00+07:00)") from None
    if moment.tzinfo is None:
        raise Refusal(400, "send_at: the time needs its offset (+07:00, Z)")
    at = moment.timestamp()
    if at > now + MAX_SEND_AHEAD:
        raise Refusal(400, f"send_at: at most {MAX_SEND_AHEAD // 86400} days ahead")
    return at if at > now else None
