"""The console's "notices and batches" page on a big store (issue 19: every page under 200 ms).

    python bench/console_sending.py [--mos 1000000] [--notices 300000] [--batches 100]
                                    [--batch-size 5000] [--opt-outs 50000] [--requests 15]

bench/console.py's store (its MOs, replies, charge rows, questions, ratings; see there), plus, in
SQL: `--notices` notices over the last 7 days (card expiry, payment reminders, dossier results
in turn; 90% sent, 3% failed, the latest 7% pending and held until tomorrow 07:00 on lane 2),
`--batches` API batches of `--batch-size` messages each over the last 30 days (the latest 5 still
queued and held, the others 80% delivered, 15% sent, 5% failed), and `--opt-outs` opted-out
phones. Then starts `smsgw serve`, logs an admin in and requests /console/sending `--requests`
times, printing the median, p95 and max in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))
import console as base  # noqa: E402  (bench/console.py: the store, serve, the login)

_NUMBERS = "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < :count)"
_MT_COLUMNS = ("id, mo_id, seq, carrier, in_reply_to, sender, recipient, text, encoding, segments, message_type,"
               " status, attempts, created_at, next_attempt_at, last_error, dlr_state, lane, not_before")
_CARRIER = "CASE i % 3 WHEN 0 THEN 'viettel' WHEN 1 THEN 'vinaphone' ELSE 'mobifone' END"
_PHONE = "'849' || printf('%08d', (i * 7919) % 200000)"
_HELD = "i >= :count * 93 / 100"   # the latest 7% of the notices
_NOTICE_MTS = f"""{_NUMBERS}
INSERT INTO mt_messages ({_MT_COLUMNS})
SELECT 'nt-' || i, '', 0, {_CARRIER}, '', 'BHXH', {_PHONE}, 'The BHYT cua ban sap het han', 'gsm7', 1, 3,
       CASE WHEN {_HELD} THEN 'pending' WHEN i % 33 = 5 THEN 'failed' ELSE 'sent' END, 1,
       :start + i * :span / :count, CASE WHEN {_HELD} THEN :release END, NULL,
       CASE WHEN {_HELD} THEN NULL WHEN i % 33 = 5 THEN 'failed' ELSE 'delivered' END,
       2, CASE WHEN {_HELD} THEN :release END
FROM n"""
_NOTICES = f"""{_NUMBERS}
INSERT INTO notices (kind, target, occasion, mt_id, created_at)
SELECT CASE i % 3 WHEN 0 THEN 'card_expiry' WHEN 1 THEN 'payment_reminder' ELSE 'dossier_result' END,
       'target-' || i, '2026-12-01', 'nt-' || i, :start + i * :span / :count
FROM n"""
_BATCHES = """WITH RECURSIVE b(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM b WHERE j + 1 < :batches)
INSERT INTO api_batches (id, key_name, idempotency_key, request_hash, class, total, created_at)
SELECT 'batch-' || j, 'bank', NULL, '', CASE j % 2 WHEN 0 THEN 'notice' ELSE 'info' END, :size,
       :start + j * :span / :batches
FROM b"""
_QUEUED = "i / :size >= :batches - 5"   # the latest 5 batches
_API_MTS = f"""{_NUMBERS}
INSERT INTO mt_messages ({_MT_COLUMNS})
SELECT 'am-' || i, '', 0, {_CARRIER}, '', 'BANK', {_PHONE}, 'Thong bao lich nghi', 'gsm7', 1, 3,
       CASE WHEN {_QUEUED} THEN 'pending' WHEN i % 20 = 3 THEN 'failed' ELSE 'sent' END, 1,
       :start + (i / :size) * :span / :batches, CASE WHEN {_QUEUED} THEN :release END, NULL,
       CASE WHEN {_QUEUED} THEN NULL WHEN i % 20 = 3 THEN 'failed' WHEN i % 20 < 17 THEN 'delivered' END,
       2, CASE WHEN {_QUEUED} THEN :release END
FROM n"""
_API_MESSAGES = f"""{_NUMBERS}
INSERT INTO api_messages (id, key_name, idempotency_key, request_hash, recipient, class, status, callback_url,
                          batch_id, encoding, segments, created_at, updated_at, expires_at)
SELECT 'am-' || i, 'bank', NULL, NULL, {_PHONE}, 'notice',
       CASE WHEN {_QUEUED} THEN 'queued' WHEN i % 20 = 3 THEN 'failed' WHEN i % 20 < 17 THEN 'delivered'
            ELSE 'sent' END, NULL,
       'batch-' || (i / :size), 'gsm7', 1, :start + (i / :size) * :span / :batches,
       :start + (i / :size) * :span / :batches, NULL
FROM n"""
_OPT_OUTS = f"""{_NUMBERS}
INSERT INTO opt_outs (phone, since) SELECT '848' || printf('%08d', i), :start FROM n"""


def add_sending(db: Path, notices: int, batches: int, size: int, opt_outs: int) -> None:
    started = time.perf_counter()
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    now = time.time()
    release = now + 10 * 3600.0
    week = {"count": notices, "start": now - 7 * 86400.0, "span": 7 * 86400.0, "release": release}
    month = {"count": batches * size, "batches": batches, "size": size, "start": now - 30 * 86400.0,
             "span": 30 * 86400.0, "release": release}
    conn.execute("BEGIN")
    conn.execute(_NOTICE_MTS, week)
    conn.execute(_NOTICES, {key: week[key] for key in ("count", "start", "span")})
    conn.execute(_BATCHES, {key: month[key] for key in ("batches", "size", "start", "span")})
    conn.execute(_API_MTS, month)
    conn.execute(_API_MESSAGES, {key: month[key] for key in ("count", "batches", "size", "start", "span")})
    conn.execute(_OPT_OUTS, {"count": opt_outs, "start": now})
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    print(f"sending: {notices:,} notices, {batches} batches of {size:,}, {opt_outs:,} opt-outs written in "
          f"{time.perf_counter() - started:.0f} s", flush=True)


async def measure(url: str, requests: int) -> list[float]:
    async with aiohttp.ClientSession(base_url=url, cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        async with session.get("/console/login") as page:
            token = base.csrf(await page.text())
        async with session.post("/console/login", data={"csrf": token, "name": "bench",
                                                        "password": base.PASSWORD}) as done:
            assert done.status == 200
        times = []
        for _ in range(requests):
            started = time.perf_counter()
            async with session.get("/console/sending") as response:
                body = await response.text()
                if response.status != 200 or 'id="held-total"' not in body:
                    raise SystemExit(f"/console/sending: HTTP {response.status}")
            times.append((time.perf_counter() - started) * 1000)
        return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mos", type=int, default=1_000_000)
    parser.add_argument("--notices", type=int, default=300_000)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--opt-outs", type=int, default=50_000)
    parser.add_argument("--requests", type=int, default=15)
    parser.add_argument("--records", default=str(base.CACHED) if base.CACHED.exists() else "")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="smsgw-console-sending-bench-") as tmp:
        directory = Path(tmp)
        db = base.make_store(directory, Path(args.records) if args.records else None, args.mos, 90)
        add_sending(db, args.notices, args.batches, args.batch_size, args.opt_outs)
        process, url = base.start_serve(directory, db)
        try:
            times = asyncio.run(measure(url, args.requests))
        finally:
            process.terminate()
            process.wait(timeout=60)
            process.stdout.close()
    print(f"  notices and batches (/console/sending)  median {statistics.median(times):7.1f} ms   p95 "
          f"{sorted(times)[int(0.95 * (len(times) - 1))]:7.1f}   max {max(times):7.1f}  (first {times[0]:.1f})")


if __name__ == "__main__":
    main()
