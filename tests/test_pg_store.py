"""The PostgreSQL store's promises across gateways sharing one database (CONTRACT section 10).

Two stores on one database stand for two `smsgw serve` processes: each has its own asyncpg
pool, as each gateway process does. Real servers (tests/pgcluster.py); skipped, saying why,
without PostgreSQL's server programs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import subprocess
import sys
import time
import uuid

import pytest

from smsgw.answers import RateLimitedAnswer
from smsgw.config import ProtectionConfig
from smsgw.errors import Unavailable
from smsgw.protection import Protection
from smsgw.replies import reply as polite_reply
from smsgw.store import Guard, Screening, open_messages, open_records
from smsgw.store.pg_pool import ACQUIRE_TIMEOUT, POOL_SIZE, connection
from smsgw.store.schema import CURRENT, current_version, migrate
from test_messages import PHONE, inbound, reply, store_one


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, timeout=60))


def test_a_duplicate_storm_on_two_gateways_answers_and_charges_each_id_once(pg_database):
    async def go():
        await migrate(pg_database)
        one, two = await open_messages(pg_database), await open_messages(pg_database)
        ids = [f"storm-{n}" for n in range(40)]
        # each id three times, its copies on both gateways at the same moment
        results = await asyncio.gather(*(store_one(store, carrier_id, mode="sync")
                                         for carrier_id in ids for store in (one, two, one if hash(carrier_id) % 2 else two)))
        by_id: dict[str, set] = {}
        for result in results:
            by_id.setdefault(result.carrier_id, set()).add((result.mo_id, tuple(mt.id for mt in result.replies)))
        assert all(len(answers) == 1 for answers in by_id.values()), "two answers for one carrier id"
        assert sum(result.created for result in results) == 40
        rows = await one.billing()
        assert len(rows) == 40 and len({row.mo_id for row in rows}) == 40
        await one.close()
        await two.close()

    run(go())


def test_mos_stored_at_the_same_moment_go_together_and_one_the_server_refuses_fails_alone(pg_database):
    """MOs arriving while a statement is under way are stored by the next one together (group
    commit, pg_batches.py): each with its own MTs and charge; an MO the server refuses (a NUL
    character in its text) fails alone, the others of its batch are stored."""
    async def go():
        await migrate(pg_database)
        batches: list[int] = []
        store = await open_messages(pg_database, on_batch=batches.append)

        def mo(carrier_id: str, text: str = "BH QT 0110129425"):
            mo_id = str(uuid.uuid4())
            replies = [reply(mo_id, carrier_id), reply(mo_id, carrier_id)]
            return store.store_mo(dataclasses.replace(inbound(carrier_id), text=text), mo_id=mo_id, mode="async", command="QT",
                                  error=None, replies=replies, now=time.time())

        ids = [f"together-{n}" for n in range(40)]
        stored = await asyncio.gather(*(mo(carrier_id) for carrier_id in ids[:30]))
        assert max(batches) > 1, f"every MO in a statement of its own: {batches}"
        *others, refused = await asyncio.gather(*(mo(carrier_id) for carrier_id in ids[30:]), mo("refused", "BH \x00"),
                                                return_exceptions=True)
        assert isinstance(refused, Exception) and not isinstance(refused, Unavailable), refused
        stored += others
        assert all(result.created and result.status == "queued" for result in stored)
        for result in stored:
            found = await store.find_mo("generic", result.carrier_id)
            assert (found.mo_id, found.replies) == (result.mo_id, result.replies)
            assert [row.mt_id for row in await store.billing(result.mo_id)] == [mt.id for mt in result.replies]
        assert await store.find_mo("generic", "refused") is None
        again = await asyncio.gather(*(mo(carrier_id) for carrier_id in ids[:5]))
        assert [(result.created, result.mo_id) for result in again] == [(False, result.mo_id) for result in stored[:5]]
        assert len(await store.billing()) == 80
        await store.close()

    run(go())


def test_per_phone_protection_is_counted_across_gateways(pg_database):
    limit = 3

    def decide(history):
        return Guard.RATE_LIMITED if history.answered >= limit else None

    async def go():
        await migrate(pg_database)
        one, two = await open_messages(pg_database), await open_messages(pg_database)

        async def take(store, n: int):
            mo_id = str(uuid.uuid4())
            carrier_id = f"p-{n}"
            screening = Screening(decide=decide, instead=reply(mo_id, carrier_id, mt_id=f"polite-{n}"), cap=10)
            message = inbound(carrier_id).__class__(**{**inbound(carrier_id).__dict__, "text": f"BH QT {n:010d}"})
            return await store.store_mo(message, mo_id=mo_id, mode="sync", command="QT", error=None,
                                        replies=[reply(mo_id, carrier_id)], now=time.time(), screening=screening)

        results = await asyncio.gather(*(take(one if n % 2 else two, n) for n in range(12)))
        answered = [result for result in results if result.guard is None]
        assert len(answered) == limit, f"{len(answered)} answered across two gateways, the limit is {limit}"
        await one.close()
        await two.close()

    run(go())


def test_two_gateways_screening_one_phone_in_batches_answer_exactly_the_limit(pg_database):
    """Screened MOs arriving together are decided in one transaction per batch (pg_screened.py):
    60 MOs of one phone at once, half on each gateway, every third one sent to the other too (a
    carrier's retry), with MOs of other phones mixed in: the phone gets exactly
    its limit of answers and one polite reply, every later MO is withheld, each id is stored and
    answered once, and the other phones are not counted with it."""
    limit = 7
    protection = Protection(ProtectionConfig(lookups_per_hour=limit, repeat_limit=0), polite=polite_reply(RateLimitedAnswer(limit)))

    async def go():
        await migrate(pg_database)
        sizes: list[int] = []
        one, two = (await open_messages(pg_database, on_batch=sizes.append),
                    await open_messages(pg_database, on_batch=sizes.append))

        async def take(store, n: int, sender: str):
            carrier_id = f"{sender}-{n}"
            mo_id = str(uuid.uuid5(uuid.NAMESPACE_URL, carrier_id))   # a retry is the same MO
            answer = dataclasses.replace(reply(mo_id, carrier_id, mt_id=f"mt-{carrier_id}"), to=sender)
            message = dataclasses.replace(inbound(carrier_id), sender=sender, text=f"BH QT {n:010d}")
            return await store.store_mo(message, mo_id=mo_id, mode="async", command="QT", error=None,
                                        replies=[answer], now=time.time(), screening=protection.screening(answer))

        others = [f"8490000{n:04d}" for n in range(20)]
        # each MO on one gateway, every third one sent again to the other
        sends = [(one if n % 2 else two, n) for n in range(60)] + [(two if n % 2 else one, n) for n in range(0, 60, 3)]
        results = await asyncio.gather(*(take(store, n, PHONE) for store, n in sends),
                                       *(take(one if n % 2 else two, n, phone) for n, phone in enumerate(others)))
        assert max(sizes) > 1, f"every screened MO in a transaction of its own: {sizes}"
        phone = {}
        for result in results[:len(sends)]:
            phone.setdefault(result.carrier_id, set()).add((result.mo_id, result.guard, tuple(mt.id for mt in result.replies)))
        assert all(len(answers) == 1 for answers in phone.values()), "two answers for one carrier id"
        guards = sorted((guard or "answered" for ((_, guard, _),) in phone.values()))
        assert guards.count("answered") == limit and guards.count("rate_limited") == 1
        assert guards.count("over_limit") == 60 - limit - 1
        assert all(result.guard is None and result.replies for result in results[len(sends):])
        stored = {row.mt_id for row in await one.billing()}
        assert len(stored) == limit + 1 + len(others)   # the answers, the polite reply, the other phones'
        await one.close()
        await two.close()

    run(go())


async def expire_leases(url: str) -> None:
    """What time does to the leases of a gateway that died: they run out."""
    import asyncpg

    conn = await asyncpg.connect(url)
    await conn.execute("UPDATE mt_messages SET lease_until = 0 WHERE lease_until IS NOT NULL")
    await conn.close()


def test_two_gateways_claim_disjoint_pending_mts_and_take_over_expired_leases(pg_database):
    async def go():
        await migrate(pg_database)
        one, two = await open_messages(pg_database), await open_messages(pg_database)
        stored = [await store_one(one, f"o-{n}") for n in range(10)]
        mt_ids = {result.replies[0].id for result in stored}
        assert await two.pending() == [], "a starting gateway claimed MTs another one holds"
        await expire_leases(pg_database)
        claims = await asyncio.gather(one.pending(), two.pending())
        claimed = [{pending.mt.id for pending in claim} for claim in claims]
        assert not claimed[0] & claimed[1], "an MT claimed by both gateways"
        assert claimed[0] | claimed[1] == mt_ids
        assert await one.pending() == [] and await two.pending() == []
        await expire_leases(pg_database)   # `one` dies holding its claims
        taken_over = await two.pending()
        assert {pending.mt.id for pending in taken_over} == mt_ids, "an MT lost or renamed on take-over"
        await two.mark_sent(stored[0].replies[0].id)
        assert (await one.mt_state(stored[0].replies[0].id)).status == "sent"
        await expire_leases(pg_database)
        assert stored[0].replies[0].id not in {pending.mt.id for pending in await one.pending()}
        await one.close()
        await two.close()

    run(go())


def test_while_the_database_is_down_nothing_is_acknowledged_and_service_resumes(pg_cluster, pg_database):
    async def go():
        await migrate(pg_database)
        store = await open_messages(pg_database)
        before = await store_one(store, "before", mode="sync")
        await asyncio.to_thread(pg_cluster.stop, "immediate")
        with pytest.raises(Unavailable):
            await store_one(store, "during", mode="sync")
        with pytest.raises(Unavailable):
            await store.probe()
        await asyncio.to_thread(pg_cluster.start)
        deadline = time.monotonic() + 20
        while True:   # the pool's broken connections fail once each, then it connects again
            try:
                await store.probe()
                break
            except Unavailable:
                assert time.monotonic() < deadline, "the store did not resume after the database returned"
                await asyncio.sleep(0.1)
        assert await store.find_mo("generic", "during") is None, "an MO refused with 503 was stored"
        after = await store_one(store, "after", mode="sync")
        assert after.created and (await store.find_mo("generic", "before")).mo_id == before.mo_id
        await store.close()

    run(go())


def test_connections_kept_idle_across_a_database_restart_are_replaced_and_none_is_lost(pg_cluster, pg_database):
    """The store keeps its connections between operations (pg_pool.Pool): after the server
    restarts, every one of them is found closed and replaced, the operations fail with
    Unavailable only (never another error), and the pool's whole size is usable again."""
    async def go():
        await migrate(pg_database)
        store = await open_messages(pg_database)

        async def all_connections_at_once() -> None:
            """POOL_SIZE operations each holding a connection until all hold one (a lost one never comes)."""
            barrier = asyncio.Barrier(POOL_SIZE)

            async def hold() -> None:
                async with connection(store._pool) as conn:
                    await conn.fetchval("SELECT 1")
                    await asyncio.wait_for(barrier.wait(), ACQUIRE_TIMEOUT / 2)

            await asyncio.gather(*(hold() for _ in range(POOL_SIZE)))

        await all_connections_at_once()   # every connection of the pool made, then idle
        await asyncio.to_thread(pg_cluster.stop, "immediate")
        await asyncio.to_thread(pg_cluster.start)
        failures: list[BaseException] = []

        async def until_stored(carrier_id: str) -> None:
            deadline = time.monotonic() + 20
            while True:
                try:
                    await store_one(store, carrier_id, mode="sync")
                    return
                except Exception as exc:
                    failures.append(exc)
                    assert time.monotonic() < deadline, f"{carrier_id} not stored after the restart: {exc!r}"
                    await asyncio.sleep(0.05)

        await asyncio.gather(*(until_stored(f"again-{n}") for n in range(4 * POOL_SIZE)))
        assert all(isinstance(failure, Unavailable) and "released" not in str(failure) for failure in failures), \
            failures
        await all_connections_at_once()
        await store.close()

    run(go())


def test_records_load_with_copy_and_an_import_is_all_or_nothing(pg_database):
    async def go():
        store = await open_records(pg_database, create=True)
        async with store.bulk_load():
            await store.write(persons=[("0000000001", None, "A", "1990-01-01", PHONE)],
                              cards=[("GD4010000000001", "0000000001", "2025-01-01", "2025-12-31", "H")])
        with pytest.raises(Exception):
            async with store.transaction():
                await store.write(persons=[("0000000002", None, "B", "1991-02-02", None)])
                raise RuntimeError("a row refused later in the import")
        assert await store.person_by_ssn("0000000002") is None
        async with store.transaction():
            await store.write(persons=[("0000000001", "012345678901", "A2", "1990-01-01", PHONE)])
        person, card = await store.person_with_latest_card("012345678901", personal_id=True)
        assert (person.full_name, card.card_no) == ("A2", "GD4010000000001")
        await store.close()

    run(go())


# -- migrations, on both backends ------------------------------------------------------------

def smsgw(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "smsgw", *argv], capture_output=True, text=True, timeout=60)


def forget_versions(db: str) -> None:
    """The database as the code before versions left it: every table, no schema_version."""
    if db.startswith("postgresql"):
        import asyncpg

        async def drop():
            conn = await asyncpg.connect(db)
            await conn.execute("DROP TABLE schema_version")
            await conn.close()

        run(drop())
    else:
        conn = sqlite3.connect(db)
        conn.execute("DROP TABLE schema_version")
        conn.commit()
        conn.close()


def test_migrate_is_idempotent_and_serve_refuses_an_old_schema_naming_the_command(db, tmp_path):
    config = tmp_path / "smsgw.toml"
    config.write_text('[carriers.generic]\nsecret = "k"\nmode = "sync"\n', encoding="utf-8")
    first, again = smsgw("db", "migrate", "--db", db), smsgw("db", "migrate", "--db", db)
    assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
    assert f"schema version {CURRENT}, up to date" in again.stderr
    assert run(current_version(db)) == CURRENT
    forget_versions(db)
    serve = smsgw("serve", "--db", db, "--config", str(config), "--port", "0")
    assert (serve.returncode, serve.stderr) == (
        1, f"smsgw: --db {db}: schema version 0, this smsgw needs {CURRENT}: run smsgw db migrate --db {db}\n")
    upgraded = smsgw("db", "migrate", "--db", db)
    assert upgraded.returncode == 0 and f"schema version 0 -> {CURRENT}" in upgraded.stderr, upgraded.stderr


def test_an_sqlite_file_made_before_versions_upgrades_in_place_keeping_its_rows(tmp_path):
    from smsgw.store import SqliteStore
    from smsgw.store.sqlite_tables import connect

    old = str(tmp_path / "old.db")

    async def make_old():   # what the code before versions made: records and message tables, no version
        store = await SqliteStore.open(old, create=True)
        async with store.transaction():
            await store.write(persons=[("0000000001", None, "A", "1990-01-01", PHONE)])
        await store.close()
        messages = await open_messages(old)
        await store_one(messages, "kept", mode="sync")
        await messages.close()

    run(make_old())
    forget_versions(old)   # SqliteStore.open stamps the files it makes now; the old code did not
    connect(old).close()
    assert run(current_version(old)) == 0
    migrated = smsgw("db", "migrate", "--db", old)
    assert migrated.returncode == 0 and f"schema version 0 -> {CURRENT}" in migrated.stderr, migrated.stderr
    conn = sqlite3.connect(old)
    assert conn.execute("SELECT count(*) FROM persons").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM mo_messages WHERE carrier_id = 'kept'").fetchone()[0] == 1
    conn.close()
    assert run(current_version(old)) == CURRENT


def test_the_gateway_answers_503_with_retry_after_while_the_database_is_down_then_resumes(pg_cluster, pg_database):
    from aiohttp.test_utils import TestClient, TestServer

    from smsgw.commands import Month
    from smsgw.config import parse_config
    from smsgw.gateway import create_app
    from test_gateway import CARRIERS, NO_LIMITS, OWNER, SECRET, SSN, mo_body, sign

    async def post(client, carrier_id: str):
        body = mo_body(carrier_id)
        return await client.post("/carriers/generic/mo", data=body, headers={
            "Content-Type": "application/json", "X-Smsgw-Signature": sign(SECRET, body)})

    async def go():
        records = await open_records(pg_database, create=True)
        async with records.transaction():
            await records.write(persons=[(SSN, None, "Nguyen Van A", "1990-01-01", OWNER)],
                                periods=[(SSN, "BHXH", "Cong ty A", Month(2016, 1).index, Month(2017, 12).index)])
        await records.close()
        app = create_app(parse_config({"carriers": CARRIERS, "protection": NO_LIMITS}), db_path=pg_database)
        async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
            first = await post(client, "up-1")
            assert first.status == 200
            answer = await first.json()
            await asyncio.to_thread(pg_cluster.stop, "immediate")
            refused = await post(client, "down-1")
            assert (refused.status, refused.headers.get("Retry-After")) == (503, "5")
            health = await client.get("/healthz")
            assert health.status == 503 and (await health.json())["status"] == "unavailable"
            await asyncio.to_thread(pg_cluster.start)
            deadline = time.monotonic() + 20
            while (await client.get("/healthz")).status != 200:
                assert time.monotonic() < deadline, "the gateway did not resume after the database returned"
                await asyncio.sleep(0.1)
            retried = await post(client, "down-1")   # the carrier's retry of the refused MO
            assert retried.status == 200
            again = await post(client, "up-1")
            assert (await again.json()) == answer, "an MO answered twice, differently"
        messages = await open_messages(pg_database)
        assert len(await messages.billing()) == 2, "one charge per MO answered"
        await messages.close()

    run(go())
