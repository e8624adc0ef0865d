"""The webhook's latency while the store prunes old personal data (issue 20, CONTRACT §11).

    python bench/prune.py [--old 1000000] [--rate 200] [--baseline 20]

Stores `--old` MOs (each with its reply and charge row) dated 100 days ago through the message
store, starts `smsgw serve` on that file, and sends signed MOs at a fixed `--rate` a second
(open loop: a slow answer does not slow the sending). First `--baseline` seconds with nothing
else running, then while `smsgw db prune` erases the old data (1,000 rows a transaction):
prints the p50, p99 and max latency of each phase, and how long the prune took.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
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


def summary(name: str, latencies: list[float]) -> str:
    cuts = statistics.quantiles(latencies, n=100)
    return (f"{name:<22} {len(latencies):>7,} requests  p50 {cuts[49] * 1000:6.1f} ms  p99 {cuts[98] * 1000:6.1f} ms"
            f"  max {max(latencies) * 1000:6.1f} ms")


async def main(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="smsgw-prune-"))
    db, config = folder / "smsgw.db", folder / "smsgw.toml"
    subprocess.run([sys.executable, "-m", "smsgw", "db", "seed", "--db", str(db), "--persons", "100"], check=True,
                   capture_output=True)
    config.write_text(f'[carriers.generic]\nsecret = "{SECRET}"\nmode = "sync"\n'
                      "[protection]\nlookups_per_hour = 0\nrepeat_limit = 0\n[retention]\ndays = 90\n")
    began = time.perf_counter()
    await store_old(db, args.old)
    print(f"stored {args.old:,} old MOs in {time.perf_counter() - began:.0f} s ({db.stat().st_size / 1e6:.0f} MB)")
    server, url = await start("-m", "smsgw", "serve", "--db", str(db), "--config", str(config), "--port", "0")
    try:
        quiet: list[float] = []
        await load(url, args.rate, time.perf_counter() + args.baseline, quiet, "quiet")
        pruner = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "smsgw", "db", "prune", "--db", str(db), "--config", str(config),
            stderr=asyncio.subprocess.PIPE)
        pruning: list[float] = []
        began = time.perf_counter()
        done = asyncio.ensure_future(pruner.communicate())
        await load(url, args.rate, done, pruning, "pruning")
        _, err = done.result()
        print(err.decode().strip())
        print(f"rate {args.rate:g} MOs/s, prune ran {time.perf_counter() - began:.0f} s")
        print(summary("without prune", quiet))
        print(summary("while pruning", pruning))
    finally:
        server.terminate()
        await server.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", type=int, default=1_000_000, help="old MOs to prune (default 1,000,000)")
    parser.add_argument("--rate", type=float, default=200, help="MOs a second sent to the webhook (default 200)")
    parser.add_argument("--baseline", type=float, default=20, help="seconds of load without prune (default 20)")
    asyncio.run(main(parser.parse_args()))
