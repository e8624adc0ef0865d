"""Webhook throughput: signed generic MOs against a running `smsgw serve`, beside a bare aiohttp app.

    python bench/webhook.py [--requests 5000] [--concurrency 64] [--mode sync|async] [--persons 1000]
                            [--db postgresql://...] [--gateway-core N] [--phones N]

Seeds a records database in a temporary directory, starts `smsgw serve --port 0` and a bare
aiohttp app (one handler reading the body and answering a small JSON; it is also the carrier's
MT endpoint in async mode) as subprocesses, sends
the same signed MOs to both from this process, and prints requests/s, p50 and p99 latency for
each and the ratio smsgw / bare. Every MO is new (no duplicates) and asks `BH QT` about a seeded
person from its registered phone, so each one is parsed, looked up, answered and committed.
`--db URL` runs the gateway on an empty PostgreSQL database instead (seeded and migrated by
`smsgw db seed`); the gateway process's own CPU per MO (user and system) is printed either way.
`--phones N` sends from N phones in turn with per-phone protection on (each MO screened on its
sender's history; N >= 2,000 keeps 10,500 MOs within the default 10 answers per phone per hour).
`--gateway-core N` pins the gateway to core N and this load generator and the bare app to the
other cores, so that runs compare (see `pin_apart`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from e2e import serve_until_killed
from e2e import cpu_seconds as tree_cpu_seconds
from smsgw.adapters.generic import signature_headers

SECRET = "bench-secret"
SENDER = "84912345678"
TEXT = "BH QT 0110129425"


def bare_app():
    from aiohttp import web

    async def mo(request: web.Request) -> web.Response:
        body = await request.read()
        data = json.loads(body)
        return web.json_response({"mo_id": data["id"], "replies": []})

    async def mt(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/carriers/{name}/mo", mo)
    app.router.add_post("/mt", mt)
    return app


def run_bare_server() -> None:
    asyncio.run(serve_until_killed(bare_app(), "bare"))


async def start(*args: str) -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    line = (await asyncio.wait_for(process.stdout.readline(), timeout=30)).decode()
    if "listening on" not in line:
        raise SystemExit(f"server did not start: {line!r}")
    return process, line.split()[-1]


def sender(n: int, phones: int) -> str:
    """The phone of the `n`-th MO: SENDER, or one of `phones` phones in turn."""
    return f"8491{n % phones:07d}" if phones else SENDER


async def load(url: str, *, requests: int, concurrency: int, tag: str, phones: int = 0) -> tuple[float, list[float], dict]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    counter = iter(range(requests))

    async def worker(session: aiohttp.ClientSession) -> None:
        for n in counter:
            body = json.dumps({"id": f"{tag}-{n}", "from": sender(n, phones), "to": "8079", "text": TEXT}).encode()
            headers = {"Content-Type": "application/json",
                       **signature_headers(SECRET, body, timestamp=int(time.time()))}
            started = time.perf_counter()
            async with session.post(f"{url}/carriers/generic/mo", data=body, headers=headers) as response:
                await response.read()
            latencies.append(time.perf_counter() - started)
            statuses[response.status] = statuses.get(response.status, 0) + 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return requests / elapsed, latencies, statuses


async def drained(url: str) -> None:
    """Wait until the gateway has no MT left to deliver (async mode), so runs do not overlap."""
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(f"{url}/healthz") as response:
                if (await response.json())["mt_queue_depth"] == 0:
                    return
            await asyncio.sleep(0.05)


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU seconds used so far by process `pid` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / os.sysconf("SC_CLK_TCK"), int(fields[12]) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def cpu_per_mo(before: tuple[float, float], after: tuple[float, float], requests: int) -> str:
    """The CPU used between two `cpu_seconds` readings, per request, in µs: total (user + system)."""
    user, system = ((a - b) / requests * 1e6 for a, b in zip(after, before))
    return f"{user + system:6.0f} us/MO (user {user:.0f}, system {system:.0f})"


def pin_apart(gateway: int, core: int, *others: int) -> str:
    """Pin the gateway (every thread) to `core`, this load generator and the `others` to the other cores.

    The gateway pins itself to one core (workers.pin_to_one_core: pid parity); unpinned, the load
    generator and the bare app land on that core in some runs and not in others, and the
    gateway's CPU per MO moves with them (CPU time on a shared core costs more: caches, and the
    hypervisor's accounting): pinned apart, runs compare. A PostgreSQL server on this machine
    is best pinned away from `core` too (taskset -a -p on its processes).
    """
    rest = set(os.sched_getaffinity(0)) - {core}
    if not rest:
        raise SystemExit(f"--gateway-core {core}: another core is needed for the load generator")
    for thread in os.listdir(f"/proc/{gateway}/task"):
        os.sched_setaffinity(int(thread), {core})
    for pid in (os.getpid(), *others):
        for thread in os.listdir(f"/proc/{pid}/task"):
            os.sched_setaffinity(int(thread), rest)
    return f"       gateway pinned to core {core}; load generator and bare app to {sorted(rest)}"


class Server:
    """The PostgreSQL server of `--db`, when it runs on this machine: its CPU (the postmaster and
    every process it started or reaped) and the commits of the bench's database."""

    def __init__(self, url: str, postmaster: int | None) -> None:
        self.url, self.postmaster = url, postmaster

    @classmethod
    async def of(cls, url: str) -> "Server":
        from pgserver import _parent_of_backend

        return cls(url, await _parent_of_backend(url))

    async def reading(self) -> tuple[float, float]:
        from pgserver import _fetch

        cpu = tree_cpu_seconds(self.postmaster, reaped=True) if self.postmaster else float("nan")
        (row,) = await _fetch(self.url, "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        return cpu, float(row[0])

    async def per_mo(self, before: tuple[float, float], requests: int) -> str:
        await asyncio.sleep(1)   # the server's statistics are flushed at most every second
        cpu, commits = (after - first for after, first in zip(await self.reading(), before))
        return (f"PostgreSQL CPU {cpu / requests * 1e6:6.0f} us/MO end to end (every process of the server),"
                f" {commits / requests:.2f} transactions per MO")


def describe(name: str, rate: float, latencies: list[float], statuses: dict) -> str:
    cuts = statistics.quantiles(latencies, n=100)
    return (f"{name:6s} {rate:8,.0f} req/s  p50 {cuts[49] * 1000:6.2f} ms  p99 {cuts[98] * 1000:6.2f} ms"
            f"  statuses {dict(sorted(statuses.items()))}")


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="smsgw-bench-") as tmp:
        db, config = args.db or str(Path(tmp) / "records.db"), Path(tmp) / "smsgw.toml"
        seed = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "smsgw", "db", "seed", "--db", str(db), "--persons", str(args.persons),
            stderr=asyncio.subprocess.DEVNULL)
        await seed.wait()
        bare, bare_url = await start(__file__, "--bare-server")
        mt_url = f'mt_url = "{bare_url}/mt"\n' if args.mode == "async" else ""
        # One phone sends every MO: the protection limits are off so that each one is answered.
        # With --phones, per-phone protection is on (its defaults) and each MO is screened.
        protection = "" if args.phones else "[protection]\nlookups_per_hour = 0\nrepeat_limit = 0\n"
        config.write_text(f'[carriers.generic]\nsecret = "{SECRET}"\nrequire_timestamp = true\n'
                          f'mode = "{args.mode}"\n{mt_url}{protection}')
        smsgw, smsgw_url = await start("-m", "smsgw", "serve", "--db", str(db), "--config", str(config),
                                       "--port", "0")
        if args.gateway_core is not None:
            print(pin_apart(smsgw.pid, args.gateway_core, bare.pid))
        server = await Server.of(args.db) if args.db else None
        try:
            await load(smsgw_url, requests=min(500, args.requests), concurrency=args.concurrency, tag="warm",
                       phones=args.phones)
            await load(bare_url, requests=min(500, args.requests), concurrency=args.concurrency, tag="warm")
            results = {}
            for name, url in (("smsgw", smsgw_url), ("bare", bare_url)):
                await drained(smsgw_url)
                started, cpu = time.perf_counter(), cpu_seconds(smsgw.pid)
                server_before = await server.reading() if server and name == "smsgw" else None
                others = cpu_seconds(bare.pid), own_cpu_seconds()
                results[name] = await load(url, requests=args.requests, concurrency=args.concurrency, tag="run",
                                           phones=args.phones)
                print(describe(name, *results[name]))
                if name == "smsgw":
                    print(f"       gateway CPU {cpu_per_mo(cpu, cpu_seconds(smsgw.pid), args.requests)}"
                          f" (the smsgw serve process alone; --db {'PostgreSQL' if args.db else 'SQLite'})")
                if name == "smsgw" and args.mode == "async":
                    await drained(smsgw_url)   # every MT delivered to the sink (the bare app's /mt)
                    elapsed = time.perf_counter() - started
                    print(f"       {args.requests / elapsed:8,.0f} MT/s end to end: {args.requests} MOs accepted and "
                          f"their MTs delivered in {elapsed:.2f} s (target >= 2,000 MT/s)")
                    print(f"       gateway CPU {cpu_per_mo(cpu, cpu_seconds(smsgw.pid), args.requests)} end to end")
                    sink, generator = (cpu_per_mo(before, after, args.requests).split(" (")[0].strip()
                                       for before, after in zip(others, (cpu_seconds(bare.pid), own_cpu_seconds())))
                    print(f"       the MT sink (bare app) {sink}, this load generator {generator}")
                    if server_before is not None:
                        print(f"       {await server.per_mo(server_before, args.requests)}")
            print(f"ratio  smsgw / bare = {results['smsgw'][0] / results['bare'][0]:.2f} "
                  f"({args.requests} requests, {args.concurrency} concurrent, mode {args.mode})")
        finally:
            for process in (smsgw, bare):
                process.terminate()
                await process.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--mode", choices=("sync", "async"), default="sync")
    parser.add_argument("--persons", type=int, default=1000)
    parser.add_argument("--db", help="an empty PostgreSQL database (postgresql://...) instead of a temporary SQLite file")
    parser.add_argument("--gateway-core", type=int,
                        help="pin the gateway to this core, the load generator and the bare app to the others")
    parser.add_argument("--phones", type=int, default=0,
                        help="send from this many phones in turn, with per-phone protection on (its defaults: "
                             "10 answers per phone per hour); by default one phone, protection off")
    parser.add_argument("--bare-server", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.bare_server:
        run_bare_server()
    else:
        asyncio.run(main(arguments))
