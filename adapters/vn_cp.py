"""The `vn-cp` carrier: the Vietnamese content-provider (CP) convention of the 8x79 aggregators.

Every request in both directions carries the account's `username` and `password` (the carrier's
`username`/`password`: the aggregator signs in with them, and so do we), and comes either
form-encoded (`form = "http"`, UTF-8) or as a SOAP 1.1 envelope (`form = "soap"`, the ASMX
style: namespace `http://tempuri.org/`, SOAPAction `"http://tempuri.org/sendMT"` on MTs). In
SOAP the fields are the child elements of the Body's one element (the operation; e.g.
`messageReceiver` for MOs), by local name, namespaces ignored. Documents with a DTD are
refused (SOAP forbids them, and without a DTD there are no entities to expand), so untrusted
XML is read safely with the standard library's expat.

MO (`POST /carriers/<name>/mo`): `User_ID` (the phone; a short code or brandname is taken and
never answered, `phones.classify_sender`), `Service_ID` (the short code),
`Command_Code` (the keyword the aggregator routed on), `Message` (the whole text), `Request_ID`
(the aggregator's MO id), `Operator` (VIETTEL, VINAPHONE, ...; optional). Async mode answers
`1` (SOAP: `<return>1</return>` in `messageReceiverResponse`). A refused request gets its 4xx
with `-1` (authentication) or `0` on the first line and the reason on the second (SOAP: a
Client Fault with the reason).

MT: `User_ID`, `Message`, `Service_ID`, `Command_Code`, `Message_Type`, `Request_ID` (the
MO's), `Total_Message`, `Message_Index`, `IsMore`, `Content_Type` (0 text, 1 Unicode). A reply
of several SMS parts (`gsm.split`) goes as one MT a part, in order, with `Total_Message` parts,
`Message_Index` 1..n and `IsMore` 1 on all but the last, for the aggregator to send them as one
concatenated message. Only the first part carries the billing outcome in `Message_Type` (1
charge, 0 free, 21 refund for wrong syntax, 22 refund for content, 3 push): the reply is one
answer charged once, so the other parts go as 0 (free). In async mode each part is POSTed to
`mt_url` (SOAP operation `sendMT`) and the aggregator answers `1` (SOAP: the response
element's first child, `<return>` or ASMX's `<sendMTResult>`). A part is sent only once the one
before it was taken, and a retry resumes at the first part not yet taken (from the first after
a restart: at least once, with the same `Request_ID` and `Message_Index`). `-1` (account
refused), HTTP 400, 401 and 403 fail the MT at once; anything else is retried. In sync mode
the MO's response carries the parts: one form-encoded MT a line (`text/plain`), or
`<return>1</return>` followed by one `<MT>` element a part.

The MT echoes the MO's `Service_ID` and `Command_Code`, remembered from the MO; an MT whose MO
was taken before a restart, or a notice that answers no MO, carries our short code and `BH`, the
service's keyword; a notice's `Request_ID` is `0`.

DLR (`POST /carriers/<name>/dlr`, for aggregators that report delivery): `Request_ID` (the MO's),
`Status` (SMPP's DELIVRD, UNDELIV, EXPIRED, REJECTD, ACCEPTD, ENROUTE, DELETED, UNKNOWN, or
our `DeliveryState` names), `Message_Index` (optional, not used: the reply's state follows its
first final report); answered `1`.
"""

from __future__ import annotations

import hmac
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode
from xml.parsers import expat

import aiohttp

from ..billing import Billing, MessageType
from ..carrier import CarrierAdapter, sender_of, xml_text
from ..errors import (
    BadRequest, PermanentDeliveryError, RequestError, TemporaryDeliveryError, Unauthorized, UnsupportedMediaType,
)
from ..gsm import split
from ..settings import CarrierSettings, HttpUrl, Secret
from ..wire import CarrierRequest, CarrierResponse, DeliveryReport, DeliveryState, InboundMessage, OutboundMessage
from .generic import MAX_ID_LENGTH

SERVICE_KEYWORD = "BH"
PUSH_REQUEST_ID = "0"          # the Request_ID of an MT that answers no MO (a notice, Message_Type 3)
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SERVICE_NS = "http://tempuri.org/"
XML_TYPES = ("text/xml", "application/soap+xml", "application/xml")
MO_FIELDS = ("User_ID", "Service_ID", "Command_Code", "Message", "Request_ID")
CONTENT_TYPES = {"gsm7": 0, "ucs2": 1}
STATUSES = {
    "DELIVRD": DeliveryState.DELIVERED, "UNDELIV": DeliveryState.FAILED, "EXPIRED": DeliveryState.EXPIRED,
    "REJECTD": DeliveryState.REJECTED, "ACCEPTD": DeliveryState.ACCEPTED, "ENROUTE": DeliveryState.ENROUTE,
    "DELETED": DeliveryState.FAILED, "UNKNOWN": DeliveryState.UNKNOWN,
    **{state.value.upper(): state for state in DeliveryState},
}
_REMEMBERED = 65_536


class VnCpSettings(CarrierSettings):
    """`[carriers.NAME]` keys of a Vietnamese content-provider aggregator."""

    credential_keys = ("username", "password")
    sending_keys = ("mt_url",)
    secret_keys = ("password",)

    mt_url: HttpUrl | None = None   # where MTs are POSTed
    username: str | None = None     # the CP account, both ways
    password: Secret = None
    form: Literal["http", "soap"] = "http"   # form-encoded fields, or a SOAP envelope


class VnCpAdapter(CarrierAdapter):
    settings = VnCpSettings
    config: VnCpSettings
    recipient_field = "Service_ID"

    def __init__(self, config: VnCpSettings, *, shortcode: str) -> None:
        super().__init__(config, shortcode=shortcode)
        self._routing: OrderedDict[str, tuple[str, str]] = OrderedDict()   # Request_ID -> Service_ID, Command_Code
        self._parts_taken: OrderedDict[str, int] = OrderedDict()          # MT id -> parts the aggregator took

    def check_credentials(self, request: CarrierRequest) -> None:
        if not (self.config.username and self.config.password):
            raise Unauthorized("no username and password configured for this carrier", kind="no_credentials")
        fields = self.fields(request)
        for name in ("username", "password"):
            given = fields.get(name)
            if given is None:
                raise Unauthorized(f"missing {name}", kind="missing_credentials")
            if not hmac.compare_digest(given.encode(), getattr(self.config, name).encode()):
                raise Unauthorized("wrong username or password", kind="bad_credentials")

    def fields(self, request: CarrierRequest) -> dict[str, str]:
        """The request's fields, from its form body or its SOAP envelope (the carrier's `form`)."""
        if self.config.form == "soap":
            if request.content_type not in XML_TYPES:
                raise UnsupportedMediaType(f"content type must be text/xml, not {request.content_type or 'none'}")
            return soap_fields(request.body)[1]
        if request.content_type != "application/x-www-form-urlencoded":
            raise UnsupportedMediaType("content type must be application/x-www-form-urlencoded, not "
                                       f"{request.content_type or 'none'}")
        if request.charset is not None and request.charset.lower().replace("-", "") != "utf8":
            raise UnsupportedMediaType(f"charset must be utf-8, not {request.charset}")
        return form_fields(request.body)

    def parse_inbound(self, request: CarrierRequest, *, received_at: datetime) -> InboundMessage:
        fields = self.fields(request)
        for name in MO_FIELDS:
            if name not in fields:
                raise BadRequest(f"missing field '{name}'", kind="missing_field")
        request_id = fields["Request_ID"]
        if not request_id.strip() or len(request_id) > MAX_ID_LENGTH:
            raise BadRequest(f"field 'Request_ID' must be 1 to {MAX_ID_LENGTH} characters", kind="bad_value")
        sender = sender_of(fields["User_ID"], "User_ID")
        self._remember(self._routing, request_id, (fields["Service_ID"], fields["Command_Code"]))
        return InboundMessage(carrier=self.name, carrier_id=request_id, sender=sender, to=fields["Service_ID"],
                              text=fields["Message"], received_at=received_at)

    def mt_parts(self, mt: OutboundMessage) -> list[dict[str, str]]:
        """The MT fields of each SMS part of `mt`, in order, without the account."""
        service_id, command_code = self._routing.get(mt.in_reply_to, (self.shortcode, SERVICE_KEYWORD))
        texts = split(mt.text)
        return [{
            "User_ID": mt.to, "Message": text, "Service_ID": service_id, "Command_Code": command_code,
            **self.billing_fields(mt.billing if index == 1 else Billing(MessageType.FREE)),
            "Request_ID": mt.in_reply_to or PUSH_REQUEST_ID, "Total_Message": str(len(texts)),
            "Message_Index": str(index),
            "IsMore": "1" if index < len(texts) else "0", "Content_Type": str(CONTENT_TYPES[mt.encoding]),
        } for index, text in enumerate(texts, start=1)]

    def render_sync(self, mo_id: str, replies: Sequence[OutboundMessage]) -> CarrierResponse:
        parts = [part for mt in replies for part in self.mt_parts(mt)]
        if self.config.form == "soap":
            mts = "".join(f"<MT>{xml_fields(part)}</MT>" for part in parts)
            return _xml(200, envelope("messageReceiverResponse", f"<return>1</return>{mts}"))
        return _plain(200, "".join(urlencode(part) + "\n" for part in parts))

    def render_accepted(self, mo_id: str) -> CarrierResponse:
        return self._result(200, "1")

    def render_error(self, error: RequestError) -> CarrierResponse:
        if self.config.form == "soap":
            return _xml(error.status, envelope("Fault", f"<faultcode>soapenv:Client</faultcode>"
                                                        f"<faultstring>{xml_text(error.reason)}</faultstring>",
                                               namespace=SOAP_ENV))
        code = "-1" if isinstance(error, Unauthorized) else "0"
        return _plain(error.status, f"{code}\n{error.reason}")

    def render_delivery_ack(self, report: DeliveryReport, state: DeliveryState | None) -> CarrierResponse:
        return self._result(200, "1")

    def billing_fields(self, billing: Billing) -> dict[str, Any]:
        return {"Message_Type": str(int(billing.message_type))}

    def request_body(self, part: dict[str, str]) -> tuple[bytes, dict[str, str]]:
        """The body and headers of the MT request carrying one part."""
        account = {"username": self.config.username or "", "password": self.config.password or ""}
        if self.config.form == "soap":
            body = envelope("sendMT", xml_fields({**account, **part}))
            return body, {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{SERVICE_NS}sendMT"'}
        return urlencode({**account, **part}).encode(), {"Content-Type": "application/x-www-form-urlencoded"}

    async def send(self, session: aiohttp.ClientSession, mt: OutboundMessage) -> None:
        if not self.config.mt_url:
            raise PermanentDeliveryError(f"carrier {self.name!r} has no mt_url")
        parts = self.mt_parts(mt)
        for index in range(self._parts_taken.get(mt.id, 0), len(parts)):
            await self._send_part(session, parts[index])
            self._remember(self._parts_taken, mt.id, index + 1)
        self._parts_taken.pop(mt.id, None)

    async def _send_part(self, session: aiohttp.ClientSession, part: dict[str, str]) -> None:
        body, headers = self.request_body(part)
        status, answer = await self.call(session, "POST", self.config.mt_url, url_key="mt_url", data=body,
                                         headers=headers)
        if status in (400, 401, 403):
            raise PermanentDeliveryError(f"aggregator answered HTTP {status}")
        if not 200 <= status < 300:
            raise TemporaryDeliveryError(f"aggregator answered HTTP {status}")
        result = self._read_result(answer)
        if result == "-1":
            raise PermanentDeliveryError("aggregator refused the account (-1)")
        if result != "1":
            raise TemporaryDeliveryError(f"aggregator answered {result[:40]!r}")

    def parse_delivery_report(self, request: CarrierRequest) -> DeliveryReport:
        fields = self.fields(request)
        for name in ("Request_ID", "Status"):
            if not fields.get(name, "").strip():
                raise BadRequest(f"missing field '{name}'", kind="missing_field")
        state = STATUSES.get(fields["Status"].strip().upper())
        if state is None:
            raise BadRequest(f"field 'Status' must be one of {', '.join(STATUSES)}", kind="bad_value")
        return DeliveryReport(carrier=self.name, mt_id="", state=state, time=None, in_reply_to=fields["Request_ID"])

    def _read_result(self, answer: bytes) -> str:
        try:
            if self.config.form == "soap":
                _, fields = soap_fields(answer)
                return next(iter(fields.values()), "").strip()
            return answer.decode("utf-8").strip().split(maxsplit=1)[0] if answer.strip() else ""
        except (BadRequest, UnicodeDecodeError):
            return answer[:40].decode("utf-8", "replace")

    def _result(self, status: int, code: str) -> CarrierResponse:
        if self.config.form == "soap":
            return _xml(status, envelope("messageReceiverResponse", f"<return>{code}</return>"))
        return _plain(status, code)

    @staticmethod
    def _remember(table: OrderedDict, key: str, value: Any) -> None:
        table[key] = value
        table.move_to_end(key)
        while len(table) > _REMEMBERED:
            table.popitem(last=False)


def form_fields(body: bytes) -> dict[str, str]:
    """A form-encoded UTF-8 body's fields; each may appear once."""
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise BadRequest("body is not valid UTF-8", kind="invalid_utf8") from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            raise BadRequest(f"field '{name}' given twice", kind="bad_form")
        fields[name] = value
    return fields


def soap_fields(body: bytes) -> tuple[str, dict[str, str]]:
    """The operation (local name of the Body's element) and its child elements' texts, by local name.

    A DTD is refused, and with it every entity but the five predefined and character references.
    """
    operation: list[str] = []
    fields: dict[str, str] = {}
    path: list[str] = []
    text: list[str] = []

    def refuse(*_: Any) -> None:
        raise BadRequest("a SOAP message must not have a DTD", kind="bad_xml")

    def start(name: str, attributes: Any) -> None:
        local = name.rpartition("}")[2]
        path.append(local)
        if len(path) == 1 and local != "Envelope" or len(path) == 2 and local not in ("Header", "Body"):
            raise BadRequest(f"not a SOAP envelope: unexpected <{local}>", kind="bad_xml")
        if len(path) == 3 and path[1] == "Body":
            if operation:
                raise BadRequest("the SOAP Body must hold one element", kind="bad_xml")
            operation.append(local)
        text.clear()

    def end(name: str) -> None:
        if len(path) == 4 and path[1] == "Body":
            if path[3] in fields:
                raise BadRequest(f"field '{path[3]}' given twice", kind="bad_xml")
            fields[path[3]] = "".join(text)
        path.pop()
        text.clear()

    parser = expat.ParserCreate(namespace_separator="}")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text.append
    try:
        parser.Parse(body, True)
    except expat.ExpatError as exc:
        raise BadRequest(f"body is not well-formed XML: {expat.ErrorString(exc.code)}", kind="bad_xml") from None
    if not operation:
        raise BadRequest("the SOAP Body holds no element", kind="bad_xml")
    return operation[0], fields


def envelope(operation: str, content: str, *, namespace: str = SERVICE_NS) -> bytes:
    prefix = "soapenv" if namespace == SOAP_ENV else "cp"
    declare = "" if namespace == SOAP_ENV else f' xmlns:cp="{namespace}"'
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}"{declare}>'
            f"<soapenv:Body><{prefix}:{operation}>{content}</{prefix}:{operation}></soapenv:Body>"
            "</soapenv:Envelope>\n").encode()


def xml_fields(fields: dict[str, str]) -> str:
    return "".join(f"<{name}>{xml_text(value)}</{name}>" for name, value in fields.items())


def _xml(status: int, body: bytes) -> CarrierResponse:
    return CarrierResponse(status, body, "text/xml", charset="utf-8")


def _plain(status: int, text: str) -> CarrierResponse:
    return CarrierResponse(status, text.encode("utf-8"), "text/plain", charset="utf-8")
