"""The PostgreSQL test harness itself (tests/pgcluster.py), against real servers on 127.0.0.1.

The backend's fault tests rely on these: a server that keeps committed rows across a stop and a
SIGKILL; a synchronous standby that holds every commit the primary acknowledged; a client on the
multi-host URL that finds the promoted standby by itself; and no server left running afterwards.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest

from pgcluster import Cluster, Replicated, alive, find_binaries, temp_root

pytestmark = pytest.mark.slow

BOUND = 20.0                                           # seconds, for every wait in these tests
CONNECTION_LOST = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                   asyncpg.CannotConnectNowError, asyncpg.ReadOnlySQLTransactionError)


async def _rows(url: str) -> list[int]:
    connection = await asyncpg.connect(url, timeout=BOUND)
    try:
        return [row["n"] for row in await connection.fetch("SELECT n FROM committed ORDER BY n")]
    finally:
        await connection.close()


async def _commit_each(url: str, numbers: range) -> None:
    """One transaction per row, as a gateway stores MOs."""
    connection = await asyncpg.connect(url, timeout=BOUND)
    try:
        await connection.execute("CREATE TABLE IF NOT EXISTS committed (n int PRIMARY KEY)")
        for n in numbers:
            await connection.execute("INSERT INTO committed VALUES ($1)", n)
    finally:
        await connection.close()


def test_missing_binaries_skip_with_the_reason_and_the_package(tmp_path: Path) -> None:
    binaries, reason = find_binaries([tmp_path])
    assert binaries is None
    assert "initdb" in reason and str(tmp_path) in reason and "Debian's postgresql package" in reason


def test_a_server_runs_unprivileged_on_loopback_with_fsync(pg_cluster: Cluster, pg_database: str) -> None:
    uid = int(Path(f"/proc/{pg_cluster.postmaster_pid}/status").read_text().split("\nUid:")[1].split()[0])
    assert uid != 0
    settings = pg_cluster.execute("SELECT current_setting('listen_addresses'), current_setting('fsync'), "
                                  "current_setting('synchronous_commit'), current_setting('unix_socket_directories')")
    assert settings == f"127.0.0.1|on|on|{pg_cluster.socket_dir}"
    assert (pg_cluster.socket_dir / f".s.PGSQL.{pg_cluster.port}").is_socket()


def test_committed_rows_survive_a_stop_and_a_sigkill(pg_cluster: Cluster, pg_database: str) -> None:
    asyncio.run(_commit_each(pg_database, range(20)))

    pg_cluster.stop("fast")
    assert not pg_cluster.running
    with pytest.raises(OSError):
        asyncio.run(_rows(pg_database))
    pg_cluster.start()
    asyncio.run(_commit_each(pg_database, range(20, 40)))

    pids = pg_cluster.processes()
    pg_cluster.kill()                                      # no checkpoint, no shutdown: crash recovery
    assert not any(alive(pid) for pid in pids)
    pg_cluster.start()
    assert asyncio.run(_rows(pg_database)) == list(range(40))


def test_each_test_gets_its_own_database(pg_cluster: Cluster, pg_database: str) -> None:
    """The previous test's table is not here, and a server left stopped is started again."""
    with pytest.raises(asyncpg.UndefinedTableError):
        asyncio.run(_rows(pg_database))


def test_a_commit_on_the_primary_waits_for_the_synchronous_standby(pg_replicated: Replicated) -> None:
    primary, standby = pg_replicated.primary, pg_replicated.standby
    assert primary.execute("SELECT application_name, state, sync_state FROM pg_stat_replication") == "standby|streaming|sync"

    async def scenario() -> None:
        url = primary.url(pg_replicated.db)
        await _commit_each(url, range(10))
        standby.stop("fast")
        connection = await asyncpg.connect(url, timeout=BOUND)
        try:
            insert = asyncio.ensure_future(connection.execute("INSERT INTO committed VALUES (10)"))
            await asyncio.sleep(1.0)
            assert not insert.done(), "the primary acknowledged a commit no standby holds"
            standby.start()                               # blocking: the loop waits, the commit too
            await asyncio.wait_for(insert, BOUND)
        finally:
            await connection.close()

    asyncio.run(scenario())
    deadline = time.monotonic() + BOUND
    while (seen := standby.execute("SELECT count(*) FROM committed", pg_replicated.db)) != "11":
        assert time.monotonic() < deadline, f"the standby shows {seen} of 11 rows"
        time.sleep(0.05)


def test_failover_the_multi_host_url_reaches_the_promoted_standby_with_every_row(pg_replicated: Replicated) -> None:
    primary, standby = pg_replicated.primary, pg_replicated.standby
    url = pg_replicated.multi_host_url()

    async def scenario() -> None:
        async with asyncpg.create_pool(url, min_size=1, max_size=2, timeout=BOUND) as pool:
            assert await pool.fetchval("SELECT inet_server_port()") == primary.port
            await pool.execute("CREATE TABLE committed (n int PRIMARY KEY)")
            for n in range(50):
                await pool.execute("INSERT INTO committed VALUES ($1)", n)

            primary.kill()
            with pytest.raises(CONNECTION_LOST):           # the standby is read-only until promoted
                await pool.execute("INSERT INTO committed VALUES (50)")
            with pytest.raises(CONNECTION_LOST):
                await asyncpg.connect(url, timeout=BOUND)
            pg_replicated.promote()

            deadline = time.monotonic() + BOUND
            while True:                                    # the pool replaces its dead connection
                try:
                    port = await pool.fetchval("SELECT inet_server_port()")
                    break
                except CONNECTION_LOST:
                    assert time.monotonic() < deadline, "no connection to the promoted standby"
                    await asyncio.sleep(0.05)
            assert port == standby.port
            assert [r["n"] for r in await pool.fetch("SELECT n FROM committed ORDER BY n")] == list(range(50))
            await asyncio.wait_for(pool.execute("INSERT INTO committed VALUES (50)"), BOUND)

    asyncio.run(scenario())


def test_nothing_outlives_the_harness_and_a_taken_port_is_avoided(pg_binaries) -> None:
    with temp_root() as root, socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        with Replicated(pg_binaries, root) as pair:
            pair.primary.port = taken                      # as if another process took it meanwhile
            pair.start()
            assert pair.primary.port != taken
            pids = pair.primary.processes() | pair.standby.processes()
            assert len(pids) >= 8                          # postmasters, walsender, walreceiver...
        assert not any(alive(pid) for pid in pids)
        assert list(root.iterdir()) == []


def test_a_python_process_that_forgets_its_servers_still_stops_them(pg_binaries) -> None:
    """The atexit hook: a run that ends without its teardown leaves no postmaster behind."""
    script = ("import sys; sys.path.insert(0, sys.argv[1]); import pgcluster, tempfile\n"
              "c = pgcluster.Cluster(pgcluster.find_binaries()[0], tempfile.mkdtemp(dir='/tmp', prefix='smsgw-pg-'))\n"
              "c.init(); c.start(); print(c.postmaster_pid, c.home, flush=True)\n")
    out = subprocess.run([sys.executable, "-c", script, str(Path(__file__).parent)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    pid, home = out.stdout.split()
    assert not alive(int(pid))
    assert not os.path.exists(home)
    os.rmdir(Path(home).parent)
