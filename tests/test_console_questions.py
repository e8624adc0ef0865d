"""The console's questions and satisfaction pages (CONTRACT §7, §9), on both backends: staff answer
an open question and the SMS reaches the carrier; a second answer is refused; viewers cannot
answer and see no text; the satisfaction index; the age of a question in working hours."""

from __future__ import annotations

import asyncio
import json
import re
from contextlib import asynccontextmanager
from datetime import datetime

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from smsgw.clock import VIETNAM
from smsgw.config import parse_config
from smsgw.console.questions import working_seconds
from smsgw.gateway import create_app
from smsgw.working_hours import QuestionsConfig

from test_console import NO_LIMITS, console_db, logged_in  # noqa: F401  (console_db: a fixture)
from test_gateway import OWNER

OTHER = "84987654321"


@asynccontextmanager
async def sink_and_gateway(db: str):
    """A carrier's MT endpoint on 127.0.0.1 (its requests in a list) and a gateway whose carrier
    `net` (async) posts there."""
    received: list[dict] = []
    arrived = asyncio.Event()

    async def mt(request: web.Request) -> web.Response:
        received.append(await request.json())
        arrived.set()
        return web.json_response({"ok": True})

    sink = web.Application()
    sink.router.add_post("/mt", mt)
    async with TestServer(sink, host="127.0.0.1", port=0) as server:
        carriers = {"net": {"auth": "none", "mode": "async", "mt_url": str(server.make_url("/mt"))}}
        config = parse_config({"carriers": carriers, "protection": NO_LIMITS})
        async with TestClient(TestServer(create_app(config, db_path=db), host="127.0.0.1", port=0)) as client:
            yield client, received, arrived


async def send(client: TestClient, carrier_id: str, text: str, sender: str = OWNER) -> None:
    response = await client.post("/carriers/net/mo", data=json.dumps(
        {"id": carrier_id, "from": sender, "to": "8079", "text": text}), headers={"Content-Type": "application/json"})
    assert response.status == 202


async def wait_for(predicate, seconds: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def ask(client: TestClient, received: list, carrier_id: str, text: str) -> str:
    """Send `BH HOI ...` and wait for its acknowledgment: the question's number."""
    await send(client, carrier_id, text)
    await wait_for(lambda: len(received) == 1)
    return re.search(r"Q[0-9]+", received[0]["text"]).group(0)


def test_staff_answer_an_open_question_and_the_sms_reaches_the_carrier_once(console_db):
    async def scenario():
        async with sink_and_gateway(console_db) as (client, received, arrived):
            number = await ask(client, received, "h1", "BH HOI Tôi muốn hỏi về thẻ BHYT của con tôi")
            token = await logged_in(client, "sam")
            page = await (await client.get("/console/questions")).text()
            assert f'id="question-{number}"' in page and "thẻ BHYT của con tôi" in page and OWNER not in page
            answer = "Thẻ của cháu còn hạn đến 31/12/2026."
            done = await client.post(f"/console/questions/{number}/answer", data={"csrf": token, "text": answer},
                                     allow_redirects=False)
            assert done.status == 303
            await wait_for(lambda: len(received) == 2)
            sms = received[1]
            assert sms["to"] == OWNER and sms["message_type"] == 3
            assert sms["text"].startswith(f"Tra loi cau hoi {number}: The cua chau con han den 31/12/2026.")
            again = await client.post(f"/console/questions/{number}/answer", data={"csrf": token, "text": "Lần hai"})
            assert again.status == 409 and "đã được sam trả lời" in await again.text()
            page = await (await client.get("/console/questions")).text()
            assert f'id="question-{number}"' not in page and re.search(rf"<td>{number}</td>.*<td>sam</td>", page, re.S)
            audit_page = await (await client.get("/console/audit")).text()
            assert audit_page.count("<code>answer</code>") == 0   # staff do not see the audit log
            await logged_in(client, "ana")
            audit_page = await (await client.get("/console/audit")).text()
            assert f"trả lời {number} (1 tin SMS qua net)" in audit_page
            await asyncio.sleep(0.3)
            assert len(received) == 2   # one answer, sent once

    asyncio.run(scenario())


def test_a_viewer_cannot_answer_and_sees_no_question_text(console_db):
    async def scenario():
        async with sink_and_gateway(console_db) as (client, received, _):
            number = await ask(client, received, "h1", "BH HOI Nguyen Van A hoi ve so 0110129425")
            token = await logged_in(client, "vic")
            page = await (await client.get("/console/questions")).text()
            assert f'id="question-{number}"' in page and "<textarea" not in page
            for secret in ("Nguyen", "0110129425", OWNER):
                assert secret not in page
            refused = await client.post(f"/console/questions/{number}/answer", data={"csrf": token, "text": "Xin chào"})
            assert refused.status == 403
            await asyncio.sleep(0.3)
            assert len(received) == 1

    asyncio.run(scenario())


def test_staff_close_a_question_without_an_sms_viewers_cannot(console_db):
    async def scenario():
        async with sink_and_gateway(console_db) as (client, received, _):
            number = await ask(client, received, "h1", "BH HOI Tôi đã gọi tổng đài rồi, cảm ơn")
            token = await logged_in(client, "vic")
            page = await (await client.get("/console/questions")).text()
            assert f"/console/questions/{number}/close" not in page
            refused = await client.post(f"/console/questions/{number}/close", data={"csrf": token})
            assert refused.status == 403
            token = await logged_in(client, "sam")
            page = await (await client.get("/console/questions")).text()
            assert f'action="/console/questions/{number}/close"' in page
            no_token = await client.post(f"/console/questions/{number}/close", data={})
            assert no_token.status == 403
            closed = await client.post(f"/console/questions/{number}/close", data={"csrf": token},
                                       allow_redirects=False)
            assert closed.status == 303 and closed.headers["Location"] == f"/console/questions?closed={number}"
            page = await (await client.get(closed.headers["Location"])).text()
            assert f'id="question-{number}"' not in page and f"Đã đóng {number}" in page
            assert re.search(rf"<td>{number}</td>.*\(đóng, không gửi tin\).*<td>sam</td>", page, re.S)
            again = await client.post(f"/console/questions/{number}/answer", data={"csrf": token, "text": "Có"})
            assert again.status == 409 and f"{number} đã được sam đóng lúc" in await again.text()
            await logged_in(client, "ana")
            assert f"đóng {number}, không gửi tin" in await (await client.get("/console/audit")).text()
            await asyncio.sleep(0.3)
            assert len(received) == 1   # the acknowledgment only: nothing sent on closing

    asyncio.run(scenario())


def test_bad_answers_are_refused_with_the_reason(console_db):
    async def scenario():
        async with sink_and_gateway(console_db) as (client, received, _):
            number = await ask(client, received, "h1", "BH HOI Xin hỏi")
            token = await logged_in(client, "sam")
            empty = await client.post(f"/console/questions/{number}/answer", data={"csrf": token, "text": "  \n "})
            assert empty.status == 400 and "đang trống" in await empty.text()
            long = await client.post(f"/console/questions/{number}/answer", data={"csrf": token, "text": "a" * 1001})
            assert long.status == 400 and "tối đa 1000" in await long.text()
            unknown = await client.post("/console/questions/Q999999/answer", data={"csrf": token, "text": "Có"})
            assert unknown.status == 404

    asyncio.run(scenario())


def test_the_satisfaction_index_against_the_targets_and_comments_hidden_from_viewers(console_db):
    async def scenario():
        async with sink_and_gateway(console_db) as (client, received, _):
            await send(client, "r1", "BH DG 5 Rất nhanh, cảm ơn")
            await send(client, "r2", "BH DG 2", sender=OTHER)
            await wait_for(lambda: len(received) == 2)
            token = await logged_in(client, "sam")
            simulated = await client.post("/console/simulator", data={"csrf": token, "carrier": "net",
                                                                      "phone": OWNER, "text": "BH DG 1 thử"})
            assert simulated.status == 200   # a test rating: never counted
            page = await (await client.get("/console/satisfaction")).text()
            assert 'id="satisfaction-index">50,0%' in page and "Rất nhanh, cảm ơn" in page and "thử" not in page
            assert page.count('class="badge bad">chưa đạt') == 3
            await logged_in(client, "vic")
            viewer = await (await client.get("/console/satisfaction")).text()
            assert "Rất nhanh" not in viewer and OWNER not in viewer and "8491234****" in viewer
            bad = await client.get("/console/satisfaction?month=2026-1")
            assert bad.status == 400

    asyncio.run(scenario())


@pytest.mark.parametrize("asked, now, hours", [
    ("2026-12-04T16:00", "2026-12-07T09:00", 2.0),    # Friday 16:00 to Monday 09:00
    ("2026-12-05T10:00", "2026-12-05T15:00", 0.0),    # all on a Saturday
    ("2026-12-01T07:00", "2026-12-01T18:00", 9.0),    # a whole working Tuesday
    ("2026-12-01T12:30", "2026-12-01T13:00", 0.5),
])
def test_a_questions_age_in_working_hours(asked, now, hours):
    def at(text: str) -> float:
        return datetime.fromisoformat(text).replace(tzinfo=VIETNAM).timestamp()

    assert working_seconds(QuestionsConfig(), at(asked), at(now)) == hours * 3600


def test_the_faqs_closest_entries_are_offered_to_staff(console_db):
    from html import escape

    from smsgw.faq import Faq
    from smsgw.service import open_service

    faq = Faq.from_csv("fixtures/faq/faq.csv")
    question = "Mẹ tôi muốn mua bảo hiểm cho cả nhà thì tổng cộng hết bao nhiêu tiền?"
    assert not faq.match(question).confident   # staff answer it: no FAQ answer goes at once
    expected = [entry.answer for entry, _ in faq.suggest(question, 3)]
    assert expected

    async def scenario():
        config = parse_config({"carriers": {"open": {"auth": "none", "mode": "sync"}}, "protection": NO_LIMITS})
        async with open_service(console_db, config, faq=faq) as service:
            app = create_app(config, db_path=console_db, service_factory=lambda: service)
            async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
                response = await client.post("/carriers/open/mo", data=json.dumps(
                    {"id": "f1", "from": OWNER, "to": "8079", "text": f"BH HOI {question}"}),
                    headers={"Content-Type": "application/json"})
                number = re.search(r"Q[0-9]+", (await response.json())["replies"][0]["text"]).group(0)
                await logged_in(client, "sam")
                page = await (await client.get("/console/questions")).text()
                assert page.count(f'data-fill="answer-{number}"') == len(expected)
                for answer in expected:
                    assert escape(answer) in page
                await logged_in(client, "vic")
                assert "data-fill" not in await (await client.get("/console/questions")).text()

    asyncio.run(scenario())


def test_an_answer_kept_from_a_suggestion_labels_the_question_with_that_entry(console_db):
    """Staff who answer with an FAQ suggestion ("Dùng câu này", its text kept, maybe added to)
    teach the FAQ, as `smsgw questions answer --faq` does; an answer rewritten teaches nothing."""
    from html import unescape

    from smsgw.faq_store import import_faq, load_faq

    asked = "Mẹ tôi muốn mua bảo hiểm cho cả nhà thì tổng cộng hết bao nhiêu tiền?"
    rewritten = "Bà cần hỏi thêm gì về thẻ của cháu không ạ?"

    async def scenario():
        faq, _ = await import_faq("fixtures/faq/faq.csv", console_db)
        assert not faq.match(asked).confident
        async with sink_and_gateway(console_db) as (client, received, arrived):
            number = await ask(client, received, "s1", f"BH HOI {asked}")
            await send(client, "s2", f"BH HOI {rewritten}")
            await wait_for(lambda: len(received) == 2)
            other = re.search(r"Q[0-9]+", received[1]["text"]).group(0)
            token = await logged_in(client, "sam")
            page = await (await client.get("/console/questions")).text()
            entry_id, text = re.search(rf'data-fill="answer-{number}" data-text="([^"]*)" data-faq="([^"]*)"',
                                       page).group(2, 1)
            assert f'id="answer-{number}-faq"' in page
            done = await client.post(f"/console/questions/{number}/answer", allow_redirects=False, data={
                "csrf": token, "faq": entry_id, "text": unescape(text) + " Cảm ơn bà."})
            assert done.status == 303 and done.headers["Location"].endswith(f"done={number}&example={entry_id}")
            shown = await (await client.get(done.headers["Location"])).text()
            assert f"ví dụ cho mục {entry_id}" in shown
            # the same suggestion's id with an answer of staff's own: no label
            done = await client.post(f"/console/questions/{other}/answer", allow_redirects=False, data={
                "csrf": token, "faq": entry_id, "text": "Chúng tôi sẽ gọi lại cho bà."})
            assert done.status == 303 and "example=" not in done.headers["Location"]
            await wait_for(lambda: len(received) == 4)
            await logged_in(client, "ana")
            audit_page = await (await client.get("/console/audit")).text()
            assert f"ví dụ cho mục {entry_id}" in audit_page
        examples = [(example.id, example.question) for example in (await load_faq(console_db)).examples]
        return entry_id, examples

    entry_id, examples = asyncio.run(scenario())
    assert examples == [(entry_id, asked)]
