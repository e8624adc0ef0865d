"""The sending API (CONTRACT §8) through a real server on 127.0.0.1, a real store on both backends
(the `db` fixture: an SQLite file, a fresh PostgreSQL database) and a local carrier sink."""

from __future__ import annotations

import asyncio
import io
import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.api import API_STORE
from smsgw.api_keys import authenticate, create_key, revoke_key
from smsgw.store import migrate, open_messages, open_reports

from api_harness import MSISDN, PHONE, api_gateway, carrier_sink, opt_out


@pytest.fixture
def api_db(db: str) -> str:
    asyncio.run(migrate(db))
    return db


def post(client, headers, body, *, idempotency: str | None = None, path="/api/v1/messages"):
    extra = {"Idempotency-Key": idempotency} if idempotency else {}
    return client.post(path, data=json.dumps(body) if not isinstance(body, (bytes, str)) else body,
                       headers={**headers, **extra, "Content-Type": "application/json"})


def test_a_message_is_stored_sent_through_the_carrier_and_followed_to_sent(api_db):
    async def run():
        async with carrier_sink() as sink, api_gateway(api_db, sink) as (client, headers, _):
            response = await post(client, headers, {"to": PHONE, "text": "Ma OTP cua ban: 123456", "class": "otp"})
            assert response.status == 201
            created = await response.json()
            assert {k: created[k] for k in ("status", "encoding", "segments")} == {
                "status": "queued", "encoding": "gsm7", "segments": 1}
            await sink.wait_for(1)
            (mt,) = sink.accepted
            assert (mt["id"], mt["to"], mt["text"], mt["message_type"]) == (
                created["id"], MSISDN, "Ma OTP cua ban: 123456", 3)
            for _ in range(200):
                got = await (await client.get(f"/api/v1/messages/{created['id']}", headers=headers)).json()
                if got["status"] == "sent":
                    break
                await asyncio.sleep(0.02)
            assert {k: got[k] for k in ("id", "to", "class", "status")} == {
                "id": created["id"], "to": MSISDN, "class": "otp", "status": "sent"}

    asyncio.run(run())


def test_the_same_idempotency_key_three_times_at_once_gives_one_message_and_one_sms(api_db):
    async def run():
        async with carrier_sink() as sink, api_gateway(api_db, sink) as (client, headers, _):
            body = {"to": PHONE, "text": "Ket qua ho so: da duyet", "class": "notice"}
            responses = await asyncio.gather(*(post(client, headers, body, idempotency="order-77") for _ in range(3)))
            answers = [(r.status, await r.json()) for r in responses]
            assert sorted(status for status, _ in answers) == [200, 200, 201]
            assert len({answer["id"] for _, answer in answers}) == 1
            await sink.wait_for(1)
            await asyncio.sleep(0.3)
            assert len(sink.attempts) == 1
            again = await post(client, headers, body, idempotency="order-77")
            assert again.status == 200 and (await again.json())["id"] == answers[0][1]["id"]
            other = await post(client, headers, {**body, "text": "Ket qua ho so: tu choi"}, idempotency="order-77")
            assert other.status == 422 and (await other.json())["error"].startswith("Idempotency-Key: used before")
            await asyncio.sleep(0.2)
            assert len(sink.attempts) == 1

    asyncio.run(run())


@pytest.mark.parametrize("body, status, field", [
    (b"{not json", 400, "body"),
    ({"text": "x", "class": "otp"}, 400, "to"),
    ({"to": PHONE, "class": "otp"}, 400, "text"),
    ({"to": PHONE, "text": "x", "class": "spam"}, 400, "class"),
    ({"to": PHONE, "text": "x", "class": "otp", "ttl": "soon"}, 400, "ttl"),
    ({"to": PHONE, "text": "x", "class": "otp", "send_at": "tomorrow"}, 400, "send_at"),
    ({"to": PHONE, "text": "x", "class": "otp", "callback_url": "ftp://x"}, 400, "callback_url"),
    ({"to": PHONE, "text": "x", "class": "otp", "colour": "red"}, 400, "colour"),
    ({"to": "12345", "text": "x", "class": "otp"}, 422, "to"),
    ({"to": PHONE, "text": "   ", "class": "otp"}, 422, "text"),
    ({"to": PHONE, "text": "x" * 500, "class": "otp"}, 422, "text"),
    ({"to": PHONE, "text": "x", "class": "info"}, 403, "class"),
    (b"[" * 100_000, 400, "body"),
    ("{\"to\": \"\udcff\"}".encode("utf-8", "surrogatepass"), 400, "body"),
])
def test_each_refusal_names_its_field_and_queues_nothing(api_db, body, status, field):
    async def run():
        async with carrier_sink() as sink, api_gateway(api_db, sink, key_classes=("otp", "notice")) as (client, headers, _):
            response = await post(client, headers, body)
            answer = await response.json()
            assert response.status == status, answer
            assert answer["error"].startswith(f"{field}:"), answer
            await asyncio.sleep(0.1)
            assert sink.attempts == []

    asyncio.run(run())


def test_keys_missing_unknown_or_revoked_get_401_and_a_body_over_16_mib_413(api_db):
    async def run():
        async with carrier_sink() as sink, api_gateway(api_db, sink) as (client, headers, _):
            body = {"to": PHONE, "text": "x", "class": "otp"}
            assert (await post(client, {}, body)).status == 401
            assert (await post(client, {"Authorization": "Bearer smsgw_nope"}, body)).status == 401
            response = await client.post("/api/v1/messages", data=io.BytesIO(b"[" + b" " * (16 * 1024 * 1024) + b"]"),
                                         headers={**headers, "Content-Type": "application/json"})
            assert response.status == 413 and "16 MiB" in (await response.json())["error"]
            await revoke_key(client.app[API_STORE], "bank")
            assert (await post(client, headers, body)).status == 401

    asyncio.run(run())


def test_over_the_keys_rate_is_429_with_retry_after_counted_in_the_store(api_db):
    async def run():
        body = {"to": PHONE, "text": "x", "class": "info"}
        async with carrier_sink() as sink:
            headers = {}
            for attempt in range(2):   # once more if a minute began during the first try (a new count)
                minute = time.time() // 60
                async with api_gateway(api_db, sink, rate=3, make_key=attempt == 0) as (client, made, _secret):
                    headers = made or headers
                    statuses = [(await post(client, headers, body)).status for _ in range(3)]
                # another gateway process on the same store: nothing of the count in its memory
                async with api_gateway(api_db, sink, make_key=False) as (client, _none, _secret):
                    refused = await post(client, headers, body)
                    error = (await refused.json())["error"]
                    if time.time() // 60 == minute:
                        break
            assert statuses == [201] * 3 and refused.status == 429
            assert 1 <= int(refused.headers["Retry-After"]) <= 60
            assert error.startswith("over this key's rate")

    asyncio.run(run())


def test_an_opted_out_phone_gets_no_notice_but_its_one_time_codes(api_db):
    async def run():
        await opt_out(api_db, MSISDN)
        async with carrier_sink() as sink, api_gateway(api_db, sink) as (client, headers, _):
            store = client.app[API_STORE]
            notice = await (await post(client, headers, {"to": PHONE, "text": "nhac dong phi", "class": "notice"})).json()
            otp = await (await post(client, headers, {"to": PHONE, "text": "OTP 1234", "class": "otp"})).json()
            assert notice["status"] == "opted_out" and otp["status"] == "queued"
            await sink.wait_for(1)
            await asyncio.sleep(0.2)
            assert [mt["text"] for mt in sink.attempts] == ["OTP 1234"]
            assert (await store.message("bank", notice["id"])).status == "opted_out"

    asyncio.run(run())


def test_fold_is_the_clients_choice_and_billing_counts_api_messages_per_key(api_db):
    async def run():
        async with carrier_sink() as sink, api_gateway(api_db, sink) as (client, headers, _):
            text = "Hồ sơ của bạn đã được duyệt"
            plain = await (await post(client, headers, {"to": PHONE, "text": text, "class": "info"})).json()
            folded = await (await post(client, headers, {"to": PHONE, "text": text, "class": "info",
                                                          "fold": True})).json()
            assert (plain["encoding"], folded["encoding"]) == ("ucs2", "gsm7")
            await sink.wait_for(2)
            assert sorted(mt["text"] for mt in sink.accepted) == sorted([text, "Ho so cua ban da duoc duyet"])

    asyncio.run(run())
    reports = open_reports(api_db)
    try:
        rows = list(reports.billing_rows_between(0, 2**33))
    finally:
        reports.close()
    assert [(row.kind, row.amount_vnd, int(row.message_type)) for row in rows] == [("api:bank", 0, 3)] * 2


def test_api_keys_are_stored_as_hashes_and_checked(api_db):
    async def run():
        from smsgw.store.api_open import open_api

        messages = await open_messages(api_db)
        try:
            store = await open_api(messages)
            key, secret = await create_key(store, "hospital", classes=("notice",), rate=10)
            assert key.startswith("smsgw_") and len(key) > 40 and secret != key
            found = await authenticate(store, key)
            assert (found.name, found.classes, found.rate) == ("hospital", ("notice",), 10)
            assert await authenticate(store, key[:-1] + ("A" if key[-1] != "A" else "B")) is None
        finally:
            await messages.close()

    asyncio.run(run())


def test_api_keys_commands_print_the_key_once_store_its_hash_and_revoke(api_db, capsys):
    from smsgw.api_keys import key_hash
    from smsgw.cli import main

    assert main(["api-keys", "create", "clinic", "--classes", "otp,notice", "--rate", "5", "--db", api_db]) == 0
    printed = capsys.readouterr().out
    key = printed.split("api key:")[1].split()[0]
    secret = printed.split("callback secret:")[1].split()[0]
    assert "classes otp,notice" in printed and "rate 5 per minute" in printed

    async def stored():
        from smsgw.store.api_open import open_api

        messages = await open_messages(api_db)
        try:
            store = await open_api(messages)
            return await authenticate(store, key), await store.key_by_hash(key_hash(key))
        finally:
            await messages.close()

    found, (_, digest) = asyncio.run(stored())
    assert (found.name, found.classes, found.rate, found.secret) == ("clinic", ("otp", "notice"), 5, secret)
    assert digest == key_hash(key) != key
    assert main(["api-keys", "create", "clinic", "--db", api_db]) == 1
    assert "smsgw: a key named 'clinic' exists already" in capsys.readouterr().err
    assert main(["api-keys", "create", "lab", "--classes", "otp,sms", "--db", api_db]) == 1
    assert "smsgw: --classes 'otp,sms': each class one of otp, notice, info" in capsys.readouterr().err
    assert main(["api-keys", "revoke", "clinic", "--db", api_db]) == 0
    assert asyncio.run(stored())[0] is None
    assert main(["api-keys", "revoke", "clinic", "--db", api_db]) == 1
    assert "smsgw: no live key named 'clinic'" in capsys.readouterr().err


def test_the_retention_hashes_the_phones_of_api_messages_once_sent_and_erases_on_request(tmp_path):
    from smsgw.config import parse_config
    from smsgw.retention import erase_phone, export_phone, prune
    from smsgw.store import phone_hash

    db, key = str(tmp_path / "records.db"), "k" * 32
    asyncio.run(migrate(db))

    made = {}

    async def send(texts):
        async with carrier_sink() as sink, api_gateway(db, sink, make_key=not made) as (client, headers, _):
            headers = made.setdefault("headers", headers)
            ids = [(await (await post(client, headers, {"to": to, "text": text, "class": "info"})).json())["id"]
                   for to, text in texts]
            await sink.wait_for(len(texts))
            for message_id in ids:
                while (await (await client.get(f"/api/v1/messages/{message_id}", headers=headers)).json())[
                        "status"] != "sent":
                    await asyncio.sleep(0.02)
            return ids

    asyncio.run(send([(PHONE, "Ho so da duyet")]))
    config = parse_config({"retention": {"hash_key": key, "days": 1}})
    assert export_phone(db, config, MSISDN)["api_messages"][0]["recipient"] == MSISDN
    done = prune(db, config, now=time.time() + 2 * 86400, sleep=lambda pause: None)
    assert done["api_messages"] == 1 and done["mt_messages"] == 1
    hashed = phone_hash(key.encode(), MSISDN)
    assert [row["recipient"] for row in export_phone(db, config, MSISDN)["api_messages"]] == [hashed]
    other = "84987654321"
    asyncio.run(send([("0987654321", "Nhac dong phi")]))
    assert erase_phone(db, config, other)["api_messages"] == 1
    assert [row["recipient"] for row in export_phone(db, config, other)["api_messages"]] == [
        phone_hash(key.encode(), other)]


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                     max_leaves=8)
_FIELDS = {"to": st.sampled_from(["0912345678", "+84987654321", "0912", "", "hello"]) | _JSON,
           "text": st.text(max_size=400) | _JSON, "class": st.sampled_from(["otp", "notice", "info", "x"]) | _JSON,
           "send_at": st.sampled_from(["2026-12-01T08:00:00+07:00", "2026-12-01T08:00:00", "soon"]) | _JSON,
           "ttl": st.integers(-5, 10**6) | _JSON, "callback_url": st.sampled_from(["https://a.vn/cb", "ftp://x", "http://"]) | _JSON,
           "fold": st.booleans() | _JSON, "extra": _JSON}


@settings(max_examples=300)
@given(st.fixed_dictionaries({}, optional=_FIELDS) | _JSON)
def test_any_json_body_is_a_message_or_a_refusal_naming_its_field(body):
    from smsgw.api_messages import Refusal, message_from_json
    from smsgw.config import parse_config
    from smsgw.store.api import ApiKey

    config = parse_config({"carriers": {"g": {"secret": "s", "networks": ["*"], "mt_url": "http://127.0.0.1:9/mt"}},
                           "notices": {"quiet_hours": ""}})
    key = ApiKey("k", ("otp", "notice"), 0, False, "secret")
    try:
        new = message_from_json(body, key, config, time.time())
    except Refusal as refusal:
        assert refusal.status in (400, 403, 422)
        field = refusal.reason.split(":")[0]
        assert field in {"body", *_FIELDS} or ": unknown field (the fields are" in refusal.reason, refusal.reason
    else:
        assert isinstance(body, dict) and body["class"] in key.classes
        assert new.mt.to.isdigit() and new.mt.text.strip() and 1 <= new.mt.segments <= 3


def test_api_keys_on_a_postgresql_database_not_migrated_says_to_migrate(pg_database, capsys):
    from smsgw.cli import main

    assert main(["api-keys", "create", "clinic", "--db", pg_database]) == 1
    assert "run smsgw db migrate --db" in capsys.readouterr().err
