"""Staff labelling grows the FAQ's coverage, on both backends: `smsgw questions answer Q123 --faq
ENTRY_ID` answers with the entry's answer and keeps the question as an example of the entry (one
transaction), so the gateways match it; `smsgw faq import FILE` keeps the stored
examples whose entry id is still in the FAQ unless `--replace-examples`; a running gateway
matches with the new label within its refresh, without a restart."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from contextlib import asynccontextmanager

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from smsgw.config import parse_config
from smsgw.faq import FaqExample
from smsgw.faq_store import load_faq
from smsgw.gateway import create_app
from smsgw.gsm import fold
from smsgw.store import open_messages

from test_faq_import import HEADER, LOST_CARD, PENSION, write
from test_gateway import NO_LIMITS, OWNER

# A citizen's words for the lost-card entry that neither entry uses: "ông nội" (grandfather).
ASKED = "Ông nội em đánh rơi thẻ bảo hiểm ở chợ, giờ sao ạ"
LOST_ANSWER = "Nộp tờ khai TK1-TS tại cơ quan BHXH."


async def smsgw(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "smsgw", *args,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode, out.decode(), err.decode()


@asynccontextmanager
async def carrier_sink():
    """A carrier's MT endpoint on 127.0.0.1: the MTs it accepted, and its URL."""
    received: list[dict] = []

    async def mt(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/mt", mt)
    async with TestServer(app, host="127.0.0.1", port=0) as server:
        yield received, str(server.make_url("/mt"))


async def asked_through_a_gateway(db: str, mt_url: str, received: list[dict]) -> str:
    """`BH HOI ASKED` through a gateway serving `db` (carrier `net`): the question's number."""
    config = parse_config({"carriers": {"net": {"auth": "none", "mode": "async", "mt_url": mt_url}},
                           "protection": NO_LIMITS})
    async with TestClient(TestServer(create_app(config, db_path=db), host="127.0.0.1", port=0)) as client:
        response = await client.post("/carriers/net/mo", data=json.dumps(
            {"id": "hoi-1", "from": OWNER, "to": "8079", "text": f"BH HOI {ASKED}"}),
            headers={"Content-Type": "application/json"})
        assert response.status == 202
        for _ in range(500):
            if received:
                break
            await asyncio.sleep(0.02)
    [acknowledgment] = received
    received.clear()
    return re.search(r"Q[0-9]+", acknowledgment["text"]).group(0)


def test_a_staff_answer_with_an_faq_entry_teaches_the_faq_for_the_next_start(db, tmp_path):
    faq_file = write(tmp_path, HEADER + PENSION + LOST_CARD)

    async def scenario():
        assert (await smsgw("faq", "import", str(faq_file), "--db", db))[0] == 0
        before = await load_faq(db)
        assert not before.match(ASKED).confident   # "ông nội", "chợ": words the entry never uses
        async with carrier_sink() as (received, mt_url):
            number = await asked_through_a_gateway(db, mt_url, received)
            config = tmp_path / "smsgw.toml"
            config.write_text(f'[carriers.net]\nauth = "none"\nmode = "async"\nmt_url = "{mt_url}"\n')
            common = ("--db", db, "--config", str(config))
            unknown = await smsgw("questions", "answer", number, "--faq", "the-tre-em", "--by", "lan", *common)
            both = await smsgw("questions", "answer", number, "some text", "--faq", "mat-the", *common)
            neither = await smsgw("questions", "answer", number, *common)
            untouched = (await load_faq(db)).examples, [mt["text"] for mt in received]
            answered = await smsgw("questions", "answer", number, "--faq", "mat-the", "--by", "lan", *common)
            again = await smsgw("questions", "answer", number, "--faq", "mat-the", "--by", "lan", *common)
            sent = [mt["text"] for mt in received]
        store = await open_messages(db)
        try:
            [question] = await store.questions()
        finally:
            await store.close()
        return number, unknown, both, neither, untouched, answered, again, sent, question, await load_faq(db)

    number, unknown, both, neither, untouched, answered, again, sent, question, after = asyncio.run(scenario())
    assert unknown == (1, "", f"smsgw: {number}: no FAQ entry 'the-tre-em'\n")
    assert both[0] == neither[0] == 1
    assert both[2] == neither[2] == "smsgw: give the answer as TEXT or as --faq ENTRY_ID (one of them)\n"
    assert untouched == ((), [])   # refused: nothing stored, nothing sent
    assert answered[0] == 0, answered
    assert answered[1] == (f"{number} answered by lan with FAQ entry mat-the: 1 SMS to net, sent; the question is "
                           "now an example of mat-the (running gateways match with it within a minute)\n")
    assert len(sent) == 1 and fold(LOST_ANSWER) in fold(sent[0]), sent
    assert again[0] == 1 and again[2].startswith(f"smsgw: {number} was answered already by lan at ")
    assert (question.answered_by, question.answer) == ("lan", sent[0])
    assert after.examples == (FaqExample("mat-the", ASKED),)
    match = after.match(ASKED)   # what the gateway's next start does with the same question
    assert (match.entry.id, match.confident) == ("mat-the", True)


def test_an_answer_whose_entry_is_gone_stores_nothing(db, tmp_path):
    # The entry is checked inside the answer's transaction: an import between the command's look
    # and its write leaves the question open, with no MT and no example.
    faq_file = write(tmp_path, HEADER + PENSION + LOST_CARD)

    async def scenario():
        assert (await smsgw("faq", "import", str(faq_file), "--db", db))[0] == 0
        async with carrier_sink() as (received, mt_url):
            number = await asked_through_a_gateway(db, mt_url, received)
        store = await open_messages(db)
        try:
            def word(question):
                raise AssertionError("no MT is worded for an entry that is not there")

            answer = await store.answer_question(number, word, by="lan", now=time.time(), lease=60.0,
                                                 example_of="the-tre-em")
            return answer, await store.questions(open_only=True), await store.pending(), await load_faq(db)
        finally:
            await store.close()

    answer, still_open, pending, faq = asyncio.run(scenario())
    assert answer.no_entry and not answer.refused and answer.mt is None
    assert [question.text for question in still_open] == [ASKED]
    assert pending == [] and faq.examples == ()


def test_an_import_keeps_the_stored_examples_of_entries_still_in_the_faq(db, tmp_path):
    both = write(tmp_path, HEADER + PENSION + LOST_CARD)
    lost_only = write(tmp_path, HEADER + LOST_CARD, "lost.csv")
    examples = write(tmp_path, "id,question\nmat-the,ong noi em lam rot the\nluong-huu,may tuoi dc luong huu\n",
                     "examples.csv")

    def imported(*args: str) -> tuple[int, str, tuple[FaqExample, ...]]:
        async def run():
            code, out, err = await smsgw("faq", "import", *args, "--db", db)
            assert out == "" and "Traceback" not in err
            faq = await load_faq(db)
            return code, err, faq.examples

        return asyncio.run(run())

    code, err, stored = imported(str(both), "--examples", str(examples))
    assert code == 0 and len(stored) == 2
    assert err.endswith(f": 2 FAQ entries, 2 examples, 2 of them from {examples} (the previous FAQ replaced; its "
                        "examples kept where their entry id is still in the FAQ: 0 of 0; --replace-examples drops "
                        "them)\n"), err

    # Without --examples: the example of the entry still there is kept, the other's dropped.
    code, err, stored = imported(str(lost_only))
    assert (code, stored) == (0, (FaqExample("mat-the", "ong noi em lam rot the"),))
    assert err.endswith(": 1 FAQ entries, 1 examples (the previous FAQ replaced; its examples kept where their "
                        "entry id is still in the FAQ: 1 of 2; --replace-examples drops them)\n"), err

    # The same examples again: the one stored already is not stored twice.
    code, err, stored = imported(str(both), "--examples", str(examples))
    assert (code, [example.id for example in stored]) == (0, ["mat-the", "luong-huu"])
    assert ", 2 examples, 1 of them from " in err and ": 1 of 1;" in err

    # --replace-examples: the stored ones go, only the file's (none here) remain.
    code, err, stored = imported(str(both), "--replace-examples")
    assert (code, stored) == (0, ())
    assert err.endswith(": 2 FAQ entries, 0 examples (the previous FAQ and its examples replaced)\n"), err


def test_a_running_gateway_answers_from_a_staff_label_without_a_restart(db, tmp_path):
    faq_file = write(tmp_path, HEADER + PENSION + LOST_CARD)

    async def ask(client: TestClient, received: list[dict], carrier_id: str, count: int) -> list[str]:
        response = await client.post("/carriers/net/mo", data=json.dumps(
            {"id": carrier_id, "from": OWNER, "to": "8079", "text": f"BH HOI {ASKED}"}),
            headers={"Content-Type": "application/json"})
        assert response.status == 202
        for _ in range(500):
            if len(received) >= count:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)   # anything more would have come by now
        texts = [mt["text"] for mt in received]
        received.clear()
        return texts

    async def scenario():
        assert (await smsgw("faq", "import", str(faq_file), "--db", db))[0] == 0
        async with carrier_sink() as (received, mt_url):
            config = parse_config({"carriers": {"net": {"auth": "none", "mode": "async", "mt_url": mt_url}},
                                   "protection": NO_LIMITS})
            app = create_app(config, db_path=db, faq_refresh=0.2)
            async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
                before = await ask(client, received, "hoi-1", 1)
                number = re.search(r"Q[0-9]+", before[0]).group(0)
                toml = tmp_path / "smsgw.toml"
                toml.write_text(f'[carriers.net]\nauth = "none"\nmode = "async"\nmt_url = "{mt_url}"\n')
                answered = await smsgw("questions", "answer", number, "--faq", "mat-the", "--db", db,
                                       "--config", str(toml))
                assert answered[0] == 0, answered
                received.clear()
                await asyncio.sleep(1.0)   # five refreshes
                after = await ask(client, received, "hoi-2", 2)
        return before, after

    before, after = asyncio.run(scenario())
    assert len(before) == 1   # the acknowledgment alone: the question went to staff
    assert len(after) == 2 and fold(LOST_ANSWER) in fold(after[1]), after   # answered at once from the label
