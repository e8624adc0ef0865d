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
from smsgw.store import Effect, Notice, is_postgres, migrate, open_messages, phone_hash
from smsgw.wire import InboundMessage, OutboundMessage

from test_console import console_db  # noqa: F401  (a fixture: the reference records and the console's accounts)

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


def _mt(mo_id: str, to: str, text: str, message_type: MessageType = MessageType.CHARGED) -> OutboundMessage:
    return OutboundMessage(str(uuid.uuid4()), mo_id, "", "generic", "8079", to, text, "gsm7", 1, message_type)


async def fill_conversations(db: str) -> None:
    """Of each age (100 and 10 days ago, tagged OLD and NEW): phone 700 gets an API message (with a
    callback URL: its callbacks queued), asks a question that staff answer, and rates the answer
    with a comment; an opt-out (BH TC): phone 701 100 days ago, phone 700 10 days ago."""
    from smsgw.store.api import ApiKey, NewMessage
    from smsgw.store.api_open import open_api

    await migrate(db)   # the API's tables
    store = await open_messages(db)
    api = await open_api(store)
    key = ApiKey("clinic", ("info",), 0, False, "callback-secret")
    await api.create_key(key.name, "h" * 64, key.secret, key.classes, 0, False, OLD - DAY)
    sent = []

    async def mo(when: float, phone: str, text: str, command: str, effect: Effect, reply: str = "") -> None:
        mo_id = str(uuid.uuid4())
        inbound = InboundMessage("generic", mo_id, phone, "8079", text, datetime.fromtimestamp(when, timezone.utc))
        replies = [_mt(mo_id, phone, reply)] if reply else []
        stored = await store.store_mo(inbound, mo_id=mo_id, mode="async", command=command, error=None,
                                      replies=replies, now=when, effect=effect)
        sent.extend(mt.id for mt in stored.replies)

    for when, phone, tag in ((OLD, old_phone, "OLD"), (RECENT, new_phone, "NEW")):
        message = _mt("", phone(700), f"APITEXT{tag}", MessageType.PUSH)
        taken = await api.store_message(key, f"idem-{tag}", NewMessage(message, "info", "https://clinic.example/cb",
                                                                       None, None), now=when)
        assert taken.created and taken.message.status == "queued"
        sent.append(message.id)
        await mo(when, phone(700), f"BH HOI QUESTION{tag}", "HOI",
                 Effect("question", text=f"QUESTION{tag}",
                        numbered=lambda number, to=phone(700), tag=tag: [_mt("", to, f"{number} ACK{tag}")]))
        number = [q.number for q in await store.questions() if q.text == f"QUESTION{tag}"][0]
        answered = await store.answer_question(number, lambda q, tag=tag: _mt("", q.sender, f"ANSWER{tag}",
                                                                              MessageType.PUSH),
                                               by="Lan", now=when + 60, lease=60)
        sent.append(answered.mt.id)
        await mo(when + 120, phone(700), f"BH DG 4 COMMENT{tag}", "DG",
                 Effect("rating", text=f"COMMENT{tag}", rating=4), reply=f"THANKS{tag}")
        await mo(when + 180, phone(701) if tag == "OLD" else phone(700), "BH TC", "TC", Effect("opt_out"),
                 reply=f"STOPPED{tag}")
    for mt_id in sent:
        await store.mark_sent(mt_id)
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
    asyncio.run(fill_conversations(db))
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
    # the conversations' and the API's: 5 MTs and their billing rows, 3 MOs, a question, a rating, an API message
    assert (f"api_messages 1, billing_rows {32 + 5}, mo_messages {30 + 3}, mt_messages {31 + 5}, notices 1, "
            "questions 1, ratings 1 in ") in err

    after = dump(db)
    for n in range(30):
        assert f"OLDTEXT{n:04d}" not in after and old_phone(n) not in after
    for text in ("APITEXTOLD", "QUESTIONOLD", "ACKOLD", "ANSWEROLD", "COMMENTOLD", "THANKSOLD", "STOPPEDOLD"):
        assert text in before and text not in after
        assert text.replace("OLD", "NEW") in after   # the recent ones stay
    assert old_phone(700) in before and old_phone(700) not in after and new_phone(700) in after
    # The API's callbacks were queued (and stay, without a phone); the opt-out stays in force, in clear
    # (opt_outs holds its phone and since when, nothing else: notices must not start again).
    assert query(db, "SELECT count(*) FROM api_callbacks")[0][0] == 4
    assert sorted(query(db, "SELECT phone FROM opt_outs")) == [(old_phone(701),), (new_phone(700),)]
    assert query(db, "SELECT count(*) FROM mo_messages WHERE sender = '%s'" % old_phone(701))[0][0] == 0
    kept = query(db, "SELECT sender, text, answer, answered_by FROM questions ORDER BY number")
    assert kept[0] == (phone_hash(KEY.encode(), old_phone(700)), "", "", "Lan") and kept[1][1] == "QUESTIONNEW"
    assert query(db, "SELECT sender, comment, rating FROM ratings ORDER BY rated_at") == [
        (phone_hash(KEY.encode(), old_phone(700)), "", 4), (new_phone(700), "COMMENTNEW", 4)]
    assert old_phone(900) not in after and "HC4019990000001" not in after and "NOTICE" not in after.replace(
        "NOTICE HC4018880000001", "")
    for n in range(5):   # the recent ones are all there
        assert f"NEWTEXT{n:04d}" in after and new_phone(n) in after
    assert billing_summaries(db, config, capsys) == totals

    # billing rows keep the phone's keyed hash, which the agency recomputes
    hashed = {row[0] for row in query(db, "SELECT msisdn FROM billing_rows WHERE at < '2026-04'")}
    assert phone_hash(KEY.encode(), old_phone(0)) in hashed and len(hashed) == 31 + 2   # 32 rows, 31 phones: a charge and its refund; 700's and 701's
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
    assert done == {"billing_rows": 37, "mt_messages": 36, "mo_messages": 33, "notices": 1, "api_messages": 1,
                    "questions": 1, "ratings": 1}
    # ceil(37/7), ceil(36/7), ceil(33/7), then 1 row each: a pause after each
    assert len(steps) == 6 + 6 + 5 + 1 + 1 + 1 + 1 and min(steps) >= 0.02


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


def test_data_export_and_erase_cover_questions_ratings_the_opt_out_and_api_messages(filled, capsys):
    db, config = filled
    phone = new_phone(700)

    async def ask() -> str:   # a question still open when the phone's data is erased
        store = await open_messages(db)
        mo_id = str(uuid.uuid4())
        inbound = InboundMessage("generic", mo_id, phone, "8079", "BH HOI OPENQUESTION", datetime.now(timezone.utc))
        stored = await store.store_mo(inbound, mo_id=mo_id, mode="async", command="HOI", error=None, replies=[],
                                      now=RECENT + 600, effect=Effect("question", text="OPENQUESTION",
                                                                      numbered=lambda number: [_mt(mo_id, phone, number)]))
        await store.mark_sent(stored.replies[0].id)   # (a pending MT keeps its phone until sent: mt_pending_kept)
        number = [q.number for q in await store.questions(open_only=True)][0]
        await store.close()
        return number

    number = asyncio.run(ask())
    status, out, err = run_cli("data", "export", "--phone", phone, "--db", str(db), "--config", str(config),
                               capsys=capsys)
    assert status == 0, err
    exported = json.loads(out)
    assert [(q["text"], q["answer"], q["answered_by"]) for q in exported["questions"]] == [
        ("QUESTIONNEW", "ANSWERNEW", "Lan"), ("OPENQUESTION", None, None)]
    assert [(r["rating"], r["comment"]) for r in exported["ratings"]] == [(4, "COMMENTNEW")]
    assert [o["phone"] for o in exported["opt_outs"]] == [phone]
    assert [(m["recipient"], m["status"], m["key_name"]) for m in exported["api_messages"]] == [(phone, "sent", "clinic")]
    texts = {mt["text"] for mt in exported["mt_messages"]}
    assert {"APITEXTNEW", "ANSWERNEW", "THANKSNEW", "STOPPEDNEW"} <= texts and any(t.endswith(" ACKNEW") for t in texts)
    assert len(exported["mo_messages"]) == 4
    totals = billing_summaries(db, config, capsys)

    status, _, err = run_cli("data", "erase", "--phone", phone, "--db", str(db), "--config", str(config), capsys=capsys)
    assert status == 0, err
    assert "questions 2, ratings 1, opt_outs_kept 1" in err and "api_messages 1" in err
    assert f"kept: the opt-out of {phone} (BH TC) stays in force" in err
    after = dump(db)
    for text in ("APITEXTNEW", "QUESTIONNEW", "ACKNEW", "ANSWERNEW", "COMMENTNEW", "THANKSNEW", "STOPPEDNEW",
                 "OPENQUESTION"):
        assert text not in after
    assert billing_summaries(db, config, capsys) == totals
    hashed = phone_hash(KEY.encode(), phone)
    status, out, _ = run_cli("data", "export", "--phone", phone, "--db", str(db), "--config", str(config), capsys=capsys)
    erased = json.loads(out)   # what is left: rows under the hash, the opt-out in force
    assert [(q["sender"], q["text"], q["answer"]) for q in erased["questions"]] == [(hashed, "", ""), (hashed, "", None)]
    assert [(r["sender"], r["comment"], r["rating"]) for r in erased["ratings"]] == [(hashed, "", 4)]
    assert [m["recipient"] for m in erased["api_messages"]] == [hashed]
    assert [o["phone"] for o in erased["opt_outs"]] == [phone]
    for table in ("questions", "ratings", "api_messages", "mo_messages", "mt_messages", "billing_rows"):
        assert not any(phone in str(row) for row in query(db, f"SELECT * FROM {table}")), table

    # Staff can no longer answer the open question: its asker's number is gone.
    status, out, err = run_cli("questions", "answer", number, "Da tiep nhan", "--db", str(db), "--config", str(config),
                               capsys=capsys)
    assert status == 1 and f"smsgw: {number}: its asker's number was erased" in err

    async def answer_in_the_store() -> object:   # as if erased between the command's look and its answer
        store = await open_messages(db)
        try:
            return await store.answer_question(number, lambda q: _mt("", q.sender, "Da tiep nhan", MessageType.PUSH),
                                               by="Lan", now=NOW, lease=60)
        finally:
            await store.close()

    assert asyncio.run(answer_in_the_store()) is None
    assert query(db, "SELECT count(*) FROM mt_messages WHERE text LIKE '%Da tiep nhan%'")[0][0] == 0


def test_the_console_refuses_to_answer_a_question_whose_asker_was_erased(console_db):
    import re

    from smsgw.retention import erase_phone
    from test_console import logged_in
    from test_console_questions import send, sink_and_gateway, wait_for
    from test_gateway import OWNER

    async def scenario():
        async with sink_and_gateway(console_db) as (client, received, _):
            await send(client, "h1", "BH HOI Xin hoi ve the BHYT")
            await wait_for(lambda: len(received) == 1)
            number = re.search(r"Q[0-9]+", received[0]["text"]).group(0)
            done = await asyncio.to_thread(erase_phone, console_db, parse_config({"retention": {"hash_key": KEY}}),
                                           OWNER)
            assert done["questions"] == 1
            token = await logged_in(client, "sam")
            refused = await client.post(f"/console/questions/{number}/answer", data={"csrf": token, "text": "Da nhan"})
            assert refused.status == 409 and "số điện thoại của người hỏi đã bị xoá" in await refused.text()
            await asyncio.sleep(0.3)
            assert len(received) == 1

    asyncio.run(scenario())
