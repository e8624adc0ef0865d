"""Each carrier's `tps` shared by every process sending from one database (store/pacing.py's rule,
store/pg_pacing.py, store/sqlite_pacing.py, throttle.SharedThrottle), on both backends: a real
PostgreSQL server (tests/pgcluster.py) and a real SQLite file.

Two message stores on one database (each its own pool, or its own writer on the file) stand for
two gateways. The end-to-end check, real `smsgw serve` processes and an MT sink timing what it
receives, is tests/test_shared_tps.py. Rates here are slow (a token a second or half-second), so
that a slow machine's round trips do not refill the bucket between the asks.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from smsgw.store import open_messages
from smsgw.store.schema import migrate
from smsgw.throttle import SharedThrottle, Throttle, throttle_for


def run(coroutine, seconds: float = 60):
    return asyncio.run(asyncio.wait_for(coroutine, timeout=seconds))


async def gateways(db: str, count: int = 2) -> list:
    await migrate(db)
    return [await open_messages(db) for _ in range(count)]


async def close(stores) -> None:
    for store in stores:
        await store.close()


def most_in_any_window(times: list[float], width: float) -> int:
    """The largest number of `times` within any `width` seconds."""
    times = sorted(times)
    most, first = 0, 0
    for last, at in enumerate(times):
        while at - times[first] > width:
            first += 1
        most = max(most, last - first + 1)
    return most


def test_two_gateways_share_one_bucket(db):
    async def go():
        one, two = stores = await gateways(db)
        try:
            pace_one, pace_two = one.pacing(), two.pacing()
            started = time.monotonic()
            granted = [await pace_one.take("viettel", need=1, want=1, rate=1, burst=10) for _ in range(6)]
            granted += [await pace_two.take("viettel", need=1, want=1, rate=1, burst=10) for _ in range(4)]
            assert [(answer.granted, answer.wait) for answer in granted] == [(1.0, 0.0)] * 10
            refused = await pace_two.take("viettel", need=1, want=1, rate=1, burst=10)
            if time.monotonic() - started < 0.9:   # else a token came back meanwhile (a very slow machine)
                assert refused.granted == 0.0 and 0.0 < refused.wait <= 1.0   # the next slot, within a second
                assert (await pace_one.take("viettel", need=1, want=1, rate=1, burst=10)).granted == 0.0
            # another carrier has a bucket of its own
            assert (await pace_one.take("mobifone", need=1, want=1, rate=1, burst=10)).granted == 1.0
            await asyncio.sleep(refused.wait + 0.01)
            assert (await pace_one.take("viettel", need=1, want=1, rate=1, burst=10)).granted == 1.0
        finally:
            await close(stores)

    run(go())


def test_an_mt_of_more_parts_than_the_bucket_goes_when_it_is_full_and_leaves_a_debt(db):
    async def go():
        one, two = stores = await gateways(db)
        try:
            taken = await one.pacing().take("vina", need=4, want=4, rate=1, burst=2)   # 4 parts, a bucket of 2
            assert (taken.granted, taken.wait) == (4.0, 0.0)
            debt = await two.pacing().take("vina", need=1, want=1, rate=1, burst=2)
            assert debt.granted == 0.0 and 3.0 - 0.5 <= debt.wait <= 3.0   # 4 s of line, 1 s of bucket for one part
        finally:
            await close(stores)

    run(go())


def test_a_gateway_with_mts_queued_gets_what_the_bucket_holds_now_and_never_a_future_slot(db):
    async def go():
        one, two = stores = await gateways(db)
        try:
            first = await one.pacing().take("viettel", need=1, want=32, rate=2, burst=10)
            emptied = time.monotonic()
            assert (first.granted, first.wait) == (10.0, 0.0)          # the whole bucket, not 32
            refused = await two.pacing().take("viettel", need=1, want=32, rate=2, burst=10)
            assert refused.granted == 0.0 and 0.0 < refused.wait <= 0.5
            await asyncio.sleep(1.1)                                    # 2 parts' worth come back
            later = await two.pacing().take("viettel", need=1, want=32, rate=2, burst=10)
            assert 2.0 <= later.granted <= 2 * (time.monotonic() - emptied) + 1   # what came back, no more
        finally:
            await close(stores)

    run(go())


class Counted:
    """A pacing that counts its round trips to the database."""

    def __init__(self, pacing) -> None:
        self.pacing = pacing
        self.trips = 0

    async def take(self, carrier: str, **kwargs):
        self.trips += 1
        return await self.pacing.take(carrier, **kwargs)


def test_mts_queued_behind_are_paced_with_one_round_trip_and_credit_not_used_soon_is_dropped(db):
    async def go():
        store, = await gateways(db, 1)
        try:
            counted = Counted(store.pacing())
            throttle = SharedThrottle("viettel", 100, counted, hold=5.0)
            assert [await throttle.acquire(1, ahead=9 - n) for n in range(10)] == [0.0] * 10
            assert counted.trips == 1
            assert throttle.measured == pytest.approx(1.0)     # 10 SMS over the 10 s window
            dropped = SharedThrottle("vina", 100, counted, hold=0.1)
            assert await dropped.acquire(1, ahead=9) == 0.0 and counted.trips == 2
            await asyncio.sleep(0.2)
            assert await dropped.acquire(1) == 0.0 and counted.trips == 3   # the 9 left were not kept
        finally:
            await close([store])

    run(go())


def test_notices_leave_half_the_bucket_to_replies_and_never_spend_a_replys_credit(db):
    async def go():
        one, two = stores = await gateways(db)
        try:
            # 4 tps: a bucket of 4 parts, 2 of them kept for replies; a token back every 0.25 s
            campaign = SharedThrottle("viettel", 4, Counted(one.pacing()), hold=5.0)
            replies = SharedThrottle("viettel", 4, Counted(two.pacing()), hold=5.0)
            started = time.monotonic()
            # a campaign starting on a full bucket gets half of it, then must wait
            assert [await campaign.acquire(1, ahead=9, urgent=False) for _ in range(2)] == [0.0] * 2
            refused = await campaign.acquire(1, ahead=9, urgent=False)
            # meanwhile another gateway's replies find the other half free at once
            assert [await replies.acquire(1, ahead=1 - n) for n in range(2)] == [0.0] * 2
            spent = await replies.acquire(1)
            if time.monotonic() - started < 0.2:   # else a token came back meanwhile (a very slow machine)
                assert refused > 0.0 and spent > 0.0   # the bucket is spent: replies wait like anyone
            # a reply's credit is not a notice's: 4 parts booked for replies, a notice asks the database
            third = SharedThrottle("mobifone", 4, Counted(one.pacing()), hold=5.0)
            booked = time.monotonic()
            assert await third.acquire(1, ahead=3) == 0.0
            notice = await third.acquire(1, urgent=False)
            if time.monotonic() - booked < 0.5:
                assert notice > 0.0   # 1 s of line booked, past half the bucket
            assert await third.acquire(1) == 0.0   # the next reply spends the credit
        finally:
            await close(stores)

    run(go())


def test_concurrent_reservations_of_two_gateways_never_exceed_the_rate(db):
    tps, seconds = 40.0, 3.0

    async def go():
        stores = await gateways(db)
        try:
            granted: list[float] = []

            async def sender(store) -> None:   # several MTs of a gateway asking at once, as fast as allowed
                throttle = throttle_for(store, "viettel", tps)
                assert isinstance(throttle, SharedThrottle)
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline:
                    wait = await throttle.acquire(1, ahead=4)
                    if wait == 0.0:
                        granted.append(time.monotonic())
                    else:
                        await asyncio.sleep(wait)

            start = time.monotonic()
            await asyncio.gather(*(sender(store) for store in stores for _ in range(3)))
            elapsed = time.monotonic() - start
        finally:
            await close(stores)
        burst = tps   # one second's worth
        # over the whole run: at most the burst plus tps a second, and not far below it
        assert len(granted) <= burst + tps * elapsed
        assert len(granted) >= burst + tps * (seconds - 0.5) * 0.8
        # over any one second (seen here, a round trip after the grant, credit held up to 50 ms)
        assert most_in_any_window(granted, 1.0) <= burst + tps * 1.1 + 1

    run(go())


def test_a_gateway_configured_with_another_tps_is_noticed(db):
    async def go():
        one, two = stores = await gateways(db)
        try:
            assert (await one.pacing().take("gtel", need=1, want=1, rate=0.5, burst=1)).rate == 0.5
            seen = await two.pacing().take("gtel", need=1, want=1, rate=2, burst=2)   # 2 s of line taken: refused
            assert seen.granted == 0.0 and seen.rate == 0.5
        finally:
            await close(stores)

    run(go())


def test_a_shared_throttle_waits_while_the_database_is_down_and_paces_again_when_it_returns(pg_cluster, pg_database):
    async def go():
        store, = await gateways(pg_database, 1)
        try:
            throttle = SharedThrottle("viettel", 5, store.pacing(), retry=0.5, timeout=2.0, window=600)
            assert [await throttle.acquire(1) for _ in range(5)] == [0.0] * 5
            assert throttle.measured == pytest.approx(5 / 600)      # 5 SMS over the window
            pg_cluster.stop("immediate")
            try:
                started = time.monotonic()
                assert await throttle.acquire(1) == 0.5          # no crash: the MT waits, asks again
                assert time.monotonic() - started < 2.5
                await asyncio.sleep(0.5)
                assert await throttle.acquire(1) == 0.5
            finally:
                pg_cluster.start()
            deadline = time.monotonic() + 20
            while (wait := await throttle.acquire(1)) != 0.0:
                assert time.monotonic() < deadline, "pacing never came back"
                await asyncio.sleep(wait)
            assert throttle.measured == pytest.approx(6 / 600)      # what this gateway sent, nothing of the outage
        finally:
            await close([store])

    run(go(), 90)


def test_a_shared_throttle_waits_while_the_sqlite_file_refuses_writes(tmp_path):
    async def go():
        store, = await gateways(str(tmp_path / "smsgw.db"), 1)
        throttle = SharedThrottle("viettel", 5, store.pacing(), retry=0.5)
        assert await throttle.acquire(1) == 0.0
        await store.close()                                      # its writer refuses every operation now
        assert await throttle.acquire(1) == 0.5                  # no crash: the MT waits, asks again

    run(go())


def test_without_tps_the_throttle_is_this_processs_own_with_no_round_trip(pg_database, tmp_path):
    async def go():
        pg, = await gateways(pg_database, 1)
        sqlite = await open_messages(str(tmp_path / "smsgw.db"))
        try:
            assert isinstance(throttle_for(pg, "viettel", 20), SharedThrottle)
            assert isinstance(throttle_for(sqlite, "viettel", 20), SharedThrottle)
            unlimited = throttle_for(pg, "viettel", None)
            assert isinstance(unlimited, Throttle) and unlimited.limit is None
            assert isinstance(throttle_for(object(), "viettel", 20), Throttle)   # a store without pacing
            connection = await asyncpg.connect(pg_database, timeout=10)
            try:
                assert await unlimited.acquire(1) == 0.0
                assert await connection.fetchval("SELECT count(*) FROM carrier_pacing") == 0   # no round trip
            finally:
                await connection.close()
        finally:
            await close([pg, sqlite])

    run(go())
