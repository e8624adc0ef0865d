"""The outbox's lanes and holds (SHARED-INTERFACES §2): replies before notices on each carrier,
the carrier's `tps` shared by all lanes, held MTs sent at their `not_before` and not before.

On both backends (`db`: an SQLite file, and a PostgreSQL database when its programs are installed).
"""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from test_gateway import gateway, make_records, mo_body, post_mo, records_db  # noqa: F401 (a fixture)
from test_outbox import async_carrier, eventually

from smsgw.billing import MessageType
from smsgw.ids import new_id
from smsgw.metrics import Metrics
from smsgw.outbox import Outbox
from smsgw.store import NOTICE_LANE, REPLY_LANE, MessageStore, Notice, PendingMT, open_messages
from smsgw.wire import OutboundMessage

NOTICES = 10_000
TPS = 50


def notice(n: int, *, not_before: float | None = None, lane: int = NOTICE_LANE) -> Notice:
    mt = OutboundMessage(new_id(), "", "", "generic", "BHXH", f"8491{n:07d}", f"Thong bao {n}", "gsm7", 1,
                         MessageType.PUSH)
    return Notice("card_expiry", f"card-{n}", "2026-12-01", mt, lane=lane, not_before=not_before)


async def store_notices(store: MessageStore, notices: list[Notice]) -> list[PendingMT]:
    queued = []
    for start in range(0, len(notices), 1000):
        queued += await store.store_notices(notices[start:start + 1000], now=time.time())
    return queued


class Sink:
    """A carrier's MT endpoint on 127.0.0.1: every MT it accepts, with the (monotonic) time it arrived."""

    def __init__(self) -> None:
        self.arrived: list[tuple[float, dict]] = []
        self.app = web.Application()
        self.app.router.add_post("/mt", self.receive)

    async def receive(self, request: web.Request) -> web.Response:
        self.arrived.append((time.monotonic(), json.loads(await request.read())))
        return web.Response(status=200)

    def position(self, in_reply_to: str) -> int | None:
        return next((n for n, (_, mt) in enumerate(self.arrived) if mt["in_reply_to"] == in_reply_to), None)


class Recorder:
    """A carrier adapter keeping the MT ids it was given, in order, with the time of each; paced at `tps`."""

    def __init__(self, tps: float | None = None) -> None:
        from types import SimpleNamespace

        self.config = SimpleNamespace(tps=tps, retry_initial=0.05, retry_max=0.2, give_up_after=30.0)
        self.sent: list[tuple[str, float]] = []

    async def send(self, session, mt) -> None:
        self.sent.append((mt.id, time.time()))

    def ids(self) -> list[str]:
        return [mt_id for mt_id, _ in self.sent]


def test_pending_mts_come_back_with_their_lane_and_hold_replies_first(db):
    async def run():
        await make_records(db)
        store = await open_messages(db)
        later = time.time() + 3600
        queued = await store_notices(store, [notice(1), notice(2, not_before=later)])
        assert [(item.lane, item.not_before) for item in queued] == [(NOTICE_LANE, None), (NOTICE_LANE, later)]
        reply = PendingMT(queued[0].mt, 0, 0, 0)
        assert (reply.lane, reply.not_before, reply.due_at) == (REPLY_LANE, None, 0)
        if store.shared:
            await store.release([item.mt.id for item in queued])
        pending = await store.pending()
        # on PostgreSQL the one held for an hour is claimed only as its time nears
        expected = [(NOTICE_LANE, None)] if store.shared else [(NOTICE_LANE, None), (NOTICE_LANE, later)]
        assert [(item.lane, item.not_before) for item in pending] == expected
        assert pending[0].mt == queued[0].mt
        await store.close()

    asyncio.run(run())


def test_a_reply_behind_ten_thousand_notices_goes_in_the_next_send_slot(tmp_path):
    """The outbox itself, over a real store: the reply is the very next MT the carrier is given."""

    async def run():
        store = await open_messages(str(tmp_path / "m.db"))
        carrier = Recorder(tps=TPS)
        async with aiohttp.ClientSession() as session:
            outbox = Outbox(store, {"generic": carrier}, session, Metrics())
            await outbox.start()
            for item in await store_notices(store, [notice(n) for n in range(NOTICES)]):
                outbox.add(item)
            await eventually(lambda: len(carrier.sent) >= TPS + 20)   # the burst spent: one MT every 1/TPS s
            reply = notice(NOTICES, lane=REPLY_LANE)
            (stored,) = await store.store_notices([reply], now=time.time())
            sent_before, added = len(carrier.sent), time.time()
            outbox.add(stored)
            await eventually(lambda: stored.mt.id in carrier.ids(), seconds=5)
            position = carrier.ids().index(stored.mt.id)
            waited = dict(carrier.sent)[stored.mt.id] - added
            await outbox.stop()
        # at most the notice in flight went first: its slot was being taken when the reply came
        assert position - sent_before <= 1, f"{position - sent_before} notices went first"
        assert waited < 0.5, f"the reply waited {waited:.3f} s (one send slot: {1 / TPS:.3f} s)"
        # one bucket for both lanes: from any send on, its one-second burst then at most TPS a second
        times = [at for _, at in carrier.sent]
        for first, start in enumerate(times):
            assert len(times) - first <= TPS + TPS * (times[-1] - start) + 1
        await store.close()

    asyncio.run(run())


def test_through_the_gateway_an_mos_reply_overtakes_a_notice_run_at_the_carriers_tps(records_db):
    """A notice run of 10,000 left pending, a gateway with a local MT sink at tps = 50: the reply to
    an MO reaches the sink after at most the one notice in flight, and the carrier is never sent
    more than its tps."""

    async def run():
        store = await open_messages(records_db)
        run_ids = {item.mt.id for item in await store_notices(store, [notice(n) for n in range(NOTICES)])}
        if store.shared:   # as `smsgw notify` leaves them when it stops: free for a gateway to claim
            await store.release(sorted(run_ids))
        await store.close()
        sink = Sink()
        async with TestServer(sink.app, host="127.0.0.1", port=0) as server:
            async with gateway(records_db, async_carrier(str(server.make_url("/mt")), tps=TPS)) as client:
                await eventually(lambda: len(sink.arrived) >= 2 * TPS, seconds=30)   # past the one-second burst
                status, _ = await post_mo(client, mo_body("urgent", text="BH HD"))
                stored_at, before = time.monotonic(), len(sink.arrived)
                assert status == 202
                await eventually(lambda: sink.position("urgent") is not None, seconds=10)
                position = sink.position("urgent")
                waited = sink.arrived[position][0] - stored_at
        assert {mt["id"] for _, mt in sink.arrived[:position]} <= run_ids
        # The notice in its send slot, plus at most two whose requests were already on the way when
        # the reply was stored (on a loaded machine a request outlives the 20 ms slot); a queue in
        # order of arrival would have put all 10,000 ahead of it (200 s at this tps).
        assert position - before <= 3, f"{position - before} notices reached the sink between the MO and its reply"
        assert waited < 1.0, f"the reply took {waited:.3f} s"

    asyncio.run(run())


def test_a_notice_held_by_another_process_is_sent_at_its_time_and_not_before(db, monkeypatch):
    """A held notice stored by another process (`smsgw notify` in quiet hours) is found by the
    gateway's outbox as its time nears (SQLite: `held` every tick; PostgreSQL: a lease's claim)."""
    monkeypatch.setenv("SMSGW_LEASE_SECONDS", "1")

    async def run():
        await make_records(db)
        gateway_store, other = await open_messages(db), await open_messages(db)
        carrier = Recorder()
        async with aiohttp.ClientSession() as session:
            outbox = Outbox(gateway_store, {"generic": carrier}, session, Metrics(), tick=0.2)
            await outbox.start()
            at = time.time() + 2.5
            (held,) = await other.store_notices([notice(1, not_before=at)], now=time.time())
            await other.close()
            await eventually(lambda: carrier.sent, seconds=10)
            await outbox.stop()
        ((mt_id, sent_at),) = carrier.sent
        assert mt_id == held.mt.id
        assert at <= sent_at < at + 1.5, f"sent {sent_at - at:+.3f} s from its time"
        assert (await gateway_store.mt_state(mt_id)).status == "sent"
        await gateway_store.close()

    asyncio.run(run())


def test_a_held_mt_waits_on_a_timer_and_its_give_up_time_runs_from_its_release(tmp_path):
    async def run():
        store = await open_messages(str(tmp_path / "m.db"))
        failures = iter(range(2))

        class Flaky(Recorder):
            async def send(self, session, mt) -> None:
                from smsgw.errors import TemporaryDeliveryError

                if next(failures, None) is not None:
                    raise TemporaryDeliveryError("busy")
                await super().send(session, mt)

        carrier = Flaky()
        carrier.config.give_up_after = 1.0
        async with aiohttp.ClientSession() as session:
            outbox = Outbox(store, {"generic": carrier}, session, Metrics())
            await outbox.start()
            # stored 1.5 s before it may go, and refused twice at first: more than give_up_after
            # after it was stored, well within it after its release
            at = time.time() + 1.5
            (held,) = await store.store_notices([notice(1, not_before=at)], now=time.time())
            outbox.add(held)
            assert outbox.depth == 1
            await asyncio.sleep(1.0)
            assert carrier.sent == [] and outbox.oldest_pending_age == 0.0
            await eventually(lambda: carrier.sent, seconds=10)
            await outbox.stop()
        assert carrier.sent[0][1] >= at
        assert (await store.mt_state(held.mt.id)).status == "sent"
        await store.close()

    asyncio.run(run())
