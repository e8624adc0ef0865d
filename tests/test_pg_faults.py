"""Faults with real processes on PostgreSQL (issue 16's fault tests): `smsgw serve` processes sharing
one database, killed with SIGKILL, the database stopped, and a primary failing over to its standby.

Every gateway is a real `smsgw serve --db postgresql://...` on 127.0.0.1 (test_crash.py's
start_server), the carrier's MT endpoint an aiohttp server in the test (test_crash.Carrier, never
refusing here). Leases are 2 s (SMSGW_LEASE_SECONDS) so a dead gateway's MTs are taken over quickly.
Skipped, saying why, without PostgreSQL's server programs.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer
from test_crash import Carrier, post, start_server
from test_gateway import OWNER, SECRET, SSN

from smsgw.commands import Month
from smsgw.store import open_records

pytestmark = pytest.mark.slow


def run(coroutine, seconds: float = 60):
    return asyncio.run(asyncio.wait_for(coroutine, timeout=seconds))


async def seed(url: str) -> None:
    """The schema and the one person the MOs ask about (test_gateway.make_records' rows)."""
    store = await open_records(url, create=True)
    async with store.transaction():
        await store.write(persons=[(SSN, None, "Nguyen Van A", "1990-01-01", OWNER)],
                          periods=[(SSN, "BHXH", "Cong ty A", Month(2016, 1).index, Month(2017, 12).index)])
    await store.close()


def write_config(path: Path, mt_url: str, carrier: str = "") -> Path:
    """The generic carrier in async mode posting to `mt_url` (`carrier`: more of its settings),
    protection off."""
    path.write_text("[carriers.generic]\n"
                    f'secret = "{SECRET}"\nmode = "async"\nmt_url = "{mt_url}"\n{carrier}'
                    "retry_initial = 0.05\nretry_max = 0.2\n"
                    "[protection]\nlookups_per_hour = 0\nrepeat_limit = 0\n")
    return path


class Burst:
    """MOs posted to gateways; keeps what each was answered (status, mo_id) and what failed to connect."""

    def __init__(self) -> None:
        self.acked: dict[str, str] = {}                        # carrier id -> mo_id, from a 202
        self.statuses: dict[str, list[int]] = defaultdict(list)

    async def one(self, session: aiohttp.ClientSession, url: str, carrier_id: str) -> None:
        try:
            status, answer = await post(session, url, carrier_id)
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return
        self.statuses[carrier_id].append(status)
        if status == 202:
            assert self.acked.setdefault(carrier_id, answer["mo_id"]) == answer["mo_id"], "two answers for one id"

    def not_acked(self, ids) -> list[str]:
        return [carrier_id for carrier_id in ids if carrier_id not in self.acked]


async def delivered(carrier: Carrier, acked: dict[str, str], seconds: float) -> None:
    """Waits until every acknowledged MO has its MT accepted; then one MT id per MO, for the right phone."""
    deadline = time.monotonic() + seconds
    while not set(acked) <= {mt["in_reply_to"] for mt in carrier.accepted}:
        missing = set(acked) - {mt["in_reply_to"] for mt in carrier.accepted}
        assert time.monotonic() < deadline, f"{len(missing)} acknowledged MOs never answered"
        await asyncio.sleep(0.05)
    ids_per_mo = defaultdict(set)
    for mt in carrier.attempts:
        ids_per_mo[mt["in_reply_to"]].add(mt["id"])
        assert mt["to"] == OWNER
    assert all(len(ids) == 1 for ids in ids_per_mo.values()), "an MO answered with two MT ids"


async def charges(url: str) -> dict[str, int]:
    connection = await asyncpg.connect(url, timeout=10)
    try:
        rows = await connection.fetch("SELECT m.carrier_id, count(b.id) FROM mo_messages m"
                                      " LEFT JOIN billing_rows b ON b.mo_id = m.id AND b.kind = 'charge'"
                                      " GROUP BY m.carrier_id")
    finally:
        await connection.close()
    return {row[0]: row[1] for row in rows}


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout=20)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()


@pytest.fixture
def short_leases(monkeypatch):
    monkeypatch.setenv("SMSGW_LEASE_SECONDS", "2")


@asynccontextmanager
async def two_gateways(db: str, tmp_path: Path) -> AsyncIterator[tuple[Carrier, list]]:
    """The reference records in `db`, a carrier's MT sink, and two `smsgw serve` on `db` in async
    mode: yields (the sink, [(process, url), (process, url)]); both stopped on leaving."""
    await seed(db)
    carrier = Carrier()
    carrier.flaky = False
    async with TestServer(carrier.app, host="127.0.0.1", port=0) as sink:
        config = write_config(tmp_path / "smsgw.toml", str(sink.make_url("/mt")))
        with open(tmp_path / "serve.log", "wb") as log:
            gateways = [await start_server(db, config, log) for _ in range(2)]
            try:
                yield carrier, gateways
            finally:
                for process, _ in gateways:
                    await stop(process)


def test_two_gateways_one_killed_mid_burst_every_acknowledged_mo_answered_once(pg_database, tmp_path, short_leases):
    async def go():
        async with two_gateways(pg_database, tmp_path) as (carrier, [(victim, victim_url), (survivor, survivor_url)]):
            burst = Burst()
            ids = [f"k-{n}" for n in range(400)]
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
                tasks = [asyncio.create_task(burst.one(session, (victim_url, survivor_url)[n % 2], carrier_id))
                         for n, carrier_id in enumerate(ids)]
                while len(burst.acked) < 120:
                    await asyncio.sleep(0.002)
                victim.send_signal(signal.SIGKILL)
                await victim.wait()
                await asyncio.gather(*tasks)
            assert 120 <= len(burst.acked) < 400, "the kill landed outside the burst"
            assert {s for statuses in burst.statuses.values() for s in statuses} == {202}
            await delivered(carrier, burst.acked, 30)
            charged = await charges(pg_database)
            assert all(charged[carrier_id] == 1 for carrier_id in burst.acked)
            assert set(charged.values()) == {1}, "an MO charged twice"

    run(go(), 90)


def test_a_duplicate_storm_across_two_gateways_answers_and_charges_each_id_once(pg_database, tmp_path):
    async def go():
        async with two_gateways(pg_database, tmp_path) as (carrier, [(one, one_url), (two, two_url)]):
            burst = Burst()
            ids = [f"dup-{n}" for n in range(40)]

            async def fresh(url: str, carrier_id: str) -> None:   # a new connection each copy
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
                    await burst.one(session, url, carrier_id)

            await asyncio.gather(*(fresh(url, carrier_id) for carrier_id in ids
                                   for url in (one_url, two_url, (one_url, two_url)[hash(carrier_id) % 2])))
            assert sorted(burst.acked) == sorted(ids)
            assert all(statuses == [202] * 3 for statuses in burst.statuses.values())
            await delivered(carrier, burst.acked, 20)
            assert len(carrier.accepted) == 40 and len({mt["id"] for mt in carrier.accepted}) == 40
            assert await charges(pg_database) == {carrier_id: 1 for carrier_id in ids}

    run(go(), 60)


async def until_all_acked(burst: Burst, session: aiohttp.ClientSession, urls: list[str], ids: list[str],
                          seconds: float) -> None:
    """The carrier's retries after an outage: every MO not acknowledged yet is sent again until it is."""
    deadline = time.monotonic() + seconds
    while missing := burst.not_acked(ids):
        assert time.monotonic() < deadline, f"{len(missing)} MOs still refused after the database returned"
        await asyncio.gather(*(burst.one(session, urls[n % len(urls)], carrier_id)
                               for n, carrier_id in enumerate(missing)))
        await asyncio.sleep(0.1)


async def stored_mos(url: str) -> dict[str, str]:
    connection = await asyncpg.connect(url, timeout=10)
    try:
        return {row[0]: row[1] for row in await connection.fetch("SELECT carrier_id, id FROM mo_messages")}
    finally:
        await connection.close()


async def outage_burst(burst: Burst, session: aiohttp.ClientSession, urls: list[str], ids: list[str],
                       outage, recovery) -> None:
    """Posts `ids` 32 at a time; after a quarter is acknowledged runs `outage`, posts on for a second, `recovery`."""
    queue = list(ids)

    async def poster() -> None:
        while queue:
            carrier_id = queue.pop(0)
            await burst.one(session, urls[len(queue) % len(urls)], carrier_id)

    posters = [asyncio.create_task(poster()) for _ in range(32)]
    while len(burst.acked) < len(ids) // 4:
        assert not all(task.done() for task in posters), "the burst ended before the outage"
        await asyncio.sleep(0.002)
    await asyncio.to_thread(outage)
    await asyncio.sleep(1.0)
    await asyncio.to_thread(recovery)
    await asyncio.gather(*posters)


def test_postgresql_stopped_mid_burst_gets_503_only_and_every_acknowledged_mo_answered(pg_cluster, pg_database,
                                                                                     tmp_path, short_leases):
    async def go():
        async with two_gateways(pg_database, tmp_path) as (carrier, [(one, one_url), (two, two_url)]):
            burst = Burst()
            ids = [f"down-{n}" for n in range(400)]
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
                await outage_burst(burst, session, [one_url, two_url], ids,
                                   lambda: pg_cluster.stop("immediate"), pg_cluster.start)
                answered = {s for statuses in burst.statuses.values() for s in statuses}
                assert answered == {202, 503}, f"statuses during the outage: {answered}"
                refused = {carrier_id for carrier_id, statuses in burst.statuses.items()
                           if carrier_id not in burst.acked}
                await until_all_acked(burst, session, [one_url, two_url], ids, 30)
            stored = await stored_mos(pg_database)
            assert all(stored[carrier_id] == mo_id for carrier_id, mo_id in burst.acked.items())
            assert refused, "no MO was refused while the database was down"
            await delivered(carrier, burst.acked, 30)
            assert set((await charges(pg_database)).values()) == {1}
        assert one.returncode == 0 and two.returncode == 0   # stopped cleanly on leaving two_gateways

    run(go(), 90)


def test_failover_to_the_synchronous_standby_mid_burst_loses_and_doubles_nothing(pg_replicated, tmp_path,
                                                                               short_leases):
    url = pg_replicated.multi_host_url()

    def fail_over() -> None:
        pg_replicated.primary.kill()

    async def go():
        async with two_gateways(url, tmp_path) as (carrier, [(one, one_url), (two, two_url)]):
            burst = Burst()
            ids = [f"fo-{n}" for n in range(400)]
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
                await outage_burst(burst, session, [one_url, two_url], ids, fail_over, pg_replicated.promote)
                answered = {s for statuses in burst.statuses.values() for s in statuses}
                assert answered == {202, 503}, f"statuses during the failover: {answered}"
                await until_all_acked(burst, session, [one_url, two_url], ids, 30)
            stored = await stored_mos(url)   # the promoted standby
            assert all(stored[carrier_id] == mo_id for carrier_id, mo_id in burst.acked.items()), \
                "an acknowledged MO is missing on the promoted standby"
            await delivered(carrier, burst.acked, 30)
            assert set((await charges(url)).values()) == {1}

    run(go(), 90)
