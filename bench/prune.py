"""The webhook's latency while the store prunes old personal data (issue 20, CONTRACT §11).

    python bench/prune.py [--old 1000000] [--rate 200] [--baseline 20] [--template FILE]
                          [--runs 1] [--window SECONDS] [--variant NAME=CODE[:BATCH] ...]

Stores `--old` MOs (each with its reply and charge row) dated 100 days ago through the message
store (into `--template` when given and kept there for the next runs, copied for each run),
starts `smsgw serve` on that file, and sends signed MOs at a fixed `--rate` a second (open
loop: a slow answer does not slow the sending). First `--baseline` seconds with nothing else
running, then while a prune erases the old data, until it ends or for `--window` seconds
(then it is stopped): prints the p50, p99 and max latency of each phase, the rows erased and
their rate, and the load average.

`--variant NAME=CODE[:BATCH]` runs the prune from another checkout of smsgw (CODE: the folder
holding its `smsgw` package, `.` for this one) with BATCH rows a step (default: that code's
own); several variants run in turn in each of the `--runs` rounds, each on a fresh copy of the
store, and the medians of each are printed at the end: a before/after on one machine and
in one run, interleaved so that the load of other processes falls on both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path

import aiohttp

from smsgw.adapters.generic import signature_headers
from smsgw.billing import MessageType
from smsgw.store import SqliteMessageStore
from smsgw.wire import InboundMessage, OutboundMessage
from webhook import SECRET, SENDER, TEXT, start

DAY = 86_400


async def store_old(db: Path, count: int) -> None:
    store = await SqliteMessageStore.open(str(db))
    when = time.time() - 100 * DAY

    async def one(n: int) -> None:
        mo_id = str(uuid.uuid4())
        phone = f"849{n:08d}"
        inbound = InboundMessage("generic", f"old-{n}", phone, "8079", f"BH QT {n:010d}",
                                 datetime.fromtimestamp(when, timezone.utc))
        mt = OutboundMessage(str(uuid.uuid4()), mo_id, f"old-{n}", "generic", "8079", phone,
                             f"BHXH {n:010d}: 12 thang", "gsm7", 1, MessageType.CHARGED)
        await store.store_mo(inbound, mo_id=mo_id, mode="sync", command="QT", error=None, replies=[mt],
                             now=when + n / 1000)

    for start_at in range(0, count, 2_000):
        await asyncio.gather(*(one(n) for n in range(start_at, min(count, start_at + 2_000))))
    await store.close()


async def load(url: str, rate: float, until: asyncio.Future | float, latencies: list[float], tag: str) -> None:
    """Post MOs at `rate` a second until `until` (a deadline, or a future that completes)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
        tasks = []
        started = time.perf_counter()
        n = 0

        async def one(k: int) -> None:
            body = (f'{{"id": "{tag}-{k}", "from": "{SENDER}", "to": "8079", "text": "{TEXT}"}}').encode()
            headers = {"Content-Type": "application/json", **signature_headers(SECRET, body, timestamp=int(time.time()))}
            sent = time.perf_counter()
            async with session.post(f"{url}/carriers/generic/mo", data=body, headers=headers) as response:
                await response.read()
                assert response.status == 200, response.status
            latencies.append(time.perf_counter() - sent)

        while not (until.done() if isinstance(until, asyncio.Future) else time.perf_counter() >= until):
            tasks.append(asyncio.create_task(one(n)))
            n += 1
            await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
        await asyncio.gather(*tasks)


# The prune, timing each write transaction of the store (BEGIN IMMEDIATE to the end of COMMIT,
# waiting for the lock included: what the gateway's writer waits for at most), printed as JSON
# when it ends or is stopped (SIGTERM).
_PRUNER = """
import json, signal, sys, time
from smsgw.config import load_config
from smsgw.retention import prune
from smsgw.store.sqlite_retention import SqliteRetention

held = []
write = SqliteRetention._write

def timed(self, run):
    began = time.perf_counter()
    try:
        return write(self, run)
    finally:
        held.append(time.perf_counter() - began)

SqliteRetention._write = timed
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
try:
    prune(sys.argv[1], load_config(sys.argv[2]), **({'batch': int(sys.argv[3])} if sys.argv[3] != '-' else {}))
finally:
    print(json.dumps(held), flush=True)
"""
_KEPT = ("SELECT (SELECT count(*) FROM mo_messages WHERE sender != '')"
         " + (SELECT count(*) FROM mt_messages WHERE text != '')"
         " + (SELECT count(*) FROM billing_rows WHERE length(msisdn) != 64)")


def kept(db: Path) -> int:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(_KEPT).fetchone()[0]


async def make_template(template: Path, old: int) -> None:
    """The records (100 persons) and `old` MOs of 100 days ago, in one file (no -wal)."""
    subprocess.run([sys.executable, "-m", "smsgw", "db", "seed", "--db", str(template), "--persons", "100"],
                   check=True, capture_output=True)
    began = time.perf_counter()
    await store_old(template, old)
    with closing(sqlite3.connect(template)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    print(f"stored {old:,} old MOs in {time.perf_counter() - began:.0f} s ({template.stat().st_size / 1e6:.0f} MB)")


async def one_run(template: Path, name: str, code: str, batch: str, args: argparse.Namespace) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="smsgw-prune-"))
    try:
        db, config = folder / "smsgw.db", folder / "smsgw.toml"
        shutil.copyfile(template, db)
        config.write_text(f'[carriers.generic]\nsecret = "{SECRET}"\nmode = "sync"\n'
                          "[protection]\nlookups_per_hour = 0\nrepeat_limit = 0\n"
                          '[retention]\ndays = 90\nhash_key = "bench-key-of-32-characters-long!"\n')
        before = kept(db)
        load_average = os.getloadavg()[0]
        server, url = await start("-m", "smsgw", "serve", "--db", str(db), "--config", str(config), "--port", "0")
        try:
            quiet: list[float] = []
            await load(url, args.rate, time.perf_counter() + args.baseline, quiet, "quiet")
            environment = {**os.environ, "PYTHONPATH": str(Path(code).resolve())}
            pruner = await asyncio.create_subprocess_exec(sys.executable, "-c", _PRUNER, str(db), str(config), batch,
                                                          env=environment, stdout=asyncio.subprocess.PIPE)
            pruning: list[float] = []
            began = time.perf_counter()
            done = asyncio.ensure_future(pruner.communicate())
            window = asyncio.ensure_future(asyncio.wait([done], timeout=args.window))
            await load(url, args.rate, window, pruning, "pruning")
            seconds = time.perf_counter() - began
            finished = done.done()
            if not finished:
                pruner.send_signal(signal.SIGTERM)
            held = json.loads((await done)[0] or b"[]")
        finally:
            server.terminate()
            await server.wait()
        erased = before - kept(db)
        result = {"name": name, "quiet": quiet, "pruning": pruning, "erased": erased, "seconds": seconds,
                  "finished": finished, "load": load_average, "held": held}
        print(f"{name}: load {load_average:.1f}, {'prune ended' if finished else 'stopped'} after {seconds:.0f} s,"
              f" {erased:,} rows erased ({erased / seconds:,.0f} rows/s)")
        print("  " + summary("without prune", quiet))
        print("  " + summary("while pruning", pruning))
        print("  " + summary("prune's transactions", held, "of them"), flush=True)
        return result
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def quantile(latencies: list[float], q: int) -> float:
    return statistics.quantiles(latencies, n=100)[q - 1] * 1000


def summary(name: str, latencies: list[float], unit: str = "requests") -> str:
    if len(latencies) < 2:
        return f"{name:<22} {len(latencies):>7,} {unit}"
    cuts = statistics.quantiles(latencies, n=100)
    return (f"{name:<22} {len(latencies):>7,} {unit}  p50 {cuts[49] * 1000:6.1f} ms  p99 {cuts[98] * 1000:6.1f} ms"
            f"  max {max(latencies) * 1000:6.1f} ms")


async def main(args: argparse.Namespace) -> None:
    scratch = None
    template = Path(args.template) if args.template else None
    if template is None:
        scratch = Path(tempfile.mkdtemp(prefix="smsgw-prune-template-"))
        template = scratch / "template.db"
    try:
        if not template.exists():
            await make_template(template, args.old)
        variants = [(spec.split("=", 1)[0], *(spec.split("=", 1)[1].split(":") + ["-"])[:2])
                    for spec in args.variant] or [("this", ".", "-")]
        results: dict[str, list[dict]] = {name: [] for name, _, _ in variants}
        for round_ in range(args.runs):
            for name, code, batch in variants:
                results[name].append(await one_run(template, name, code, batch, args))
        if args.runs > 1 or len(variants) > 1:
            print(f"medians of {args.runs} runs:")
            for name, runs in results.items():
                median = lambda values: statistics.median(values)   # noqa: E731
                print(f"  {name:<10} p99 without prune {median([quantile(r['quiet'], 99) for r in runs]):6.1f} ms,"
                      f" while pruning p50 {median([quantile(r['pruning'], 50) for r in runs]):6.1f} ms"
                      f" p99 {median([quantile(r['pruning'], 99) for r in runs]):6.1f} ms"
                      f" max {median([max(r['pruning']) * 1000 for r in runs]):6.1f} ms;"
                      f" {median([r['erased'] / r['seconds'] for r in runs]):,.0f} rows erased/s;"
                      f" write transaction p50 {median([quantile(r['held'], 50) for r in runs]):5.1f} ms"
                      f" p99 {median([quantile(r['held'], 99) for r in runs]):5.1f} ms;"
                      f" load {median([r['load'] for r in runs]):.1f}")
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", type=int, default=1_000_000, help="old MOs to prune (default 1,000,000)")
    parser.add_argument("--rate", type=float, default=200, help="MOs a second sent to the webhook (default 200)")
    parser.add_argument("--baseline", type=float, default=20, help="seconds of load without prune (default 20)")
    parser.add_argument("--template", metavar="FILE", help="the store of old MOs: made when missing, then reused")
    parser.add_argument("--runs", type=int, default=1, help="rounds of every variant (default 1)")
    parser.add_argument("--window", type=float, default=None,
                        help="seconds of load while pruning, then the prune is stopped (default: until it ends)")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=CODE[:BATCH]",
                        help="a prune to measure: CODE the folder with its smsgw package (default: this one)")
    asyncio.run(main(parser.parse_args()))
