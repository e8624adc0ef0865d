"""The sending API's throughput: single messages beside the MO webhook, and a 100,000-recipient batch.

    python bench/api.py [--requests 5000] [--concurrency 64] [--recipients 100000] [--db postgresql://...]

Seeds a records database in a temporary directory, makes an API key (`smsgw api-keys create`),
starts `smsgw serve --port 0` (async mode; a bare aiohttp app as the carrier's MT endpoint) and
measures, in the same run against the same process:

  webhook   signed generic MOs (`BH QT`, each new, answered, committed and its MT sent)
  api       POST /api/v1/messages, each with its own Idempotency-Key (stored with its MT, sent)
  batch     one POST /api/v1/batches of `--recipients` recipients with a placeholder: the time from
            the request to the 202 (every recipient validated, routed, measured and stored with its
            MT in one transaction; target under 10 s), then the time until every MT was sent.

The outbox is drained before each run so that they do not overlap.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from webhook import SECRET, cpu_seconds, describe, drained, load, run_bare_server, start  # noqa: F401


async def api_load(url: str, key: str, *, requests: int, concurrency: int, tag: str) -> tuple[float, list[float], dict]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    counter = iter(range(requests))

    async def worker(session: aiohttp.ClientSession) -> None:
        for n in counter:
            body = json.dumps({"to": f"09{n % 100_000_000:08d}", "text": f"Ma xac thuc cua ban: {n:06d}",
                               "class": "info"}).encode()
            headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}",
                       "Idempotency-Key": f"{tag}-{n}"}
            started = time.perf_counter()
            async with session.post(f"{url}/api/v1/messages", data=body, headers=headers) as response:
                await response.read()
            latencies.append(time.perf_counter() - started)
            statuses[response.status] = statuses.get(response.status, 0) + 1

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return requests / elapsed, latencies, statuses


async def batch(url: str, key: str, recipients: int) -> None:
    body = json.dumps({"class": "notice", "text": "Kinh gui {name}: the BHYT cua ban sap het han.",
                       "recipients": [{"to": f"09{n:08d}", "name": f"Nguyen Van {n}"} for n in range(recipients)]}).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
        started = time.perf_counter()
        async with session.post(f"{url}/api/v1/batches", data=body, headers=headers) as response:
            answer = await response.json()
        queued = time.perf_counter() - started
        print(f"batch  {recipients:,} recipients ({len(body) / 1e6:.1f} MB) validated and queued in {queued:.2f} s "
              f"(HTTP {response.status}, target < 10 s)")
        await drained(url)
        sent = time.perf_counter() - started
        async with session.get(f"{url}/api/v1/batches/{answer['id']}", headers=headers) as response:
            counts = (await response.json())["counts"]
        print(f"       every MT sent {sent:.2f} s after the request ({recipients / (sent - queued):,.0f} MT/s): {counts}")


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="smsgw-bench-") as tmp:
        db, config = args.db or str(Path(tmp) / "records.db"), Path(tmp) / "smsgw.toml"
        subprocess.run([sys.executable, "-m", "smsgw", "db", "seed", "--db", db, "--persons", "1000"],
                       check=True, stderr=subprocess.DEVNULL)
        made = subprocess.run([sys.executable, "-m", "smsgw", "api-keys", "create", "bench", "--db", db],
                              check=True, capture_output=True, text=True).stdout
        key = made.split("api key:")[1].split()[0]
        bare, bare_url = await start(str(Path(__file__).with_name("webhook.py")), "--bare-server")
        config.write_text(f'[carriers.generic]\nsecret = "{SECRET}"\nmode = "async"\nmt_url = "{bare_url}/mt"\n'
                          'networks = ["*"]\n[protection]\nlookups_per_hour = 0\nrepeat_limit = 0\n'
                          '[notices]\nquiet_hours = ""\n')   # the batch is sent now, whatever the hour
        smsgw, url = await start("-m", "smsgw", "serve", "--db", db, "--config", str(config), "--port", "0")
        try:
            await load(url, requests=500, concurrency=args.concurrency, tag="warm")
            await api_load(url, key, requests=500, concurrency=args.concurrency, tag="warm")
            results = {}
            for name in ("webhook", "api"):
                await drained(url)
                cpu = cpu_seconds(smsgw.pid)
                if name == "webhook":
                    results[name] = await load(url, requests=args.requests, concurrency=args.concurrency, tag="run")
                else:
                    results[name] = await api_load(url, key, requests=args.requests, concurrency=args.concurrency,
                                                   tag="run")
                print(describe(name, *results[name]))
                print(f"       gateway CPU {(cpu_seconds(smsgw.pid) - cpu) / args.requests * 1e6:6.0f} us/request")
            print(f"ratio  api / webhook = {results['api'][0] / results['webhook'][0]:.2f} "
                  f"({args.requests} requests each, {args.concurrency} concurrent, async mode, "
                  f"--db {'PostgreSQL' if args.db else 'SQLite'})")
            await drained(url)
            await batch(url, key, args.recipients)
        finally:
            for process in (smsgw, bare):
                process.terminate()
                await process.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--db", help="an empty PostgreSQL database (postgresql://...) instead of a temporary SQLite file")
    parser.add_argument("--bare-server", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.bare_server:
        run_bare_server()
    else:
        asyncio.run(main(arguments))
