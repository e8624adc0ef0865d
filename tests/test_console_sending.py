"""The console's "notices and batches" page over HTTP (CONTRACT §9), on both backends: an API
batch's progress as the API reports it, a notice held by the quiet hours, the opted-out phones,
all read by a viewer without a phone number in sight.

A real gateway app on 127.0.0.1 sending to a local carrier sink (api_harness.py); the batch
comes through the real API, the notices through a real `notify` run.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import time
from datetime import datetime, timedelta

from smsgw.clock import VIETNAM
from smsgw.config import parse_config
from smsgw.notices import CARD_EXPIRY, notify
from smsgw.store import open_records

from api_harness import api_gateway, carrier_sink, opt_out
from test_api_batches import counts_when
from test_console import NAME, console_db, logged_in, run  # noqa: F401 (console_db: the fixture)
from test_gateway import OWNER, SSN

RECIPIENTS = ["0912345600", "0912345601", "0912345602"]   # Vinaphone; the last one opts out
OPTED_OUT = "84912345602"


def quiet_hours_now() -> str:
    """A span of quiet hours (Vietnam time) from an hour ago to two hours from now."""
    now = datetime.now(VIETNAM)
    return f"{now - timedelta(hours=1):%H:%M}-{now + timedelta(hours=2):%H:%M}"


def section(page: str, element_id: str, end: str) -> str:
    """The page's text from the element with this id to the next `end`."""
    start = page.index(f'id="{element_id}"')
    return page[start:page.index(end, start)]


def cells(row: str) -> list[str]:
    return [html.unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]


def no_phone_in(page: str) -> None:
    for phone in [OWNER, OPTED_OUT, *RECIPIENTS, *(number[1:] for number in RECIPIENTS)]:
        assert phone not in page, phone
    assert NAME not in page and SSN not in page


def test_a_batch_sent_through_the_api_shows_its_progress_and_the_opted_out_count(console_db):
    async def scenario():
        await opt_out(console_db, OPTED_OUT)
        async with carrier_sink() as sink, api_gateway(console_db, sink) as (client, headers, _):
            anonymous = await client.get("/console/sending", allow_redirects=False)
            assert anonymous.status == 303 and anonymous.headers["Location"].startswith("/console/login")
            await logged_in(client, "vic")
            before = await (await client.get("/console/sending")).text()
            assert "Chưa có lô tin nào." in before and "Không có tin nào đang được giữ lại." in before
            response = await client.post("/api/v1/batches", headers={**headers, "Content-Type": "application/json"},
                                         data=json.dumps({"class": "notice", "text": "Chao {name}",
                                                          "recipients": [{"to": to, "name": f"Anh {n}"}
                                                                         for n, to in enumerate(RECIPIENTS)]}))
            assert response.status == 202, await response.text()
            batch_id = (await response.json())["id"]
            await counts_when(client, headers, batch_id, {"sent": 2, "opted_out": 1})
            page = await client.get("/console/sending")
            assert page.status == 200
            text = await page.text()
            row = cells(section(text, f"batch-{batch_id}", "</tr>"))
            # id, key, class, created, total, progress, then the API's statuses in order, then held
            assert row[1:3] == ["bank", "thông báo"] and row[4] == "3"
            assert row[6:] == ["0", "2", "0", "0", "0", "1", "0"]   # queued sent delivered failed expired opted_out; held
            assert 'value="3"' in section(text, f"batch-{batch_id}", "</progress>")
            assert section(text, "opted-out", "</span>").endswith(">1")
            assert section(text, "batches-waiting", "</span>").endswith(">0")
            no_phone_in(text)

    run(scenario())


async def _card_holder(db: str, expiry: str) -> None:
    """The reference holder (OWNER's phone) with a BHYT card whose last valid day is `expiry`."""
    records = await open_records(db, create=True)
    async with records.transaction():
        await records.write(persons=[(SSN, None, NAME, "1990-01-01", OWNER)],
                            cards=[(f"GD479{SSN}", SSN, "2025-12-24", expiry, "BV")])
    await records.close()


def test_a_notice_and_a_batch_made_in_the_quiet_hours_show_as_held_until_their_end(console_db):
    quiet = quiet_hours_now()

    async def scenario():
        today = datetime.now(VIETNAM).date()
        await _card_holder(console_db, (today + timedelta(days=30)).isoformat())
        async with carrier_sink() as sink, api_gateway(console_db, sink, notices={"quiet_hours": quiet}) as (
                client, headers, _):
            config = parse_config({"carriers": {"generic": {"secret": "s3cret", "mode": "async", "mt_url": sink.url,
                                                            "networks": ["*"]}},
                                   "notices": {"quiet_hours": quiet}})
            summary = await notify(CARD_EXPIRY, console_db, config, today=today, days=30, progress=False)
            assert (summary.held, summary.sent) == (1, 0)
            response = await client.post("/api/v1/batches", headers=headers, json={
                "class": "info", "text": "Lich nghi Tet", "recipients": [{"to": to} for to in RECIPIENTS[:2]]})
            assert response.status == 202, await response.text()
            batch_id = (await response.json())["id"]
            await asyncio.sleep(0.3)
            assert sink.attempts == []   # nothing goes out in the quiet hours
            await logged_in(client, "vic")
            text = await (await client.get("/console/sending")).text()
            release = datetime.fromtimestamp(summary.held_until, VIETNAM).strftime("%d/%m/%Y %H:%M")
            holds = [cells(row) for row in re.findall(r"<tr>(.*?)</tr>", section(text, "holds", "</table>"), re.S)]
            assert [row[:3] for row in holds[1:]] == [["generic", "2 · thông báo, lô", "3"]]
            assert holds[1][3].startswith(release) and holds[1][4] == release
            assert section(text, "held-total", "</span>").endswith(">3")
            assert section(text, "batches-waiting", "</span>").endswith(">1")
            batch = cells(section(text, f"batch-{batch_id}", "</tr>"))
            assert batch[6] == "2" and batch[-1] == f"2 (tới {release})"   # queued, all held
            card = section(text, "notices-card_expiry", "</figure>")
            assert "giữ tới sáng (giờ yên tĩnh): 1" in card and "đã gửi: 0" in card
            assert "giữ tới sáng (giờ yên tĩnh): 0" in section(text, "notices-dossier_result", "</figure>")
            no_phone_in(text)

    run(scenario())
