"""The API's statuses and callbacks (CONTRACT §8) on both backends: an OTP's ttl, delivery reports,
callbacks signed, retried, in order, once each."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiohttp import web

from smsgw import api_callbacks
from smsgw.adapters.generic import sign
from smsgw.store import migrate

from api_harness import PHONE, SECRET, api_gateway, carrier_sink, mt_hold, serving


@pytest.fixture
def api_db(db: str) -> str:
    asyncio.run(migrate(db))
    return db


async def status_of(client, headers, message_id: str) -> str:
    response = await client.get(f"/api/v1/messages/{message_id}", headers=headers)
    return (await response.json())["status"]


async def wait_status(client, headers, message_id: str, wanted: str, timeout: float = 10.0) -> None:
    async def reached() -> None:
        while await status_of(client, headers, message_id) != wanted:
            await asyncio.sleep(0.02)

    await asyncio.wait_for(reached(), timeout)


def test_an_otp_whose_ttl_passes_while_the_carrier_is_down_is_expired_and_never_sent(api_db):
    async def run():
        async with carrier_sink() as sink, api_gateway(api_db, sink) as (client, headers, _):
            sink.status = 503   # the carrier is down
            response = await client.post("/api/v1/messages", headers=headers,
                                         json={"to": PHONE, "text": "OTP 998877", "class": "otp", "ttl": 1})
            otp = await response.json()
            await wait_status(client, headers, otp["id"], "expired")
            tried = len(sink.attempts)
            assert tried >= 1   # it was tried while the ttl ran
            sink.status = 200   # the carrier is back: the code is not sent late
            await asyncio.sleep(0.5)
            assert sink.accepted == [] and len(sink.attempts) == tried
            assert await status_of(client, headers, otp["id"]) == "expired"

    asyncio.run(run())


class Receiver:
    """A client's callback_url: answers 500 `failures` times, then 200; keeps what it took."""

    def __init__(self, secret: str, failures: int) -> None:
        self.secret = secret
        self.failures = failures
        self.taken: list[dict] = []
        self.calls = 0

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        assert request.headers["X-Smsgw-Signature"] == sign(self.secret, body)
        self.calls += 1
        if self.calls <= self.failures:
            return web.Response(status=500)
        self.taken.append(json.loads(body))
        return web.Response(status=200)


def test_a_receiver_failing_five_times_gets_every_status_once_in_order(api_db, monkeypatch):
    monkeypatch.setattr(api_callbacks, "RETRY_INITIAL", 0.02)
    monkeypatch.setattr(api_callbacks, "RETRY_MAX", 0.1)

    async def run():
        async with carrier_sink() as sink, api_gateway(api_db, sink) as (client, headers, secret):
            receiver = Receiver(secret, failures=5)
            app = web.Application()
            app.router.add_post("/cb", receiver.receive)
            async with serving(app) as server:
                response = await client.post("/api/v1/messages", headers=headers, json={
                    "to": PHONE, "text": "Ho so da duyet", "class": "notice", "callback_url": str(server.make_url("/cb"))})
                message = await response.json()
                await sink.wait_for(1)
                await wait_status(client, headers, message["id"], "sent")
                report = json.dumps({"id": message["id"], "status": "delivered"}).encode()
                dlr = await client.post("/carriers/generic/dlr", data=report, headers={
                    "Content-Type": "application/json", "X-Smsgw-Signature": sign(SECRET, report)})
                assert dlr.status == 200
                # a late report of an earlier state does not move it back
                late = json.dumps({"id": message["id"], "status": "enroute"}).encode()
                await client.post("/carriers/generic/dlr", data=late, headers={
                    "Content-Type": "application/json", "X-Smsgw-Signature": sign(SECRET, late)})

                async def all_taken() -> None:
                    while len(receiver.taken) < 3:
                        await asyncio.sleep(0.02)

                await asyncio.wait_for(all_taken(), 15)
                await asyncio.sleep(0.5)   # nothing more comes
                assert [item["status"] for item in receiver.taken] == ["queued", "sent", "delivered"]
                assert {item["id"] for item in receiver.taken} == {message["id"]}
                assert receiver.calls == 5 + 3
                assert await status_of(client, headers, message["id"]) == "delivered"

    asyncio.run(run())


def test_quiet_hours_hold_a_notice_until_their_end_but_never_a_one_time_code(api_db):
    from datetime import datetime, timedelta

    from smsgw.clock import VIETNAM
    from smsgw.quiet_hours import quiet_hours

    local = datetime.now(VIETNAM)
    span = f"{local - timedelta(hours=1):%H:%M}-{local + timedelta(hours=1):%H:%M}"   # now is inside them

    async def run():
        async with carrier_sink() as sink, api_gateway(api_db, sink, notices={"quiet_hours": span}) as (
                client, headers, _):
            notice = await (await client.post("/api/v1/messages", headers=headers, json={
                "to": PHONE, "text": "Nhac dong phi BHXH", "class": "notice"})).json()
            otp = await (await client.post("/api/v1/messages", headers=headers, json={
                "to": PHONE, "text": "OTP 5555", "class": "otp"})).json()
            await wait_status(client, headers, otp["id"], "sent")
            await asyncio.sleep(0.3)
            assert [mt["id"] for mt in sink.attempts] == [otp["id"]]
            assert await status_of(client, headers, notice["id"]) == "queued"
            lane, held = await mt_hold(api_db, notice["id"])
            assert (lane, held) == (1, pytest.approx(quiet_hours(span).held_until(time.time()), abs=1))

    asyncio.run(run())


def test_an_idle_callback_sender_leaves_the_store_alone_until_woken(monkeypatch):
    """An idle gateway does not read the callback queue five times a second (on SQLite each read is a
    turn of the single writer); a status change (`wake`) has it read at once."""
    monkeypatch.setattr(api_callbacks, "POLL", 0.05)
    monkeypatch.setattr(api_callbacks, "IDLE_POLL", 5.0)

    class EmptyQueue:
        reads = 0

        async def due_callbacks(self, now, lease, limit):
            self.reads += 1
            return []

    async def run():
        queue = EmptyQueue()
        sender = api_callbacks.CallbackSender(queue)
        sender.start()
        await asyncio.sleep(1.0)
        idle_reads = queue.reads
        sender.wake()
        await asyncio.wait_for(_until(lambda: queue.reads > idle_reads), 2.0)
        started = time.monotonic()
        await sender.stop()
        return idle_reads, time.monotonic() - started

    idle_reads, stopping = asyncio.run(run())
    assert idle_reads == 1   # the first look; before: one every 0.2 s
    assert stopping < 2.0    # stop does not wait out IDLE_POLL


async def _until(predicate) -> None:
    while not predicate():
        await asyncio.sleep(0.01)
