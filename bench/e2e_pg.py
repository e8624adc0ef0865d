"""`bench/e2e.py --db postgresql://...|pg`: the sync webhook on PostgreSQL beside SQLite, one
gateway beside two, in one run, with the CPU of each tier per MO.

The same 1M-person records (the same seed gives the same persons) on both backends: the SQLite
file of bench/.cache/, and on the server a database seeded once (`smsgw_bench_records_N`, kept
on a server given by URL, like the cache) copied for each gateway. Five set-ups, all started
before the first run and measured in turn (the order turns every round, round 0 warms up):

    sqlite   one gateway on SQLite           gateway on core 1; wrk on core 0
    pg       one gateway on PostgreSQL       gateway on core 1; PostgreSQL and wrk on core 0
    pg x1    the same gateway                gateway on core 1; PostgreSQL and wrk on both cores
    pg x2    two gateways, one database      a gateway on each core; PostgreSQL and two wrk
                                             (half the connections each) on both cores
    bare     the bare aiohttp app            on core 1; wrk on core 0

`pg` against `sqlite` is the backend alone changed (the same layout); `pg x2` against `pg x1`
the second gateway alone (PostgreSQL and wrk free to run on both cores in both). On 2 cores, two
gateways cannot add a core: `pg x2` can only use what `pg x1` leaves idle.

So each run prints, beside requests/s, the CPU per MO of each tier (the gateways' processes;
PostgreSQL's: the postmaster and all it started, from /proc; wrk's, which includes its start-up:
reading the run's 200,000 pre-signed requests), the transactions (xact_commit: reads too), WAL
syncs and WAL bytes per MO (pg_stat_database, pg_stat_wal), the share of the machine's CPU that
was busy (every process: the host is shared) and the load average. The end prints the medians,
the ratios, and what N gateway cores with a database on M cores would reach from the measured
CPU per MO (a model: rate = min(N x gateway, M x database)). Only a throwaway cluster
(`--db pg`) is pinned to cores; a server given by URL stays where it runs (and its CPU is read
only when it runs on this machine).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from e2e import Bench, cpu_seconds, signed_bodies, start, stop, wrk_result, wrk_start
from pgserver import PgServer, postgres_server

GATEWAY_CORE, LOAD_CORE, BOTH = "1", "0", "0,1"
SETUPS = ("sqlite", "pg", "pg x1", "pg x2", "bare")


def run(tmp: Path, db: Path, messages: list[tuple[str, str]], args: argparse.Namespace) -> None:
    with postgres_server(args.db) as server:
        template = seeded_database(server, args.persons)
        PgBench(tmp, db, messages, args, server, template).compare()


def seeded_database(server: PgServer, persons: int) -> str:
    """The name of a database holding `persons` seeded persons: made once (timed), then kept."""
    name = f"smsgw_bench_records_{persons}"
    if not server.exists(name):
        partial = f"{name}_partial"
        server.drop(partial)
        server.execute(f'CREATE DATABASE "{partial}"')
        print(f"seeding {persons:,} persons into database {partial} (once)...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "smsgw", "db", "seed", "--db", server.url(partial),
                        "--persons", str(persons)], check=True)
        print(f"seeded {persons:,} persons in {time.perf_counter() - started:.1f} s (COPY)", file=sys.stderr)
        server.rename(partial, name)
    subprocess.run([sys.executable, "-m", "smsgw", "db", "migrate", "--db", server.url(name)], check=True,
                   stdout=subprocess.DEVNULL)
    return name


class PgBench(Bench):
    def __init__(self, tmp: Path, db: Path, messages: list[tuple[str, str]], args: argparse.Namespace,
                 server: PgServer, template: str) -> None:
        super().__init__(tmp, db, messages, args)
        self.server, self.template = server, template
        self.databases: list[str] = []

    def pg_gateway(self, database: str, core: str) -> tuple[subprocess.Popen, str]:
        command = [sys.executable, "-m", "smsgw", "serve", "--db", self.server.url(database), "--config",
                   str(self.config), "--port", "0"]
        return start(command, core)

    def compare(self) -> None:
        processes: list[tuple[subprocess.Popen, str]] = []

        def started(server: tuple[subprocess.Popen, str]) -> tuple[subprocess.Popen, str]:
            processes.append(server)
            return server

        try:
            for database in ("smsgw_bench_pg1", "smsgw_bench_pg2"):
                self.server.copy(self.template, database)
                self.databases.append(database)
            pg = started(self.pg_gateway("smsgw_bench_pg1", GATEWAY_CORE))
            # name: (gateways, their database, PostgreSQL's cores, wrk's cores)
            setups = {
                "sqlite": ([started(self.smsgw("sqlite", 1, GATEWAY_CORE))], None, LOAD_CORE, LOAD_CORE),
                "pg": ([pg], "smsgw_bench_pg1", LOAD_CORE, LOAD_CORE),
                "pg x1": ([pg], "smsgw_bench_pg1", BOTH, BOTH),
                "pg x2": ([started(self.pg_gateway("smsgw_bench_pg2", core)) for core in (LOAD_CORE, GATEWAY_CORE)],
                          "smsgw_bench_pg2", BOTH, BOTH),
                "bare": ([started(start([sys.executable, str(Path(__file__).with_name("e2e.py")), "--bare-server"],
                                        GATEWAY_CORE))], None, LOAD_CORE, LOAD_CORE),
            }
            self.server.execute("CHECKPOINT")
            for round_ in range(self.args.runs + 1):
                turn = round_ % len(SETUPS)
                for name in SETUPS[turn:] + SETUPS[:turn]:
                    self.measure(name, *setups[name], round_)
        finally:
            for process, _ in processes:
                stop(process)
            for database in self.databases:
                self.server.drop(database)
        self.report()

    def measure(self, name: str, gateways: list[tuple[subprocess.Popen, str]], database: str | None,
                postgres_cores: str, wrk_cores: str, round_: int) -> None:
        """One closed-loop run of a set-up: wrk against each of its gateways at once."""
        self.server.pin(postgres_cores)
        bodies = []
        for n, _ in enumerate(gateways):
            bodies.append(self.tmp / f"{name.replace(' ', '')}-{n}.tsv")
            signed_bodies(bodies[-1], self.messages, f"{name}-{n}-{round_}-{os.getpid()}-{time.time_ns()}")
        pids = [process.pid for process, _ in gateways]
        postmaster = self.server.postmaster_pid
        before = {"gateway": sum(cpu_seconds(pid) for pid in pids),
                  "postgres": cpu_seconds(postmaster, reaped=True) if postmaster else 0.0,
                  "wrk": resource.getrusage(resource.RUSAGE_CHILDREN)}
        counters = self.server.counters(database) if database else None
        host = host_cpu()
        connections = self.args.connections // len(gateways)
        runs = [wrk_start(url, self.script, path, duration=self.args.duration, connections=connections,
                          cores=wrk_cores, threads=1)
                for (_, url), path in zip(gateways, bodies)]
        results = [wrk_result(process) for process in runs]
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        requests = sum(r["requests"] for r in results)
        figures = {
            "rate": sum(r["rate"] for r in results), "non2xx": sum(r["non2xx"] for r in results),
            "p99": max(r["p99"] for r in results), "load": os.getloadavg()[0], "busy": busy_since(host),
            "gateway": (sum(cpu_seconds(pid) for pid in pids) - before["gateway"]) / requests * 1e6,
            "wrk": (children.ru_utime + children.ru_stime - before["wrk"].ru_utime - before["wrk"].ru_stime)
            / requests * 1e6,
        }
        if postmaster:
            figures["postgres"] = (cpu_seconds(postmaster, reaped=True) - before["postgres"]) / requests * 1e6
        if counters:
            after = self.server.counters(database)
            delta = {key: after[key] - counters[key] for key in counters}
            figures |= {"transactions": delta["xact_commit"] / requests, "wal_bytes": delta["wal_bytes"] / requests,
                        "syncs": delta["wal_sync"] / requests,
                        "sync_ms": delta["wal_sync_time"] / delta["wal_sync"] if delta["wal_sync"] else 0.0}
        for path in bodies:
            path.unlink()
        if round_:
            self.results.setdefault(name, []).append(figures)
            print(f"{name:6s} run {round_}: {describe(figures)}", flush=True)

    def report(self) -> None:
        print("\nmedians" + (f" of {self.args.runs} runs" if self.args.runs > 1 else "") + ":")
        for name in SETUPS:
            print(f"{name:6s} {describe({key: self.median(name, key) for key in self.results[name][0]})}")
        rate = {n: self.median(n, "rate") for n in SETUPS}
        gw = {n: self.median(n, "gateway") for n in SETUPS}
        print(f"requests/s: pg / sqlite {rate['pg'] / rate['sqlite']:.2f}, pg x2 / pg x1 {rate['pg x2'] / rate['pg x1']:.2f}"
              f" (pg x2 / pg {rate['pg x2'] / rate['pg']:.2f}), sqlite / bare {rate['sqlite'] / rate['bare']:.2f},"
              f" pg / bare {rate['pg'] / rate['bare']:.2f}")
        print(f"gateway CPU per MO: pg / sqlite {gw['pg'] / gw['sqlite']:.2f} (target <= 1), pg x2 / pg x1"
              f" {gw['pg x2'] / gw['pg x1']:.2f}")
        if "postgres" in self.results["pg"][0]:
            totals = {n: self.median(n, "gateway") + self.median(n, "postgres") for n in ("pg", "pg x1", "pg x2")}
            print("gateway + PostgreSQL CPU per MO: " + ", ".join(f"{n} {t:,.0f} us" for n, t in totals.items())
                  + f" (pg x2 / pg x1 {totals['pg x2'] / totals['pg x1']:.2f}); sqlite's gateway alone"
                  f" {gw['sqlite']:,.0f} us (pg / sqlite {totals['pg'] / gw['sqlite']:.2f})")
            self.estimate()
        else:
            print("PostgreSQL's CPU: not measured (the server is not on this machine)")
        print(f"({self.args.persons:,} persons, {self.args.connections} connections in all, {self.args.duration} s a run)")

    def estimate(self) -> None:
        """N gateway cores and a database on M cores, from the one-gateway run's CPU per MO."""
        gateway, postgres = self.median("pg", "gateway"), self.median("pg", "postgres")
        syncs, sync_ms = self.median("pg", "syncs"), self.median("pg", "sync_ms")
        print(f"\nmodel: a gateway core serves 1e6 / {gateway:,.0f} = {1e6 / gateway:,.0f} MO/s; a database core"
              f" 1e6 / {postgres:,.0f} = {1e6 / postgres:,.0f} MO/s; rate = min(N x gateway, M x database)")
        if syncs and sync_ms:
            print(f"WAL: {syncs:.2f} syncs per MO at this load, {sync_ms:.2f} ms each: one WAL writer flushing"
                  f" back to back commits {1 / (syncs * sync_ms / 1000):,.0f} MO/s at this batching"
                  " (batches grow with the load: a floor, not a ceiling)")
        cores = (1, 2, 4, 8, 16)
        print("N gateway cores \\ M database cores: " + "  ".join(f"M={m:<5d}" for m in cores))
        for n in cores:
            print(f"N={n:<3d}" + " " * 30 + "  ".join(f"{min(n * 1e6 / gateway, m * 1e6 / postgres):7,.0f}"
                                                      for m in cores))


def describe(figures: dict) -> str:
    line = (f"{figures['rate']:7,.0f} req/s  non-2xx {figures['non2xx']:.0f}  p99 {figures['p99']:7.1f} ms  CPU/MO:"
            f" gateway {figures['gateway']:4,.0f} us")
    if "postgres" in figures:
        line += f"  postgres {figures['postgres']:4,.0f} us"
    line += f"  wrk {figures['wrk']:3,.0f} us"
    if "transactions" in figures:
        line += (f"  per MO: {figures['transactions']:.2f} transactions, {figures['syncs']:.2f} WAL syncs"
                 f" ({figures['sync_ms']:.2f} ms), {figures['wal_bytes']:,.0f} WAL bytes")
    return line + f"  host busy {figures['busy']:.0%}  load {figures['load']:.1f}"


def host_cpu() -> tuple[int, int]:
    """The machine's CPU time so far, all and idle (idle + iowait), from /proc/stat, in ticks."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields), fields[3] + fields[4]


def busy_since(before: tuple[int, int]) -> float:
    """The share of the machine's CPU time not idle since `before` (every process, the host's others too)."""
    total, idle = host_cpu()
    return 1 - (idle - before[1]) / max(total - before[0], 1)
