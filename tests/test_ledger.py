"""The billing ledger: a known traffic mix through the HTTP gateway adds up to figures worked out by hand."""

from __future__ import annotations

import asyncio
import csv
import io
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from test_gateway import OWNER, SECRET, SSN, make_records, mo_body, post_mo
from test_outbox import eventually

from smsgw.adapters.mock import MockAdapter
from smsgw.config import parse_config
from smsgw.errors import PermanentDeliveryError
from smsgw.gateway import create_app
from smsgw.ledger import COLUMNS, VIETNAM, export_csv, format_summary, month_bounds, totals
from smsgw.notices import CARD_EXPIRY, notify
from smsgw.store import SqliteStore, open_reports

STRANGER = "84987654321"
CARRIERS = {
    "viettel": {"secret": SECRET, "mode": "sync", "mt_url": "http://127.0.0.1:9/mt", "networks": ["Vinaphone"]},
    "mobi": {"secret": SECRET, "mode": "async", "mt_url": "http://127.0.0.1:9/mt"},
}


def test_a_month_is_a_calendar_month_of_vietnam_time():
    start, end = month_bounds("2026-12")
    assert datetime.fromtimestamp(start, VIETNAM).isoformat() == "2026-12-01T00:00:00+07:00"
    assert datetime.fromtimestamp(end, VIETNAM).isoformat() == "2027-01-01T00:00:00+07:00"
    assert end - start == 31 * 86_400
    for bad in ("2026-13", "2026-1", "202612", "abcd-ef"):
        with pytest.raises(ValueError, match="not a YYYY-MM month"):
            month_bounds(bad)


async def traffic(db: Path) -> None:
    """The mix: per carrier, what each MO is worth (worked out by hand in the test below)."""
    await make_records(db)
    store = await SqliteStore.open(db)
    today = datetime.now(VIETNAM).date()
    async with store.transaction():
        await store.write(cards=[("HC401" + SSN, SSN, "2025-01-01", (today + timedelta(days=30)).isoformat(), "BV")])
    await store.close()

    def refuse_help(mt) -> None:
        if mt.message_type == 0:
            raise PermanentDeliveryError("no route")

    config = parse_config({"carriers": CARRIERS, "notices": {"quiet_hours": ""}})   # the push goes now, at any hour
    mock = MockAdapter(config.carriers["mobi"], shortcode="8079", handler=refuse_help)
    app = create_app(config, db_path=str(db), adapters={"viettel": MockAdapter(config.carriers["viettel"],
                                                                                shortcode="8079"), "mobi": mock})
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        messages = [
            ("viettel", f"BH QT {SSN}", OWNER),       # 1 charged, 1,000
            ("viettel", f"BH QT {SSN} 2016", OWNER),  # 1 charged, 1,000
            ("viettel", f"BH THE {SSN}", OWNER),      # 1 charged, 1,000
            ("viettel", "BH HD", OWNER),              # 0 free
            ("viettel", "BH QT 123", OWNER),          # 21 refunded (syntax)
            ("viettel", f"BH QT {SSN}", STRANGER),    # 22 refunded (content): not the owner's phone
            ("viettel", "BH HS 00000.A/2020/00000", STRANGER),  # 22: no such dossier
            ("viettel", "BH HD", "9029"),             # a short code: no reply, no row
            ("mobi", f"BH QT {SSN}", OWNER),          # 1 charged, 1,000 (async, delivered)
            ("mobi", f"BH QT {SSN}", OWNER),          # 1 charged, 1,000
            ("mobi", "BH HD", OWNER),                 # 0 free, then given up: a refund row of 0
        ]
        for n, (carrier, text, sender) in enumerate(messages):
            status, _ = await post_mo(client, mo_body(f"mix-{n}", text=text, sender=sender), carrier=carrier)
            assert status in (200, 202)
        await eventually(lambda: len(mock.sent) == 3)
        await eventually(lambda: len(mock.delivered) == 2)
    # one push, to OWNER (Vinaphone: carrier viettel), 0 VND
    summary = await notify(CARD_EXPIRY, str(db), config, today=today, days=30, progress=False,
                           adapters={"viettel": MockAdapter(config.carriers["viettel"], shortcode="8079")})
    assert summary.sent == 1


def test_the_export_of_a_known_traffic_mix_adds_up_to_the_figures_worked_out_by_hand(tmp_path):
    db = tmp_path / "records.db"
    asyncio.run(traffic(db))
    month = datetime.now(VIETNAM).strftime("%Y-%m")
    # A charge written one second before the month began (Vietnam time) is last month's.
    start, _ = month_bounds(month)
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO billing_rows (kind, carrier, mo_id, mt_id, msisdn, amount_vnd, message_type, at)"
                     " VALUES ('charge', 'viettel', 'old', 'old', '8491234****', 1000, 1, ?)",
                     (datetime.fromtimestamp(start - 1, timezone.utc).isoformat(),))

    conn = open_reports(str(db))
    try:
        out = io.StringIO()
        assert export_csv(conn, month, out) == 12
        rows = list(csv.DictReader(io.StringIO(out.getvalue())))
        by_carrier = {name: export_csv(conn, month, io.StringIO(), carrier=name) for name in ("viettel", "mobi")}
        month_totals = totals(conn, month)
        summary = format_summary(month, month_totals)
    finally:
        conn.close()

    assert tuple(rows[0]) == COLUMNS
    assert by_carrier == {"viettel": 8, "mobi": 4}
    amounts: dict[tuple[str, str, str], list[int]] = {}
    for row in rows:
        amounts.setdefault((row["carrier"], row["message_type"], row["kind"]), []).append(int(row["amount_vnd"]))
    assert amounts == {
        ("viettel", "1", "charge"): [1000, 1000, 1000],
        ("viettel", "0", "charge"): [0],
        ("viettel", "21", "charge"): [0],
        ("viettel", "22", "charge"): [0, 0],
        ("viettel", "3", "push"): [0],
        ("mobi", "1", "charge"): [1000, 1000],
        ("mobi", "0", "charge"): [0],
        ("mobi", "0", "refund"): [0],
    }
    assert sum(int(row["amount_vnd"]) for row in rows) == 5000
    assert all(row["time"].endswith("+07:00") and row["time"].startswith(month) for row in rows)
    assert {row["msisdn"] for row in rows} == {"8491234****", "8498765****"}
    assert [row["mo_id"] for row in rows if row["kind"] == "push"] == [""]
    assert {(t.carrier, t.message_type, t.kind): (t.rows, t.amount_vnd) for t in month_totals} == {
        key: (len(values), sum(values)) for key, values in
        {(c, int(m), k): v for (c, m, k), v in amounts.items()}.items()}
    assert summary.splitlines()[-1].split() == ["TOTAL", "12", "5,000"]
    assert "viettel          1 charged              charge          3         3,000" in summary


def test_the_cli_writes_the_export_and_prints_the_summary(tmp_path):
    db = tmp_path / "records.db"
    asyncio.run(traffic(db))
    month = datetime.now(VIETNAM).strftime("%Y-%m")
    out = tmp_path / "ledger.csv"

    def smsgw(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "smsgw", *args], capture_output=True, text=True, timeout=60)

    exported = smsgw("billing", "export", "--month", month, "--carrier", "mobi", "--out", str(out), "--db", str(db))
    assert exported.returncode == 0, exported.stderr
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == ",".join(COLUMNS) and len(lines) == 1 + 4
    summary = smsgw("billing", "summary", "--month", month, "--db", str(db))
    assert summary.returncode == 0 and summary.stdout.splitlines()[-1].split() == ["TOTAL", "12", "5,000"]
    refused = smsgw("billing", "summary", "--month", "2026-13", "--db", str(db))
    assert (refused.returncode, refused.stderr) == (1, "smsgw: --month: not a YYYY-MM month: '2026-13'\n")
