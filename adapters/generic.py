"""The `generic` carrier (CONTRACT §5): JSON in, JSON out, HMAC-SHA256 signatures.

MO (`POST /carriers/{name}/mo`, `Content-Type: application/json`):
    {"id": "<carrier's MO id>", "from": "84912345678", "to": "8079", "text": "BH QT 0110129425"}
DLR (`POST /carriers/{name}/dlr`):
    {"id": "<our MT id>", "status": "delivered", "time": "2025-01-31T08:00:00Z"}
    `status` is one of the `DeliveryState` values; `time` (optional) is ISO 8601 or Unix seconds.
MT (async mode, POSTed to the carrier's `mt_url`):
    {"id", "in_reply_to", "from", "to", "text", "encoding", "segments", "message_type"}
    `from` is our short code, `to` the citizen, `in_reply_to` the carrier's MO id; a notice
    (`message_type` 3) comes from the brandname and has `in_reply_to` null.

An MO's `from` may be a phone number in any written form, a short code or an alphanumeric
sender (`phones.classify_sender`): all are taken (stored, never answered unless a phone);
anything else is a 400.

Every request body in both directions is signed: header `X-Smsgw-Signature` is the hex
HMAC-SHA256 with the carrier's `secret` (`sha256=` prefix and upper-case hex tolerated) of

    "{timestamp}." + raw body   with header `X-Smsgw-Timestamp: {timestamp}` (Unix seconds), or
    the raw body alone          without that header (refused when `require_timestamp = true`).

A signed timestamp more than `signature_window` seconds (300) before or after the gateway's clock
is refused, so a captured request replays for that long at most (and a replay within the window
is a carrier retry: the first answer again, no second charge). The async MT POST is signed the
same way, with a timestamp when the carrier has `require_timestamp = true`. A carrier configured
with `auth = "none"` may send unsigned requests.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

import aiohttp
from pydantic import model_validator

from ..billing import Billing
from ..carrier import CarrierAdapter, sender_of
from ..errors import BadRequest, PermanentDeliveryError, TemporaryDeliveryError, Unauthorized, UnsupportedMediaType
from ..settings import CarrierSettings, HttpUrl, Positive, Secret, SettingProblem
from ..wire import CarrierRequest, CarrierResponse, DeliveryReport, DeliveryState, InboundMessage, OutboundMessage

SIGNATURE_HEADER = "X-Smsgw-Signature"
TIMESTAMP_HEADER = "X-Smsgw-Timestamp"
MAX_ID_LENGTH = 128
_STATES = ", ".join(state.value for state in DeliveryState)
_TIMESTAMP = re.compile(r"[0-9]{1,12}", re.ASCII)


def sign(secret: str, body: bytes, timestamp: int | str | None = None) -> str:
    """The `X-Smsgw-Signature` value: the hex HMAC-SHA256 with `secret` of `body`, or of
    `"{timestamp}." + body` when the request carries `X-Smsgw-Timestamp: {timestamp}`."""
    signed = body if timestamp is None else f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str, timestamp: str | None = None) -> bool:
    """Constant-time check of a signature header against the body (and the timestamp header)."""
    given = signature.strip().lower().removeprefix("sha256=").encode("ascii", "replace")
    return hmac.compare_digest(given, sign(secret, body, timestamp).encode())


def signature_headers(secret: str, body: bytes, *, timestamp: int | None) -> dict[str, str]:
    """The headers signing `body`: with `X-Smsgw-Timestamp` unless `timestamp` is None."""
    if timestamp is None:
        return {SIGNATURE_HEADER: sign(secret, body)}
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: sign(secret, body, timestamp)}


class GenericSettings(CarrierSettings):
    """`[carriers.NAME]` keys of the generic carrier (and of the mock, which speaks its format)."""

    credential_keys = ("secret",)
    sending_keys = ("mt_url",)
    secret_keys = ("secret",)

    secret: Secret = None    # HMAC-SHA256 key of X-Smsgw-Signature
    mt_url: HttpUrl | None = None   # where MTs are POSTed (async mode, notices)
    require_timestamp: bool = False  # refuse requests without a signed X-Smsgw-Timestamp
    signature_window: Positive = 300.0  # seconds a signed timestamp may be off the clock, either way

    @model_validator(mode="after")
    def _timestamp_needs_signatures(self) -> GenericSettings:
        if self.require_timestamp and self.auth == "none":
            raise SettingProblem("require_timestamp", 'needs auth = "required" (unsigned requests have no timestamp)')
        return self


class GenericAdapter(CarrierAdapter):
    settings = GenericSettings
    config: GenericSettings
    clock: Callable[[], float] = staticmethod(time.time)   # the gateway's clock, for the signature window

    def check_credentials(self, request: CarrierRequest) -> None:
        signature = request.headers.get(SIGNATURE_HEADER)
        if signature is None:
            raise Unauthorized(f"missing {SIGNATURE_HEADER} header", kind="missing_signature")
        timestamp = request.headers.get(TIMESTAMP_HEADER)
        if timestamp is None and self.config.require_timestamp:
            raise Unauthorized(f"missing {TIMESTAMP_HEADER} header: this carrier signs with a timestamp",
                               kind="missing_timestamp")
        if timestamp is not None and not _TIMESTAMP.fullmatch(timestamp):
            raise Unauthorized(f"{TIMESTAMP_HEADER} must be Unix seconds (digits only)", kind="bad_timestamp")
        if not verify(self.config.secret or "", request.body, signature, timestamp):
            signed = "the body" if timestamp is None else f"'{TIMESTAMP_HEADER}.' + the body"
            raise Unauthorized(f"wrong {SIGNATURE_HEADER}: not the HMAC-SHA256 of {signed}", kind="bad_signature")
        if timestamp is not None:
            self._check_window(int(timestamp))

    def _check_window(self, timestamp: int) -> None:
        skew = timestamp - self.clock()
        window = self.config.signature_window
        if abs(skew) > window:
            side = "ahead of" if skew > 0 else "behind"
            raise Unauthorized(f"{TIMESTAMP_HEADER} is {abs(skew):.0f} s {side} the gateway's clock "
                               f"(allowed: {window:g} s either way)", kind="stale_timestamp")

    def mt_headers(self, body: bytes) -> dict[str, str]:
        """The headers of an MT POST to `mt_url`: signed when the carrier has a secret, with a
        timestamp when it requires them."""
        headers = {"Content-Type": "application/json"}
        if self.config.secret:
            timestamp = int(self.clock()) if self.config.require_timestamp else None
            headers.update(signature_headers(self.config.secret, body, timestamp=timestamp))
        return headers

    def parse_inbound(self, request: CarrierRequest, *, received_at: datetime) -> InboundMessage:
        data = json_object(request)
        carrier_id = identifier(data, "id")
        sender = sender_of(string(data, "from"), "from")
        return InboundMessage(
            carrier=self.name, carrier_id=carrier_id, sender=sender, to=string(data, "to"),
            text=string(data, "text"), received_at=received_at,
        )

    def render_sync(self, mo_id: str, replies: Sequence[OutboundMessage]) -> CarrierResponse:
        return CarrierResponse.json(200, {"mo_id": mo_id, "replies": [
            {"id": mt.id, "text": mt.text, "encoding": mt.encoding, "segments": mt.segments,
             **self.billing_fields(mt.billing)}
            for mt in replies
        ]})

    def render_accepted(self, mo_id: str) -> CarrierResponse:
        return CarrierResponse.json(202, {"mo_id": mo_id})

    def billing_fields(self, billing: Billing) -> dict[str, Any]:
        return {"message_type": int(billing.message_type)}

    async def send(self, session: aiohttp.ClientSession, mt: OutboundMessage) -> None:
        if not self.config.mt_url:
            raise PermanentDeliveryError(f"carrier {self.name!r} has no mt_url")
        body = json.dumps({
            "id": mt.id, "in_reply_to": mt.in_reply_to or None, "from": mt.sender, "to": mt.to,
            "text": mt.text, "encoding": mt.encoding, "segments": mt.segments,
            **self.billing_fields(mt.billing),
        }, ensure_ascii=False).encode()
        status, _ = await self.call(session, "POST", self.config.mt_url, url_key="mt_url", data=body,
                                    headers=self.mt_headers(body))
        if not 200 <= status < 300:
            raise TemporaryDeliveryError(f"carrier answered HTTP {status}")

    def parse_delivery_report(self, request: CarrierRequest) -> DeliveryReport:
        data = json_object(request)
        mt_id = identifier(data, "id")
        status = string(data, "status")
        try:
            state = DeliveryState(status.lower())
        except ValueError:
            raise BadRequest(f"field 'status' must be one of {_STATES}", kind="bad_value") from None
        return DeliveryReport(carrier=self.name, mt_id=mt_id, state=state, time=report_time(data.get("time")))


def json_object(request: CarrierRequest) -> dict[str, Any]:
    """The request's body as a JSON object, or the specific 400/415 explaining why it is not one."""
    if request.content_type != "application/json":
        raise UnsupportedMediaType(f"content type must be application/json, not {request.content_type or 'none'}")
    if request.charset is not None and request.charset.lower().replace("-", "") != "utf8":
        raise UnsupportedMediaType(f"charset must be utf-8, not {request.charset}")
    try:
        text = request.body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"body is not valid UTF-8 (byte {exc.start})", kind="invalid_utf8") from None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        reason = str(exc) if isinstance(exc, json.JSONDecodeError) else "nested too deeply or numbers too long"
        raise BadRequest(f"body is not valid JSON: {reason}", kind="bad_json") from None
    if not isinstance(data, dict):
        raise BadRequest(f"body must be a JSON object, not {_json_type(data)}", kind="wrong_type")
    return data


def string(data: dict[str, Any], field: str) -> str:
    if field not in data:
        raise BadRequest(f"missing field '{field}'", kind="missing_field")
    value = data[field]
    if not isinstance(value, str):
        raise BadRequest(f"field '{field}' must be a string, not {_json_type(value)}", kind="wrong_type")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        reason = f"field '{field}' is not valid Unicode (a lone surrogate escape)"
        raise BadRequest(reason, kind="invalid_utf8") from None
    return value


def identifier(data: dict[str, Any], field: str) -> str:
    value = string(data, field)
    if not value.strip():
        raise BadRequest(f"field '{field}' must not be empty", kind="bad_value")
    if len(value) > MAX_ID_LENGTH:
        raise BadRequest(f"field '{field}' is longer than {MAX_ID_LENGTH} characters", kind="bad_value")
    return value


def report_time(value: Any) -> datetime | None:
    """A DLR `time`: absent/null, ISO 8601 (UTC when no offset is given) or Unix seconds."""
    if value is None:
        return None
    try:
        if isinstance(value, str):
            moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
            return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return datetime.fromtimestamp(value, timezone.utc)
    except (ValueError, OverflowError, OSError):
        pass
    raise BadRequest("field 'time' must be an ISO 8601 date-time or Unix seconds", kind="bad_value")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"
