"""PostgreSQL for the benchmarks: an existing server given by URL, or a throwaway cluster.

    --db postgresql://USER@HOST:PORT/DB   an existing server; the benchmarks create (and drop)
                                          databases of their own named smsgw_bench_*, so USER
                                          needs CREATEDB; DB is only where they connect first
    --db pg                               a throwaway cluster started here (tests/pgcluster.py:
                                          initdb + pg_ctl from Debian's postgresql package, on a
                                          free port under /tmp, run as `postgres` when we are
                                          root, fsync and synchronous_commit on) and removed at
                                          the end

What the benchmarks read about the server, beside their own figures: its CPU time (the
postmaster and every process it started, and those it has reaped: `PgServer.postmaster_pid`
for `e2e.cpu_seconds(..., reaped=True)`; None when the server is not on this machine), and its
counters of commits and WAL (`PgServer.counters`). Only a cluster of our own is pinned to cores
(`PgServer.pin`): an existing server is left where it runs.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from smsgw.store.schema import shown

ROOT = Path(__file__).resolve().parent.parent
THROWAWAY = "pg"
# A throwaway cluster's settings beyond tests/pgcluster.py's (fsync, synchronous_commit on):
# room for a 1M-person store in memory, no checkpoint forced by WAL volume in the middle of a
# run (the runs start with an explicit CHECKPOINT), and the time spent in WAL syncs counted.
CLUSTER_SETTINGS = {"shared_buffers": "512MB", "max_wal_size": "8GB", "track_wal_io_timing": True,
                    "max_connections": 200}


def is_postgres_spec(spec: str | None) -> bool:
    return spec == THROWAWAY or (spec or "").startswith(("postgresql://", "postgres://"))


class PgServer:
    """One PostgreSQL server: URLs of its databases, SQL, its postmaster's PID, its counters."""

    def __init__(self, url: str, cluster=None) -> None:
        self.base_url = url
        self.cluster = cluster
        self.postmaster_pid = cluster.postmaster_pid if cluster else _local_postmaster(url)

    def url(self, database: str) -> str:
        """The server's URL with `database` in place of the one given."""
        parts = urlsplit(self.base_url)
        return urlunsplit(parts._replace(path=f"/{database}"))

    def fetch(self, sql: str, *args: object, database: str | None = None) -> list[asyncpg.Record]:
        return asyncio.run(_fetch(self.url(database) if database else self.base_url, sql, *args))

    def execute(self, sql: str, database: str | None = None) -> None:
        self.fetch(sql, database=database)

    def exists(self, database: str) -> bool:
        return bool(self.fetch("SELECT 1 FROM pg_database WHERE datname = $1", database))

    def drop(self, database: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    def copy(self, template: str, database: str) -> str:
        """A new database `database` as a copy of `template` (file by file on PostgreSQL 15+:
        WAL-logging a 1 GB store would take longer than the run); its URL."""
        self.drop(database)
        (version,) = self.fetch("SELECT current_setting('server_version_num')::int")[0]
        strategy = " STRATEGY = FILE_COPY" if version >= 150000 else ""
        self.execute(f'CREATE DATABASE "{database}" TEMPLATE "{template}"{strategy}')
        return self.url(database)

    def rename(self, database: str, new_name: str) -> None:
        self.execute(f'ALTER DATABASE "{database}" RENAME TO "{new_name}"')

    def pin(self, cores: str) -> bool:
        """Put every process of a cluster of our own on `cores` ("0" or "0,1"); the backends it
        starts later inherit the postmaster's. False (nothing done) for a server given by URL."""
        if self.cluster is None:
            return False
        wanted = {int(core) for core in cores.split(",")}
        for pid in self.cluster.processes():
            try:
                os.sched_setaffinity(pid, wanted)
            except ProcessLookupError:
                pass
        return True

    def counters(self, database: str) -> dict[str, float]:
        """Commits of `database` and the server's WAL figures so far (pg_stat_database,
        pg_stat_wal; the sync time is 0 unless track_wal_io_timing is on)."""
        (row,) = self.fetch(
            "SELECT d.xact_commit, w.wal_bytes, w.wal_records, w.wal_write, w.wal_sync, w.wal_sync_time,"
            " current_setting('track_wal_io_timing') = 'on' AS timed"
            " FROM pg_stat_database d, pg_stat_wal w WHERE d.datname = $1", database)
        return {key: float(value) for key, value in dict(row).items()}


async def _fetch(url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(url, timeout=10)
    try:
        return await connection.fetch(sql, *args)
    finally:
        await connection.close()


def _local_postmaster(url: str) -> int | None:
    """The PID of the server's postmaster when it runs on this machine (the parent of our
    backend, as /proc shows it), else None: its CPU cannot be read from here."""
    host = urlsplit(url).hostname or "localhost"
    if host not in ("localhost", "127.0.0.1", "::1") and not host.startswith("/"):
        return None
    return asyncio.run(_parent_of_backend(url))


async def _parent_of_backend(url: str) -> int | None:
    connection = await asyncpg.connect(url, timeout=10)
    try:                                   # read while connected: the backend ends with the connection
        backend = await connection.fetchval("SELECT pg_backend_pid()")
        parent = int(Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()[1])
        return parent if Path(f"/proc/{parent}/comm").read_text().strip() in ("postgres", "postmaster") else None
    except (OSError, ValueError):
        return None
    finally:
        await connection.close()


@contextmanager
def postgres_server(spec: str) -> Iterator[PgServer]:
    """The server of `--db SPEC`: a postgresql:// URL as it is, or `pg`: a throwaway cluster."""
    if not is_postgres_spec(spec):
        raise SystemExit(f"--db {spec!r}: a postgresql://USER@HOST:PORT/DB URL, or pg for a throwaway cluster")
    if spec != THROWAWAY:
        try:
            server = PgServer(spec)
            server.fetch("SELECT 1")               # a server on another host is reached here first
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError) as exc:
            raise SystemExit(f"--db {shown(spec)}: cannot connect ({type(exc).__name__}: {exc})") from None
        yield server
        return
    sys.path.insert(0, str(ROOT / "tests"))
    from pgcluster import Cluster, find_binaries, temp_root

    binaries, reason = find_binaries()
    if binaries is None:
        raise SystemExit(f"--db pg: {reason}")
    with temp_root() as root, Cluster(binaries, root, "bench") as cluster:
        cluster.init()
        cluster.configure(**CLUSTER_SETTINGS)          # after init's own: the last occurrence wins
        cluster.start()
        print(f"throwaway PostgreSQL cluster on port {cluster.port} ({root}): {CLUSTER_SETTINGS}",
              file=sys.stderr, flush=True)
        yield PgServer(cluster.url(), cluster)
