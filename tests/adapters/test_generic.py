"""The generic carrier's wire format, without a gateway around it."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.adapters.generic import (
    SIGNATURE_HEADER, TIMESTAMP_HEADER, GenericAdapter, GenericSettings, sign, signature_headers, verify,
)
from smsgw.billing import Billing, MessageType
from smsgw.carrier import load_adapter
from smsgw.errors import (
    BadRequest, PermanentDeliveryError, RequestError, TemporaryDeliveryError, Unauthorized, UnsupportedMediaType,
)
from smsgw.wire import CarrierRequest, DeliveryState, OutboundMessage

from . import assert_refusal_names_the_problem, carrier_ids, msisdn, phones, texts

NOW = datetime(2025, 1, 31, 8, 0, tzinfo=timezone.utc)
CLOCK = 1_700_000_000


def adapter(**options) -> GenericAdapter:
    # model_construct: the settings as given, unchecked (the adapter's own defences are under test)
    config = GenericSettings.model_construct(name="generic", **{"secret": "k", **options})
    generic = load_adapter(config, shortcode="8079")
    generic.clock = lambda: CLOCK + 0.5
    return generic


def request(data, *, content_type: str = "application/json", charset: str | None = None,
            headers: dict | None = None) -> CarrierRequest:
    body = data if isinstance(data, bytes) else json.dumps(data).encode()
    return CarrierRequest(headers or {}, content_type, charset, body)


def mt(**fields) -> OutboundMessage:
    values = dict(id="mt-1", mo_id="mo-1", in_reply_to="c-1", carrier="generic", sender="8079", to="84912345678",
                  text="Tra cuu", encoding="gsm7", segments=1, message_type=MessageType.REFUND_CONTENT)
    return OutboundMessage(**{**values, **fields})


@pytest.mark.parametrize("written", ["0912345678", "84912345678", "+84912345678", "+84 912 345 678"])
def test_every_written_form_of_a_phone_number_is_the_same_sender(written):
    message = adapter().parse_inbound(request({"id": "c-1", "from": written, "to": "8079", "text": "BH"}),
                                      received_at=NOW)
    assert (message.carrier, message.carrier_id, message.sender, message.text) == ("generic", "c-1",
                                                                                     "84912345678", "BH")


def test_signature_is_the_hex_hmac_sha256_of_the_raw_body():
    body = b'{"id": "1"}'
    # printf '{"id": "1"}' | openssl dgst -sha256 -hmac k
    assert sign("k", body) == "4ad8808ee9ce2ff554617a668f66b4827bfbc92e6173822e737c0e0512dd0875"
    assert verify("k", body, sign("k", body)) and not verify("k", body + b"\n", sign("k", body))
    generic = adapter()
    generic.authenticate(request(body, headers={SIGNATURE_HEADER: sign("k", body)}))
    with pytest.raises(Unauthorized, match="missing"):
        generic.authenticate(request(body))
    with pytest.raises(Unauthorized, match="wrong"):
        generic.authenticate(request(body, headers={SIGNATURE_HEADER: sign("other", body)}))
    adapter(auth="none", secret=None).authenticate(request(body))


def test_content_type_and_charset_are_checked():
    with pytest.raises(UnsupportedMediaType):
        adapter().parse_inbound(request({}, content_type="application/x-www-form-urlencoded"), received_at=NOW)
    with pytest.raises(UnsupportedMediaType):
        adapter().parse_inbound(request({}, charset="utf-16"), received_at=NOW)
    with pytest.raises(BadRequest, match="missing field 'id'"):
        adapter().parse_inbound(request({}, charset="UTF-8"), received_at=NOW)


FIELDS = ("id", "from", "to", "text", "time", "mt_id", "status", "error")


@settings(max_examples=400)
@given(st.one_of(
    st.binary(max_size=300),
    st.dictionaries(st.sampled_from(["id", "from", "to", "text", "x"]),
                    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
                              st.lists(st.integers(), max_size=2)),
                    max_size=5).map(lambda d: json.dumps(d).encode()),
), carrier_ids, phones, texts)
def test_any_body_is_a_message_or_a_refusal_naming_the_problem(body, good_id, phone, text):
    generic = adapter()
    try:
        generic.parse_inbound(request(body), received_at=NOW)
    except RequestError as error:
        assert_refusal_names_the_problem(error, FIELDS)
    try:
        generic.parse_delivery_report(request(body))
    except RequestError as error:
        assert_refusal_names_the_problem(error, FIELDS)
    good = generic.parse_inbound(request({"id": good_id, "from": phone, "to": "8079", "text": text}), received_at=NOW)
    assert (good.carrier_id, good.sender, good.to, good.text) == (good_id, msisdn(phone), "8079", text)


@pytest.mark.parametrize(("time", "expected"), [
    (None, None),
    ("2025-01-31T08:00:00Z", NOW),
    ("2025-01-31T15:00:00+07:00", NOW),
    ("2025-01-31T08:00:00", NOW),
    (NOW.timestamp(), NOW),
])
def test_delivery_report_time_forms(time, expected):
    report = adapter().parse_delivery_report(request({"id": "mt-1", "status": "DELIVERED", "time": time}))
    assert (report.mt_id, report.state, report.time) == ("mt-1", DeliveryState.DELIVERED, expected)


@pytest.mark.parametrize("time", ["yesterday", 1e300, True, [], float("nan")])
def test_delivery_report_with_a_bad_time_is_refused(time):
    body = json.dumps({"id": "mt-1", "status": "delivered", "time": time}).encode()
    with pytest.raises(BadRequest, match="field 'time'"):
        adapter().parse_delivery_report(request(body))


def test_sync_reply_carries_the_billing_outcome():
    response = adapter().render_sync("mo-1", [mt()])
    assert response.status == 200
    assert json.loads(response.body) == {"mo_id": "mo-1", "replies": [
        {"id": "mt-1", "text": "Tra cuu", "encoding": "gsm7", "segments": 1, "message_type": 22}]}
    assert adapter().billing_fields(Billing(MessageType.FREE)) == {"message_type": 0}
    assert json.loads(adapter().render_accepted("mo-1").body) == {"mo_id": "mo-1"}


def test_send_posts_the_signed_mt_and_tells_temporary_from_permanent_failures():
    async def run():
        seen = []
        statuses = iter([200, 503])

        async def endpoint(request: web.Request) -> web.Response:
            body = await request.read()
            seen.append((json.loads(body), request.headers[SIGNATURE_HEADER] == sign("k", body)))
            return web.Response(status=next(statuses))

        app = web.Application()
        app.router.add_post("/mt", endpoint)
        async with TestServer(app, host="127.0.0.1", port=0) as server, aiohttp.ClientSession() as session:
            generic = adapter(mt_url=str(server.make_url("/mt")), timeout=2.0)
            await generic.send(session, mt())
            assert seen == [({"id": "mt-1", "in_reply_to": "c-1", "from": "8079", "to": "84912345678",
                              "text": "Tra cuu", "encoding": "gsm7", "segments": 1, "message_type": 22}, True)]
            with pytest.raises(TemporaryDeliveryError, match="503"):
                await generic.send(session, mt())
            closed_port = server.port
        async with aiohttp.ClientSession() as session:
            with pytest.raises(TemporaryDeliveryError):
                await adapter(mt_url=f"http://127.0.0.1:{closed_port}/mt", timeout=2.0).send(session, mt())
            with pytest.raises(PermanentDeliveryError):
                await adapter(mt_url="not a url", timeout=2.0).send(session, mt())
            with pytest.raises(PermanentDeliveryError):
                await adapter().send(session, mt())

    asyncio.run(run())


def test_timestamped_signature_is_the_hmac_of_timestamp_dot_body():
    body = b'{"id": "1"}'
    # printf '1700000000.{"id": "1"}' | openssl dgst -sha256 -hmac k
    assert sign("k", body, CLOCK) == "24d7138532c760bcf84ef1de61a55652712d4811a3d8e92aa1ea5c524be9cbd5"
    assert signature_headers("k", body, timestamp=CLOCK) == {TIMESTAMP_HEADER: str(CLOCK),
                                                              SIGNATURE_HEADER: sign("k", body, CLOCK)}
    assert verify("k", body, sign("k", body, CLOCK), str(CLOCK))
    assert not verify("k", body, sign("k", body), str(CLOCK))          # the timestamp is part of what is signed
    assert not verify("k", body, sign("k", body, CLOCK + 1), str(CLOCK))
    for options in ({}, {"require_timestamp": True}):
        adapter(**options).authenticate(request(body, headers=signature_headers("k", body, timestamp=CLOCK)))


def test_a_carrier_requiring_timestamps_refuses_a_body_only_signature_and_others_take_it():
    body = b'{"id": "1"}'
    adapter().authenticate(request(body, headers={SIGNATURE_HEADER: sign("k", body)}))
    with pytest.raises(Unauthorized, match=f"missing {TIMESTAMP_HEADER} header") as info:
        adapter(require_timestamp=True).authenticate(request(body, headers={SIGNATURE_HEADER: sign("k", body)}))
    assert info.value.kind == "missing_timestamp"


@pytest.mark.parametrize("stamp", ["", "-5", "1700000000.5", "1e9", " ", "١٧٠٠٠٠٠٠٠٠", "9" * 13])
def test_a_timestamp_that_is_not_unix_seconds_is_refused(stamp):
    body = b'{"id": "1"}'
    headers = {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: sign("k", body, stamp)}
    with pytest.raises(Unauthorized, match="must be Unix seconds") as info:
        adapter().authenticate(request(body, headers=headers))
    assert info.value.kind == "bad_timestamp"


def test_a_forged_timestamp_is_refused_even_inside_the_window():
    body = b'{"id": "1"}'
    captured = signature_headers("k", body, timestamp=CLOCK - 3600)
    with pytest.raises(Unauthorized, match="300 s either way") as info:
        adapter().authenticate(request(body, headers=captured))
    assert info.value.kind == "stale_timestamp"
    refreshed = {**captured, TIMESTAMP_HEADER: str(CLOCK)}              # the old signature with a new time
    with pytest.raises(Unauthorized, match="wrong X-Smsgw-Signature") as info:
        adapter().authenticate(request(body, headers=refreshed))
    assert info.value.kind == "bad_signature"


@pytest.mark.parametrize(("skew", "taken"), [(0, True), (-300, True), (300, True), (-301, False), (301, False)])
def test_the_window_holds_both_ways_with_its_edges_included(skew, taken):
    body = b'{"id": "1"}'
    generic = adapter(require_timestamp=True)
    generic.clock = lambda: CLOCK
    headers = signature_headers("k", body, timestamp=CLOCK + skew)
    if taken:
        generic.authenticate(request(body, headers=headers))
    else:
        side = "ahead of" if skew > 0 else "behind"
        with pytest.raises(Unauthorized, match=f"is 301 s {side} the gateway's clock"):
            generic.authenticate(request(body, headers=headers))


@given(window=st.integers(min_value=1, max_value=86_400), skew=st.integers(min_value=-200_000, max_value=200_000),
       millis=st.integers(min_value=0, max_value=999), body=st.binary(max_size=64))
def test_a_signed_timestamp_is_taken_exactly_within_the_window(window, skew, millis, body):
    """Clock skew both ways: the sender's whole second against the gateway's clock, which is
    between whole seconds (millis); taken exactly when the two are at most `window` apart."""
    fraction = millis / 1000
    generic = adapter(require_timestamp=True, signature_window=window)
    generic.clock = lambda: CLOCK + fraction
    headers = signature_headers("k", body, timestamp=CLOCK + skew)
    try:
        generic.authenticate(request(body, headers=headers))
        taken = True
    except Unauthorized as error:
        assert error.kind == "stale_timestamp" and error.status == 401
        taken = False
    assert taken == (abs(skew - fraction) <= window)


@settings(max_examples=300)
@given(stamp=st.text(max_size=20), signature=st.text(max_size=80), require=st.booleans())
def test_any_signature_headers_are_taken_or_a_401(stamp, signature, require):
    try:
        adapter(require_timestamp=require).authenticate(
            request(b"{}", headers={TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: signature}))
    except Unauthorized as error:
        assert error.status == 401 and error.reason


def test_the_mt_carries_a_signed_timestamp_when_the_carrier_requires_them():
    async def run():
        seen = []

        async def endpoint(request: web.Request) -> web.Response:
            body = await request.read()
            seen.append((request.headers.get(TIMESTAMP_HEADER), request.headers[SIGNATURE_HEADER], body))
            return web.Response(status=200)

        app = web.Application()
        app.router.add_post("/mt", endpoint)
        async with TestServer(app, host="127.0.0.1", port=0) as server, aiohttp.ClientSession() as session:
            url = str(server.make_url("/mt"))
            await adapter(mt_url=url, require_timestamp=True).send(session, mt())
            await adapter(mt_url=url).send(session, mt())
        (stamp, signature, body), (no_stamp, body_only, same_body) = seen
        assert stamp == str(CLOCK) and signature == sign("k", body, CLOCK)
        assert (no_stamp, body_only, same_body) == (None, sign("k", body), body)

    asyncio.run(run())
