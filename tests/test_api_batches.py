"""POST/GET /api/v1/batches (CONTRACT §8) through the real server, on both backends."""

from __future__ import annotations

import asyncio
import io
import json

import aiohttp

import pytest

from smsgw.store import migrate

from api_harness import api_gateway, carrier_sink, opt_out


@pytest.fixture
def api_db(db: str) -> str:
    asyncio.run(migrate(db))
    return db


async def counts_when(client, headers, batch_id: str, wanted: dict, timeout: float = 15.0) -> dict:
    async def reached() -> dict:
        while True:
            body = await (await client.get(f"/api/v1/batches/{batch_id}", headers=headers)).json()
            if body["counts"] == wanted:
                return body
            await asyncio.sleep(0.05)

    return await asyncio.wait_for(reached(), timeout)


def test_a_json_batch_renders_each_recipients_placeholders_and_counts_by_status(api_db):
    async def run():
        async with carrier_sink() as sink, api_gateway(api_db, sink) as (client, headers, _):
            request = json.dumps({"class": "notice", "text": "Chao {name}, the BHYT het han {day}",
                                  "recipients": [{"to": f"09123456{n:02d}", "name": f"Anh {n}", "day": "31/12"}
                                                 for n in range(3)]}).encode()
            response = await client.post("/api/v1/batches", data=request, headers={
                **headers, "Idempotency-Key": "nov-reminders", "Content-Type": "application/json"})
            assert response.status == 202
            batch = await response.json()
            await sink.wait_for(3)
            assert sorted(mt["text"] for mt in sink.accepted) == [f"Chao Anh {n}, the BHYT het han 31/12" for n in range(3)]
            body = await counts_when(client, headers, batch["id"], {"sent": 3})
            assert body["total"] == 3
            retry = await client.post("/api/v1/batches", data=request,
                                      headers={**headers, "Idempotency-Key": "nov-reminders", "Content-Type": "application/json"})
            assert retry.status == 200 and (await retry.json())["id"] == batch["id"]
            other = await client.post("/api/v1/batches", headers={**headers, "Idempotency-Key": "nov-reminders"},
                                      json={"class": "notice", "text": "x", "recipients": [{"to": "0912345678"}]})
            assert other.status == 422 and (await other.json())["error"].startswith("Idempotency-Key: used before")
            await asyncio.sleep(0.2)
            assert len(sink.attempts) == 3

    asyncio.run(run())


def test_a_csv_batch_takes_a_to_column_and_one_column_per_placeholder(api_db):
    async def run():
        async with carrier_sink() as sink, api_gateway(api_db, sink) as (client, headers, _):
            csv_body = "to,name\n0912345678,Lan\n0987654321,Minh\n".encode()
            response = await client.post("/api/v1/batches?class=info&text=Xin+chao+%7Bname%7D", data=csv_body,
                                         headers={**headers, "Content-Type": "text/csv"})
            assert response.status == 202, await response.text()
            await sink.wait_for(2)
            assert sorted((mt["to"], mt["text"]) for mt in sink.accepted) == [
                ("84912345678", "Xin chao Lan"), ("84987654321", "Xin chao Minh")]

    asyncio.run(run())


def test_a_csv_batchs_ttl_in_digits_that_are_not_0_to_9_is_a_400_naming_it(api_db):
    """'³' and '٣' are digits to Python's str.isdigit; a ttl must be written 0-9 (a 500 before)."""
    async def run():
        async with carrier_sink() as sink, api_gateway(api_db, sink) as (client, headers, _):
            for ttl in ("%C2%B3", "%D9%A3", "-5", "1e3"):   # '³', '٣' (Arabic-Indic three)
                response = await client.post(f"/api/v1/batches?class=otp&text=OTP+1&ttl={ttl}",
                                             data=b"to\n0912345678\n", headers={**headers, "Content-Type": "text/csv"})
                assert response.status == 400, (ttl, await response.text())
                assert (await response.json())["error"].startswith("ttl"), ttl
            assert sink.attempts == []

    asyncio.run(run())


def test_a_batch_of_100000_with_one_bad_phone_is_refused_whole_with_that_rows_index(api_db):
    async def run():
        recipients = [{"to": f"09{n:08d}", "name": "A"} for n in range(100_000)]
        recipients[73_519]["to"] = "0912"
        recipients[99_998].pop("name")
        async with carrier_sink() as sink, api_gateway(api_db, sink) as (client, headers, _):
            body = io.BytesIO(json.dumps({"class": "notice", "text": "Chao {name}", "recipients": recipients}).encode())
            response = await client.post("/api/v1/batches", data=body, timeout=aiohttp.ClientTimeout(total=120),
                                         headers={**headers, "Content-Type": "application/json"})
            answer = await response.json()
            assert response.status == 422
            assert [item["index"] for item in answer["recipients"]] == [73_519, 99_998]
            assert answer["recipients"][0]["reason"].startswith("to: not a valid number")
            assert answer["recipients"][1]["reason"].startswith("name: missing")
            assert "nothing was queued" in answer["error"]
            await asyncio.sleep(0.2)
            assert sink.attempts == []

    asyncio.run(run())


@pytest.mark.parametrize("body, status, error", [
    ({"class": "notice", "text": "x", "recipients": []}, 400, "recipients:"),
    ({"class": "notice", "text": "x", "recipients": "0912345678"}, 400, "recipients:"),
    ({"class": "notice", "text": "", "recipients": [{"to": "0912345678"}]}, 422, "1 of 1 recipients refused"),
    ({"class": "otp", "text": "x", "recipients": [{"to": "0912345678"}]}, 403, "class:"),
    ({"class": "notice", "text": "x", "recipients": [{"to": "0912345678"}], "extra": 1}, 400, "extra:"),
])
def test_bad_batches_are_refused_naming_what_is_wrong(api_db, body, status, error):
    async def run():
        async with carrier_sink() as sink, api_gateway(api_db, sink, key_classes=("notice",)) as (client, headers, _):
            response = await client.post("/api/v1/batches", headers=headers, json=body)
            assert (response.status, (await response.json())["error"][:len(error)]) == (status, error)

    asyncio.run(run())


def test_a_batch_skips_phones_that_opted_out_and_counts_them(api_db):
    async def run():
        await opt_out(api_db, "84987654321")
        async with carrier_sink() as sink, api_gateway(api_db, sink) as (client, headers, _):
            response = await client.post("/api/v1/batches", headers=headers, json={
                "class": "info", "text": "Lich nghi Tet", "recipients": [{"to": "0912345678"}, {"to": "0987654321"}]})
            batch = await response.json()
            body = await counts_when(client, headers, batch["id"], {"sent": 1, "opted_out": 1})
            assert body["total"] == 2
            assert [mt["to"] for mt in sink.attempts] == ["84912345678"]

    asyncio.run(run())
