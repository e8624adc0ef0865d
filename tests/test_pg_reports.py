"""`smsgw billing` and `smsgw report` on PostgreSQL read what they read on SQLite, row for row.

The ledger's traffic mix (test_ledger.traffic: charges, a refund, a push, syntax errors) is made on
SQLite by a real gateway, then the same message and billing rows are copied into a PostgreSQL
database: every reading query of `MessageReports` and the commands' output must then agree.
Real servers (tests/pgcluster.py); skipped, saying why, without PostgreSQL's server programs.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from datetime import datetime

import asyncpg
from test_ledger import VIETNAM, traffic

from smsgw.ledger import month_bounds
from smsgw.store import open_reports
from smsgw.store.schema import migrate

TABLES = ("mo_messages", "billing_rows")


async def copy_messages(path: str, url: str) -> None:
    await migrate(url)
    connection = await asyncpg.connect(url, timeout=10)
    try:
        with sqlite3.connect(path) as source:
            for table in TABLES:
                theirs = {row[1] for row in source.execute(f"PRAGMA table_info({table})")}
                ours = [row[0] for row in await connection.fetch(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = $1", table)]
                columns = [name for name in ours if name in theirs]
                rows = source.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
                await connection.copy_records_to_table(table, records=rows, columns=columns)
    finally:
        await connection.close()


def readings(db: str, month: str) -> dict:
    start, end = month_bounds(month)
    reader = open_reports(db)
    try:
        return {
            "rows": list(reader.billing_rows_between(start, end)),
            "rows of mobi": list(reader.billing_rows_between(start, end, "mobi")),
            "totals": reader.billing_totals_between(start, end),
            "totals of viettel": reader.billing_totals_between(start, end, "viettel"),
            "outcomes": reader.mo_outcomes(),
            "outcomes since": reader.mo_outcomes(since=start + 86400 * 40),
            "misunderstood": list(reader.misunderstood_texts()),
            "misunderstood since": list(reader.misunderstood_texts(since=start)),
        }
    finally:
        reader.close()


def smsgw(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "smsgw", *args], capture_output=True, text=True, timeout=60)


def test_billing_and_report_commands_read_postgresql_as_they_read_sqlite(tmp_path, pg_database):
    path = str(tmp_path / "records.db")
    asyncio.run(traffic(tmp_path / "records.db"))
    asyncio.run(copy_messages(path, pg_database))
    month = datetime.now(VIETNAM).strftime("%Y-%m")

    on_sqlite, on_postgresql = readings(path, month), readings(pg_database, month)
    assert len(on_sqlite["rows"]) == 12 and on_sqlite["misunderstood"], "the mix is not what it was"
    assert on_postgresql == on_sqlite

    for command in (("billing", "summary", "--month", month), ("report", "understanding")):
        expected, got = smsgw(*command, "--db", path), smsgw(*command, "--db", pg_database)
        assert (got.returncode, got.stderr) == (0, ""), got.stderr
        assert got.stdout == expected.stdout
    exported = smsgw("billing", "export", "--month", month, "--out", str(tmp_path / "pg.csv"), "--db", pg_database)
    assert exported.returncode == 0, exported.stderr
    lite = smsgw("billing", "export", "--month", month, "--out", str(tmp_path / "lite.csv"), "--db", path)
    assert lite.returncode == 0, lite.stderr
    assert (tmp_path / "pg.csv").read_text() == (tmp_path / "lite.csv").read_text()


def test_a_report_on_an_unreachable_database_says_so_without_a_traceback(pg_cluster):
    url = pg_cluster.url("no_such_database")
    result = smsgw("billing", "summary", "--month", "2026-01", "--db", url)
    assert result.returncode == 1
    assert result.stderr.startswith("smsgw: --db postgresql://") and "cannot connect" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
