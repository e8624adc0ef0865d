"""Protection end to end: rate limit, loop guard, senders that are not phones; state in SQLite or PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import asynccontextmanager

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from test_gateway import OWNER, SECRET, SSN, make_records, mo_body, post_mo

from smsgw.adapters.mock import MockAdapter
from smsgw.config import ConfigError, ProtectionConfig, parse_config
from smsgw.gateway import STORE, create_app
from smsgw.phones import InvalidPhone, SenderKind, classify_sender
from smsgw.protection import Protection
from smsgw.store import Guard, SenderHistory
from smsgw.store.schema import is_postgres

OTHER = "84987654321"
SYNC = {"generic": {"secret": SECRET, "mode": "sync"}}


_records_made: set[str] = set()   # the databases given their records (a gateway restarted finds them)


@asynccontextmanager
async def gateway(db: str, protection: dict | None, carriers: dict = SYNC, **options):
    if db not in _records_made:
        await make_records(db)
        _records_made.add(db)
    tables = {"carriers": carriers} | ({"protection": protection} if protection is not None else {})
    app = create_app(parse_config(tables), db_path=db, **options)
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        yield client


async def sql(db: str, query: str, *args: object) -> list[tuple]:
    """`query` (with ? placeholders) on the test's database, SQLite or PostgreSQL."""
    if not is_postgres(db):
        with sqlite3.connect(db) as conn:
            return conn.execute(query, args).fetchall()
    conn = await asyncpg.connect(db)
    try:
        numbered = query.split("?")
        query = numbered[0] + "".join(f"${n}{part}" for n, part in enumerate(numbered[1:], 1))
        return [tuple(row) for row in await conn.fetch(query, *args)]
    finally:
        await conn.close()


async def age(db: str, seconds: float) -> None:
    """Move every stored MO `seconds` into the past, as if that time had gone by."""
    await sql(db, "UPDATE mo_messages SET taken_at = taken_at - ?", float(seconds))


async def guards(db: str) -> list[tuple[str, str | None, str]]:
    return await sql(db, "SELECT carrier_id, guard, status FROM mo_messages ORDER BY taken_at")


def test_the_rules_decide_from_the_history():
    protection = Protection(ProtectionConfig(lookups_per_hour=3, repeat_limit=2))
    assert protection.decide(SenderHistory(answered=2, warned=False, repeats=1)) is None
    assert protection.decide(SenderHistory(answered=3, warned=False, repeats=0)) is Guard.RATE_LIMITED
    assert protection.decide(SenderHistory(answered=3, warned=True, repeats=0)) is Guard.OVER_LIMIT
    assert protection.decide(SenderHistory(answered=0, warned=False, repeats=2)) is Guard.LOOP
    assert protection.decide(SenderHistory(answered=9, warned=False, repeats=2)) is Guard.LOOP
    off = Protection(ProtectionConfig(lookups_per_hour=0, repeat_limit=0))
    assert off.decide(SenderHistory(answered=1000, warned=False, repeats=1000)) is None


@pytest.mark.parametrize("raw, kind, value", [
    ("0912345678", SenderKind.PHONE, OWNER),
    ("+84 912 345 678", SenderKind.PHONE, OWNER),
    ("8079", SenderKind.SHORT_CODE, "8079"),
    ("19001234", SenderKind.SHORT_CODE, "19001234"),
    ("BHXHVN", SenderKind.ALPHANUMERIC, "BHXHVN"),
    (" Viettel ", SenderKind.ALPHANUMERIC, "Viettel"),
    ("MB Bank", SenderKind.ALPHANUMERIC, "MB Bank"),
])
def test_senders_are_phones_short_codes_or_brandnames(raw, kind, value):
    assert (classify_sender(raw).kind, classify_sender(raw).value) == (kind, value)


@pytest.mark.parametrize("raw", ["", "12ab", "0912", "+", "A" * 12, "BH@XH", "09123456789012"])
def test_anything_else_is_not_a_sender(raw):
    with pytest.raises(InvalidPhone):
        classify_sender(raw)


@pytest.mark.parametrize("table, key", [
    ({"lookups_per_hour": -1}, "protection.lookups_per_hour"),
    ({"repeat_limit": "5"}, "protection.repeat_limit"),
    ({"exempt": ["12ab"]}, "protection.exempt"),
    ({"per_day": 100}, "protection.per_day"),
])
def test_protection_mistakes_name_the_key(table, key):
    with pytest.raises(ConfigError, match=f"^smsgw.toml: {key}:"):
        parse_config({"protection": table}, "smsgw.toml")


def test_over_the_hourly_limit_one_polite_reply_then_silence_until_the_hour_passes(db):
    async def run():
        async with gateway(db, {"lookups_per_hour": 3, "repeat_limit": 0}) as client:
            answers = [await post_mo(client, mo_body(f"r-{n}", text=f"BH QT {SSN}")) for n in range(6)]
            assert {status for status, _ in answers} == {200}
            replies = [answer["replies"] for _, answer in answers]
            assert [reply[0]["message_type"] for reply in replies[:3]] == [1, 1, 1]
            (polite,) = replies[3]
            assert polite["message_type"] == 22
            assert polite["text"] == ("Ban da gui qua 3 tin nhan tra cuu trong 1 gio. Vui long gui lai sau. "
                                      "Tin nhan nay khong bi tinh phi.")
            assert replies[4:] == [[], []]
            # another phone is not limited by this one
            assert (await post_mo(client, mo_body("other", text="BH HD", sender=OTHER)))[1]["replies"]
            billing = await client.app[STORE].billing()
            assert [(row.message_type, row.amount_vnd) for row in billing] == [(1, 1000)] * 3 + [(22, 0), (0, 0)]
            # a carrier retry of a withheld MO stays withheld
            assert await post_mo(client, mo_body("r-5", text=f"BH QT {SSN}")) == answers[5]
            metrics = await (await client.get("/metrics")).text()
            assert 'smsgw_guarded_total{carrier="generic",guard="rate_limited"} 1.0' in metrics
            assert 'smsgw_guarded_total{carrier="generic",guard="over_limit"} 2.0' in metrics

        assert [guard for _, guard, _ in await guards(db)] == [
            None, None, None, "rate_limited", "over_limit", "over_limit", None]
        # Restarted, 59 minutes later: still within the hour of the three answers and of the warning.
        await age(db, 59 * 60)
        async with gateway(db, {"lookups_per_hour": 3, "repeat_limit": 0}) as client:
            assert (await post_mo(client, mo_body("r-6")))[1]["replies"] == []
        # Once the hour has passed, answers resume, and so would one more warning.
        await age(db, 2 * 60)
        async with gateway(db, {"lookups_per_hour": 3, "repeat_limit": 0}) as client:
            statuses = [(await post_mo(client, mo_body(f"r-{n}")))[1]["replies"] for n in range(7, 11)]
            assert [[reply["message_type"] for reply in replies] for replies in statuses] == [[1], [1], [1], [22]]

    asyncio.run(run())


def test_concurrent_messages_of_one_phone_get_exactly_the_limit_and_one_warning(db):
    async def run():
        async with gateway(db, {"lookups_per_hour": 4, "repeat_limit": 0}) as client:
            answers = await asyncio.gather(*(post_mo(client, mo_body(f"c-{n}")) for n in range(12)))
            types = sorted(reply["message_type"] for _, answer in answers for reply in answer["replies"])
            assert types == [1, 1, 1, 1, 22]

    asyncio.run(run())


def test_a_phone_repeating_one_text_is_answered_again_only_once_it_stops(db):
    async def run():
        away = "Toi dang ban, se goi lai sau"   # an auto-reply: unknown keyword, answered with the help
        async with gateway(db, {"lookups_per_hour": 100, "repeat_limit": 2}) as client:
            answers = [(await post_mo(client, mo_body(f"l-{n}", text=away)))[1]["replies"] for n in range(5)]
            assert [len(replies) for replies in answers] == [1, 1, 0, 0, 0]
            assert (await post_mo(client, mo_body("l-other", text="BH HD")))[1]["replies"]
        await age(db, 30)
        async with gateway(db, {"lookups_per_hour": 100, "repeat_limit": 2}) as client:
            # still repeating within the minute: the withheld repeats count too
            assert (await post_mo(client, mo_body("l-5", text=away)))[1]["replies"] == []
            await age(db, 61)
            assert len((await post_mo(client, mo_body("l-6", text=away)))[1]["replies"]) == 1
            metrics = await (await client.get("/metrics")).text()
            assert 'smsgw_guarded_total{carrier="generic",guard="loop"} 1.0' in metrics
        assert [guard for _, guard, _ in await guards(db)].count("loop") == 4

    asyncio.run(run())


def test_exempt_phones_are_never_limited(db):
    async def run():
        table = {"lookups_per_hour": 1, "repeat_limit": 1, "exempt": ["0912 345 678"]}
        async with gateway(db, table) as client:
            answers = [(await post_mo(client, mo_body(f"e-{n}")))[1]["replies"] for n in range(4)]
            assert [reply["message_type"] for replies in answers for reply in replies] == [1, 1, 1, 1]

    asyncio.run(run())


def test_short_codes_and_brandnames_are_stored_and_never_answered(db):
    async def run():
        async with gateway(db, None) as client:
            for n, sender in enumerate(["9029", "VIETTEL", "Bao Hiem"]):
                status, answer = await post_mo(client, mo_body(f"s-{n}", text="BH HD", sender=sender))
                assert (status, answer["replies"]) == (200, [])
            status, refused = await post_mo(client, mo_body("s-bad", sender="12ab"))
            assert status == 400 and refused["error"].startswith("field 'from': not a phone number")
            assert await client.app[STORE].billing() == []
        assert await guards(db) == [
            ("s-0", "short_code", "withheld"), ("s-1", "alphanumeric", "withheld"), ("s-2", "alphanumeric", "withheld")]

    asyncio.run(run())


def test_in_async_mode_a_withheld_reply_is_a_202_and_no_mt(db):
    async def run():
        carriers = {"generic": {"secret": SECRET, "mode": "async", "mt_url": "http://127.0.0.1:9/mt"}}
        mock = MockAdapter(parse_config({"carriers": carriers}).carriers["generic"], shortcode="8079")
        async with gateway(db, {"lookups_per_hour": 1}, carriers, adapters={"generic": mock}) as client:
            answers = [await post_mo(client, mo_body(f"a-{n}", sender=sender))
                       for n, sender in enumerate([OWNER, OWNER, OWNER, "8079"])]
            assert [status for status, _ in answers] == [202] * 4
            for _ in range(200):
                if len(mock.delivered) == 2:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            assert [mt.message_type for mt in mock.delivered] == [1, 22]
            assert all(mt.to == OWNER for mt in mock.sent)

    asyncio.run(run())
