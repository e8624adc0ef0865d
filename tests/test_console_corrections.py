"""The understanding page's corrections taken up (CONTRACT §1b, §9), on both backends: the same
figure `smsgw report understanding` gives, over the whole days of the window, today left out."""

from __future__ import annotations

from test_console import console_db, gateway, logged_in, mo, run  # noqa: F401 (console_db: the fixture)
from test_gateway import OWNER

OTHER = "84987654321"
DAY = 86400.0
SENT = [   # as in test_reports.test_corrections_offered_and_taken_up_within_ten_minutes
    ("c-0", "BH QY 0110129425", OWNER),       # corrected to BH QT 0110129425 ...
    ("c-1", "bh qt 0110129425", OWNER),       # ... which the same phone sends: taken up
    ("c-2", "BJ QT 0110129425 2016", OTHER),  # corrected, never sent again
    ("c-3", "BH QT 0110129425 2016", OWNER),  # the other phone's correction, sent by another phone
    ("c-4", "BH TEH 0110129425", OTHER),      # corrected to BH THE 0110129425 ...
    ("c-5", "BH THE 0110129425", OTHER),      # ... sent again, but 11 minutes later (moved below)
    ("c-6", "BH QT 12345", OTHER),            # no correction: a bad id
]


async def execute(db: str, statement: str) -> None:
    if db.startswith("postgresql://"):
        import asyncpg

        conn = await asyncpg.connect(db)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()
    else:
        import sqlite3

        conn = sqlite3.connect(db)
        with conn:
            conn.execute(statement)
        conn.close()


def test_corrections_taken_up_over_the_whole_days_of_the_window(console_db):
    async def scenario():
        async with gateway(console_db) as client:
            for carrier_id, text, sender in SENT:
                await mo(client, carrier_id, text, sender)
            await mo(client, "today", "BH QY 0110129425")   # a correction offered today: not counted yet
        # the messages two days ago (a whole day, over whatever the time now), c-5 eleven minutes late
        await execute(console_db, f"UPDATE mo_messages SET taken_at = taken_at - {2 * DAY}"
                                  " WHERE carrier_id LIKE 'c-%'")
        await execute(console_db, "UPDATE mo_messages SET taken_at = taken_at + 660 WHERE carrier_id = 'c-5'")
        async with gateway(console_db) as client:
            await logged_in(client, "vic")
            week = await (await client.get("/console/understanding?days=7")).text()
            assert "<strong>33,3%</strong>: 1 trên 3 tin không hiểu" in week
            today = await (await client.get("/console/understanding?days=1")).text()
            assert "hôm nay chưa tính" in today and "<strong>" not in today.split('id="corrections"')[1][:200]
            # a day over is kept: a later change to its rows is not counted again
            await execute(console_db, "UPDATE mo_messages SET taken_at = taken_at - 660 WHERE carrier_id = 'c-5'")
            again = await (await client.get("/console/understanding?days=7")).text()
            assert "<strong>33,3%</strong>: 1 trên 3 tin không hiểu" in again
        async with gateway(console_db) as client:   # a new gateway counts the days again
            await logged_in(client, "vic")
            week = await (await client.get("/console/understanding?days=7")).text()
            assert "<strong>66,7%</strong>: 2 trên 3 tin không hiểu" in week

    run(scenario())
