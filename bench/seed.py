"""Seed N synthetic persons and print the rate (target: 1,000,000 in < 120 s).

    python bench/seed.py [--persons N] [--seed S] [--runs 1] [--db postgresql://...|pg [--no-sqlite]]

Without `--db`: into a temporary SQLite file. With `--db`: into a temporary SQLite file and
into a new database of that PostgreSQL server (`smsgw_bench_seed`, dropped afterwards; `--db pg`
starts a throwaway cluster, see bench/pgserver.py) in turns, the order swapped every run;
`smsgw db seed` fills PostgreSQL with COPY in one transaction. Each run prints the wall time and
where the CPU went: this process (generating the rows, encoding them for SQLite or for COPY)
and, on PostgreSQL, the server (COPY and index upkeep), with the store's size; then the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from contextlib import ExitStack

from e2e import cpu_seconds
from pgserver import postgres_server
from smsgw.seed import seed_database

DATABASE = "smsgw_bench_seed"


def seed_once(target: str, persons: int, seed: int, server=None) -> dict:
    """One seed into `target` (a file path or a PostgreSQL URL): wall and CPU seconds."""
    server_cpu = cpu_seconds(server.postmaster_pid, reaped=True) if server and server.postmaster_pid else None
    ours = time.process_time()
    started = time.perf_counter()
    summary = asyncio.run(seed_database(target, persons, seed, progress=False))
    figures = {"seconds": time.perf_counter() - started, "client_cpu": time.process_time() - ours,
               "summary": str(summary)}
    if server_cpu is not None:
        figures["server_cpu"] = cpu_seconds(server.postmaster_pid, reaped=True) - server_cpu
    return figures


def seed_sqlite(persons: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="smsgw-seed-") as directory:
        path = os.path.join(directory, "records.db")
        figures = seed_once(path, persons, seed)
        return figures | {"size": os.path.getsize(path)}


def seed_postgres(server, persons: int, seed: int) -> dict:
    server.drop(DATABASE)
    server.execute(f'CREATE DATABASE "{DATABASE}"')
    try:
        wal = server.counters(DATABASE)["wal_bytes"]
        figures = seed_once(server.url(DATABASE), persons, seed, server)
        wal = server.counters(DATABASE)["wal_bytes"] - wal
        ((size,),) = server.fetch("SELECT pg_database_size($1)", DATABASE)
    finally:
        server.drop(DATABASE)
    return figures | {"size": size, "wal": wal}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--db", help="postgresql://... (an existing server) or pg (a throwaway cluster)")
    parser.add_argument("--no-sqlite", action="store_true", help="with --db: PostgreSQL alone, not beside SQLite")
    args = parser.parse_args()
    times: dict[str, list[float]] = {}
    with ExitStack() as stack:
        server = stack.enter_context(postgres_server(args.db)) if args.db else None
        backends = {"SQLite": lambda: seed_sqlite(args.persons, args.seed)}
        if server:
            backends = {"PostgreSQL": lambda: seed_postgres(server, args.persons, args.seed)} | (
                {} if args.no_sqlite else backends)
        for run in range(1, args.runs + 1):
            order = list(backends) if run % 2 else list(backends)[::-1]   # turns: drifts fall on both
            for backend in order:
                figures = backends[backend]()
                times.setdefault(backend, []).append(figures["seconds"])
                where = (f"  server CPU {figures['server_cpu']:.1f} s" if "server_cpu" in figures
                         else "  server CPU not measured (not on this machine)" if backend == "PostgreSQL" else "")
                wal = f" (WAL written {figures['wal'] / 2**20:,.0f} MiB)" if "wal" in figures else ""
                print(f"{backend:10s} run {run}: {figures['summary']}", flush=True)
                print(f"{backend:10s} run {run}: persons {args.persons:,}  seconds {figures['seconds']:.1f}  persons/s"
                      f" {args.persons / figures['seconds']:,.0f}  this process CPU {figures['client_cpu']:.1f} s"
                      f"{where}  size {figures['size'] / 2**20:,.0f} MiB{wal}  load {os.getloadavg()[0]:.1f}", flush=True)
    for backend, seconds in times.items():
        print(f"median {statistics.median(seconds):.1f} s for {args.persons:,} persons on {backend}"
              f" ({', '.join(f'{t:.1f}' for t in seconds)}); target: 1,000,000 persons in < 120 s")
    if len(times) == 2:
        print(f"PostgreSQL / SQLite: {statistics.median(times['PostgreSQL']) / statistics.median(times['SQLite']):.2f}"
              " (time to seed)")


if __name__ == "__main__":
    main()
