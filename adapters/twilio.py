"""The `twilio` carrier: Twilio's Programmable Messaging webhooks and Messages REST resource.

MO (`POST /carriers/<name>/mo`, form-encoded UTF-8): `MessageSid` (the carrier id), `AccountSid`,
`From` (the phone, E.164; a short code or brandname is taken and never answered), `To` (our
number), `Body`, `NumSegments`, and more fields we do not need. Sync mode answers TwiML,
`<Response><Message>reply</Message></Response>` (text/xml); async mode answers an empty
`<Response/>`, and Twilio sends nothing.

Every webhook is signed: `X-Twilio-Signature` is the base64 HMAC-SHA1, keyed with the account's
`auth_token`, of the full URL Twilio called followed by each POST parameter's name and value,
sorted by name. Behind a proxy the URL we see is not the one Twilio called, so with `public_url`
set (the public base URL, e.g. `https://sms.example.vn`) the URL is `public_url` + the path and
query of the request. Like Twilio's own validator, the URL is tried with and without the
scheme's default port. A request signed for another account (`AccountSid` not `account_sid`,
when set) is refused too.

Async MT: a form POST to `{mt_url}/2010-04-01/Accounts/{account_sid}/Messages.json` (`mt_url`
is `https://api.twilio.com` in production) with basic auth `account_sid:auth_token` and `To`,
`From`, `Body`, `StatusCallback`. `From` is our number: `+` and the digits when it is a long
number (over 8 digits), a short code or an alphanumeric sender (notices) as it is. `StatusCallback` is
`{public_url}/carriers/<name>/dlr?id=<MT id>` when `public_url` is set (no reports without it).
Twilio answers 201 with the message; 429 and 5xx are retried, any other 4xx (an invalid number,
bad credentials) fails the MT at once, with Twilio's error code kept (not its message, which
names the number).

Status callbacks (`POST /carriers/<name>/dlr?id=<MT id>`, signed like MOs): `MessageStatus`
queued, accepted, scheduled -> accepted; sending, sent -> enroute; delivered, read -> delivered;
undelivered, failed -> failed; canceled -> rejected; others unknown. `RawDlrDoneDate`
(`YYMMDDhhmm`, UTC), when present, is the report's time.

Twilio sets no billing field: the billing outcome stays in our records only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import aiohttp

from ..billing import Billing
from ..carrier import CarrierAdapter, sender_of, xml_text
from ..errors import BadRequest, PermanentDeliveryError, TemporaryDeliveryError, Unauthorized, UnsupportedMediaType
from ..settings import CarrierSettings, HttpUrl, Secret
from ..wire import CarrierRequest, CarrierResponse, DeliveryReport, DeliveryState, InboundMessage, OutboundMessage
from .generic import MAX_ID_LENGTH

SIGNATURE_HEADER = "X-Twilio-Signature"
API_VERSION = "2010-04-01"
STATES = {
    "queued": DeliveryState.ACCEPTED, "accepted": DeliveryState.ACCEPTED, "scheduled": DeliveryState.ACCEPTED,
    "sending": DeliveryState.ENROUTE, "sent": DeliveryState.ENROUTE, "delivered": DeliveryState.DELIVERED,
    "read": DeliveryState.DELIVERED, "undelivered": DeliveryState.FAILED, "failed": DeliveryState.FAILED,
    "canceled": DeliveryState.REJECTED,
}
_DEFAULT_PORTS = {"http": 80, "https": 443}
_XML = '<?xml version="1.0" encoding="UTF-8"?>'


def signature(auth_token: str, url: str, params: Sequence[tuple[str, str]]) -> str:
    """Twilio's `X-Twilio-Signature` of a request to `url` with POST parameters `params`.

    Names are sorted; a name given several times contributes each of its values, sorted, once.
    """
    values: dict[str, set[str]] = {}
    for name, value in params:
        values.setdefault(name, set()).add(value)
    data = url + "".join(name + value for name in sorted(values) for value in sorted(values[name]))
    digest = hmac.new(auth_token.encode(), data.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def url_variants(url: str) -> set[str]:
    """`url` as given, without its scheme's default port, and with it."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:      # a Host header no URL can have: only the URL as given
        return {url}
    default = _DEFAULT_PORTS.get(parts.scheme)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = f"{userinfo}@" if userinfo else ""
    variants = {url}
    if default is not None and port in (None, default):
        variants.add(urlunsplit(parts._replace(netloc=f"{prefix}{host}")))
        variants.add(urlunsplit(parts._replace(netloc=f"{prefix}{host}:{default}")))
    return variants


class TwilioSettings(CarrierSettings):
    """`[carriers.NAME]` keys of a Twilio account."""

    credential_keys = ("auth_token",)
    sending_keys = ("mt_url", "account_sid", "auth_token")
    secret_keys = ("auth_token",)

    mt_url: HttpUrl | None = None   # the REST API's base URL: https://api.twilio.com
    account_sid: str | None = None
    auth_token: Secret = None  # key of X-Twilio-Signature and the REST API's basic auth
    public_url: HttpUrl | None = None  # the public base URL (signatures behind a proxy, StatusCallback)


class TwilioAdapter(CarrierAdapter):
    settings = TwilioSettings
    config: TwilioSettings
    recipient_field = "To"

    def check_credentials(self, request: CarrierRequest) -> None:
        if not self.config.auth_token:
            raise Unauthorized("no auth_token configured for this carrier", kind="no_credentials")
        given = request.headers.get(SIGNATURE_HEADER)
        if given is None:
            raise Unauthorized(f"missing {SIGNATURE_HEADER} header", kind="missing_signature")
        params = form_params(request)
        token = self.config.auth_token
        given_bytes = given.strip().encode("ascii", "replace")
        if not any(hmac.compare_digest(given_bytes, signature(token, url, params).encode())
                   for url in url_variants(self.called_url(request))):
            raise Unauthorized(f"wrong {SIGNATURE_HEADER}", kind="bad_signature")
        account = dict(params).get("AccountSid")
        if self.config.account_sid and account is not None and account != self.config.account_sid:
            raise Unauthorized("AccountSid is not this carrier's account", kind="wrong_account")

    def called_url(self, request: CarrierRequest) -> str:
        """The URL Twilio called: `public_url` + path and query when set, else the URL we saw."""
        if self.config.public_url:
            return self.config.public_url.rstrip("/") + request.target
        return request.url

    def parse_inbound(self, request: CarrierRequest, *, received_at: datetime) -> InboundMessage:
        fields = dict(form_params(request))
        sid = _field(fields, "MessageSid")
        if not sid.strip() or len(sid) > MAX_ID_LENGTH:
            raise BadRequest(f"field 'MessageSid' must be 1 to {MAX_ID_LENGTH} characters", kind="bad_value")
        sender = sender_of(_field(fields, "From"), "From")
        return InboundMessage(carrier=self.name, carrier_id=sid, sender=sender, to=_field(fields, "To"),
                              text=_field(fields, "Body"), received_at=received_at)

    def render_sync(self, mo_id: str, replies: Sequence[OutboundMessage]) -> CarrierResponse:
        messages = "".join(f"<Message>{xml_text(mt.text)}</Message>" for mt in replies)
        return _twiml(f"{_XML}<Response>{messages}</Response>")

    def render_accepted(self, mo_id: str) -> CarrierResponse:
        return _twiml(f"{_XML}<Response/>")

    def billing_fields(self, billing: Billing) -> dict[str, Any]:
        return {}

    def messages_url(self) -> str:
        base = (self.config.mt_url or "").rstrip("/")
        return f"{base}/{API_VERSION}/Accounts/{self.config.account_sid}/Messages.json"

    def message_params(self, mt: OutboundMessage) -> dict[str, str]:
        """The form fields of the Messages request carrying `mt`."""
        sender = f"+{mt.sender}" if mt.sender.isdigit() and len(mt.sender) > 8 else mt.sender
        params = {"To": f"+{mt.to}", "From": sender, "Body": mt.text}
        if self.config.public_url:
            params["StatusCallback"] = f"{self.config.public_url.rstrip('/')}/carriers/{self.name}/dlr?id={mt.id}"
        return params

    async def send(self, session: aiohttp.ClientSession, mt: OutboundMessage) -> None:
        if not (self.config.mt_url and self.config.account_sid and self.config.auth_token):
            raise PermanentDeliveryError(f"carrier {self.name!r} needs mt_url, account_sid and auth_token")
        credentials = base64.b64encode(f"{self.config.account_sid}:{self.config.auth_token}".encode()).decode()
        headers = {"Authorization": f"Basic {credentials}"}
        status, answer = await self.call(session, "POST", self.messages_url(), url_key="mt_url",
                                         data=self.message_params(mt), headers=headers)
        if 200 <= status < 300:
            return
        reason = f"Twilio answered HTTP {status}{_error_code(answer)}"
        if status in (408, 429) or status >= 500:
            raise TemporaryDeliveryError(reason)
        raise PermanentDeliveryError(reason)

    def parse_delivery_report(self, request: CarrierRequest) -> DeliveryReport:
        fields = dict(form_params(request))
        mt_id = dict(parse_qsl(request.query)).get("id", "")
        if not mt_id.strip():
            raise BadRequest("missing our MT id: the StatusCallback URL ends in ?id=<MT id>", kind="missing_field")
        status = _field(fields, "MessageStatus").strip().lower()
        return DeliveryReport(carrier=self.name, mt_id=mt_id, state=STATES.get(status, DeliveryState.UNKNOWN),
                              time=_done_date(fields.get("RawDlrDoneDate")))


def form_params(request: CarrierRequest) -> list[tuple[str, str]]:
    """The POST parameters of a form-encoded UTF-8 body, in order."""
    if request.content_type != "application/x-www-form-urlencoded":
        raise UnsupportedMediaType("content type must be application/x-www-form-urlencoded, not "
                                   f"{request.content_type or 'none'}")
    try:
        return parse_qsl(request.body.decode("utf-8"), keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise BadRequest("body is not valid UTF-8", kind="invalid_utf8") from None


def _field(fields: dict[str, str], name: str) -> str:
    if name not in fields:
        raise BadRequest(f"missing field '{name}'", kind="missing_field")
    return fields[name]


def _done_date(value: str | None) -> datetime | None:
    try:
        return datetime.strptime(value or "", "%y%m%d%H%M").replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def _error_code(answer: bytes) -> str:
    try:
        code = json.loads(answer).get("code")
    except (ValueError, AttributeError):
        return ""
    return f" (Twilio error {code})" if isinstance(code, int) else ""


def _twiml(text: str) -> CarrierResponse:
    return CarrierResponse(200, text.encode("utf-8"), "text/xml", charset="utf-8")
