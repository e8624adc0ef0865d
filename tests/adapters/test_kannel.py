"""The kannel carrier: smsbox's get-url MOs, sync replies, sendsms MTs and dlr-url reports."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.adapters.kannel import APOLOGY, KannelAdapter, KannelSettings, kannel_time
from smsgw.billing import MessageType
from smsgw.carrier import load_adapter
from smsgw.config import parse_config
from smsgw.errors import BadRequest, PermanentDeliveryError, RequestError, TemporaryDeliveryError, Unauthorized
from smsgw.gateway import STORE, create_app
from smsgw.seed import seed_database
from smsgw.wire import CarrierRequest, DeliveryState, OutboundMessage

from . import assert_refusal_names_the_problem, carrier_ids, msisdn, phones, texts


FIXTURES = Path(__file__).parents[2] / "fixtures" / "carriers" / "kannel"
NOW = datetime(2025, 1, 31, 8, 0, tzinfo=timezone.utc)
TOKEN = "k4nnel-t0ken"
MT_ID = "7d3c1f0e-2b5a-4e8d-a1c9-6f4e2d0b8a37"
THE_REPLY = "Thẻ BHYT HC4010110129425 có giá trị đến 31/12/2099."


def fixture(name: str) -> str:
    return (FIXTURES / name).read_bytes().decode("utf-8")


def adapter(**options) -> KannelAdapter:
    # model_construct: the settings as given, unchecked (the adapter's own defences are under test)
    return load_adapter(KannelSettings.model_construct(name="kannel", adapter="kannel",
                                                       **{"allow_ips": ("127.0.0.1",), **options}),
                        shortcode="8079")


def get(query: str, *, peer: str | None = "127.0.0.1", path: str = "/carriers/kannel/mo") -> CarrierRequest:
    return CarrierRequest({}, "application/octet-stream", None, b"", method="GET", target=f"{path}?{query}",
                          url=f"http://127.0.0.1:8080{path}?{query}", peer=peer)


def smsbox_get_url(fields: dict[str, str]) -> str:
    """The query smsbox builds from `id=%I&from=%p&to=%P&text=%a&smsc=%i&time=%t`: %a is the words
    of the message's bytes (split at ASCII white space), each URL-encoded, joined by '+'; %t is GMT
    `YYYY-MM-DD+HH:MM:SS`, not encoded."""
    parts = []
    for name, value in fields.items():
        if name == "text":
            data = value.encode(fields.get("charset", "utf-8"))
            value = "+".join(quote(word, safe="") for word in data.split())
        elif name == "time":
            value = value.replace(" ", "+")
        else:
            value = quote(value, safe="")
        parts.append(f"{name}={value}")
    return "&".join(parts)


def mt(**fields) -> OutboundMessage:
    values = dict(id=MT_ID, mo_id="mo-1", in_reply_to="e48203b7-7355-4ec9-a24c-1737802064c4", carrier="kannel",
                  sender="8079", to="84912345678", text=THE_REPLY, encoding="ucs2", segments=1,
                  message_type=MessageType.CHARGED)
    return OutboundMessage(**{**values, **fields})


def http_response(text: str) -> tuple[int, dict[str, str], bytes]:
    head, _, body = text.partition("\r\n\r\n")
    status_line, *header_lines = head.split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), headers, body.encode("utf-8")


@pytest.mark.parametrize(("name", "carrier_id", "text", "moment"), [
    ("mo.query", "392a680c-da97-4517-93fd-379e8862e582", "BH QT 0110129425 2016 2017", NOW),
    ("mo_diacritics.query", "e48203b7-7355-4ec9-a24c-1737802064c4", "BH THẺ HC4010110129425",
     NOW.replace(second=7)),
    ("mo_ucs2_not_recoded.query", "5b1e0a3c-8f4d-4c2a-9e61-0d7f3b2a9c84", "BH THẺ HC4010110129425",
     NOW.replace(second=9)),
])
def test_smsbox_mo_fixtures_parse_and_render_back(name, carrier_id, text, moment):
    query = fixture(name)
    message = adapter().parse_inbound(get(query), received_at=NOW.replace(year=2030))
    assert (message.carrier, message.carrier_id, message.sender, message.to, message.text, message.received_at) == (
        "kannel", carrier_id, "84912345678", "8079", text, moment)
    fields = dict(parse_qsl(query))
    fields.update(id=message.carrier_id, text=message.text, time=f"{message.received_at:%Y-%m-%d %H:%M:%S}")
    assert smsbox_get_url(fields) == query


def test_a_post_url_mo_carries_the_text_as_its_body():
    body = "BH THẺ HC4010110129425".encode("utf-16-be")
    request = CarrierRequest({}, "text/plain", "UTF-16BE", body, method="POST",
                             target="/carriers/kannel/mo?id=p-1&from=%2B84912345678&to=8079", peer="127.0.0.1")
    message = adapter().parse_inbound(request, received_at=NOW)
    assert (message.carrier_id, message.sender, message.text, message.received_at) == (
        "p-1", "84912345678", "BH THẺ HC4010110129425", NOW)


@pytest.mark.parametrize(("query", "reason"), [
    ("from=0912345678&to=8079&text=BH", "missing field 'id'"),
    ("id=1&to=8079&text=BH", "missing field 'from'"),
    ("id=1&from=0912345678&to=8079", "missing field 'text'"),
    ("id=1&from=12ab&to=8079&text=BH", "field 'from': not a phone number"),
    ("id=1&id=2&from=0912345678&to=8079&text=BH", "field 'id' given twice"),
    ("id=1&from=0912345678&to=8079&text=BH%FF", "field 'text' is not valid utf-8"),
    ("id=1&from=0912345678&to=8079&text=BH&charset=zlib", "unsupported charset 'zlib'"),
])
def test_unreadable_mos_are_refused_with_a_reason(query, reason):
    with pytest.raises(BadRequest) as refused:
        adapter().parse_inbound(get(query), received_at=NOW)
    assert refused.value.reason.startswith(reason)


@pytest.mark.parametrize(("written", "sender"), [("%2B84912345678", "84912345678"), ("9029", "9029"),
                                                ("VIETTEL", "VIETTEL")])
def test_short_codes_and_brandnames_are_senders_too(written, sender):
    message = adapter().parse_inbound(get(f"id=1&from={written}&to=8079&text=TB"), received_at=NOW)
    assert message.sender == sender


def test_a_notice_goes_from_the_brandname_with_the_push_billing():
    params = adapter(mode="async", sendsms_url="http://k/cgi-bin/sendsms", username="u", password="p").sendsms_params(
        mt(in_reply_to="", sender="BHXHVN", message_type=MessageType.PUSH))
    assert (params["from"], params["to"], params["binfo"]) == ("BHXHVN", "84912345678", "3")


def test_an_unreadable_time_is_only_informative():
    assert kannel_time("2025-01-31 08:00") == NOW
    assert kannel_time("yesterday") is None and kannel_time(None) is None
    message = adapter().parse_inbound(get("id=1&from=0912345678&to=8079&text=BH&time=soon"), received_at=NOW)
    assert message.received_at == NOW


FUZZED = ("id", "from", "to", "text", "time", "charset", "token", "x")


@settings(max_examples=300)
@given(st.dictionaries(st.sampled_from(FUZZED), st.text(max_size=30), max_size=7), st.binary(max_size=40),
       carrier_ids, phones, texts)
def test_any_request_is_a_message_or_a_refusal_naming_the_problem(fields, raw, good_id, phone, text):
    query = urlencode(fields) + "&text=" + quote(raw) if "text" not in fields else urlencode(fields)
    kannel = adapter(token=TOKEN)
    for request in (get(query), get(query, peer=None)):
        try:
            kannel.authenticate(request)
            kannel.parse_inbound(request, received_at=NOW)
        except RequestError as error:
            assert_refusal_names_the_problem(error, (*FUZZED, "status"))
        try:
            kannel.parse_delivery_report(request)
        except RequestError as error:
            assert_refusal_names_the_problem(error, (*FUZZED, "status"))
    good = get(urlencode({"id": good_id, "from": phone, "to": "8079", "text": text, "token": TOKEN}))
    kannel.authenticate(good)
    message = kannel.parse_inbound(good, received_at=NOW)
    assert (message.carrier_id, message.sender, message.to, message.text) == (good_id, msisdn(phone), "8079", text)


def test_authentication_by_peer_address_and_token():
    query = "id=1&from=0912345678&to=8079&text=BH"
    by_ip = adapter(allow_ips=("10.0.0.0/8", "127.0.0.1"))
    for peer in ("127.0.0.1", "10.1.2.3", "::ffff:10.1.2.3"):
        by_ip.authenticate(get(query, peer=peer))
    for peer in ("192.168.1.1", "::1", None, "not-an-ip"):
        with pytest.raises(Unauthorized, match="allow_ips"):
            by_ip.authenticate(get(query, peer=peer))
    by_token = adapter(allow_ips=(), token=TOKEN)
    by_token.authenticate(get(f"{query}&token={TOKEN}", peer="203.0.113.9"))
    with pytest.raises(Unauthorized, match="missing token"):
        by_token.authenticate(get(query))
    with pytest.raises(Unauthorized, match="wrong token"):
        by_token.authenticate(get(f"{query}&token={TOKEN}x"))
    both = adapter(token=TOKEN)
    with pytest.raises(Unauthorized, match="allow_ips"):
        both.authenticate(get(f"{query}&token={TOKEN}", peer="203.0.113.9"))
    with pytest.raises(Unauthorized, match="missing token"):
        both.authenticate(get(query))
    adapter(auth="none", allow_ips=()).authenticate(get(query, peer=None))
    with pytest.raises(Unauthorized, match="no allow_ips or token"):
        adapter(allow_ips=()).authenticate(get(query))


@pytest.mark.parametrize(("name", "reply"), [
    ("reply_ucs2.http", mt()),
    ("reply_gsm7.http", mt(text="The BHYT HC4010110129425 co gia tri den 31/12/2099.", encoding="gsm7")),
])
def test_sync_reply_is_a_utf8_text_body_with_the_coding_and_billing_headers(name, reply):
    status, headers, body = http_response(fixture(name))
    response = adapter().render_sync("mo-1", [reply])
    assert (response.status, f"{response.content_type}; charset={response.charset}", dict(response.headers),
            response.body) == (status, headers.pop("Content-Type"), headers, body)
    assert body.decode() == reply.text


def test_anything_but_an_authentication_failure_answers_200_with_a_text_for_the_phone():
    kannel = adapter()
    refused = kannel.render_error(BadRequest("missing field 'id'"))
    assert (refused.status, refused.content_type, refused.body.decode()) == (200, "text/plain", APOLOGY)
    assert kannel.render_unavailable("shutting down").status == 200
    assert kannel.render_error(Unauthorized("wrong token")).status == 401
    accepted = kannel.render_accepted("mo-1")
    assert (accepted.status, accepted.body) == (200, b"")


@pytest.mark.parametrize(("name", "state", "second"), [
    ("dlr_submitted.query", DeliveryState.ACCEPTED, 1),
    ("dlr_delivered.query", DeliveryState.DELIVERED, 5),
    ("dlr_rejected.query", DeliveryState.REJECTED, 2),
])
def test_delivery_report_fixtures(name, state, second):
    request = get(fixture(name), path="/carriers/kannel/dlr", peer="198.51.100.7")
    kannel = adapter(allow_ips=(), token=TOKEN)
    kannel.authenticate(request)
    report = kannel.parse_delivery_report(request)
    assert (report.mt_id, report.state, report.time) == (MT_ID, state, NOW.replace(second=second))


def test_delivery_codes_kannel_does_not_define_change_nothing():
    assert adapter().parse_delivery_report(get(f"id={MT_ID}&status=3")).state is DeliveryState.UNKNOWN
    with pytest.raises(BadRequest, match="%d"):
        adapter().parse_delivery_report(get(f"id={MT_ID}&status=ok"))


def async_adapter(url: str, **options) -> KannelAdapter:
    return adapter(mode="async", sendsms_url=url, username="smsgw", password="s3cret", token=TOKEN,
                   public_url="https://gw.example.vn/", timeout=2.0, **options)


def test_sendsms_request_matches_the_fixture_and_smsbox_answers_decide_the_outcome():
    async def run():
        seen: list[list[tuple[str, str]]] = []
        answers = iter([(202, fixture("sendsms_accepted.txt")), (202, fixture("sendsms_queued.txt")),
                        (403, fixture("sendsms_forbidden.txt")), (400, "Missing receiver number, rejected"),
                        (503, "Temporal failure, try again later."), (200, "Something else")])

        async def sendsms(request: web.Request) -> web.Response:
            seen.append(parse_qsl(request.query_string, keep_blank_values=True))
            status, text = next(answers)
            return web.Response(status=status, text=text, content_type="text/html")

        app = web.Application()
        app.router.add_get("/cgi-bin/sendsms", sendsms)
        async with TestServer(app, host="127.0.0.1", port=0) as server, aiohttp.ClientSession() as session:
            kannel = async_adapter(str(server.make_url("/cgi-bin/sendsms")))
            await kannel.send(session, mt())
            assert seen == [parse_qsl(fixture("sendsms.query"))]
            assert urlencode(kannel.sendsms_params(mt())) == fixture("sendsms.query")
            await kannel.send(session, mt())
            with pytest.raises(PermanentDeliveryError, match="403"):
                await kannel.send(session, mt())
            with pytest.raises(PermanentDeliveryError, match="400"):
                await kannel.send(session, mt())
            with pytest.raises(TemporaryDeliveryError, match="503"):
                await kannel.send(session, mt())
            with pytest.raises(TemporaryDeliveryError, match="Something else"):
                await kannel.send(session, mt())
            closed = str(server.make_url("/cgi-bin/sendsms"))
        async with aiohttp.ClientSession() as session:
            with pytest.raises(TemporaryDeliveryError):
                await async_adapter(closed).send(session, mt())
            with pytest.raises(PermanentDeliveryError, match="no sendsms_url"):
                await adapter().send(session, mt())

    asyncio.run(run())


def test_without_a_public_url_no_delivery_report_is_asked_for():
    params = adapter(mode="async", sendsms_url="http://k/cgi-bin/sendsms", username="u", password="p").sendsms_params(
        mt(encoding="gsm7", text="BH", message_type=MessageType.FREE))
    assert "dlr-url" not in params and "dlr-mask" not in params
    assert (params["coding"], params["binfo"]) == ("0", "0")


@pytest.fixture
def records(tmp_path) -> Path:
    db = tmp_path / "records.db"
    asyncio.run(seed_database(db, 0))
    return db


def test_through_the_gateway_get_mo_sync_reply_and_retries(records):
    async def run():
        config = parse_config({"gateway": {"unicode": True}, "carriers": {
            "kannel": {"adapter": "kannel", "allow_ips": ["127.0.0.1"], "token": TOKEN},
            "generic": {"auth": "none"}}})
        async with TestClient(TestServer(create_app(config, db_path=str(records)), host="127.0.0.1",
                                         port=0)) as client:
            url = f"/carriers/kannel/mo?{fixture('mo_diacritics.query')}&token={TOKEN}"
            first = await client.get(url)
            assert (first.status, first.headers["Content-Type"], first.headers["X-Kannel-Coding"]) == (
                200, "text/plain; charset=utf-8", "2")
            assert await first.text() == THE_REPLY
            again = await client.get(url)
            assert (again.status, await again.text()) == (200, THE_REPLY)
            assert len(await client.app[STORE].billing()) == 1
            garbled = await client.get(f"/carriers/kannel/mo?id=x&from=0912345678&token={TOKEN}")
            assert (garbled.status, await garbled.text()) == (200, APOLOGY)
            assert (await client.get(f"/carriers/kannel/mo?{fixture('mo.query')}")).status == 401
            assert (await client.get("/carriers/generic/mo")).status == 405

    asyncio.run(run())


def test_through_the_gateway_async_mt_goes_to_sendsms_and_its_reports_come_back(records):
    async def run():
        sent: list[dict[str, str]] = []

        async def sendsms(request: web.Request) -> web.Response:
            sent.append(dict(request.query))
            return web.Response(status=202, text="0: Accepted for delivery")

        smsbox = web.Application()
        smsbox.router.add_get("/cgi-bin/sendsms", sendsms)
        async with TestServer(smsbox, host="127.0.0.1", port=0) as kannel:
            config = parse_config({"carriers": {"kannel": {
                "adapter": "kannel", "mode": "async", "allow_ips": ["127.0.0.1"], "token": TOKEN,
                "sendsms_url": str(kannel.make_url("/cgi-bin/sendsms")), "username": "smsgw", "password": "s3cret",
                "public_url": "http://127.0.0.1:1"}}})
            async with TestClient(TestServer(create_app(config, db_path=str(records)), host="127.0.0.1",
                                             port=0)) as client:
                mo = await client.get(f"/carriers/kannel/mo?{fixture('mo.query')}&token={TOKEN}")
                assert (mo.status, await mo.text()) == (200, "")
                for _ in range(500):
                    if sent:
                        break
                    await asyncio.sleep(0.01)
                (request,) = sent
                assert (request["to"], request["coding"], request["binfo"]) == ("84912345678", "0", "1")
                assert "BHXH: 01 nam 06 thang" in request["text"]
                dlr_url = request["dlr-url"].removeprefix("http://127.0.0.1:1")
                mt_id = dict(parse_qsl(dlr_url.partition("?")[2]))["id"]
                for code in ("8", "1", "2"):
                    report = await client.get(dlr_url.replace("%d", code).replace("%t", "2025-01-31+08:00:05"))
                    assert (report.status, await report.text()) == (200, "OK")
                assert (await client.app[STORE].mt_state(mt_id)).delivery is DeliveryState.DELIVERED

    asyncio.run(run())
