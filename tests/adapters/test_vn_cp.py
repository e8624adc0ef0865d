"""The vn-cp carrier: form and SOAP MOs, multi-part MTs with the charge on the first, reports."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.adapters.vn_cp import VnCpAdapter, VnCpSettings, form_fields, soap_fields
from smsgw.billing import MessageType
from smsgw.carrier import load_adapter
from smsgw.config import parse_config
from smsgw.errors import BadRequest, PermanentDeliveryError, RequestError, TemporaryDeliveryError, Unauthorized
from smsgw.gateway import STORE, create_app
from smsgw.seed import seed_database
from smsgw.wire import CarrierRequest, DeliveryState, OutboundMessage

from . import assert_refusal_names_the_problem, carrier_ids, msisdn, phones, texts


FIXTURES = Path(__file__).parents[2] / "fixtures" / "carriers" / "vn-cp"
NOW = datetime(2025, 1, 31, 8, 0, tzinfo=timezone.utc)
ACCOUNT = {"username": "cp8079", "password": "Bh@8079!"}
QT_REPLY = ("Mã số 0110129425, giai đoạn 01/2016-12/2017: BHXH: 01 năm 06 tháng, BHTN: 01 năm 03 tháng. "
            "Tổng: BHXH: 11 năm 11 tháng, BHTN: 11 năm 02 tháng.")
FORM = "application/x-www-form-urlencoded"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def adapter(form: str = "http", **options) -> VnCpAdapter:
    # model_construct: the settings as given, unchecked (the adapter's own defences are under test)
    return load_adapter(VnCpSettings.model_construct(name="vn-cp", adapter="vn-cp", form=form, **{**ACCOUNT, **options}),
                        shortcode="8079")


def post(body: bytes, content_type: str = FORM) -> CarrierRequest:
    return CarrierRequest({}, content_type, None, body, target="/carriers/vn-cp/mo")


def mt(**fields) -> OutboundMessage:
    values = dict(id="mt-1", mo_id="mo-1", in_reply_to="1738310400123", carrier="vn-cp", sender="8079",
                  to="84912345678", text=QT_REPLY, encoding="ucs2", segments=3, message_type=MessageType.CHARGED)
    return OutboundMessage(**{**values, **fields})


def test_form_mo_fixture_parses_and_renders_back():
    vn_cp = adapter()
    request = post(fixture("mo.form"))
    vn_cp.authenticate(request)
    message = vn_cp.parse_inbound(request, received_at=NOW)
    assert (message.carrier_id, message.sender, message.to, message.text) == (
        "1738310400123", "84912345678", "8079", "BH QT 0110129425 2016 2017")
    assert urlencode(form_fields(fixture("mo.form"))).encode() == fixture("mo.form")


def test_soap_mo_fixture_parses_with_its_diacritics():
    vn_cp = adapter("soap")
    request = post(fixture("mo_diacritics.soap.xml"), "text/xml")
    vn_cp.authenticate(request)
    message = vn_cp.parse_inbound(request, received_at=NOW)
    assert (message.carrier_id, message.sender, message.text) == ("1738310400124", "84912345678",
                                                                  "BH THẺ HC4010110129425")
    operation, fields = soap_fields(fixture("mo_diacritics.soap.xml"))
    assert (operation, fields["Operator"], fields["password"]) == ("messageReceiver", "VINAPHONE", "Bh@8079!")


def test_the_account_is_checked_in_form_and_soap():
    with pytest.raises(Unauthorized, match="missing password"):
        adapter().authenticate(post(b"username=cp8079&User_ID=84912345678"))
    with pytest.raises(Unauthorized, match="wrong username or password"):
        adapter(password="other").authenticate(post(fixture("mo.form")))
    with pytest.raises(Unauthorized, match="wrong username or password"):
        adapter("soap", username="other").authenticate(post(fixture("mo_diacritics.soap.xml"), "text/xml"))
    adapter(auth="none", username=None, password=None).authenticate(post(b"User_ID=1"))
    with pytest.raises(Unauthorized, match="no username and password"):
        adapter(password=None).authenticate(post(b"username=cp8079&password="))
    refused = adapter().render_error(Unauthorized("wrong username or password"))
    assert (refused.status, refused.body) == (401, b"-1\nwrong username or password")
    fault = adapter("soap").render_error(BadRequest("missing field 'Message'"))
    assert fault.status == 400 and soap_fields(fault.body) == (
        "Fault", {"faultcode": "soapenv:Client", "faultstring": "missing field 'Message'"})


@pytest.mark.parametrize(("form", "extension"), [("http", "form"), ("soap", "soap.xml")])
def test_a_three_part_reply_is_three_mts_and_only_the_first_is_charged(form, extension):
    vn_cp = adapter(form)
    parts = vn_cp.mt_parts(mt())
    assert [(p["Message_Index"], p["Total_Message"], p["IsMore"], p["Message_Type"], p["Content_Type"])
            for p in parts] == [("1", "3", "1", "1", "1"), ("2", "3", "1", "0", "1"), ("3", "3", "0", "0", "1")]
    assert "".join(p["Message"] for p in parts) == QT_REPLY
    for index, part in enumerate(parts, start=1):
        body, _ = vn_cp.request_body(part)
        assert body == fixture(f"mt_part{index}.{extension}")
        sent = form_fields(body) if form == "http" else soap_fields(body)[1]
        assert sent == {**ACCOUNT, **part}


@pytest.mark.parametrize("outcome", [MessageType.FREE, MessageType.REFUND_SYNTAX, MessageType.REFUND_CONTENT,
                                     MessageType.PUSH])
def test_every_billing_outcome_is_its_message_type(outcome):
    (part,) = adapter().mt_parts(mt(text="Khong tim thay", encoding="gsm7", segments=1, message_type=outcome))
    assert (part["Message_Type"], part["Content_Type"], part["Total_Message"], part["IsMore"]) == (
        str(int(outcome)), "0", "1", "0")


def test_mts_echo_the_service_and_keyword_of_the_mo_they_answer():
    vn_cp = adapter()
    body = urlencode({**ACCOUNT, "User_ID": "0912345678", "Service_ID": "8179", "Command_Code": "HD",
                      "Message": "HD", "Request_ID": "r-9"}).encode()
    vn_cp.parse_inbound(post(body), received_at=NOW)
    (part,) = vn_cp.mt_parts(mt(in_reply_to="r-9", text="Tra cuu", encoding="gsm7"))
    assert (part["Service_ID"], part["Command_Code"], part["Request_ID"]) == ("8179", "HD", "r-9")
    (unknown,) = adapter().mt_parts(mt(in_reply_to="r-9", text="Tra cuu", encoding="gsm7"))
    assert (unknown["Service_ID"], unknown["Command_Code"]) == ("8079", "BH")


def test_a_notice_answers_no_mo():
    (part,) = adapter().mt_parts(mt(in_reply_to="", sender="BHXHVN", text="Thong bao", encoding="gsm7",
                                    message_type=MessageType.PUSH))
    assert (part["Request_ID"], part["Service_ID"], part["Message_Type"]) == ("0", "8079", "3")


@pytest.mark.parametrize(("form", "name", "content_type"), [("http", "sync_reply.txt", "text/plain"),
                                                            ("soap", "sync_reply.soap.xml", "text/xml")])
def test_sync_reply_carries_the_parts(form, name, content_type):
    response = adapter(form).render_sync("mo-1", [mt()])
    assert (response.status, response.content_type, response.body) == (200, content_type, fixture(name))
    accepted = adapter("soap").render_accepted("mo-1")
    assert accepted.body == fixture("accepted.soap.xml")
    assert soap_fields(accepted.body) == ("messageReceiverResponse", {"return": "1"})


@pytest.mark.parametrize(("form", "name", "content_type", "request_id", "state"), [
    ("http", "dlr.form", FORM, "1738310400123", DeliveryState.DELIVERED),
    ("soap", "dlr.soap.xml", "text/xml", "1738310400124", DeliveryState.FAILED),
])
def test_delivery_report_fixtures_name_the_mo(form, name, content_type, request_id, state):
    vn_cp = adapter(form)
    request = post(fixture(name), content_type)
    vn_cp.authenticate(request)
    report = vn_cp.parse_delivery_report(request)
    assert (report.mt_id, report.in_reply_to, report.state) == ("", request_id, state)
    with pytest.raises(BadRequest, match="field 'Status'"):
        vn_cp.parse_delivery_report(post(fixture(name).replace(b"DELIVRD", b"LOST").replace(b"UNDELIV", b"LOST"),
                                         content_type))


@pytest.mark.parametrize("body", [
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
    b'<Envelope><Body><m><Message>&lol2;</Message></m></Body></Envelope>',
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    b'<Envelope><Body><m><Message>&xxe;</Message></m></Body></Envelope>',
    b'<Envelope><Body><m><Message>&xxe;</Message></m></Body></Envelope>',
    b"<Envelope><Body><m/><n/></Body></Envelope>",
    b"<html><body/></html>",
    b"<Envelope><Body/></Envelope>",
    b"<Envelope><Body><m>",
])
def test_hostile_or_broken_xml_is_refused(body):
    with pytest.raises(BadRequest):
        soap_fields(body)


FUZZED = ("username", "password", "User_ID", "Service_ID", "Command_Code", "Message", "Request_ID", "Status", "x")


@settings(max_examples=300)
@given(st.one_of(
    st.binary(max_size=200),
    st.dictionaries(st.sampled_from(FUZZED), st.text(max_size=20), max_size=8)
    .map(lambda d: urlencode(d).encode()),
    st.text(max_size=60).map(lambda t: f"<Envelope><Body><m><Message>{t}</Message></m></Body></Envelope>".encode()),
), carrier_ids, phones, texts)
def test_any_body_is_a_message_or_a_refusal_naming_the_problem(body, good_id, phone, text):
    for vn_cp, content_type in ((adapter(auth="none"), FORM), (adapter("soap", auth="none"), "text/xml")):
        for parse in (lambda r: vn_cp.parse_inbound(r, received_at=NOW), vn_cp.parse_delivery_report):
            try:
                parse(post(body, content_type))
            except RequestError as error:
                assert_refusal_names_the_problem(error, FUZZED)
    good = {"User_ID": phone, "Service_ID": "8079", "Command_Code": "BH", "Message": text, "Request_ID": good_id}
    message = adapter(auth="none").parse_inbound(post(urlencode(good).encode()), received_at=NOW)
    assert (message.carrier_id, message.sender, message.to, message.text) == (good_id, msisdn(phone), "8079", text)


class Aggregator:
    """An MT endpoint answering each request with the next of `answers` and keeping the parts."""

    def __init__(self, form: str, answers: list[tuple[int, bytes]]) -> None:
        self.form = form
        self.answers = iter(answers)
        self.parts: list[dict[str, str]] = []
        self.app = web.Application()
        self.app.router.add_post("/mt", self.receive)

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.parts.append(form_fields(body) if self.form == "http" else soap_fields(body)[1])
        accepted = fixture("mt_accepted.txt" if self.form == "http" else "mt_accepted.soap.xml")
        status, answer = next(self.answers, (200, accepted))
        return web.Response(status=status, body=answer)


@pytest.mark.parametrize(("form", "accepted"), [("http", "mt_accepted.txt"), ("soap", "mt_accepted.soap.xml")])
def test_parts_go_in_order_and_a_retry_resumes_where_the_aggregator_stopped(form, accepted):
    async def run():
        ok = (200, fixture(accepted))
        aggregator = Aggregator(form, [ok, (503, b""), ok, ok, (200, fixture("mt_refused.txt")), (401, b"")])
        async with TestServer(aggregator.app, host="127.0.0.1", port=0) as server, \
                aiohttp.ClientSession() as session:
            vn_cp = adapter(form, mt_url=str(server.make_url("/mt")), timeout=2.0)
            with pytest.raises(TemporaryDeliveryError, match="503"):
                await vn_cp.send(session, mt())
            await vn_cp.send(session, mt())
            assert [p["Message_Index"] for p in aggregator.parts] == ["1", "2", "2", "3"]
            assert {p["username"] for p in aggregator.parts} == {"cp8079"}
            with pytest.raises(PermanentDeliveryError, match="-1"):
                await vn_cp.send(session, mt(id="mt-2"))
            with pytest.raises(PermanentDeliveryError, match="401"):
                await vn_cp.send(session, mt(id="mt-3"))
            with pytest.raises(PermanentDeliveryError, match="no mt_url"):
                await adapter(form).send(session, mt())

    asyncio.run(run())


def test_through_the_gateway_soap_async_mt_parts_and_a_report_by_request_id(tmp_path):
    async def run():
        db = tmp_path / "records.db"
        await seed_database(db, 0)
        aggregator = Aggregator("soap", [])
        async with TestServer(aggregator.app, host="127.0.0.1", port=0) as server:
            config = parse_config({"gateway": {"unicode": True}, "carriers": {"vn-cp": {
                "adapter": "vn-cp", "form": "soap", "mode": "async", "mt_url": str(server.make_url("/mt")),
                **ACCOUNT}}})
            async with TestClient(TestServer(create_app(config, db_path=str(db)), host="127.0.0.1",
                                             port=0)) as client:
                mo = fixture("mo_diacritics.soap.xml").replace(b"BH TH\xe1\xba\xba HC4010110129425",
                                                                 b"BH QT 0110129425 2016 2017")
                response = await client.post("/carriers/vn-cp/mo", data=mo, headers={"Content-Type": "text/xml"})
                assert soap_fields(await response.read()) == ("messageReceiverResponse", {"return": "1"})
                for _ in range(500):
                    if len(aggregator.parts) == 3:
                        break
                    await asyncio.sleep(0.01)
                assert "".join(p["Message"] for p in aggregator.parts) == QT_REPLY
                assert [p["Message_Type"] for p in aggregator.parts] == ["1", "0", "0"]
                assert {p["Request_ID"] for p in aggregator.parts} == {"1738310400124"}
                report = await client.post("/carriers/vn-cp/dlr", data=fixture("dlr.soap.xml"),
                                           headers={"Content-Type": "text/xml"})
                assert report.status == 200
                (stored,) = (await client.app[STORE].find_mo("vn-cp", "1738310400124")).replies
                assert (await client.app[STORE].mt_state(stored.id)).delivery is DeliveryState.FAILED
                unsigned = await client.post("/carriers/vn-cp/mo", data=mo.replace(b"Bh@8079!", b"guess"),
                                             headers={"Content-Type": "text/xml"})
                assert unsigned.status == 401
                assert soap_fields(await unsigned.read())[1]["faultstring"] == "wrong username or password"

    asyncio.run(run())


def test_through_the_gateway_form_sync_reply_lines(tmp_path):
    async def run():
        db = tmp_path / "records.db"
        await seed_database(db, 0)
        config = parse_config({"carriers": {"vn-cp": {"adapter": "vn-cp", **ACCOUNT}}})
        async with TestClient(TestServer(create_app(config, db_path=str(db)), host="127.0.0.1", port=0)) as client:
            response = await client.post("/carriers/vn-cp/mo", data=fixture("mo.form"), headers={"Content-Type": FORM})
            lines = (await response.text()).splitlines()
            (part,) = [dict(parse_qsl(line)) for line in lines]
            assert (part["Message_Type"], part["Request_ID"], part["Content_Type"]) == ("1", "1738310400123", "0")
            assert "BHXH: 01 nam 06 thang" in part["Message"]

    asyncio.run(run())
