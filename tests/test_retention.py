"""Retention (CONTRACT §11): `smsgw db prune` leaves no old text or phone anywhere in the file,
billing totals unchanged; `smsgw data export|erase --phone`; the gateway's daily prune."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest

from smsgw import cli
from smsgw.billing import MessageType
from smsgw.config import parse_config
from smsgw.store import Notice, SqliteMessageStore, phone_hash
from smsgw.wire import InboundMessage, OutboundMessage

DAY = 86_400
NOW = datetime(2026, 6, 30, 12, tzinfo=timezone.utc).timestamp()
OLD, RECENT = NOW - 100 * DAY, NOW - 10 * DAY     # on either side of the default 90 days
KEY = "k" * 32


def old_phone(n: int) -> str:
    return f"8490{n:07d}"


def new_phone(n: int) -> str:
    return f"8497{n:07d}"


async def fill(db: Path, *, olds: int = 30, recents: int = 5) -> None:
    """MOs with their reply and charge row, `olds` of them 100 days ago and `recents` 10 days
    ago, each with texts and phones of its own; a notice of each age; one old MT refunded."""
    store = await SqliteMessageStore.open(str(db))
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


def dump(db: Path) -> str:
    """Every statement of `sqlite3 .dump` and the raw bytes of the file and its WAL, as one text."""
    with sqlite3.connect(db) as conn:
        statements = "\n".join(conn.iterdump())
    conn.close()
    raw = b"".join(path.read_bytes() for path in (db, Path(f"{db}-wal")) if path.exists())
    return statements + "\n" + raw.decode("latin-1")


def run_cli(*argv: str, capsys) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def billing_summaries(db: Path, config: Path, capsys) -> list[str]:
    summaries = []
    for month in ("2026-03", "2026-06"):
        status, out, err = run_cli("billing", "summary", "--month", month, "--db", str(db), "--config", str(config),
                                   capsys=capsys)
        assert status == 0, err
        summaries.append(out)
    return summaries


@pytest.fixture
def filled(tmp_path) -> tuple[Path, Path]:
    db, config = tmp_path / "smsgw.db", tmp_path / "smsgw.toml"
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

    with sqlite3.connect(db) as conn:   # billing rows keep the phone's keyed hash, which the agency recomputes
        hashed = {row[0] for row in conn.execute("SELECT msisdn FROM billing_rows WHERE at < '2026-04'")}
    conn.close()
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
    with sqlite3.connect(db) as conn:
        key = bytes.fromhex(conn.execute("SELECT value FROM retention_state WHERE name = 'hash_key'").fetchone()[0])
        hashed = {row[0] for row in conn.execute("SELECT msisdn FROM billing_rows")}
    conn.close()
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
                with sqlite3.connect(db) as conn:
                    left = conn.execute("SELECT count(*) FROM mo_messages WHERE sender != ''").fetchone()[0]
                conn.close()
                if not left:
                    break
                await asyncio.sleep(0.02)
        assert left == 0

    asyncio.run(run())
    assert "NEWTEXT0001" not in dump(db)
