"""Every console page's time on a big store (issue 19: each under 200 ms with 1,000,000 MOs).

    python bench/console.py [--mos 1000000] [--days 90] [--requests 15] [--records PATH]

Copies the records store (default /work/benchcache/e2e-records-1000000.db when it exists, else
`smsgw db seed --persons 10000`; the original is never written), migrates it, and writes `--mos`
MOs spread over the last `--days` days with SQL (a recursive CTE: no Python loop per row): each
with its reply MT and its charge row, as the gateway stores them (60% QT, 15% THE, 7% HS, 3% help,
10% not understood across six error codes, 5% withheld by the loop guard; 10% of lookups refunded
as "not found", 2% of MTs failed with an error), from 200,000 phones over three carriers; the
latest 2,000 MTs pending on a carrier `held` whose MT endpoint accepts connections and never
answers, one MT a second (a queue that stays); 10,000 questions (50 open) and 20,000 ratings.
Then starts `smsgw serve` on it, logs an admin in, and requests each page `--requests` times in a
row, printing the median, p95 and max of each in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import aiohttp

CACHED = Path("/work/benchcache/e2e-records-1000000.db")
PASSWORD = "bench-password-1"
CARRIERS = ("viettel", "vinaphone", "mobifone")
PHONES = 200_000
ERRORS = ("bad_id", "unknown_command", "bad_period", "missing_argument", "unknown_keyword", "trailing_input")

# One statement per table, over i = 0 .. N-1; :start and :span place MO i at start + i * span / N.
_NUMBERS = "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < :count)"
_KIND = "(i % 100)"   # < 60 QT, < 75 THE, < 82 HS, < 85 help, < 95 not understood, else withheld
_CARRIER = "CASE i % 3 WHEN 0 THEN 'viettel' WHEN 1 THEN 'vinaphone' ELSE 'mobifone' END"
_SENDER = f"'849' || printf('%08d', (i * 7919) % {PHONES})"
_AT = ":start + i * :span / :count"
_ERROR = "CASE i % 6 " + " ".join(f"WHEN {n} THEN '{code}'" for n, code in enumerate(ERRORS)) + " END"
_MOS = f"""{_NUMBERS}
INSERT INTO mo_messages (id, carrier, carrier_id, sender, recipient, text, received_at, mode, command, error, status,
                         taken_at, guard)
SELECT 'mo-' || i, {_CARRIER}, 'c-' || i, {_SENDER}, '8079',
       CASE WHEN {_KIND} < 60 THEN 'BH QT ' || printf('%010d', i % 1000000)
            WHEN {_KIND} < 75 THEN 'BH THE HC401' || printf('%010d', i % 1000000)
            WHEN {_KIND} < 82 THEN 'BH HS 04486.G/2019/' || printf('%05d', i % 100000)
            WHEN {_KIND} < 85 THEN 'BH'
            WHEN {_KIND} < 95 THEN CASE i % 6 WHEN 0 THEN 'BH QT ' || (i % 100000) WHEN 1 THEN 'BH QY 0110129425'
                 WHEN 2 THEN 'BH QT 0110129425 13/2020' WHEN 3 THEN 'BH THE' WHEN 4 THEN 'BJ QT 0110129425'
                 ELSE 'BH HD abc' END
            ELSE 'BH QT 0110129425' END,
       strftime('%Y-%m-%dT%H:%M:%S+00:00', {_AT}, 'unixepoch'), 'sync',
       CASE WHEN {_KIND} < 60 THEN 'QT' WHEN {_KIND} < 75 THEN 'THE' WHEN {_KIND} < 82 THEN 'HS'
            WHEN {_KIND} < 85 THEN 'HELP' WHEN {_KIND} < 95 THEN NULL ELSE 'QT' END,
       CASE WHEN {_KIND} >= 85 AND {_KIND} < 95 THEN {_ERROR} END,
       CASE WHEN {_KIND} >= 95 THEN 'withheld' ELSE 'answered' END,
       {_AT}, CASE WHEN {_KIND} >= 95 THEN 'loop' END
FROM n"""
_TYPE = (f"CASE WHEN {_KIND} < 82 THEN CASE WHEN i % 10 = 0 THEN 22 ELSE 1 END WHEN {_KIND} < 85 THEN 0 ELSE 21 END")
_MTS = f"""{_NUMBERS}
INSERT INTO mt_messages (id, mo_id, seq, carrier, in_reply_to, sender, recipient, text, encoding, segments,
                         message_type, status, attempts, created_at, next_attempt_at, last_error, dlr_state)
SELECT 'mt-' || i, 'mo-' || i, 0, CASE WHEN i >= :count - 2000 THEN 'held' ELSE {_CARRIER} END, 'c-' || i, '8079',
       {_SENDER},
       'Ma so ' || printf('%010d', i % 1000000) || ': BHXH: 05 nam 02 thang, BHTN: 03 nam 00 thang.', 'gsm7', 1,
       {_TYPE},
       CASE WHEN i >= :count - 2000 THEN 'pending' WHEN i % 50 = 7 THEN 'failed' ELSE 'sent' END,
       CASE WHEN i % 50 = 7 THEN 5 ELSE 1 END, {_AT},
       CASE WHEN i >= :count - 2000 THEN {_AT} END,
       CASE WHEN i % 50 = 7 THEN 'HTTP 503 from the carrier' END,
       CASE WHEN i >= :count - 2000 THEN NULL WHEN i % 50 = 7 THEN 'failed' ELSE 'delivered' END
FROM n WHERE {_KIND} < 95"""
_BILLING = f"""{_NUMBERS}
INSERT INTO billing_rows (kind, carrier, mo_id, mt_id, msisdn, amount_vnd, message_type, at)
SELECT 'charge', {_CARRIER}, 'mo-' || i, 'mt-' || i, substr({_SENDER}, 1, 7) || '****',
       CASE WHEN {_TYPE} = 1 THEN 1000 ELSE 0 END, {_TYPE},
       strftime('%Y-%m-%dT%H:%M:%S+00:00', {_AT}, 'unixepoch')
FROM n WHERE {_KIND} < 95"""

# 10,000 questions (the latest 50 open, the others answered an hour later) and 20,000 ratings (one in
# ten with a comment), spread over the same days.
_QUESTIONS = """WITH RECURSIVE q(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM q WHERE j + 1 < 10000)
INSERT INTO questions (mo_id, carrier, sender, text, asked_at, faq_id, answer, answered_by, answered_at)
SELECT 'q-' || j, 'viettel', '849' || printf('%08d', j), 'Xin hỏi về thẻ BHYT của tôi, số thứ tự ' || j,
       :start + j * :span / 10000, NULL,
       CASE WHEN j < 9950 THEN 'Trả lời câu hỏi ' || j END, CASE WHEN j < 9950 THEN 'staff' END,
       CASE WHEN j < 9950 THEN :start + j * :span / 10000 + 3600 END
FROM q"""
_RATINGS = """WITH RECURSIVE r(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM r WHERE k + 1 < 20000)
INSERT INTO ratings (mo_id, sender, rating, comment, rated_mo_id, rated_at)
SELECT 'r-' || k, '849' || printf('%08d', k), 1 + (k * 7) % 5, CASE WHEN k % 10 = 0 THEN 'Góp ý số ' || k END,
       'mo-' || (k * 50), :start + k * :span / 20000
FROM r"""


def smsgw(*args: str, stdin: str | None = None) -> None:
    subprocess.run([sys.executable, "-m", "smsgw", *args], check=True, input=stdin, text=True,
                   stdout=subprocess.DEVNULL)


def make_store(directory: Path, records: Path | None, mos: int, days: int) -> Path:
    db = directory / "console.db"
    started = time.perf_counter()
    if records is not None:
        shutil.copyfile(records, db)   # the cached store itself is never opened for writing
    else:
        smsgw("db", "seed", "--db", str(db), "--persons", "10000")
    smsgw("db", "migrate", "--db", str(db))
    copied = time.perf_counter()
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -400000")
    now = time.time()
    params = {"count": mos, "start": now - days * 86400.0, "span": days * 86400.0}
    conn.execute("BEGIN")
    for statement in (_MOS, _MTS, _BILLING):
        conn.execute(statement, params)
    for statement in (_QUESTIONS, _RATINGS):
        conn.execute(statement, {"start": params["start"], "span": params["span"]})
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    print(f"store: {mos:,} MOs over {days} days written in {time.perf_counter() - copied:.0f} s "
          f"(records copied and migrated in {copied - started:.0f} s); {db.stat().st_size / 1e9:.2f} GB", flush=True)
    smsgw("users", "add", "bench", "--role", "admin", "--db", str(db), stdin=PASSWORD + "\n")
    return db


def silent_endpoint() -> int:
    """A TCP port that accepts connections and never answers: the `held` carrier's MTs stay in flight."""
    listener = socket.create_server(("127.0.0.1", 0))
    held = []

    def accept() -> None:
        while True:
            held.append(listener.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    return listener.getsockname()[1]


def start_serve(directory: Path, db: Path) -> tuple[subprocess.Popen, str]:
    config = directory / "smsgw.toml"
    carriers = "".join(f'[carriers.{name}]\nauth = "none"\nmode = "sync"\ntps = 50\n' for name in CARRIERS)
    held = (f'[carriers.held]\nauth = "none"\nmode = "async"\ntps = 1\ntimeout = 60\n'
            f'mt_url = "http://127.0.0.1:{silent_endpoint()}/mt"\n')
    config.write_text(carriers + held, encoding="utf-8")
    log = (directory / "serve.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "smsgw", "serve", "--db", str(db), "--config", str(config),
                                "--host", "127.0.0.1", "--port", "0"], stdout=subprocess.PIPE, stderr=log, text=True)
    listening = process.stdout.readline()
    if not listening.startswith("smsgw listening on "):
        raise SystemExit(f"smsgw serve did not start: {listening!r} (see {directory / 'serve.log'})")
    return process, listening.split()[-1]


def csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


async def measure_pages(base: str, requests: int) -> list[tuple[str, list[float]]]:
    async with aiohttp.ClientSession(base_url=base, cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        async with session.get("/console/login") as page:
            token = csrf(await page.text())
        async with session.post("/console/login", data={"csrf": token, "name": "bench", "password": PASSWORD}) as done:
            token = csrf(await done.text())
        phone = "849" + f"{(123 * 7919) % PHONES:08d}"
        pages = [
            ("overview", "GET", "/console/", None),
            ("messages: search by phone (conversation)", "POST", "/console/messages", {"kind": "phone", "q": phone}),
            ("messages: search by carrier id", "POST", "/console/messages", {"kind": "carrier_id", "q": "c-123"}),
            ("messages: search by MO id", "POST", "/console/messages", {"kind": "mo_id", "q": "mo-500000"}),
            ("messages: conversation of an MO", "GET", "/console/messages/mo/mo-123", None),
            ("questions", "GET", "/console/questions", None),
            ("satisfaction, this month", "GET", "/console/satisfaction", None),
            ("understanding, 30 days", "GET", "/console/understanding", None),
            ("understanding, today", "GET", "/console/understanding?days=1", None),
            ("billing, this month", "GET", "/console/billing", None),
            ("carriers", "GET", "/console/carriers", None),
            ("simulator (form)", "GET", "/console/simulator", None),
            ("simulator: one message", "POST", "/console/simulator",
             {"carrier": "viettel", "phone": "84912345678", "text": "BH QT 0110129425"}),
            ("accounts", "GET", "/console/accounts", None),
            ("audit log", "GET", "/console/audit", None),
        ]
        results = []
        for label, method, path, form in pages:
            times = []
            for _ in range(requests):
                started = time.perf_counter()
                async with session.request(method, path, data={**form, "csrf": token} if form else None) as response:
                    await response.read()
                    if response.status != 200:
                        raise SystemExit(f"{label}: HTTP {response.status}")
                times.append((time.perf_counter() - started) * 1000)
            results.append((label, times))
            print(f"  {label:<44} median {statistics.median(times):7.1f} ms   p95 "
                  f"{sorted(times)[int(0.95 * (len(times) - 1))]:7.1f}   max {max(times):7.1f}", flush=True)
        started = time.perf_counter()
        async with session.post("/console/billing/export", data={"csrf": token,
                                                                 "month": time.strftime("%Y-%m")}) as response:
            size = len(await response.read())
        print(f"  (billing CSV export of this month: {size / 1e6:.1f} MB in {time.perf_counter() - started:.1f} s)")
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mos", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--requests", type=int, default=15)
    parser.add_argument("--records", default=str(CACHED) if CACHED.exists() else "",
                        help="records store to copy ('' seeds 10,000 persons instead)")
    args = parser.parse_args()
    args.records = Path(args.records) if args.records else None
    with tempfile.TemporaryDirectory(prefix="smsgw-console-bench-") as tmp:
        directory = Path(tmp)
        db = make_store(directory, args.records, args.mos, args.days)
        process, base = start_serve(directory, db)
        try:
            results = asyncio.run(measure_pages(base, args.requests))
        finally:
            process.terminate()
            process.wait(timeout=60)
            process.stdout.close()
        slowest = max(statistics.median(times) for _, times in results)
        print(f"slowest page median: {slowest:.1f} ms (target: under 200 ms)")


if __name__ == "__main__":
    main()
