"""The understanding report over MOs taken by the HTTP gateway."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from datetime import datetime

import pytest
from aiohttp.test_utils import TestClient, TestServer
from test_gateway import OWNER, SECRET, SSN, make_records, mo_body, post_mo

from smsgw.config import parse_config
from smsgw.gateway import create_app
from smsgw.clock import VIETNAM
from smsgw.reports import format_understanding, shape, understanding
from smsgw.store import open_reports

MIX = [
    (f"BH QT {SSN}", OWNER),              # understood (x3, the third rate-limited: still understood)
    (f"bh qt {SSN} 2016", OWNER),
    (f"BH THE {SSN}", OWNER),
    ("HD", OWNER),                        # understood: help
    ("BH HOI the bhyt het han lam sao", OWNER),   # understood: the conversation commands (§7)
    ("BH DG 5", OWNER),
    ("BH TC", OWNER),
    ("BH QT 12345", OWNER),               # bad_id
    ("bh qt 0110129 2018", OWNER),        # bad_id
    ("BH QT 0110129425 13/2016", OWNER),  # bad_period
    ("BH XYZ", OWNER),                    # unknown_command
    ("Xin chào", OWNER),                  # unknown_keyword
    ("XS MB", OWNER),                     # another service's keyword: not counted
    ("BH QT 12345", "VIETTEL"),           # a brandname: not a citizen, not counted
]


@pytest.mark.parametrize("text, expected", [
    ("bh  qt 0110129425 01-2016!!", "BH QT 9999999999 99-9999"),
    ("BH QT 0110129425\u00a01/2016", "BH QT 9999999999 9/9999"),
    ("Thẻ hc4010110129425", "THE HC9999999999999"),
    (" ... ", "(empty)"),
    ("X" * 100, "X" * 60 + "..."),
])
def test_shapes_are_normalised_with_digits_masked(text, expected):
    assert shape(text) == expected


def test_the_report_counts_what_the_grammar_understood(tmp_path):
    db = tmp_path / "records.db"

    async def run():
        await make_records(db)
        config = parse_config({"carriers": {"generic": {"secret": SECRET, "mode": "sync"}},
                               "routes": {"XS": {"text": "Ket qua xo so"}},
                               "protection": {"lookups_per_hour": 2, "repeat_limit": 0}})
        async with TestClient(TestServer(create_app(config, db_path=str(db)), host="127.0.0.1", port=0)) as client:
            for n, (text, sender) in enumerate(MIX):
                assert (await post_mo(client, mo_body(f"u-{n}", text=text, sender=sender)))[0] == 200

    asyncio.run(run())
    conn = open_reports(str(db))
    try:
        report = understanding(conn)
    finally:
        conn.close()
    assert (report.understood, report.total, report.routed) == (7, 12, 1)
    assert dict(report.commands) == {"QT": 2, "THE": 1, "HELP": 1, "HOI": 1, "DG": 1, "TC": 1}
    assert dict(report.errors) == {"bad_id": 2, "bad_period": 1, "unknown_command": 1, "unknown_keyword": 1}
    assert dict(report.shapes) == {"BH QT 99999": 1, "BH QT 9999999 9999": 1, "BH QT 9999999999 99/9999": 1,
                                   "BH XYZ": 1, "XIN CHAO": 1}
    text = format_understanding(report)
    assert text.splitlines()[:9] == [
        "understanding: 12 messages for the service (another 1 went to other services of the short code)",
        "  understood              7  58.3%",
        "    QT                    2  16.7%",
        "    THE                   1   8.3%",
        "    HELP                  1   8.3%",
        "    HOI                   1   8.3%",
        "    DG                    1   8.3%",
        "    TC                    1   8.3%",
        "  not understood          5  41.7%",
    ]
    assert "    bad_id                2  16.7%" in text
    assert SSN not in text


def test_since_leaves_out_older_messages_and_the_cli_prints_the_report(tmp_path):
    db = tmp_path / "records.db"

    async def run():
        await make_records(db)
        config = parse_config({"carriers": {"generic": {"secret": SECRET, "mode": "sync"}}})
        async with TestClient(TestServer(create_app(config, db_path=str(db)), host="127.0.0.1", port=0)) as client:
            for n, text in enumerate(["BH QT 123", "BH HD", "BH QT 456"]):
                await post_mo(client, mo_body(f"s-{n}", text=text))

    asyncio.run(run())
    with sqlite3.connect(db) as conn:   # the first one was taken three days ago
        conn.execute("UPDATE mo_messages SET taken_at = taken_at - 3 * 86400 WHERE carrier_id = 's-0'")
    today = datetime.now(VIETNAM).date().isoformat()
    result = subprocess.run([sys.executable, "-m", "smsgw", "report", "understanding", "--since", today,
                             "--db", str(db)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"understanding since {today}: 2 messages for the service (another 0 went to other services of the short code)",
        "  understood              1  50.0%",
        "    HELP                  1  50.0%",
        "  not understood          1  50.0%",
        "    bad_id                1  50.0%",
        "  corrections offered     0, taken up within 10 minutes 0 (-)",
        "  most frequent shapes not understood (top 1):",
        "          1  BH QT 999",
    ]
    everything = subprocess.run([sys.executable, "-m", "smsgw", "report", "understanding", "--db", str(db)],
                                capture_output=True, text=True, timeout=60)
    assert "          2  BH QT 999" in everything.stdout.splitlines()


def test_corrections_offered_and_taken_up_within_ten_minutes(tmp_path):
    db = tmp_path / "records.db"
    other = "84987654321"
    sent = [
        ("c-0", "BH QY 0110129425", OWNER),       # corrected to BH QT 0110129425 ...
        ("c-1", "bh qt 0110129425", OWNER),       # ... which the same phone sends: taken up
        ("c-2", "BJ QT 0110129425 2016", other),  # corrected, never sent again
        ("c-3", "BH QT 0110129425 2016", OWNER),  # the other phone's correction, sent by another phone
        ("c-4", "BH TEH 0110129425", other),      # corrected to BH THE 0110129425 ...
        ("c-5", "BH THE 0110129425", other),      # ... sent again, but 11 minutes later (moved below)
        ("c-6", "BH QT 12345", other),            # no correction: a bad id
    ]

    async def run():
        await make_records(db)
        config = parse_config({"carriers": {"generic": {"secret": SECRET, "mode": "sync"}},
                               "protection": {"repeat_limit": 0}})
        async with TestClient(TestServer(create_app(config, db_path=str(db)), host="127.0.0.1", port=0)) as client:
            for carrier_id, text, sender in sent:
                assert (await post_mo(client, mo_body(carrier_id, text=text, sender=sender)))[0] == 200

    asyncio.run(run())
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE mo_messages SET taken_at = taken_at + 660 WHERE carrier_id = 'c-5'")
    conn = open_reports(str(db))
    try:
        report = understanding(conn)
    finally:
        conn.close()
    assert dict(report.errors) == {"unknown_command": 2, "unknown_keyword": 1, "bad_id": 1}
    assert (report.corrections_offered, report.corrections_taken) == (3, 1)
    assert "  corrections offered     3, taken up within 10 minutes 1 (33.3%)" in format_understanding(report)
