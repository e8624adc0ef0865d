"""pytest fixtures for real PostgreSQL servers (tests/pgcluster.py), loaded by tests/conftest.py.

- `pg_binaries`: the installed server programs; skips the test, with the reason, when absent.
- `pg_cluster`: one running server per test module (tests may stop, kill and restart it).
- `pg_database`: a fresh, empty database on it per test, as a `postgresql://` URL.
- `pg_replicated`: a fresh primary + synchronous standby with database `smsgw`, per test.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from pgcluster import Binaries, Cluster, Replicated, find_binaries, temp_root

_database_numbers = itertools.count(1)                  # database names unique in the run


@pytest.fixture(scope="session")
def pg_binaries() -> Binaries:
    binaries, reason = find_binaries()
    if binaries is None:
        pytest.skip(reason)
    return binaries


@pytest.fixture(scope="module")
def pg_cluster(pg_binaries: Binaries) -> Iterator[Cluster]:
    """One running server for the test module (tests may stop, kill and restart it)."""
    with temp_root() as root, Cluster(pg_binaries, root) as cluster:
        cluster.init()
        cluster.start()
        yield cluster


@pytest.fixture
def pg_database(pg_cluster: Cluster) -> str:
    """A fresh, empty database on the module's server, as a postgresql:// URL. Starts the server
    again when an earlier test left it stopped."""
    if not pg_cluster.running:
        pg_cluster.start()
    return pg_cluster.create_database(f"test_{next(_database_numbers)}")


@pytest.fixture
def pg_replicated(pg_binaries: Binaries) -> Iterator[Replicated]:
    """A fresh primary + synchronous standby with database `smsgw`, for one test."""
    with temp_root() as root, Replicated(pg_binaries, root) as pair:
        yield pair.start()


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path) -> str:
    """`--db` of a test run on both backends: an SQLite file not yet made, or a fresh PostgreSQL
    database migrated to the current schema (the PostgreSQL case skips without the server programs)."""
    if request.param == "sqlite":
        return str(tmp_path / "smsgw.db")
    import asyncio

    from smsgw.store import migrate

    url = request.getfixturevalue("pg_database")
    asyncio.run(migrate(url))
    return url
