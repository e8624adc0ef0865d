"""The `kannel` carrier: a stock Kannel 1.4 smsbox in front of the SMSCs.

A complete bearerbox + smsbox configuration for smsgw is `deploy/kannel.conf` (the real-Kannel
test, tests/adapters/test_kannel_real.py, runs that file); the groups that matter to smsgw:

MO: smsbox fetches an `sms-service`'s `get-url` (GET; a `post-url` POST with the text as body
works too, as does a form-encoded POST):

    group = sms-service
    keyword-regex = .*
    catch-all = true
    get-url = "http://HOST:PORT/carriers/kannel/mo?id=%I&from=%p&to=%P&text=%a&smsc=%i&time=%t"
    accept-x-kannel-headers = true   # else smsbox ignores X-Kannel-Coding and garbles Vietnamese
    max-messages = 10                # a reply longer than one SMS goes in parts...
    concatenation = true             # ...that the phone joins
    omit-empty = true                # an empty response sends nothing (async mode, MOs left unanswered)

    group = smsbox
    mo-recode = true                 # MOs in UCS-2 (Vietnamese with diacritics) reach us as UTF-8

`id` (%I, smsbox's message id) is the MO's carrier id, `from` (%p) the phone (or a short code
or brandname, `phones.classify_sender`: taken, never answered), `to` (%P) our number, `text`
(%a) the message; `smsc` (%i) is optional, and so is `time` (%t, `YYYY-MM-DD+HH:MM:SS` GMT),
kept as the time the MO was received. smsbox puts the message's bytes in the URL as they are,
so a message the SMSC delivered in UCS-2 arrives as UTF-8 only with `mo-recode = true` in the
`smsbox` group (or with `&charset=%C` added to the URL, which names the bytes' charset).

Sync mode: the response body is the reply, always `200 text/plain; charset=utf-8`: smsbox turns
any other status into "Could not fetch content, sorry." on the citizen's phone. So a request we
cannot read, or a gateway that cannot answer now, gets a short apology as reply; only a failed
authentication gets a 401. A UCS-2 reply carries `X-Kannel-Coding: 2` (else smsbox sends
GSM-7 and garbles Vietnamese letters), and `X-Kannel-BInfo` carries the billing outcome (the
`message_type` number) for the SMSC's billing field.

Async mode: the MO gets an empty 200, and the reply goes to smsbox's `/cgi-bin/sendsms` (GET:
username, password, from, to, text, charset=UTF-8, coding 0 GSM-7 or 2 UCS-2, binfo) with
`dlr-mask=31` and a `dlr-url` back to `/carriers/<name>/dlr?id=<MT id>&status=%d&time=%t`
(built on the carrier's `public_url`, the gateway's base URL as Kannel reaches it; without one no
report is asked for). `to` is E.164 digits (`84912345678`); the SMSC group's `unified-prefix`
rewrites it for an SMSC that wants another form. smsbox's `202 0: Accepted for delivery` and
`202 3: Queued for later delivery` are successes; `403` (wrong username/password, or a sender
the user may not use) and `400` (a request smsbox refuses as such: missing or invalid number,
text too long) would be refused again and fail the MT at once; anything else is retried. The
sendsms-user needs `max-messages` and `concatenation` like the service. Delivery reports (%d):
1 delivered, 2 failed, 4 buffered by the SMSC, 8 submitted to the SMSC, 16 rejected by it.

Authentication: the peer's address in `allow_ips` (addresses or networks; smsbox's own address
when it connects directly), and/or `token` as the `token` query parameter of get-url and of the
dlr-url we give; both are checked when both are configured.
"""

from __future__ import annotations

import codecs
import hmac
import ipaddress
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
from pydantic import field_validator, model_validator

from ..billing import Billing
from ..carrier import CarrierAdapter, sender_of
from ..errors import (
    BadRequest, PermanentDeliveryError, RequestError, TemporaryDeliveryError, Unauthorized, UnsupportedMediaType,
)
from ..settings import CarrierSettings, HttpUrl, Secret, SettingProblem
from ..wire import CarrierRequest, CarrierResponse, DeliveryReport, DeliveryState, InboundMessage, OutboundMessage
from .generic import MAX_ID_LENGTH

DLR_MASK = 31
DLR_STATES = {
    1: DeliveryState.DELIVERED, 2: DeliveryState.FAILED, 4: DeliveryState.ENROUTE,
    8: DeliveryState.ACCEPTED, 16: DeliveryState.REJECTED,
}
CODING = {"gsm7": 0, "ucs2": 2}
CHARSETS = frozenset(codecs.lookup(name).name for name in ("utf-8", "utf-16-be", "iso-8859-1", "cp1252", "ascii"))
APOLOGY = "He thong chua xu ly duoc tin nhan cua ban. Vui long gui lai sau it phut."


class KannelSettings(CarrierSettings):
    """`[carriers.NAME]` keys of a Kannel smsbox."""

    sending_keys = ("sendsms_url", "username", "password")
    secret_keys = ("password", "token")

    sendsms_url: HttpUrl | None = None  # smsbox's /cgi-bin/sendsms
    username: str | None = None     # the sendsms-user
    password: Secret = None
    allow_ips: tuple[str, ...] = ()  # addresses or networks allowed to deliver MOs
    token: Secret = None     # shared token expected in the MO URL (?token=...)
    public_url: HttpUrl | None = None   # the gateway's base URL as Kannel reaches it: base of dlr-url

    @field_validator("allow_ips", mode="before")
    @classmethod
    def _addresses(cls, value: Any) -> tuple[str, ...]:
        if not isinstance(value, (list, tuple)) or not all(isinstance(ip, str) for ip in value):
            raise ValueError("must be a list of addresses or networks (strings)")
        for ip in value:
            try:
                ipaddress.ip_network(ip, strict=False)
            except ValueError:
                raise ValueError(f"not an address or network: {ip!r}") from None
        return tuple(value)

    @model_validator(mode="after")
    def _some_credential(self) -> KannelSettings:
        if self.auth == "required" and not (self.allow_ips or self.token):
            raise SettingProblem("allow_ips", 'the kannel adapter needs allow_ips and/or token unless auth = "none"')
        return self


class KannelAdapter(CarrierAdapter):
    settings = KannelSettings
    config: KannelSettings
    methods = ("GET", "POST")

    def __init__(self, config: KannelSettings, *, shortcode: str) -> None:
        super().__init__(config, shortcode=shortcode)
        self.allowed = tuple(ipaddress.ip_network(ip, strict=False) for ip in config.allow_ips)

    def check_credentials(self, request: CarrierRequest) -> None:
        if not (self.allowed or self.config.token):
            raise Unauthorized("no allow_ips or token configured for this carrier", kind="no_credentials")
        if self.allowed and not _peer_allowed(request.peer, self.allowed):
            raise Unauthorized("peer address not in allow_ips", kind="ip_not_allowed")
        if self.config.token:
            given = query_fields(request).get("token")
            if given is None:
                raise Unauthorized("missing token", kind="missing_token")
            if not hmac.compare_digest(given.encode(), self.config.token.encode()):
                raise Unauthorized("wrong token", kind="bad_token")

    def parse_inbound(self, request: CarrierRequest, *, received_at: datetime) -> InboundMessage:
        fields = request_fields(request)
        carrier_id = _required(fields, "id")
        if len(carrier_id) > MAX_ID_LENGTH:
            raise BadRequest(f"field 'id' is longer than {MAX_ID_LENGTH} characters", kind="bad_value")
        sender = sender_of(_required(fields, "from"), "from")
        text = fields.get("text")
        if text is None:
            if not request.body or request.content_type == "application/x-www-form-urlencoded":
                raise BadRequest("missing field 'text'", kind="missing_field")
            text = _body_text(request)
        moment = kannel_time(fields.get("time")) or received_at
        return InboundMessage(carrier=self.name, carrier_id=carrier_id, sender=sender,
                              to=_required(fields, "to"), text=text, received_at=moment)

    def render_sync(self, mo_id: str, replies: Sequence[OutboundMessage]) -> CarrierResponse:
        text = "\n".join(mt.text for mt in replies)
        headers = {}
        if any(mt.encoding == "ucs2" for mt in replies):
            headers["X-Kannel-Coding"] = "2"
        if replies:
            headers["X-Kannel-BInfo"] = self.billing_fields(replies[0].billing)["binfo"]
        return _plain(text, headers)

    def render_accepted(self, mo_id: str) -> CarrierResponse:
        return _plain("")

    def render_error(self, error: RequestError) -> CarrierResponse:
        if isinstance(error, Unauthorized):
            return CarrierResponse(error.status, error.reason.encode(), "text/plain", charset="utf-8")
        return _plain(APOLOGY)

    def render_unavailable(self, reason: str) -> CarrierResponse:
        return _plain(APOLOGY)

    def render_delivery_ack(self, report: DeliveryReport, state: DeliveryState | None) -> CarrierResponse:
        return _plain("OK")

    def billing_fields(self, billing: Billing) -> dict[str, Any]:
        return {"binfo": str(int(billing.message_type))}

    def sendsms_params(self, mt: OutboundMessage) -> dict[str, str]:
        """The query of the sendsms request carrying `mt`."""
        params = {
            "username": self.config.username or "", "password": self.config.password or "",
            "from": mt.sender, "to": mt.to, "text": mt.text, "charset": "UTF-8",
            "coding": str(CODING[mt.encoding]), **self.billing_fields(mt.billing),
        }
        if self.config.public_url:
            report = {"id": mt.id, **({"token": self.config.token} if self.config.token else {})}
            params["dlr-mask"] = str(DLR_MASK)
            params["dlr-url"] = (f"{self.config.public_url.rstrip('/')}/carriers/{self.name}/dlr?"
                                 f"{urlencode(report)}&status=%d&time=%t")
        return params

    async def send(self, session: aiohttp.ClientSession, mt: OutboundMessage) -> None:
        if not self.config.sendsms_url:
            raise PermanentDeliveryError(f"carrier {self.name!r} has no sendsms_url")
        status, body = await self.call(session, "GET", self.config.sendsms_url, url_key="sendsms_url",
                                       params=self.sendsms_params(mt))
        answer = body.decode("utf-8", "replace").strip()
        if 200 <= status < 300 and answer.startswith(("0:", "3:")):
            return
        reason = f"smsbox answered HTTP {status}: {answer[:200]}"
        if status in (400, 403):
            raise PermanentDeliveryError(reason)
        raise TemporaryDeliveryError(reason)

    def parse_delivery_report(self, request: CarrierRequest) -> DeliveryReport:
        fields = request_fields(request)
        mt_id = _required(fields, "id")
        status = _required(fields, "status")
        if not (status.isascii() and status.isdigit()):
            raise BadRequest("field 'status' must be Kannel's %d delivery code", kind="bad_value")
        state = DLR_STATES.get(int(status), DeliveryState.UNKNOWN)
        return DeliveryReport(carrier=self.name, mt_id=mt_id, state=state, time=kannel_time(fields.get("time")))


def query_fields(request: CarrierRequest) -> dict[str, str]:
    """The query string's fields; each may appear once."""
    return _fields(request.query, "query string")


def request_fields(request: CarrierRequest) -> dict[str, str]:
    """The query's fields and, for a form-encoded POST, the body's; a field may appear once in all."""
    fields = query_fields(request)
    if request.content_type == "application/x-www-form-urlencoded" and request.body:
        try:
            body = request.body.decode("ascii")
        except UnicodeDecodeError:
            raise BadRequest("a form body must be ASCII (percent-encoded UTF-8)", kind="bad_form") from None
        for name, value in _fields(body, "form body").items():
            if name in fields:
                raise BadRequest(f"field '{name}' given twice", kind="bad_form")
            fields[name] = value
    return fields


def kannel_time(value: str | None) -> datetime | None:
    """smsbox's `%t` (`YYYY-MM-DD HH:MM:SS`, GMT; `HH:MM` in old versions); None when absent or unreadable.

    The time is informative only: a message is never refused for it.
    """
    for layout in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"):
        try:
            return datetime.strptime((value or "").strip(), layout).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    return None


def _fields(encoded: str, where: str) -> dict[str, str]:
    """Percent-decoded fields: UTF-8, except `text` in the charset a `charset` field names (smsbox's %C)."""
    raw: dict[str, str] = {}
    for name, value in parse_qsl(encoded, keep_blank_values=True, encoding="latin-1"):
        name = _decode(name, "utf-8", where)
        if name in raw:
            raise BadRequest(f"field '{name}' given twice", kind="bad_form")
        raw[name] = value
    charset = _decode(raw["charset"], "utf-8", where) if "charset" in raw else "utf-8"
    return {name: _decode(value, charset if name == "text" else "utf-8", f"field '{name}'")
            for name, value in raw.items()}


def _decode(latin1: str, charset: str, where: str) -> str:
    return decode(latin1.encode("latin-1"), charset, where)


def decode(data: bytes, charset: str, where: str) -> str:
    """`data` in one of the charsets smsbox names (UTF-8, UTF-16BE, ISO-8859-1, ...), or a 400."""
    try:
        codec = codecs.lookup(charset).name
    except (LookupError, ValueError):
        codec = ""
    if codec not in CHARSETS:
        raise BadRequest(f"unsupported charset {charset!r}", kind="bad_value")
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        raise BadRequest(f"{where} is not valid {charset}", kind="invalid_utf8") from None


def _body_text(request: CarrierRequest) -> str:
    if request.content_type not in ("text/plain", "application/octet-stream", ""):
        raise UnsupportedMediaType("the text comes in the URL (text=%a) or as a text/plain body")
    return decode(request.body, request.charset or "utf-8", "body")


def _required(fields: dict[str, str], name: str) -> str:
    value = fields.get(name)
    if value is None:
        raise BadRequest(f"missing field '{name}'", kind="missing_field")
    if not value.strip():
        raise BadRequest(f"field '{name}' must not be empty", kind="bad_value")
    return value


def _peer_allowed(peer: str | None, allowed: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> bool:
    if not peer:
        return False
    try:
        address = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in allowed)


def _plain(text: str, headers: dict[str, str] | None = None) -> CarrierResponse:
    return CarrierResponse(200, text.encode("utf-8"), "text/plain", headers or {}, charset="utf-8")
