"""The outbox shared by gateways on one PostgreSQL database (CONTRACT section 10): leases, takeover, NOTIFY.

Two stores with an outbox each stand for two `smsgw serve` processes (each its own pool). The
carrier is an in-process recorder of the MTs each gateway sent. Real servers (tests/pgcluster.py).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from types import SimpleNamespace

import aiohttp
import pytest

from smsgw.errors import Unavailable
from smsgw.metrics import Metrics
from smsgw.outbox import Outbox
from smsgw.store import StoreError, open_messages
from smsgw.store.pg_messages import LEASE_SECONDS, lease_seconds
from smsgw.store.schema import migrate
from test_messages import inbound, reply, store_one


class Recorder:
    """A carrier adapter that keeps (gateway, MT id) of every send, paced at `tps`."""

    def __init__(self, sent: list[tuple[str, str]], gateway: str, *, tps: float = 1000.0, slow: float = 0.0) -> None:
        self.config = SimpleNamespace(tps=tps, retry_initial=0.05, retry_max=0.2, give_up_after=30.0)
        self.sent = sent
        self.gateway = gateway
        self.slow = slow   # seconds each send takes (a carrier slow to answer)

    async def send(self, session, mt) -> None:
        await asyncio.sleep(self.slow)
        self.sent.append((self.gateway, mt.id))


async def until(condition, seconds: float, what: str) -> float:
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < seconds, what
        await asyncio.sleep(0.02)
    return time.monotonic() - start


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, timeout=60))


def test_a_dead_gateways_mts_are_taken_over_after_the_lease_with_their_ids(pg_database, monkeypatch):
    monkeypatch.setenv("SMSGW_LEASE_SECONDS", "1")

    async def go():
        await migrate(pg_database)
        dead, survivor = await open_messages(pg_database), await open_messages(pg_database)
        stored = [await store_one(dead, f"t-{n}") for n in range(20)]   # leased to `dead`, which never sends
        ids = {mo.replies[0].id for mo in stored}
        sent: list[tuple[str, str]] = []
        async with aiohttp.ClientSession() as session:
            outbox = Outbox(survivor, {"generic": Recorder(sent, "survivor")}, session, Metrics())
            await outbox.start()
            await asyncio.sleep(0.5)
            assert sent == [], "an MT was taken while its gateway's lease still ran"
            taken = await until(lambda: len(sent) >= 20, 10, f"{len(sent)} of 20 MTs taken over")
            await asyncio.sleep(0.5)
            await outbox.stop()
        assert taken < 3.0, f"taken over {taken:.1f} s after a 1 s lease"
        assert Counter(mt_id for _, mt_id in sent) == Counter(ids), "each MT once, with its id"
        assert {(await survivor.mt_state(mt_id)).status for mt_id in ids} == {"sent"}
        await dead.close()
        await survivor.close()

    run(go())


def test_a_gateway_holding_mts_renews_its_leases_so_no_other_sends_them(pg_database, monkeypatch):
    monkeypatch.setenv("SMSGW_LEASE_SECONDS", "1")

    async def go():
        await migrate(pg_database)
        slow, other = await open_messages(pg_database), await open_messages(pg_database)
        sent: list[tuple[str, str]] = []
        async with aiohttp.ClientSession() as session:
            # 8 MTs at 2 a second: `slow` holds some for 3+ s, three times its lease
            holder = Outbox(slow, {"generic": Recorder(sent, "slow", tps=2)}, session, Metrics())
            rival = Outbox(other, {"generic": Recorder(sent, "other")}, session, Metrics())
            await holder.start()
            await rival.start()
            for n in range(8):
                holder.add(_pending(await store_one(slow, f"r-{n}")))
            await until(lambda: len(sent) >= 8, 15, f"{len(sent)} of 8 sent")
            await asyncio.sleep(1.5)
            await holder.stop()
            await rival.stop()
        assert len(sent) == 8 and {gateway for gateway, _ in sent} == {"slow"}, sent
        await slow.close()
        await other.close()

    run(go())


def test_a_send_taking_longer_than_the_lease_keeps_its_lease(pg_database, monkeypatch):
    monkeypatch.setenv("SMSGW_LEASE_SECONDS", "1")

    async def go():
        await migrate(pg_database)
        slow, other = await open_messages(pg_database), await open_messages(pg_database)
        sent: list[tuple[str, str]] = []
        async with aiohttp.ClientSession() as session:
            holder = Outbox(slow, {"generic": Recorder(sent, "slow", slow=3.0)}, session, Metrics())
            rival = Outbox(other, {"generic": Recorder(sent, "other")}, session, Metrics())
            await holder.start()
            await rival.start()
            holder.add(_pending(await store_one(slow, "long-send")))
            await until(lambda: sent, 10, "never sent")
            await asyncio.sleep(0.5)
            await holder.stop()
            await rival.stop()
        assert [gateway for gateway, _ in sent] == ["slow"], "an MT under way was taken by another gateway"
        await slow.close()
        await other.close()

    run(go())


def test_a_gateway_stopping_hands_its_queue_over_at_once_through_notify(pg_database):
    async def go():   # the default 60 s lease: only the release and its NOTIFY can make this quick
        await migrate(pg_database)
        leaving, staying = await open_messages(pg_database), await open_messages(pg_database)
        sent: list[tuple[str, str]] = []
        async with aiohttp.ClientSession() as session:
            remaining = Outbox(staying, {"generic": Recorder(sent, "staying")}, session, Metrics())
            await remaining.start()
            await asyncio.sleep(0.3)   # its LISTEN is armed
            going = Outbox(leaving, {"generic": Recorder(sent, "leaving", tps=1)}, session, Metrics())
            await going.start()
            stored = [await store_one(leaving, f"h-{n}") for n in range(10)]
            for mo in stored:
                going.add(_pending(mo))
            await asyncio.sleep(0.3)
            await going.stop()
            handed = await until(lambda: len(sent) >= 10, 10, f"{len(sent)} of 10 sent")
            await remaining.stop()
        assert handed < 3.0, f"the queue was taken {handed:.1f} s after the hand-over"
        assert Counter(mt_id for _, mt_id in sent) == Counter(mo.replies[0].id for mo in stored)
        assert Counter(gateway for gateway, _ in sent)["staying"] >= 8
        await leaving.close()
        await staying.close()

    run(go())


def test_an_mo_of_two_mts_is_sent_once_both_are_and_charged_for_each(pg_database):
    async def go():
        await migrate(pg_database)
        store = await open_messages(pg_database)
        mo_id = "two-parts"
        replies = [reply(mo_id, "c-2"), reply(mo_id, "c-2")]
        stored = await store.store_mo(inbound("c-2"), mo_id=mo_id, mode="async", command="QT", error=None,
                                      replies=replies, now=time.time())
        assert stored.created and stored.status == "queued" and stored.replies == tuple(replies)
        assert [row.mt_id for row in await store.billing(mo_id)] == [mt.id for mt in replies]
        await store.mark_sent(replies[1].id)
        assert (await store.find_mo("generic", "c-2")).status == "queued", "sent with an MT still pending"
        await store.mark_sent(replies[0].id)
        await store.mark_sent(replies[0].id)   # a repeat changes nothing
        assert (await store.find_mo("generic", "c-2")).status == "sent"
        assert {(await store.mt_state(mt.id)).status for mt in replies} == {"sent"}
        await store.close()

    run(go())


def test_mts_sent_at_the_same_moment_are_marked_together_each_mo_sent_with_its_last_mt(pg_database):
    """Sends ending together are recorded by one UPDATE (pg_messages.mark_sent): an MO moves to
    sent only when every one of its MTs is, whether its MTs are in one batch or in several."""
    async def go():
        await migrate(pg_database)
        store = await open_messages(pg_database)
        mts = {}
        for name, parts in (("both", 2), ("half", 2), ("single", 1)):
            mts[name] = [reply(name, f"c-{name}") for _ in range(parts)]
            await store.store_mo(inbound(f"c-{name}"), mo_id=name, mode="async", command="QT", error=None,
                                 replies=mts[name], now=time.time())
        together = [*mts["both"], mts["half"][0], *mts["single"]]
        await asyncio.gather(*(store.mark_sent(mt.id) for mt in together))
        assert {name: (await store.find_mo("generic", f"c-{name}")).status for name in mts} == \
            {"both": "sent", "half": "queued", "single": "sent"}
        assert [(await store.mt_state(mt.id)).status for mt in mts["half"]] == ["sent", "pending"]
        await asyncio.gather(store.mark_sent(mts["half"][1].id), store.mark_sent(mts["both"][0].id))   # a repeat: no change
        assert (await store.find_mo("generic", "c-half")).status == "sent"
        assert {(await store.mt_state(mt.id)).status for mt in together} == {"sent"}
        await store.close()

    run(go())


def test_mts_sent_while_the_database_is_down_stay_pending_and_each_send_hears_it(pg_cluster, pg_database):
    async def go():
        await migrate(pg_database)
        store = await open_messages(pg_database)
        mts = [reply("down", "c-down") for _ in range(3)]
        await store.store_mo(inbound("c-down"), mo_id="down", mode="async", command="QT", error=None,
                             replies=mts, now=time.time())
        pg_cluster.stop()
        try:
            outcomes = await asyncio.gather(*(store.mark_sent(mt.id) for mt in mts), return_exceptions=True)
            assert all(isinstance(outcome, Unavailable) for outcome in outcomes), outcomes
        finally:
            pg_cluster.start()
        assert {(await store.mt_state(mt.id)).status for mt in mts} == {"pending"}
        await asyncio.gather(*(store.mark_sent(mt.id) for mt in mts))   # service resumes by itself
        assert (await store.find_mo("generic", "c-down")).status == "sent"
        await store.close()

    run(go())


def test_the_lease_length_comes_from_smsgw_lease_seconds_and_a_bad_value_is_named(monkeypatch):
    monkeypatch.delenv("SMSGW_LEASE_SECONDS", raising=False)
    assert lease_seconds() == LEASE_SECONDS == 60.0
    monkeypatch.setenv("SMSGW_LEASE_SECONDS", "2.5")
    assert lease_seconds() == 2.5
    for bad in ("abc", "0", "-3", "1e9", "nan"):
        monkeypatch.setenv("SMSGW_LEASE_SECONDS", bad)
        with pytest.raises(StoreError, match=f"SMSGW_LEASE_SECONDS='{bad}': a number of seconds from 1 to 86400"):
            lease_seconds()


def _pending(stored):
    from smsgw.store import PendingMT

    now = time.time()
    return PendingMT(stored.replies[0], 0, now, now)


def test_a_gateway_whose_lease_was_taken_over_can_no_longer_renew_free_or_reschedule_it(pg_database, monkeypatch):
    """The lease names its holder: after the takeover, the old holder's renew, release and retry
    (a late one, e.g. after a long network stall) leave the new holder's lease and attempts alone."""
    monkeypatch.setenv("SMSGW_LEASE_SECONDS", "1")

    async def go():
        await migrate(pg_database)
        old, new = await open_messages(pg_database), await open_messages(pg_database)
        try:
            mt_id = (await store_one(old, "stalled")).replies[0].id   # leased to `old`
            assert await new.claim() == []                             # held: not free to take
            await asyncio.sleep(1.2)                                   # `old` stalls past its lease
            assert [pending.mt.id for pending in await new.claim()] == [mt_id]
            assert await old.renew([mt_id]) == set()                   # not `old`'s any more
            await old.schedule_retry(mt_id, attempts=5, next_attempt_at=time.time() + 600, error="late")
            await old.release([mt_id])
            state = await new.mt_state(mt_id)
            assert (state.status, state.attempts, state.last_error) == ("pending", 0, None)
            assert await new.renew([mt_id]) == {mt_id}                  # still `new`'s
            assert await old.claim() == []
        finally:
            await old.close()
            await new.close()

    run(go())
