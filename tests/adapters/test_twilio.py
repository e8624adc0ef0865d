"""The twilio carrier: signed webhooks (checked against Twilio's own validator), TwiML, REST MTs."""

from __future__ import annotations

import asyncio
import base64
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qsl, urlencode
from xml.etree import ElementTree

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from smsgw.adapters.twilio import SIGNATURE_HEADER, TwilioAdapter, TwilioSettings, signature, url_variants
from smsgw.billing import MessageType
from smsgw.carrier import load_adapter
from smsgw.config import parse_config
from smsgw.errors import BadRequest, PermanentDeliveryError, RequestError, TemporaryDeliveryError, Unauthorized
from smsgw.gateway import STORE, create_app
from smsgw.seed import seed_database
from smsgw.wire import CarrierRequest, DeliveryState, OutboundMessage

from . import assert_refusal_names_the_problem, carrier_ids, msisdn, phones, texts


FIXTURES = Path(__file__).parents[2] / "fixtures" / "carriers" / "twilio"
NOW = datetime(2025, 1, 31, 8, 0, tzinfo=timezone.utc)
ACCOUNT_SID = "AC0123456789abcdef0123456789abcdef"
AUTH_TOKEN = "12345678901234567890123456789012"
PUBLIC = "https://sms.example.vn"
MT_ID = "0b6c2f8e-1d4a-4f3b-9c7e-5a2d8e1f4b60"
THE_REPLY = "Thẻ BHYT HC4010110129425 có giá trị đến 31/12/2099."
FORM = "application/x-www-form-urlencoded"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def adapter(**options) -> TwilioAdapter:
    config = {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, **options}
    # model_construct: the settings as given, unchecked (the adapter's own defences are under test)
    return load_adapter(TwilioSettings.model_construct(name="twilio", adapter="twilio", **config),
                        shortcode="84898765432")


def post(body: bytes, *, url: str, headers: dict | None = None) -> CarrierRequest:
    target = "/" + url.split("/", 3)[3]
    return CarrierRequest(headers or {}, FORM, None, body, target=target, url=url, peer="127.0.0.1")


def reference_signature(url: str, body: bytes, token: str = AUTH_TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, dict(parse_qsl(body.decode(), keep_blank_values=True)))


def mt(**fields) -> OutboundMessage:
    values = dict(id=MT_ID, mo_id="mo-1", in_reply_to="SM3f1c9e2a7b5d4c6e8f0a1b2c3d4e5f60", carrier="twilio",
                  sender="84898765432", to="84912345678", text=THE_REPLY, encoding="ucs2", segments=1,
                  message_type=MessageType.CHARGED)
    return OutboundMessage(**{**values, **fields})


@pytest.mark.parametrize("name", ["mo.form", "status_delivered.form", "status_undelivered.form"])
@pytest.mark.parametrize("url", [f"{PUBLIC}/carriers/twilio/mo", "http://127.0.0.1:8080/carriers/twilio/dlr?id=x&b=2",
                                 "https://sms.example.vn:443/carriers/twilio/mo"])
def test_signatures_are_twilio_reference_values(name, url):
    body = fixture(name)
    params = parse_qsl(body.decode(), keep_blank_values=True)
    assert signature(AUTH_TOKEN, url, params) == reference_signature(url, body)


def test_a_signed_mo_passes_and_forged_ones_do_not():
    body = fixture("mo.form")
    url = f"{PUBLIC}/carriers/twilio/mo"
    signed = reference_signature(url, body)
    validator = RequestValidator(AUTH_TOKEN)
    params = dict(parse_qsl(body.decode(), keep_blank_values=True))
    twilio = adapter()
    twilio.authenticate(post(body, url=url, headers={SIGNATURE_HEADER: signed}))
    forged = [
        (body, reference_signature(url, body, token="0" * 32)),                        # another account's token
        (body.replace(b"HC4010110129425", b"HC4010110129426"), signed),               # body changed
        (body + b"&Extra=1", signed),                                                  # parameter added
        (body, base64.b64encode(b"\x00" * 20).decode()),                              # made up
        (body, signed[:-2]),                                                           # truncated
        (body, "é" * 28),                                                              # not even base64
    ]
    for forged_body, forged_signature in forged:
        assert not validator.validate(url, dict(parse_qsl(forged_body.decode(), keep_blank_values=True)),
                                      forged_signature)
        with pytest.raises(Unauthorized, match="wrong X-Twilio-Signature"):
            twilio.authenticate(post(forged_body, url=url, headers={SIGNATURE_HEADER: forged_signature}))
    assert validator.validate(url, params, signed)
    with pytest.raises(Unauthorized, match="missing"):
        twilio.authenticate(post(body, url=url))
    with pytest.raises(Unauthorized, match="AccountSid"):
        adapter(account_sid="AC" + "f" * 32).authenticate(post(body, url=url, headers={SIGNATURE_HEADER: signed}))
    adapter(auth="none", auth_token=None).authenticate(post(body, url=url))
    with pytest.raises(Unauthorized, match="no auth_token"):
        adapter(auth_token=None).authenticate(post(body, url=url, headers={SIGNATURE_HEADER: signature("", url, [])}))


def test_behind_a_proxy_the_signature_is_checked_against_the_public_url():
    body = fixture("mo.form")
    signed = reference_signature(f"{PUBLIC}/carriers/twilio/mo?from=proxy", body)
    seen = post(body, url="http://10.0.0.5:8079/carriers/twilio/mo?from=proxy", headers={SIGNATURE_HEADER: signed})
    with pytest.raises(Unauthorized):
        adapter().authenticate(seen)
    adapter(public_url=PUBLIC + "/").authenticate(seen)
    with_port = reference_signature(f"{PUBLIC}:443/carriers/twilio/mo?from=proxy", body)
    adapter(public_url=PUBLIC).authenticate(post(body, url=seen.url, headers={SIGNATURE_HEADER: with_port}))
    assert url_variants("https://a.vn:8443/x") == {"https://a.vn:8443/x"}
    assert url_variants("http://a.vn:99999/x") == {"http://a.vn:99999/x"}


def test_mo_fixture_parses():
    message = adapter().parse_inbound(post(fixture("mo.form"), url=f"{PUBLIC}/carriers/twilio/mo"), received_at=NOW)
    assert (message.carrier_id, message.sender, message.to, message.text) == (
        "SM3f1c9e2a7b5d4c6e8f0a1b2c3d4e5f60", "84912345678", "+84898765432", "BH THẺ HC4010110129425")


@pytest.mark.parametrize(("body", "reason"), [
    (b"From=%2B84912345678&To=8079&Body=BH", "missing field 'MessageSid'"),
    (b"MessageSid=SM1&To=8079&Body=BH", "missing field 'From'"),
    (b"MessageSid=SM1&From=whatsapp%3A%2B84912345678&To=8079&Body=BH", "field 'From': not a phone number"),
    (b"MessageSid=SM1&From=%2B84912345678&To=8079", "missing field 'Body'"),
    (b"MessageSid=SM1&From=%2B84912345678&To=8079&Body=%FF", "body is not valid UTF-8"),
])
def test_unreadable_mos_are_refused_with_a_reason(body, reason):
    with pytest.raises(BadRequest) as refused:
        adapter().parse_inbound(post(body, url=f"{PUBLIC}/carriers/twilio/mo"), received_at=NOW)
    assert refused.value.reason.startswith(reason)


FUZZED = ("MessageSid", "From", "To", "Body", "MessageStatus", "AccountSid", "RawDlrDoneDate", "x")


@settings(max_examples=300)
@given(st.one_of(st.binary(max_size=200), st.dictionaries(
    st.sampled_from(FUZZED), st.text(max_size=20), max_size=7).map(lambda d: urlencode(d).encode())),
    st.sampled_from(["", "?id=mt-1", "?id="]), carrier_ids, phones, texts)
def test_any_body_is_a_message_or_a_refusal_naming_the_problem(body, query, good_id, phone, text):
    twilio = adapter()
    request = post(body, url=f"{PUBLIC}/carriers/twilio/mo{query}", headers={SIGNATURE_HEADER: "x"})
    for step in (twilio.authenticate, lambda r: twilio.parse_inbound(r, received_at=NOW),
                 twilio.parse_delivery_report):
        try:
            step(request)
        except RequestError as error:
            assert_refusal_names_the_problem(error, FUZZED)
    url = f"{PUBLIC}/carriers/twilio/mo"
    fields = {"MessageSid": good_id, "AccountSid": ACCOUNT_SID, "From": phone, "To": "84898765432", "Body": text}
    form = urlencode(fields).encode()
    good = post(form, url=url, headers={SIGNATURE_HEADER: reference_signature(url, form)})
    twilio.authenticate(good)
    message = twilio.parse_inbound(good, received_at=NOW)
    assert (message.carrier_id, message.sender, message.text) == (good_id, msisdn(phone), text)


def test_sync_reply_is_twiml_with_escaped_text():
    twilio = adapter()
    response = twilio.render_sync("mo-1", [mt()])
    assert (response.status, response.content_type, response.body) == (200, "text/xml", fixture("reply.twiml.xml"))
    assert twilio.render_accepted("mo-1").body == fixture("accepted.twiml.xml")
    tricky = twilio.render_sync("mo-1", [mt(text="BH QT <ma so> & \x07 </Message>")])
    assert ElementTree.fromstring(tricky.body).find("Message").text == "BH QT <ma so> &  </Message>"


@pytest.mark.parametrize(("name", "state", "time"), [
    ("status_delivered.form", DeliveryState.DELIVERED, NOW),
    ("status_undelivered.form", DeliveryState.FAILED, None),
    ("status_sent.form", DeliveryState.ENROUTE, None),
])
def test_status_callback_fixtures_are_delivery_reports(name, state, time):
    url = f"{PUBLIC}/carriers/twilio/dlr?id={MT_ID}"
    request = post(fixture(name), url=url, headers={SIGNATURE_HEADER: reference_signature(url, fixture(name))})
    twilio = adapter(public_url=PUBLIC)
    twilio.authenticate(request)
    report = twilio.parse_delivery_report(request)
    assert (report.mt_id, report.state, report.time) == (MT_ID, state, time)
    with pytest.raises(BadRequest, match="MT id"):
        twilio.parse_delivery_report(post(fixture(name), url=f"{PUBLIC}/carriers/twilio/dlr"))


class TwilioApi:
    """The Messages resource: answers each POST with the next of `answers`, keeps the requests."""

    def __init__(self, answers: list[tuple[int, bytes]]) -> None:
        self.answers = iter(answers)
        self.requests: list[tuple[str, str, bytes]] = []
        self.app = web.Application()
        self.app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self.create)

    async def create(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, request.headers.get("Authorization", ""), await request.read()))
        status, body = next(self.answers, (201, fixture("mt_created.json")))
        return web.Response(status=status, body=body, content_type="application/json")


def test_mt_is_a_messages_post_with_basic_auth_and_twilio_answers_decide_the_outcome():
    async def run():
        api = TwilioApi([(201, fixture("mt_created.json")), (429, fixture("mt_rate_limited.json")),
                         (503, b"{}"), (400, fixture("mt_invalid_number.json")), (401, b"{}")])
        async with TestServer(api.app, host="127.0.0.1", port=0) as server, aiohttp.ClientSession() as session:
            twilio = adapter(mt_url=str(server.make_url("/")), public_url=PUBLIC, timeout=2.0)
            await twilio.send(session, mt())
            ((path, authorization, body),) = api.requests
            assert path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
            assert authorization == "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
            assert body == fixture("mt.form")
            assert urlencode(twilio.message_params(mt())).encode() == fixture("mt.form")
            with pytest.raises(TemporaryDeliveryError, match="429 \\(Twilio error 20429\\)"):
                await twilio.send(session, mt())
            with pytest.raises(TemporaryDeliveryError, match="503"):
                await twilio.send(session, mt())
            with pytest.raises(PermanentDeliveryError, match="21211") as invalid:
                await twilio.send(session, mt())
            assert "8491234" not in str(invalid.value)
            with pytest.raises(PermanentDeliveryError, match="401"):
                await twilio.send(session, mt())
            with pytest.raises(PermanentDeliveryError, match="needs mt_url"):
                await adapter().send(session, mt())
    asyncio.run(run())


def test_short_code_sender_and_no_status_callback_without_public_url():
    twilio = adapter(mt_url="https://api.twilio.com")
    assert twilio.message_params(mt(sender="8079")) == {"To": "+84912345678", "From": "8079", "Body": THE_REPLY}
    notice = twilio.message_params(mt(sender="BHXHVIETNAM", in_reply_to="", message_type=MessageType.PUSH))
    assert notice["From"] == "BHXHVIETNAM"


def test_through_the_gateway_signed_mo_gets_twiml_and_status_callbacks_move_the_mt(tmp_path):
    async def run():
        db = tmp_path / "records.db"
        await seed_database(db, 0)
        config = parse_config({"gateway": {"unicode": True, "shortcode": "84898765432"}, "carriers": {"twilio": {
            "adapter": "twilio", "account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "public_url": PUBLIC}}})
        async with TestClient(TestServer(create_app(config, db_path=str(db)), host="127.0.0.1", port=0)) as client:
            body = fixture("mo.form")
            headers = {"Content-Type": FORM,
                       SIGNATURE_HEADER: reference_signature(f"{PUBLIC}/carriers/twilio/mo", body)}
            response = await client.post("/carriers/twilio/mo", data=body, headers=headers)
            assert (response.status, response.headers["Content-Type"]) == (200, "text/xml; charset=utf-8")
            assert ElementTree.fromstring(await response.read()).find("Message").text == THE_REPLY
            forged = await client.post("/carriers/twilio/mo", data=body.replace(b"HC40", b"HC41"), headers=headers)
            assert forged.status == 401
            (stored,) = (await client.app[STORE].find_mo("twilio", "SM3f1c9e2a7b5d4c6e8f0a1b2c3d4e5f60")).replies
            url = f"{PUBLIC}/carriers/twilio/dlr?id={stored.id}"
            for name in ("status_sent.form", "status_delivered.form", "status_undelivered.form"):
                report = await client.post(f"/carriers/twilio/dlr?id={stored.id}", data=fixture(name), headers={
                    "Content-Type": FORM, SIGNATURE_HEADER: reference_signature(url, fixture(name))})
                assert report.status == 200
            assert (await client.app[STORE].mt_state(stored.id)).delivery is DeliveryState.DELIVERED

    asyncio.run(run())


def test_through_the_gateway_an_mo_to_our_twilio_number_is_taken_beside_the_short_code(tmp_path):
    async def run():
        db = tmp_path / "records.db"
        await seed_database(db, 0)
        twilio = {"adapter": "twilio", "account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "public_url": PUBLIC}
        config = parse_config({"gateway": {"shortcode": "8079"}, "carriers": {
            "twilio": {**twilio, "numbers": ["+84898765432"]}, "other": twilio}})
        async with TestClient(TestServer(create_app(config, db_path=str(db)), host="127.0.0.1", port=0)) as client:
            body = fixture("mo.form")
            answers = []
            for name in ("twilio", "other"):
                headers = {"Content-Type": FORM,
                           SIGNATURE_HEADER: reference_signature(f"{PUBLIC}/carriers/{name}/mo", body)}
                response = await client.post(f"/carriers/{name}/mo", data=body, headers=headers)
                answers.append((response.status, await response.read()))
            assert answers[0][0] == 200 and b"<Message>" in answers[0][1]
            assert answers[1] == (400, b'{"error": "To: \'+84898765432\' is not this gateway\'s short code 8079"}')
            assert await client.app[STORE].find_mo("other", "SM3f1c9e2a7b5d4c6e8f0a1b2c3d4e5f60") is None

    asyncio.run(run())
