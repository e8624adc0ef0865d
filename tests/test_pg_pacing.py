"""Each carrier's `tps` shared by the gateways of one PostgreSQL database (store/pg_pacing.py,
throttle.SharedThrottle): the bucket in `carrier_pacing`, against a real server (tests/pgcluster.py).

Two message stores (each its own pool) stand for two gateways. The end-to-end check, two real
`smsgw serve` processes and an MT sink timing what it receives, is in tests/test_pg_tps.py.
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


async def gateways(url: str, count: int = 2) -> list:
    await migrate(url)
    return [await open_messages(url) for _ in range(count)]


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


def test_two_gateways_share_one_bucket_of_one_seconds_burst(pg_database):
    async def go():
        one, two = stores = await gateways(pg_database)
        try:
            pace_one, pace_two = one.pacing(), two.pacing()
            granted = [await pace_one.take("viettel", need=1, want=1, rate=10, burst=10) for _ in range(6)]
            granted += [await pace_two.take("viettel", need=1, want=1, rate=10, burst=10) for _ in range(4)]
            assert [(answer.granted, answer.wait) for answer in granted] == [(1.0, 0.0)] * 10
            refused = await pace_two.take("viettel", need=1, want=1, rate=10, burst=10)
            assert 0.0 < refused.wait <= 0.1 + 0.05     # the next slot, a tenth of a second away
            assert (await pace_one.take("viettel", need=1, want=1, rate=10, burst=10)).wait > 0.0
            # another carrier has a bucket of its own
            assert (await pace_one.take("mobifone", need=1, want=1, rate=10, burst=10)).wait == 0.0
            await asyncio.sleep(refused.wait + 0.01)
            assert (await pace_one.take("viettel", need=1, want=1, rate=10, burst=10)).wait == 0.0
        finally:
            await close(stores)

    run(go())


def test_an_mt_of_more_parts_than_the_bucket_goes_when_it_is_full_and_leaves_a_debt(pg_database):
    async def go():
        one, two = stores = await gateways(pg_database)
        try:
            assert (await one.pacing().take("vina", need=4, want=4, rate=2, burst=2)).wait == 0.0   # 4 parts, bucket of 2
            debt = await two.pacing().take("vina", need=1, want=1, rate=2, burst=2)
            assert 1.5 - 0.1 <= debt.wait <= 1.5 + 0.05   # 2 s of line, 0.5 s of bucket left for one part
        finally:
            await close(stores)

    run(go())


def test_a_gateway_with_mts_queued_gets_what_the_bucket_holds_now_and_never_a_future_slot(pg_database):
    async def go():
        one, two = stores = await gateways(pg_database)
        try:
            first = await one.pacing().take("viettel", need=1, want=32, rate=10, burst=10)
            emptied = time.monotonic()
            assert (first.granted, first.wait) == (10.0, 0.0)          # the whole bucket, not 32
            refused = await two.pacing().take("viettel", need=1, want=32, rate=10, burst=10)
            assert refused.granted == 0.0 and 0.0 < refused.wait <= 0.15
            await asyncio.sleep(0.35)                                   # 3 parts' worth come back
            later = await two.pacing().take("viettel", need=1, want=32, rate=10, burst=10)
            assert 3.0 <= later.granted <= 10 * (time.monotonic() - emptied) + 1   # what came back since, no more
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


def test_mts_queued_behind_are_paced_with_one_round_trip_and_credit_not_used_soon_is_dropped(pg_database):
    async def go():
        store, = await gateways(pg_database, 1)
        try:
            counted = Counted(store.pacing())
            throttle = SharedThrottle("viettel", 100, counted, hold=0.5)
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


def test_concurrent_reservations_of_two_gateways_never_exceed_the_rate(pg_database):
    tps, seconds = 40.0, 3.0

    async def go():
        stores = await gateways(pg_database)
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
        # over any one second (seen here, a round trip after the grant: 50 ms of slack)
        assert most_in_any_window(granted, 1.0) <= burst + tps * 1.05 + 1

    run(go())


def test_a_gateway_configured_with_another_tps_is_noticed_and_the_higher_rate_bounds_the_carrier(pg_database):
    async def go():
        one, two = stores = await gateways(pg_database)
        try:
            assert (await one.pacing().take("gtel", need=1, want=1, rate=5, burst=5)).rate == 5
            seen = await two.pacing().take("gtel", need=1, want=1, rate=1, burst=1)   # refused: 0.2 s of line taken
            assert seen.wait > 0 and seen.rate == 5
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


def test_without_tps_or_on_sqlite_the_throttle_is_this_processs_own(pg_database, tmp_path):
    async def go():
        pg, = await gateways(pg_database, 1)
        sqlite = await open_messages(str(tmp_path / "smsgw.db"))
        try:
            assert isinstance(throttle_for(pg, "viettel", 20), SharedThrottle)
            unlimited = throttle_for(pg, "viettel", None)
            assert isinstance(unlimited, Throttle) and unlimited.limit is None
            own = throttle_for(sqlite, "viettel", 20)
            assert isinstance(own, Throttle) and own.limit == 20
            connection = await asyncpg.connect(pg_database, timeout=10)
            try:
                await unlimited.acquire(1)
                assert await connection.fetchval("SELECT count(*) FROM carrier_pacing") == 0   # no round trip
            finally:
                await connection.close()
        finally:
            await close([pg, sqlite])

    run(go())
