"""The HTTP gateway end to end: a real server on 127.0.0.1, a real database, real replies.

The behaviour tests run on both backends (the `records_db` fixture: an SQLite file, and a fresh
database on the module's PostgreSQL server, skipped with the reason when its programs are absent).
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smsgw.adapters.generic import sign, signature_headers
from smsgw.client import replay_message
from smsgw.commands import Month
from smsgw.config import parse_config
from smsgw.errors import ReplayError
from smsgw.gateway import ADAPTERS, STORE, create_app
from smsgw.logs import configure_logging, get_logger
from smsgw.store import open_records

SECRET = "s3cret"
OWNER = "84912345678"
SSN = "0110129425"
NO_LIMITS = {"lookups_per_hour": 0, "repeat_limit": 0}
CARRIERS = {
    "generic": {"secret": SECRET, "mode": "sync"},
    "open": {"auth": "none", "mode": "sync"},
}


async def make_records(db: str | Path) -> None:
    """The reference records (one person, two years of BHXH) in `db`, an SQLite path or a PostgreSQL URL."""
    store = await open_records(str(db), create=True)
    async with store.transaction():
        await store.write(
            persons=[(SSN, None, "Nguyen Van A", "1990-01-01", OWNER)],
            periods=[(SSN, "BHXH", "Cong ty A", Month(2016, 1).index, Month(2017, 12).index)],
        )
    await store.close()


@pytest.fixture
def records_db(db: str) -> str:
    """`--db` holding the reference records: an SQLite file, or a fresh PostgreSQL database (`db`)."""
    asyncio.run(make_records(db))
    return db


@asynccontextmanager
async def gateway(where: str | Path, carriers: dict | None = None, **options):
    """A gateway on `where`: a `--db` value with the records (`records_db`), or, for the tests that
    stay on SQLite, a folder whose records.db is made with them when missing."""
    if isinstance(where, Path):
        db = where / "records.db"
        if not db.exists():
            await make_records(db)
    else:
        db = where
    # Bursts from one phone are the point of these tests; tests/test_protection.py covers the limits.
    config = parse_config({"carriers": carriers or CARRIERS, "protection": NO_LIMITS})
    app = create_app(config, db_path=str(db), **options)
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        yield client


def mo_body(mo_id: str = "m1", text: str = f"BH QT {SSN}", sender: str = OWNER, to: str = "8079") -> bytes:
    return json.dumps({"id": mo_id, "from": sender, "to": to, "text": text}).encode()


async def post_mo(client: TestClient, body: bytes, carrier: str = "generic", secret: str | None = SECRET,
                  content_type: str = "application/json", path: str = "mo"):
    headers = {"Content-Type": content_type}
    if secret is not None:
        headers["X-Smsgw-Signature"] = sign(secret, body)
    response = await client.post(f"/carriers/{carrier}/{path}", data=body, headers=headers)
    return response.status, await response.json()


def test_sync_mo_is_answered_in_the_response_and_charged_once(records_db):
    async def run():
        async with gateway(records_db) as client:
            status, answer = await post_mo(client, mo_body())
            assert status == 200
            (reply,) = answer["replies"]
            assert "BHXH: 02 nam 00 thang" in reply["text"]
            assert (reply["message_type"], reply["segments"], reply["encoding"]) == (1, 1, "gsm7")
            billing = await client.app[STORE].billing(answer["mo_id"])
            assert [(row.kind, row.amount_vnd, row.mt_id) for row in billing] == [("charge", 1000, reply["id"])]
            assert OWNER not in billing[0].msisdn

    asyncio.run(run())


def test_a_carrier_retry_gets_the_first_answer_and_no_second_charge(records_db):
    async def run():
        async with gateway(records_db) as client:
            first = await post_mo(client, mo_body("retry-1"))
            again = await post_mo(client, mo_body("retry-1"))
            other_carrier = await post_mo(client, mo_body("retry-1"), carrier="open", secret=None)
            assert again == first
            assert other_carrier[1]["mo_id"] != first[1]["mo_id"]
            assert len(await client.app[STORE].billing(first[1]["mo_id"])) == 1

    asyncio.run(run())


def test_duplicate_storm_answers_and_charges_each_mo_once(records_db):
    async def run():
        async with gateway(records_db) as client:
            ids = [f"storm-{n}" for n in range(40)]
            requests = [post_mo(client, mo_body(mo_id, text="BH HD" if n % 2 else f"BH QT {SSN}"))
                        for n, mo_id in enumerate(ids) for _ in range(3)]
            answers = await asyncio.gather(*requests)
            assert {status for status, _ in answers} == {200}
            for n in range(len(ids)):
                triple = [answer for _, answer in answers[3 * n:3 * n + 3]]
                assert triple[0] == triple[1] == triple[2]
            billing = await client.app[STORE].billing()
            assert sorted(row.mo_id for row in billing) == sorted(answer["mo_id"] for _, answer in answers[::3])

    asyncio.run(run())


def test_unsigned_requests_pass_only_where_auth_is_none(records_db):
    async def run():
        async with gateway(records_db) as client:
            assert (await post_mo(client, mo_body(), carrier="open", secret=None))[0] == 200
            status, answer = await post_mo(client, mo_body(), secret=None)
            assert (status, answer) == (401, {"error": "missing X-Smsgw-Signature header"})

    asyncio.run(run())


def test_signatures_are_checked_against_the_raw_body(records_db):
    async def run():
        async with gateway(records_db) as client:
            body = mo_body("sig-1")
            for signature, expected in [
                (sign(SECRET, body), 200),
                (sign(SECRET, body).upper(), 200),
                ("sha256=" + sign(SECRET, body), 200),
                (sign("wrong", body), 401),
                (sign(SECRET, body + b" "), 401),
                ("", 401),
                ("é" * 64, 401),
            ]:
                response = await client.post("/carriers/generic/mo", data=body, headers={
                    "Content-Type": "application/json", "X-Smsgw-Signature": signature})
                assert response.status == expected, signature

    asyncio.run(run())


REFUSALS = [
    # (body, content type, expected status, expected error)
    (b"{not json", "application/json", 400, "body is not valid JSON"),
    (b"[1, 2]", "application/json", 400, "body must be a JSON object, not array"),
    (json.dumps({"from": OWNER, "to": "8079", "text": "BH"}).encode(), "application/json", 400,
     "missing field 'id'"),
    (json.dumps({"id": "x", "to": "8079", "text": "BH"}).encode(), "application/json", 400,
     "missing field 'from'"),
    (json.dumps({"id": 7, "from": OWNER, "to": "8079", "text": "BH"}).encode(), "application/json", 400,
     "field 'id' must be a string, not number"),
    (json.dumps({"id": "x", "from": OWNER, "to": "8079", "text": None}).encode(), "application/json", 400,
     "field 'text' must be a string, not null"),
    (json.dumps({"id": "", "from": OWNER, "to": "8079", "text": "BH"}).encode(), "application/json", 400,
     "field 'id' must not be empty"),
    (b'{"id": "x", "from": "84912345678", "to": "8079", "text": "BH \xff"}', "application/json", 400,
     "body is not valid UTF-8"),
    (b'{"id": "x", "from": "84912345678", "to": "8079", "text": "BH \\ud800"}', "application/json", 400,
     "field 'text' is not valid Unicode"),
    (json.dumps({"id": "x", "from": "12ab", "to": "8079", "text": "BH"}).encode(), "application/json", 400,
     "field 'from': not a phone number"),
    (b"[" * 50_000 + b"]" * 10_000, "application/json", 400, "body is not valid JSON"),
    (mo_body(), "text/plain", 415, "content type must be application/json, not text/plain"),
    (mo_body(), "application/json; charset=latin-1", 415, "charset must be utf-8"),
    (json.dumps({"id": "x", "from": OWNER, "to": "8079", "text": "a" * 70_000}).encode(), "application/json",
     413, "body over 64 KiB"),
]


def test_each_bad_request_gets_its_status_and_reason(records_db):
    async def run():
        async with gateway(records_db) as client:
            for body, content_type, expected_status, expected_error in REFUSALS:
                status, answer = await post_mo(client, body, content_type=content_type)
                assert status == expected_status, expected_error
                assert answer["error"].startswith(expected_error), (expected_error, answer)
            status, answer = await post_mo(client, mo_body(), carrier="nosuch")
            assert (status, answer) == (404, {"error": "unknown carrier 'nosuch'"})
            assert (await client.get("/carriers/generic/mo")).status == 405
            assert (await post_mo(client, mo_body("after-refusals")))[0] == 200
            metrics = await (await client.get("/metrics")).text()
            assert 'smsgw_parse_errors_total{carrier="generic",kind="bad_json"} 2.0' in metrics
            assert 'smsgw_parse_errors_total{carrier="unknown",kind="unknown_carrier"} 1.0' in metrics

    asyncio.run(run())


def test_an_mo_to_another_number_is_refused_and_neither_stored_nor_billed(records_db):
    async def run():
        async with gateway(records_db) as client:
            for n, to in enumerate(["9999", "", "80790", "8078", "+849999", "84912345678"]):
                status, answer = await post_mo(client, mo_body(f"other-{n}", to=to))
                assert (status, answer) == (400, {"error": f"to: {to!r} is not this gateway's short code 8079"})
                assert await client.app[STORE].find_mo("generic", f"other-{n}") is None
            assert await client.app[STORE].billing() == []
            metrics = await (await client.get("/metrics")).text()
            assert 'smsgw_parse_errors_total{carrier="generic",kind="wrong_recipient"} 6.0' in metrics
            for n, to in enumerate(["8079", "848079", "+848079", "+84 8079", "00848079", " 8079 "]):
                status, answer = await post_mo(client, mo_body(f"ours-{n}", to=to))
                assert status == 200, to
            assert len(await client.app[STORE].billing()) == 6

    asyncio.run(run())


def test_a_captured_request_replays_only_within_the_signature_window(records_db):
    async def run():
        carriers = {"generic": {"secret": SECRET, "mode": "sync", "require_timestamp": True,
                                "signature_window": 60}}
        async with gateway(records_db, carriers) as client:
            adapter = client.app[ADAPTERS]["generic"]
            body = mo_body("captured")
            signed_at = int(time.time())
            captured = {"Content-Type": "application/json", **signature_headers(SECRET, body, timestamp=signed_at)}

            async def replay(at: float) -> tuple[int, dict]:
                adapter.clock = lambda: at
                response = await client.post("/carriers/generic/mo", data=body, headers=captured)
                return response.status, await response.json()

            first = await replay(signed_at + 0.2)
            assert first[0] == 200
            assert await replay(signed_at + 59) == first        # a carrier retry: the first answer, no charge
            assert await replay(signed_at - 60) == first        # the sender's clock 60 s ahead
            for at, side in [(signed_at + 61, "behind"), (signed_at - 61, "ahead of")]:
                assert await replay(at) == (401, {"error": f"X-Smsgw-Timestamp is 61 s {side} the gateway's clock "
                                                           "(allowed: 60 s either way)"})
            assert await replay(signed_at + 86_400 * 365) == (401, {
                "error": "X-Smsgw-Timestamp is 31536000 s behind the gateway's clock (allowed: 60 s either way)"})
            unstamped = {"Content-Type": "application/json", "X-Smsgw-Signature": sign(SECRET, body)}
            response = await client.post("/carriers/generic/mo", data=body, headers=unstamped)
            assert (response.status, await response.json()) == (401, {
                "error": "missing X-Smsgw-Timestamp header: this carrier signs with a timestamp"})
            assert len(await client.app[STORE].billing()) == 1
            metrics = await (await client.get("/metrics")).text()
            assert 'smsgw_parse_errors_total{carrier="generic",kind="stale_timestamp"} 3.0' in metrics

    asyncio.run(run())


def test_replay_client_signs_with_a_timestamp_that_a_requiring_carrier_takes(records_db):
    async def run():
        carriers = {"generic": {"secret": SECRET, "mode": "sync", "require_timestamp": True}}
        async with gateway(records_db, carriers) as client, aiohttp.ClientSession() as session:
            url = str(client.make_url(""))
            replies = await replay_message(session, url, "generic", SECRET, OWNER, f"BH QT {SSN}", "replay-1")
            assert "BHXH: 02 nam 00 thang" in replies[0]["text"]
            with pytest.raises(ReplayError, match="to: '9999' is not this gateway's short code 8079"):
                await replay_message(session, url, "generic", SECRET, OWNER, "BH HD", "replay-2", to="9999")

    asyncio.run(run())


def test_delivery_reports_only_move_an_mt_forward(records_db):
    async def run():
        async with gateway(records_db) as client:
            _, answer = await post_mo(client, mo_body("dlr-1"))
            mt_id = answer["replies"][0]["id"]

            async def report(status: str, mt: str = mt_id) -> tuple[int, dict]:
                body = json.dumps({"id": mt, "status": status, "time": "2025-01-31T08:00:00Z"}).encode()
                return await post_mo(client, body, path="dlr")

            assert await report("delivered") == (200, {"id": mt_id, "state": "delivered"})
            assert await report("accepted") == (200, {"id": mt_id, "state": "delivered"})
            assert await report("failed") == (200, {"id": mt_id, "state": "delivered"})
            assert await report("delivered") == (200, {"id": mt_id, "state": "delivered"})
            assert await report("accepted", "no-such-mt") == (200, {"id": "no-such-mt", "state": None})
            status, refused = await report("lost")
            assert status == 400 and refused["error"].startswith("field 'status' must be one of")
            assert (await client.app[STORE].mt_state(mt_id)).delivery.value == "delivered"

    asyncio.run(run())


def test_healthz_and_metrics_describe_the_traffic(records_db):
    async def run():
        async with gateway(records_db) as client:
            await post_mo(client, mo_body("m-ok"))
            await post_mo(client, mo_body("m-ok"))
            await post_mo(client, mo_body("m-bad", text="BH QT 123"))
            health = await client.get("/healthz")
            assert health.status == 200
            assert (await health.json())["store"] == "ok"
            response = await client.get("/metrics")
            assert response.headers["Content-Type"].startswith("text/plain")
            metrics = await response.text()
            for line in [
                'smsgw_messages_total{carrier="generic",command="QT",outcome="ok"} 1.0',
                'smsgw_messages_total{carrier="generic",command="QT",outcome="duplicate"} 1.0',
                'smsgw_messages_total{carrier="generic",command="QT",outcome="bad_id"} 1.0',
                'smsgw_replies_total{carrier="generic",message_type="1"} 1.0',
                'smsgw_replies_total{carrier="generic",message_type="21"} 1.0',
                'smsgw_mt_queue_depth 0.0',
                'smsgw_request_duration_seconds_count{route="/carriers/{name}/mo"} 3.0',
            ]:
                assert line in metrics, line
            # every message-store transaction is timed: an operator sees what MOs wait for the fsync
            counts = {line.split()[0]: float(line.split()[1]) for line in metrics.splitlines()
                      if line.startswith(("smsgw_commit_seconds_count", "smsgw_commit_batch_size_count"))}
            assert counts["smsgw_commit_seconds_count"] == counts["smsgw_commit_batch_size_count"] >= 3

    asyncio.run(run())


def test_unanswerable_message_store_makes_healthz_fail(records_db):
    async def run():
        async with gateway(records_db) as client:
            await post_mo(client, mo_body("early"))
            assert 'smsgw_store_up 1.0' in await (await client.get("/metrics")).text()
            await client.app[STORE].close()
            health = await client.get("/healthz")
            assert health.status == 503
            status, answer = await post_mo(client, mo_body("late"))
            assert status == 503 and answer["error"].startswith("unavailable")
            # what deploy/alerts.yml alerts on: the store failing, and the carriers' 5xx
            metrics = await (await client.get("/metrics")).text()
            assert 'smsgw_store_up 0.0' in metrics
            assert 'smsgw_responses_total{route="/carriers/{name}/mo",status="200"} 1.0' in metrics
            assert 'smsgw_responses_total{route="/carriers/{name}/mo",status="503"} 1.0' in metrics
            assert 'smsgw_responses_total{route="/healthz",status="503"} 1.0' in metrics

    asyncio.run(run())


def test_async_mo_is_acknowledged_then_delivered_to_the_mt_url(records_db):
    async def run():
        received: list[tuple[dict, str]] = []

        async def mt_endpoint(request: web.Request) -> web.Response:
            body = await request.read()
            received.append((json.loads(body), request.headers["X-Smsgw-Signature"] == sign(SECRET, body)))
            return web.Response(status=204)

        carrier_app = web.Application()
        carrier_app.router.add_post("/mt", mt_endpoint)
        async with TestServer(carrier_app, host="127.0.0.1", port=0) as carrier:
            carriers = {"generic": {"secret": SECRET, "mode": "async", "mt_url": str(carrier.make_url("/mt"))}}
            async with gateway(records_db, carriers) as client:
                status, answer = await post_mo(client, mo_body("async-1"))
                assert (status, list(answer)) == (202, ["mo_id"])
                for _ in range(200):
                    if received:
                        break
                    await asyncio.sleep(0.01)
                ((mt, signed),) = received
                assert signed
                assert {key: mt[key] for key in ("in_reply_to", "from", "to", "encoding", "message_type")} == {
                    "in_reply_to": "async-1", "from": "8079", "to": OWNER, "encoding": "gsm7", "message_type": 1}
                assert await post_mo(client, mo_body("async-1")) == (202, answer)

    asyncio.run(run())


@pytest.fixture(scope="module")
def live_gateway(tmp_path_factory):
    """A gateway served from a background event loop, for hypothesis to call synchronously.

    SQLite only: the fuzzing is about parsing and signatures (no request reaches the store twice
    the same way); the store's behaviour is what the parametrised tests above check on both."""
    tmp = tmp_path_factory.mktemp("live")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start():
        await make_records(tmp / "records.db")
        app = create_app(parse_config({"carriers": CARRIERS}), db_path=str(tmp / "records.db"))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return runner, aiohttp.ClientSession(f"http://127.0.0.1:{runner.addresses[0][1]}")

    runner, session = asyncio.run_coroutine_threadsafe(start(), loop).result()

    def call(coroutine_function, *args):
        return asyncio.run_coroutine_threadsafe(coroutine_function(session, *args), loop).result(timeout=30)

    yield call

    async def stop():
        await session.close()
        await runner.cleanup()

    asyncio.run_coroutine_threadsafe(stop(), loop).result()
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    loop.close()


async def _post(session: aiohttp.ClientSession, path: str, body: bytes, headers: dict) -> int:
    async with session.post(path, data=body, headers=headers) as response:
        await response.read()
        return response.status


async def _get(session: aiohttp.ClientSession, path: str) -> int:
    async with session.get(path) as response:
        await response.read()
        return response.status


header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)
json_value = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=40),
                       st.lists(st.integers(), max_size=3))
phones = st.one_of(st.sampled_from([OWNER, "0912345678", "+84987654321", "0987 654 321"]),
                   st.text("0123456789+ ", max_size=16))
texts = st.one_of(st.text(max_size=200), st.text("BHQTHEDSLP0123456789 /.-,!?\u00a0\u200b\u1ebb\uff22", max_size=40),
                  st.just(f"BH QT {SSN}"))
fields = st.fixed_dictionaries({}, optional={
    "id": st.one_of(st.text(max_size=200), json_value), "from": st.one_of(phones, json_value),
    "to": json_value, "text": st.one_of(texts, json_value), "time": json_value,
    "status": st.one_of(st.sampled_from(["delivered", "accepted", "failed"]), json_value),
})
well_formed = st.tuples(
    st.sampled_from(["generic", "open"]), st.sampled_from(["mo", "dlr"]),
    st.fixed_dictionaries({"id": st.text(min_size=1, max_size=20), "from": phones, "to": st.just("8079"),
                           "text": texts, "status": st.sampled_from(["delivered", "accepted", "lost"])}),
    st.just("application/json"), st.just("valid"), st.just({}),
).map(lambda t: (t[0], t[1], json.dumps(t[2], ensure_ascii=False).encode(), *t[3:]))
anything = st.tuples(
    st.sampled_from(["generic", "open", "nosuch", "%20", "g%C3%A9"]), st.sampled_from(["mo", "dlr"]),
    st.one_of(st.binary(max_size=3000), fields.map(lambda d: json.dumps(d, ensure_ascii=False).encode())),
    st.one_of(st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain",
                               "application/json; charset="]), header_text),
    st.one_of(st.none(), st.just("valid"), header_text),
    st.dictionaries(st.from_regex(r"X-[A-Za-z0-9-]{1,20}", fullmatch=True), header_text, max_size=3),
)


def test_fuzzed_requests_never_get_a_5xx_and_the_server_still_answers(live_gateway):
    statuses = set()

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(well_formed, anything))
    def one_request(request):
        carrier, path, body, content_type, signature, extra = request
        headers = {**extra, "Content-Type": content_type}
        if signature is not None:
            headers["X-Smsgw-Signature"] = sign(SECRET, body) if signature == "valid" else signature
        status = live_gateway(_post, f"/carriers/{carrier}/{path}", body, headers)
        assert status < 500, (carrier, path, headers, body[:200])
        statuses.add(status)

    one_request()
    assert {200, 400, 401, 404, 415} <= statuses
    assert live_gateway(_get, "/healthz") == 200


def test_a_chunked_body_over_the_limit_is_refused_with_413(live_gateway):
    async def chunked(session: aiohttp.ClientSession) -> tuple[int, dict]:
        async def chunks():
            for _ in range(20):
                yield b" " * 4096

        headers = {"Content-Type": "application/json", "X-Smsgw-Signature": "0" * 64}
        async with session.post("/carriers/generic/mo", data=chunks(), headers=headers) as response:
            return response.status, await response.json()

    assert live_gateway(chunked) == (413, {"error": "body over 64 KiB"})


def test_logs_are_json_lines_with_phone_numbers_ids_and_cards_masked():
    stream = io.StringIO()
    configure_logging(stream)
    try:
        get_logger().info("message", text=f"BH QT {SSN} HC4010110129425 001099012345", sender=OWNER,
                          nested={"phone": "+84 912 345 678", "ids": ["0912345678"]}, latency_ms=12.3456789012)
    finally:
        structlog.reset_defaults()
    logged = stream.getvalue()
    line = json.loads(logged)
    assert (line["event"], line["level"], line["latency_ms"]) == ("message", "info", 12.3456789012)
    for personal in [SSN, OWNER, "4010110129425", "001099012345", "912 345 678", "0912345678"]:
        assert personal not in logged
    assert line["text"].startswith("BH QT 011")


def test_our_own_ids_are_logged_in_clear_for_correlation():
    stream = io.StringIO()
    configure_logging(stream)
    mo_id = "3f2c9a1e-77b0-41d2-0000-000000000123"   # smsgw.ids: counter digits look like a digit run
    try:
        get_logger().info("message", mo_id=mo_id, mt_id=mo_id, carrier_id=f"mo-{OWNER}")
    finally:
        structlog.reset_defaults()
    line = json.loads(stream.getvalue())
    assert line["mo_id"] == line["mt_id"] == mo_id
    assert OWNER not in line["carrier_id"]   # a carrier's id is the carrier's text: still masked
