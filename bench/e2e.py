"""End-to-end sync webhook: signed generic MOs against `smsgw serve`, beside a bare aiohttp app.

    python bench/e2e.py [--persons 1000000] [--duration 10] [--runs 3] [--connections 64]
                        [--workers 1 | --db postgresql://...|pg]

The records store (N persons, seeded once and cached under bench/.cache/) answers a realistic
mix: QT with and without a period, THE by card and by person, HS, help, and malformed messages,
from owners' phones and from strangers. Each MO is new (its own id) and signed. Load comes from
wrk on one core (Lua script over pre-signed bodies), the server on the other: `smsgw serve`
first, then a bare aiohttp app (reads the JSON body, answers a constant) started by this script
on the same core, so that the ratio compares smsgw with the ceiling of its own stack.

Then an open-loop load at half of smsgw's measured maximum (requests fired on a fixed
schedule, latency measured from the scheduled time, so a stall is not hidden) gives the p50/p99
that a carrier sees at that rate, `--runs` times (median p99 printed), from a small client of
our own on asyncio's protocols; the same load against the bare app shows what that client
itself adds, and smsgw's own histogram (/metrics) gives the share of MOs it answered within
25 ms over the same run. Every server starts from a fresh copy of the seeded records (no MOs of
earlier runs), written back to disk before it starts. Each run also prints the server's CPU
time per request (user + system, workers included): the host's noise moves requests/s by
10-15% between identical runs, CPU per request less.

With `--workers N`: N workers (sharing the port) and one worker run at the same time, each on a
store of its own, and wrk (on both cores) measures them in turn, N then one, one then N ...:
a drift of the shared host falls on both sides of each pair. The median of the pairs' ratios
is the scaling figure.

With `--db postgresql://...` (an existing server; the user needs CREATEDB) or `--db pg` (a
throwaway cluster started here): SQLite against PostgreSQL and two gateways against one on
PostgreSQL, in one run, with the CPU per MO of the gateways, PostgreSQL and wrk: bench/e2e_pg.py.

Targets (issue 6): ratio >= 0.5; p99 <= 25 ms at half rate; 2 workers >= 1.7x one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache"
SECRET = "bench-secret"
LUA = r"""
local requests, n = {}, 0
function init(args)
  for line in io.lines(args[1]) do   -- every request built once: wrk's own CPU stays small
    local tab = line:find("\t")
    n = n + 1
    requests[n] = wrk.format("POST", "/carriers/generic/mo",
      {["Content-Type"] = "application/json", ["X-Smsgw-Signature"] = line:sub(1, tab - 1)}, line:sub(tab + 1))
  end
  i = 0
end
function request()
  i = i % n + 1
  return requests[i]
end
"""


def seeded_store(persons: int) -> Path:
    """The records of `persons` persons, seeded once; never served directly (see `fresh_copy`)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    db = CACHE / f"e2e-records-{persons}.db"
    if not db.exists():
        print(f"seeding {persons:,} persons into {db} (once)...", file=sys.stderr)
        partial = db.with_suffix(".partial")
        subprocess.run([sys.executable, "-m", "smsgw", "db", "seed", "--db", str(partial), "--persons", str(persons)],
                       check=True)
        sqlite3.connect(partial).execute("PRAGMA wal_checkpoint(TRUNCATE)").connection.close()
        partial.rename(db)
    return db


def fresh_copy(db: Path, directory: Path) -> Path:
    """A copy of the seeded records for one server: every server starts with empty message tables,
    so that no run inherits the MOs of the ones before it (the figures would drift down)."""
    copy = directory / "records.db"
    for leftover in directory.glob("records.db*"):
        leftover.unlink()
    shutil.copyfile(db, copy)
    # a store cached by an older smsgw gets this one's schema (serve refuses an older one)
    subprocess.run([sys.executable, "-m", "smsgw", "db", "migrate", "--db", str(copy)], check=True,
                   stderr=subprocess.DEVNULL)
    with copy.open("rb") as fh:   # written back before the server starts: no writeback under its fsyncs
        os.fsync(fh.fileno())
    return copy


def message_mix(db: Path, count: int, rng: random.Random) -> list[tuple[str, str]]:
    """(sender, text) pairs: a realistic mix over random records of the store (read-only)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    (max_rowid,) = conn.execute("SELECT max(rowid) FROM persons").fetchone()
    people = []
    while len(people) < 2000:
        row = conn.execute("SELECT ssn, personal_id, phone FROM persons WHERE rowid = ? AND phone IS NOT NULL",
                           (rng.randint(1, max_rowid),)).fetchone()
        if row:
            cards = [c for (c,) in conn.execute("SELECT card_no FROM cards WHERE ssn = ?", (row[0],))]
            people.append((*row, cards))
    dossiers = [d for (d,) in conn.execute("SELECT dossier_code FROM dossiers LIMIT 2000")]
    conn.close()
    errors = ["BH QT 12345", "BH XYZ", "XS MB", "BH QT 0110129425 13/2016", "bh the hc6", "", "BH QT"]
    out = []
    for _ in range(count):
        ssn, personal_id, phone, cards = rng.choice(people)
        sender = phone if rng.random() < 0.9 else "84987000000"
        roll = rng.random()
        if roll < 0.25:
            text = f"BH QT {ssn}"
        elif roll < 0.40:
            text = f"bh qt {personal_id or ssn} {rng.randint(2000, 2015)} {rng.randint(2016, 2025)}"
        elif roll < 0.55 and cards:
            text = f"BH THE {rng.choice(cards)}"
        elif roll < 0.65:
            text = f"BH THẺ {ssn}."
        elif roll < 0.80:
            text = f"BH HS {rng.choice(dossiers)}"
        elif roll < 0.85:
            text = "BH HD"
        else:
            text = rng.choice(errors)
        out.append((sender, text))
    return out


def signed_bodies(path: Path, messages: list[tuple[str, str]], tag: str) -> None:
    from smsgw.adapters.generic import sign

    with path.open("w", encoding="utf-8") as fh:
        for n, (sender, text) in enumerate(messages):
            body = json.dumps({"id": f"{tag}-{n}", "from": sender, "to": "8079", "text": text})
            fh.write(f"{sign(SECRET, body.encode())}\t{body}\n")


def start(args: list[str], core: str) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(["taskset", "-c", core, *args], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    line = process.stdout.readline()
    match = re.search(r"http://[\d.]+:\d+", line)
    if not match:
        process.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return process, match.group(0)


def wrk_start(url: str, script: Path, bodies: Path, *, duration: int, connections: int, cores: str,
              threads: int | None = None) -> subprocess.Popen:
    """wrk on `cores` (one thread per core unless `threads`), running until `wrk_result`."""
    return subprocess.Popen(
        ["taskset", "-c", cores, "wrk", "-t", str(threads or len(cores.split(","))), "-c", str(connections),
         "-d", f"{duration}s", "--latency", "-s", str(script), url, "--", str(bodies)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wrk_result(process: subprocess.Popen) -> dict:
    out, err = process.communicate()
    if process.returncode:
        raise SystemExit(f"wrk exited {process.returncode}: {err.strip()}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {p: _ms(re.search(rf"\s{p}%\s+([\d.]+\w+)", out).group(1)) for p in ("50", "99")}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    return {"rate": rate, "p50": lat["50"], "p99": lat["99"], "non2xx": int(errors.group(1)) if errors else 0,
            "requests": requests}


def wrk(url: str, script: Path, bodies: Path, *, duration: int, connections: int, cores: str) -> dict:
    return wrk_result(wrk_start(url, script, bodies, duration=duration, connections=connections, cores=cores))


def cpu_seconds(pid: int, *, reaped: bool = False) -> float:
    """User + system CPU of a server and its worker processes so far. Unlike requests/s, CPU per
    request leaves out the time the host gives to others (steal): it is the steadier figure.
    With `reaped`, also that of the children which ended and were waited for (a PostgreSQL
    postmaster's backends and autovacuum workers that came and went)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):   # fields[1]: the parent's pid
            total += (int(fields[11]) + int(fields[12])) / ticks
            if reaped and stat.parent.name == str(pid):
                total += (int(fields[13]) + int(fields[14])) / ticks   # cutime, cstime
    return total


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(\w+)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection of the open-loop client: a request at a time."""

    def __init__(self, idle: list, latencies: list, failures: list) -> None:
        self.idle, self.latencies, self.failures = idle, latencies, failures
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.due = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def send(self, request: bytes, due: float) -> None:
        self.due = min(due, time.perf_counter())   # sent a little early: counted from the send
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[:end].decode("latin-1").split("\r\n")
        length = next(int(line.split(":", 1)[1]) for line in head[1:] if line.lower().startswith("content-length:"))
        if len(self.buffer) < end + 4 + length:
            return
        self.buffer = self.buffer[end + 4 + length:]
        self.latencies.append(time.perf_counter() - self.due)
        if head[0].split()[1] != "200":
            self.failures.append(head[0])
        self.idle.append(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if self in self.idle:
            self.idle.remove(self)


async def open_loop(url: str, bodies: Path, rate: float, seconds: float) -> tuple[float, float, int]:
    """Fire requests at `rate`/s on a fixed schedule; latency counts from the scheduled time.

    A small client of our own on asyncio's protocols (keep-alive connections, pre-built
    requests, a new connection when none is free): aiohttp's client cost ~150 us a request and
    its own stalls showed in the tail; this one's share is what the bare app's run shows.
    """
    loop = asyncio.get_running_loop()
    host, port = url.removeprefix("http://").split(":")
    requests = []
    for line in bodies.read_text(encoding="utf-8").splitlines():
        signature, body = line.split("\t", 1)
        data = body.encode()
        requests.append(f"POST /carriers/generic/mo HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json"
                        f"\r\nX-Smsgw-Signature: {signature}\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
    idle: list[_Connection] = []
    latencies: list[float] = []
    failures: list[str] = []

    async def connect() -> _Connection:
        _, connection = await loop.create_connection(lambda: _Connection(idle, latencies, failures), host, int(port))
        return connection

    idle.extend([await connect() for _ in range(64)])
    total = int(rate * seconds)
    start_at = time.perf_counter() + 0.05
    for n in range(total):
        due = start_at + n / rate
        delay = due - time.perf_counter()
        if delay > 0.0005:
            await asyncio.sleep(delay)
        connection = idle.pop() if idle else await connect()
        connection.send(requests[n % len(requests)], due)
    deadline = time.perf_counter() + 30
    while len(latencies) < total and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)
    for connection in idle:
        connection.transport.close()
    lost = total - len(latencies)
    cuts = statistics.quantiles(latencies, n=100)
    return cuts[49] * 1000, cuts[98] * 1000, len(failures) + lost


def mo_latency_buckets(url: str) -> dict[float, float]:
    """smsgw's own histogram of MO request durations (cumulative counts by upper bound, seconds)."""
    import urllib.request

    text = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
    return {float(le): float(count) for le, count in re.findall(
        r'smsgw_request_duration_seconds_bucket\{le="([^"]+)",route="/carriers/\{name\}/mo"\} (\S+)', text)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--db", metavar="postgresql://...|pg",
                        help="also on PostgreSQL: one gateway against SQLite, two against one (bench/e2e_pg.py)")
    parser.add_argument("--bare-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        return run_bare_server()
    if args.db and args.workers != 1:
        parser.error("--db compares one and two gateways itself: leave out --workers")

    db = seeded_store(args.persons)
    rng = random.Random(8079)
    with tempfile.TemporaryDirectory(prefix="smsgw-e2e-") as tmp:
        if args.db:
            from e2e_pg import run

            return run(Path(tmp), db, message_mix(db, 200_000, rng), args)
        bench = Bench(Path(tmp), db, message_mix(db, 200_000, rng), args)
        if args.workers == 1:
            bench.one_worker()
        else:
            bench.workers()


class Bench:
    def __init__(self, tmp: Path, db: Path, messages: list[tuple[str, str]], args: argparse.Namespace) -> None:
        self.tmp, self.db, self.messages, self.args = tmp, db, messages, args
        self.script = tmp / "mo.lua"
        self.script.write_text(LUA)
        self.config = tmp / "smsgw.toml"
        # Every MO answered: the protection limits are off (the mix sends many MOs per phone).
        self.config.write_text(f'[carriers.generic]\nsecret = "{SECRET}"\nmode = "sync"\n'
                               "[protection]\nlookups_per_hour = 0\nrepeat_limit = 0\n")
        self.results: dict[str, list[dict]] = {}

    def smsgw(self, name: str, workers: int, cores: str) -> tuple[subprocess.Popen, str]:
        """`smsgw serve` on a fresh copy of the records of its own."""
        directory = self.tmp / name
        directory.mkdir()
        served = fresh_copy(self.db, directory)
        command = [sys.executable, "-m", "smsgw", "serve", "--db", str(served), "--config", str(self.config),
                   "--port", "0"] + (["--workers", str(workers)] if workers > 1 else [])
        return start(command, cores)

    def closed_loop(self, name: str, process: subprocess.Popen, url: str, run: int, cores: str) -> dict:
        """One wrk run; run 0 warms up and is not counted."""
        bodies = self.tmp / f"{name}-{run}.tsv"
        signed_bodies(bodies, self.messages, f"{name}-{run}-{os.getpid()}-{time.time_ns()}")
        cpu_before = cpu_seconds(process.pid)
        figures = wrk(url, self.script, bodies, duration=self.args.duration, connections=self.args.connections,
                      cores=cores)
        figures["cpu_us"] = (cpu_seconds(process.pid) - cpu_before) / figures["requests"] * 1e6
        bodies.unlink()
        if run:
            self.results.setdefault(name, []).append(figures)
            print(f"{name:5s} run {run}: {figures['rate']:9,.0f} req/s  p50 {figures['p50']:6.2f} ms"
                  f"  p99 {figures['p99']:6.2f} ms  non-2xx {figures['non2xx']}"
                  f"  CPU {figures['cpu_us']:5.0f} us/request", flush=True)
        return figures

    def open_loops(self, name: str, url: str, rate: float, *, histogram: bool) -> list[float]:
        """`--runs` open-loop runs at `rate`; with `histogram`, smsgw's own count of MOs answered
        within 25 ms over the same run is printed beside the client's p99."""
        tails = []
        for run in range(1, self.args.runs + 1):
            bodies = self.tmp / "open-loop.tsv"
            signed_bodies(bodies, self.messages, f"open-{name}-{run}-{os.getpid()}-{time.time_ns()}")
            before = mo_latency_buckets(url) if histogram else {}
            p50, p99, failures = asyncio.run(open_loop(url, bodies, rate, self.args.duration))
            tails.append(p99)
            line = f"{name:5s} open loop {run} at {rate:,.0f} req/s: p50 {p50:.2f} ms  p99 {p99:.2f} ms  failures {failures}"
            if histogram:
                after = mo_latency_buckets(url)
                within = (after[0.025] - before[0.025]) / (after[float("inf")] - before[float("inf")])
                line += f"  (server: {within:.2%} answered within 25 ms)"
            print(line, flush=True)
        return tails

    def bare(self, cores: str, load_cores: str) -> tuple[subprocess.Popen, str]:
        process, url = start([sys.executable, __file__, "--bare-server"], cores)
        for run in range(self.args.runs + 1):
            self.closed_loop("bare", process, url, run, load_cores)
        return process, url

    def one_worker(self) -> None:
        """smsgw on core 0, wrk on core 1; then the bare app the same way; then the open loops."""
        process, url = self.smsgw("smsgw", 1, "0")
        try:
            for run in range(self.args.runs + 1):
                self.closed_loop("smsgw", process, url, run, "1")
            half = self.median("smsgw", "rate") / 2
            ours = self.open_loops("smsgw", url, half, histogram=True)
        finally:
            stop(process)
        process, url = self.bare("0", "1")
        try:
            theirs = self.open_loops("bare", url, half, histogram=False)
        finally:
            stop(process)
        print(f"median p99 at {half:,.0f} req/s (half of smsgw's maximum): smsgw {statistics.median(ours):.2f}"
              f" ms, bare aiohttp {statistics.median(theirs):.2f} ms (target <= 25 ms)")
        self.summary()

    def workers(self) -> None:
        """N workers and one worker, both up at once, each on a store of its own, measured in
        turn (N, one, N, one ...) under wrk on both cores: the host's drifts fall on both alike."""
        workers = self.args.workers
        many, many_url = self.smsgw("many", workers, "0,1")
        one, one_url = self.smsgw("one", 1, "0")
        ratios = []
        try:
            for run in range(self.args.runs + 1):
                pair = [("many", many, many_url), ("one", one, one_url)]
                rates = {name: self.closed_loop(name, process, url, run, "0,1")["rate"]
                         for name, process, url in (pair if run % 2 else pair[::-1])}
                if run:
                    ratios.append(rates["many"] / rates["one"])
                    print(f"      pair {run}: {ratios[-1]:.2f}x", flush=True)
        finally:
            stop(one)
        try:
            half = self.median("many", "rate") / 2
            self.open_loops("many", many_url, half, histogram=False)
        finally:
            stop(many)
        stop(self.bare("0,1", "0,1")[0])
        print(f"{workers} workers {self.median('many', 'rate'):,.0f} req/s vs one worker"
              f" {self.median('one', 'rate'):,.0f} req/s under the same load: median of the {len(ratios)}"
              f" pairs {statistics.median(ratios):.2f}x (target for 2: >= 1.7x)")
        self.summary("many")

    def median(self, name: str, figure: str) -> float:
        return statistics.median(r[figure] for r in self.results[name])

    def summary(self, ours: str = "smsgw") -> None:
        rate, bare = self.median(ours, "rate"), self.median("bare", "rate")
        cpu, cpu_bare = self.median(ours, "cpu_us"), self.median("bare", "cpu_us")
        print(f"median CPU per request: smsgw {cpu:,.0f} us, bare aiohttp {cpu_bare:,.0f} us:"
              f" ratio {cpu_bare / cpu:.2f}")
        print(f"median smsgw {rate:,.0f} req/s, bare aiohttp {bare:,.0f} req/s: ratio {rate / bare:.2f} "
              f"(target >= 0.5; {self.args.persons:,} persons, {self.args.workers} worker(s),"
              f" {self.args.connections} connections)")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait()


def run_bare_server() -> None:
    from aiohttp import web

    async def mo(request: web.Request) -> web.Response:
        data = json.loads(await request.read())
        return web.json_response({"mo_id": data["id"], "replies": []})

    app = web.Application()
    app.router.add_post("/carriers/{name}/mo", mo)
    asyncio.run(serve_until_killed(app, "bare"))


async def serve_until_killed(app, label: str) -> None:
    """Serve `app` on 127.0.0.1, port 0; print "`label` listening on URL" for `start` to read."""
    from aiohttp import web

    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, backlog=1024).start()
    print(f"{label} listening on http://127.0.0.1:{runner.addresses[0][1]}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    main()
