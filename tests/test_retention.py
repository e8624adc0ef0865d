"""Retention (CONTRACT §11): `smsgw db prune` leaves no old text or phone anywhere in the store,
billing totals unchanged; `smsgw data export|erase --phone`; the gateway's daily prune.

Each test runs on both backends (the `db` fixture): an SQLite file, whose dump and raw bytes
(file and WAL) are searched, and a fresh PostgreSQL database, whose `pg_dump` is searched. The
PostgreSQL-only ones: one prune at a time (the advisory lock), the server-side keyed hash."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import uuid
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path

import pytest

from smsgw import cli
from smsgw.billing import MessageType
from smsgw.config import parse_config
from smsgw.store import Notice, is_postgres, open_messages, phone_hash
from smsgw.wire import InboundMessage, OutboundMessage

DAY = 86_400
NOW = datetime(2026, 6, 30, 12, tzinfo=timezone.utc).timestamp()
OLD, RECENT = NOW - 100 * DAY, NOW - 10 * DAY     # on either side of the default 90 days
KEY = "k" * 32


def old_phone(n: int) -> str:
    return f"8490{n:07d}"


def new_phone(n: int) -> str:
    return f"8497{n:07d}"


async def fill(db: str, *, olds: int = 30, recents: int = 5) -> None:
    """MOs with their reply and charge row, `olds` of them 100 days ago and `recents` 10 days
    ago, each with texts and phones of its own; a notice of each age; one old MT refunded."""
    store = await open_messages(db)
    for n, (when, phone, tag) in enumerate([(OLD, old_phone(i), f"OLDTEXT{i:04d}") for i in range(olds)]
                                           + [(RECENT, new_phone(i), f"NEWTEXT{i:04d}") for i in range(recents)]):
        mo_id = str(uuid.uuid4())
        inbound = InboundMessage("generic", f"c-{n}", phone, "8079", f"BH QT {tag}",
                                 datetime.fromtimestamp(when, timezone.utc))
        mt = OutboundMessage(str(uuid.uuid4()), mo_id, f"c-{n}", "generic", "8079", phone, f"REPLY {tag}", "gsm7", 1,
                             MessageType.CHARGED)
        await store.store_mo(inbound, mo_id=mo_id, mode="async", command="QT", error=None, replies=[mt], now=when)
        if n == 0:
            await store.give_up(mt.id, error=f"carrier refused {phone}", now=when + 60)   # a refund row
        else:
            await store.mark_sent(mt.id)
    for when, phone, target in ((OLD, old_phone(900), "HC4019990000001"), (RECENT, new_phone(900), "HC4018880000001")):
        mt = OutboundMessage(str(uuid.uuid4()), "", "", "generic", "BHXHVN", phone, f"NOTICE {target}", "gsm7", 1,
                             MessageType.PUSH)
        await store.store_notices([Notice("card_expiry", target, "2026-01-01", mt)], now=when)
        await store.mark_sent(mt.id)
    await store.close()


def dump(db: str) -> str:
    """SQLite: every statement of `sqlite3 .dump` and the raw bytes of the file and its WAL, as one
    text. PostgreSQL: the whole database as `pg_dump` prints it (schema and every row)."""
    if is_postgres(db):
        from pgcluster import find_binaries

        binaries, _ = find_binaries()
        env = {name: value for name, value in os.environ.items() if not name.startswith("PG")}
        done = subprocess.run([binaries("pg_dump"), "--no-password", "-d", db], capture_output=True, text=True,
                              timeout=60, env=env)
        assert done.returncode == 0, done.stderr
        return done.stdout
    with closing(sqlite3.connect(db)) as conn:
        statements = "\n".join(conn.iterdump())
    raw = b"".join(path.read_bytes() for path in (Path(db), Path(f"{db}-wal")) if path.exists())
    return statements + "\n" + raw.decode("latin-1")


def query(db: str, sql: str) -> list[tuple]:
    """The rows of `sql` (no parameters) on either backend."""
    if is_postgres(db):
        import asyncpg

        async def run() -> list[tuple]:
            conn = await asyncpg.connect(db)
            try:
                return [tuple(row) for row in await conn.fetch(sql)]
            finally:
                await conn.close()

        return asyncio.run(run())
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql).fetchall()


def run_cli(*argv: str, capsys) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def billing_summaries(db: str, config: Path, capsys) -> list[str]:
    summaries = []
    for month in ("2026-03", "2026-06"):
        status, out, err = run_cli("billing", "summary", "--month", month, "--db", str(db), "--config", str(config),
                                   capsys=capsys)
        assert status == 0, err
        summaries.append(out)
    return summaries


@pytest.fixture
def filled(db: str, tmp_path) -> tuple[str, Path]:
    config = tmp_path / "smsgw.toml"
    asyncio.run(fill(db))
    (tmp_path / "key").write_text(KEY + "\n")
    config.write_text(f'[retention]\ndays = 90\nhash_key_file = "{tmp_path / "key"}"\n')
    return db, config


def test_prune_leaves_no_old_text_or_phone_anywhere_in_the_file_and_billing_totals_unchanged(filled, capsys):
    db, config = filled
    before = dump(db)
    assert "OLDTEXT0007" in before and old_phone(7) in before and "HC4019990000001" in before   # the dump sees them
    totals = billing_summaries(db, config, capsys)
    assert "1,000" in totals[0]   # March's charges are in the summary

    status, _, err = run_cli("db", "prune", "--db", str(db), "--config", str(config), "--now", "2026-06-30T12:00:00+00:00",
                             capsys=capsys)
    assert status == 0, err
    assert "billing_rows 32" in err and "mo_messages 30" in err and "mt_messages 31" in err and "notices 1" in err

    after = dump(db)
    for n in range(30):
        assert f"OLDTEXT{n:04d}" not in after and old_phone(n) not in after
    assert old_phone(900) not in after and "HC4019990000001" not in after and "NOTICE" not in after.replace(
        "NOTICE HC4018880000001", "")
    for n in range(5):   # the recent ones are all there
        assert f"NEWTEXT{n:04d}" in after and new_phone(n) in after
    assert billing_summaries(db, config, capsys) == totals

    # billing rows keep the phone's keyed hash, which the agency recomputes
    hashed = {row[0] for row in query(db, "SELECT msisdn FROM billing_rows WHERE at < '2026-04'")}
    assert phone_hash(KEY.encode(), old_phone(0)) in hashed and len(hashed) == 31   # 32 rows, 31 phones: a charge and its refund
    # A second run finds nothing more, and a different key is refused rather than mixed in.
    status, _, err = run_cli("db", "prune", "--db", str(db), "--config", str(config), "--now", "2026-06-30",
                             capsys=capsys)
    assert status == 0 and "nothing to erase" in err
    config.write_text('[retention]\nhash_key = "another-key-of-32-characters!!!!"\n')
    status, _, err = run_cli("db", "prune", "--db", str(db), "--config", str(config), capsys=capsys)
    assert status == 1 and "hash_key is not the key" in err and "another" not in err


def test_prune_goes_in_transactions_of_at_most_the_batch(filled):
    from smsgw.retention import prune

    db, _ = filled
    steps = []
    done = prune(str(db), parse_config({"retention": {"hash_key": KEY}}), now=NOW, batch=7,
                 sleep=lambda pause: steps.append(pause))
    assert done == {"billing_rows": 32, "mt_messages": 31, "mo_messages": 30, "notices": 1}
    assert len(steps) == 5 + 5 + 5 + 1 and min(steps) >= 0.02   # ceil(32/7), ceil(31/7), ceil(30/7), 1: a pause after each


def test_data_export_then_erase_of_one_phone_at_any_age(filled, capsys):
    db, config = filled
    phone = new_phone(3)
    status, out, err = run_cli("data", "export", "--phone", "0" + phone[2:], "--db", str(db), "--config", str(config),
                               capsys=capsys)
    assert status == 0, err
    exported = json.loads(out)
    assert exported["phone"] == phone and exported["phone_hash"] == phone_hash(KEY.encode(), phone)
    assert [mo["text"] for mo in exported["mo_messages"]] == ["BH QT NEWTEXT0003"]
    assert [mt["text"] for mt in exported["mt_messages"]] == ["REPLY NEWTEXT0003"]
    assert [row["amount_vnd"] for row in exported["billing_rows"]] == [1000]
    totals = billing_summaries(db, config, capsys)

    status, _, err = run_cli("data", "erase", "--phone", phone, "--db", str(db), "--config", str(config), capsys=capsys)
    assert status == 0, err
    after = dump(db)
    assert phone not in after and "NEWTEXT0003" not in after
    assert "NEWTEXT0002" in after and new_phone(2) in after   # another phone's data is untouched
    assert billing_summaries(db, config, capsys) == totals
    status, out, _ = run_cli("data", "export", "--phone", phone, "--db", str(db), "--config", str(config), capsys=capsys)
    erased = json.loads(out)   # what is left: the billing row under the hash, the MT's ids and states
    assert erased["mo_messages"] == [] and [row["msisdn"] for row in erased["billing_rows"]] == [erased["phone_hash"]]
    assert [mt["text"] for mt in erased["mt_messages"]] == [""]


def test_without_a_configured_key_the_store_makes_one_and_keeps_it(filled, capsys):
    db, _ = filled
    status, _, err = run_cli("db", "prune", "--db", str(db), "--now", "2026-06-30", capsys=capsys)
    assert status == 0, err
    key = bytes.fromhex(query(db, "SELECT value FROM retention_state WHERE name = 'hash_key'")[0][0])
    hashed = {row[0] for row in query(db, "SELECT msisdn FROM billing_rows")}
    assert phone_hash(key, old_phone(5)) in hashed


def test_the_gateway_prunes_on_its_own(filled):
    from aiohttp.test_utils import TestServer

    from smsgw.gateway import create_app

    db, _ = filled
    config = parse_config({"retention": {"hash_key": KEY, "days": 1}})   # everything in the store is older

    async def run() -> None:
        app = create_app(config, db_path=str(db), service_factory=lambda: None, adapters={}, prune_daily=True,
                         first_prune_within=0.0)
        async with TestServer(app, host="127.0.0.1", port=0):
            for _ in range(500):
                left = (await asyncio.to_thread(query, db, "SELECT count(*) FROM mo_messages WHERE sender != ''"))[0][0]
                if not left:
                    break
                await asyncio.sleep(0.02)
        assert left == 0

    asyncio.run(run())
    assert "NEWTEXT0001" not in dump(db)


@pytest.mark.parametrize("length", [16, 64, 65, 100])
def test_the_keyed_hash_postgresql_computes_is_phone_hash(pg_database, length):
    # the prune hashes on the server (HMAC written out over sha256): it must give what the agency recomputes
    import asyncpg

    from smsgw.store.pg_retention import hmac_pads

    key = bytes(range(256))[:length]
    inner, outer = hmac_pads(key)

    async def run() -> str:
        conn = await asyncpg.connect(pg_database)
        try:
            return await conn.fetchval("SELECT encode(sha256($2::bytea || sha256($1::bytea"
                                       " || convert_to($3, 'UTF8'))), 'hex')", inner, outer, "84912345678")
        finally:
            await conn.close()

    assert asyncio.run(run()) == phone_hash(key, "84912345678")


def test_one_prune_at_a_time_on_postgresql(pg_database, tmp_path, capsys):
    """A second pruner (another gateway's daily prune, or db prune) finds the lock taken: db prune
    says so and exits 1, the gateway's run is skipped; once the first ends, the next one prunes."""
    import asyncpg

    from smsgw.retention import prune_async
    from smsgw.store import migrate
    from smsgw.store.pg_retention import PRUNE_LOCK

    asyncio.run(migrate(pg_database))
    asyncio.run(fill(pg_database))
    config = tmp_path / "smsgw.toml"
    config.write_text(f'[retention]\nhash_key = "{KEY}"\n')

    async def holding(then) -> object:
        conn = await asyncpg.connect(pg_database)
        try:
            assert await conn.fetchval("SELECT pg_try_advisory_lock($1)", PRUNE_LOCK)
            return await then()
        finally:
            await conn.close()

    async def cli_prune() -> tuple[int, str, str]:
        return await asyncio.to_thread(run_cli, "db", "prune", "--db", pg_database, "--config", str(config),
                                       "--now", "2026-06-30", capsys=capsys)

    status, _, err = asyncio.run(holding(cli_prune))
    assert status == 1 and err == (f"smsgw: --db {pg_database}: another prune is running on this database (a "
                                   "gateway's daily prune, or another smsgw db prune); try again when it has finished\n")
    with pytest.raises(Exception, match="another prune is running"):
        asyncio.run(holding(lambda: prune_async(pg_database, parse_config({"retention": {"hash_key": KEY}}))))
    assert query(pg_database, "SELECT count(*) FROM mo_messages WHERE sender = ''") == [(0,)]   # nothing erased
    with_password = pg_database.replace("postgres@", "postgres:s3cret-pw@", 1)   # trust: the password is ignored
    status, _, err = run_cli("db", "prune", "--db", with_password, "--config", str(config), "--now", "2026-06-30",
                             capsys=capsys)
    assert status == 0 and "mo_messages 30" in err and "s3cret-pw" not in err, err


def test_prune_on_a_postgresql_database_not_migrated_names_the_command(pg_database, tmp_path, capsys):
    from smsgw.store import SCHEMA_VERSION

    status, _, err = run_cli("db", "prune", "--db", pg_database, capsys=capsys)
    assert status == 1 and err == (f"smsgw: --db {pg_database}: schema version 0, this smsgw needs {SCHEMA_VERSION}: "
                                   f"run smsgw db migrate --db {pg_database}\n")


def test_db_backup_of_a_postgresql_url_names_postgresqls_own_tools(pg_database, tmp_path, capsys):
    status, _, err = run_cli("db", "backup", "--db", pg_database, "--to", str(tmp_path / "copy.db"), capsys=capsys)
    assert status == 1 and "pg_dump" in err and "pg_basebackup" in err and "WAL archiving" in err, err
    assert not (tmp_path / "copy.db").exists()
