"""The conversation commands (CONTRACT §7): the language of HOI, DG, TC and DK, and their durable
effects through the real gateway on both backends (questions numbered, the FAQ's answer at once,
ratings, opt-outs), exactly once per carrier id."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_gateway import OWNER, gateway, mo_body, post_mo, records_db  # noqa: F401 (a fixture)

from smsgw.clock import VIETNAM
from smsgw.commands import DG, DK, HOI, TC
from smsgw.config import parse_config
from smsgw.faq import Faq
from smsgw.gateway import STORE
from smsgw.language import ParseError, parse
from smsgw.normalize import normalize
from smsgw.service import Service, parse_result
from smsgw.store import open_records

FAQ = Path(__file__).resolve().parent.parent / "fixtures" / "faq" / "faq.csv"
STRANGER = "84987654321"

# --- the language ----------------------------------------------------------------------------

free_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=200)


BRACKETS = re.compile(r"[ ()\[\]<>\"“”'‘’]")


def said(text: str) -> bool:
    """Whether `text` says anything: more than white space, brackets and quotes (ignored), format
    characters, or punctuation at the end."""
    return bool(BRACKETS.sub("", normalize(text)))


@given(free_text)
def test_a_question_is_kept_as_typed(question):
    result = parse(f"BH HOI {question}")
    if said(question):
        assert result == HOI(question.strip())
    else:   # nothing but white space, brackets, punctuation at the end, format characters
        assert isinstance(result, ParseError) and result.error == "missing_argument"


@given(st.sampled_from(["BH HOI", "bh hoi", "BHHOI", "BHXH HOI", "BH HỎI", "ＢＨ　ＨＯＩ", "B\u200bH HOI"]),
       st.text("abcdeđơưạảãáàĐƠỨ ?0123456789,.!", min_size=1, max_size=60).filter(lambda t: t.strip(" .,!")))
def test_the_command_part_is_tolerated_as_in_section_1a_the_question_is_not_touched(head, question):
    text = question.strip()
    result = parse(f"{head} {question}")
    if not said(question):
        assert isinstance(result, ParseError)
    else:
        assert result == HOI(text)


@given(st.integers(1, 5), st.none() | free_text.filter(lambda t: t.strip()[:1] not in (")", "]", ">")))
def test_a_rating_with_or_without_a_comment(rating, comment):
    result = parse(f"BH DG {rating} {comment or ''}")
    expected = comment.strip() if comment is not None and said(comment) else None
    assert result == DG(rating, expected)


@given(st.sampled_from(["0", "6", "9", "tot", "55", "10", "-1", "4/5", "4.5", "5sao"]))
def test_a_rating_outside_1_to_5_is_bad_id(rating):
    result = parse(f"BH DG {rating} rat tot")
    assert isinstance(result, ParseError) and (result.error, result.command) == ("bad_id", "DG")


@pytest.mark.parametrize("text, error, command", [
    ("BH HOI", "missing_argument", "HOI"), ("BH HOI  ...", "missing_argument", "HOI"),
    ("BH DG", "missing_argument", "DG"), ("BH DG 0", "bad_id", "DG"), ("BH DG 6", "bad_id", "DG"),
    ("BH DG tot", "bad_id", "DG"), ("BH TC abc", "trailing_input", "TC"), ("BH DK 1", "trailing_input", "DK"),
    ("BH HOIA xin hoi", "unknown_command", None),
])
def test_the_errors_of_section_7_and_their_replies(text, error, command):
    result = parse(text)
    assert (result.error, result.command) == (error, command)
    printed = parse_result(text)
    assert printed["ok"] is False and printed["error"] == error
    assert ("8079" in printed["reply"]) and len(printed["reply"]) <= 160


def test_stop_and_resume_are_commands_with_every_tolerance():
    for text in ("BH TC", "bh tc.", "BHXHTC", "BH  TC !", "ＢＨ ＴＣ"):
        assert parse(text) == TC(), text
    for text in ("BH DK", "bhxh dk", "BH ĐK"):
        assert parse(text) == DK(), text


def test_parse_prints_the_question_rating_and_comment_in_fields_of_their_own():
    assert parse_result("BH HOI Thẻ BHYT hết hạn?") == {
        "ok": True, "command": "HOI", "id": None, "id_kind": None, "from": None, "to": None,
        "question": "Thẻ BHYT hết hạn?"}
    assert parse_result("BH DG 4 Rất tốt") == {
        "ok": True, "command": "DG", "id": None, "id_kind": None, "from": None, "to": None,
        "rating": 4, "comment": "Rất tốt"}
    assert parse_result("BH TC")["command"] == "TC"


# --- through the gateway, both backends --------------------------------------------------------

NUMBERED = re.compile(r"cau hoi so (Q\d+)\.")


def test_a_question_is_numbered_acknowledged_charged_and_stored_once(records_db):
    async def run():
        async with gateway(records_db) as client:
            first = await post_mo(client, mo_body("h1", "BH HOI Tôi mất sổ BHXH thì làm lại thế nào?"))
            again = await post_mo(client, mo_body("h1", "BH HOI Tôi mất sổ BHXH thì làm lại thế nào?"))
            other = await post_mo(client, mo_body("h2", "BH HOI con toi 5 tuoi co the BHYT khong", sender=STRANGER))
            questions = await client.app[STORE].questions()
            billing = await client.app[STORE].billing(first[1]["mo_id"])
            return first, again, other, questions, billing

    first, again, other, questions, billing = asyncio.run(run())
    assert first == again   # a carrier's retry: the same answer, no second question
    (ack,) = first[1]["replies"]
    number = NUMBERED.search(ack["text"]).group(1)
    assert ack["message_type"] == 1 and "Can bo se tra loi qua tin nhan" in ack["text"]
    other_number = NUMBERED.search(other[1]["replies"][0]["text"]).group(1)
    assert [(q.number, q.sender, q.carrier, q.text) for q in questions] == [
        (number, OWNER, "generic", "Tôi mất sổ BHXH thì làm lại thế nào?"),
        (other_number, STRANGER, "generic", "con toi 5 tuoi co the BHYT khong")]
    assert number != other_number
    assert [(row.kind, row.amount_vnd, row.message_type) for row in billing] == [("charge", 1000, 1)]


def test_a_question_the_faq_answers_gets_the_answer_at_once_as_a_free_push(records_db):
    faq = Faq.from_csv(FAQ)
    asked = "the bhyt ho gia dinh sap het han thi gia han o dau"
    assert faq.match(asked).confident

    async def run():
        async with gateway(records_db, faq=faq) as client:
            status, answer = await post_mo(client, mo_body("f1", f"BH HOI {asked}"))
            unknown = await post_mo(client, mo_body("f2", "BH HOI toi muon hoi ve viec con meo nha toi"))
            store = client.app[STORE]
            return status, answer, unknown, await store.questions(), await store.questions(open_only=True), \
                await store.billing(answer["mo_id"])

    status, answer, unknown, everything, still_open, billing = asyncio.run(run())
    ack, push = answer["replies"]
    number = NUMBERED.search(ack["text"]).group(1)
    assert (ack["message_type"], push["message_type"]) == (1, 3)
    assert push["text"].startswith(f"Tra loi cau hoi {number}: Dong tien gia han tai dai ly thu BHXH")
    assert "tin nhan tiep theo" in ack["text"]
    assert [(row.amount_vnd, row.message_type) for row in billing] == [(1000, 1), (0, 3)]
    assert [q.faq_id for q in everything] == ["gia-han-the-bhyt-hgd", None]
    assert [q.text for q in still_open] == ["toi muon hoi ve viec con meo nha toi"]
    assert len(unknown[1]["replies"]) == 1


def test_stop_and_resume_are_recorded_free_and_confirmed(records_db):
    async def run():
        async with gateway(records_db) as client:
            store = client.app[STORE]
            stopped = await post_mo(client, mo_body("t1", "BH TC"))
            again = await post_mo(client, mo_body("t1", "BH TC"))
            after_stop = await store.opted_out([OWNER, STRANGER])
            resumed = await post_mo(client, mo_body("t2", "bh dk"))
            return stopped, again, after_stop, resumed, await store.opted_out([OWNER])

    stopped, again, after_stop, resumed, after_resume = asyncio.run(run())
    assert stopped == again
    (reply,) = stopped[1]["replies"]
    assert reply["message_type"] == 0 and "ngung nhan thong bao" in reply["text"] and "BH DK" in reply["text"]
    assert after_stop == {OWNER}
    (reply,) = resumed[1]["replies"]
    assert reply["message_type"] == 0 and "nhan lai thong bao" in reply["text"]
    assert after_resume == set()


def test_async_mode_sends_the_acknowledgment_and_the_faq_answer_to_the_carrier(records_db):
    from smsgw.adapters.mock import MockAdapter

    faq = Faq.from_csv(FAQ)
    carriers = {"generic": {"secret": "s3cret", "mode": "async", "mt_url": "http://127.0.0.1:9/mt"}}
    adapter = MockAdapter(parse_config({"carriers": carriers}).carriers["generic"], shortcode="8079")

    async def run():
        async with gateway(records_db, carriers, adapters={"generic": adapter}, faq=faq) as client:
            status, body = await post_mo(client, mo_body("a1", "BH HOI the bhyt ho gia dinh sap het han thi gia han o dau"))
            for _ in range(500):
                if len(adapter.sent) >= 2:
                    break
                await asyncio.sleep(0.01)
            return status, [mt for mt in adapter.sent]

    status, sent = asyncio.run(run())
    assert status == 202
    assert [int(mt.message_type) for mt in sent] == [1, 3]
    assert NUMBERED.search(sent[0].text) and sent[1].text.startswith("Tra loi cau hoi Q")


# --- the working hours in the acknowledgment -----------------------------------------------------

@pytest.mark.parametrize("at, expected", [
    (datetime(2026, 12, 1, 10, 0, tzinfo=VIETNAM), "trong gio lam viec (08:00-17:00)"),
    (datetime(2026, 12, 1, 22, 0, tzinfo=VIETNAM), "tu 08:00 ngay 03/12/2026"),   # 02/12 is a holiday
    (datetime(2026, 12, 4, 17, 0, tzinfo=VIETNAM), "tu 08:00 ngay 07/12/2026"),   # Friday's closing: Monday
    (datetime(2026, 12, 5, 7, 0, tzinfo=VIETNAM), "tu 08:00 ngay 07/12/2026"),    # Saturday
    (datetime(2026, 12, 7, 7, 59, tzinfo=VIETNAM), "tu 08:00 ngay 07/12/2026"),   # Monday before opening
])
def test_the_acknowledgment_says_when_to_expect_an_answer(tmp_path, at, expected):
    config = parse_config({"questions": {"holidays": ["2026-12-02"]}})

    async def run():
        records = await open_records(str(tmp_path / "r.db"), create=True)
        try:
            outcome = await Service(records, config, now=lambda: at).handle("BH HOI luong huu", OWNER)
            (reply,) = outcome.numbered("Q7")
            return reply
        finally:
            await records.close()

    reply = asyncio.run(run())
    assert reply.text.startswith("BHXH da nhan cau hoi so Q7. Can bo se tra loi qua tin nhan ")
    assert reply.text.endswith(expected + ".")
    assert reply.segments == 1 and reply.message_type == 1


def test_questions_settings_mistakes_name_the_key():
    from smsgw.config import ConfigError

    for table, key in (({"hours": "8-17"}, "questions.hours"), ({"days": ["mon", "xyz"]}, "questions.days"),
                       ({"holidays": ["02/12/2026"]}, "questions.holidays"), ({"hour": "08:00-17:00"}, "questions.hour")):
        with pytest.raises(ConfigError, match=re.escape(key)):
            parse_config({"questions": table})


# --- opt-out honoured by the notices -------------------------------------------------------------

def test_an_opted_out_phone_gets_no_card_expiry_notice_and_gets_it_again_after_bh_dk(db):
    """Through the real gateway (BH TC, BH DK) and `notify` with a carrier's MT sink: the notice
    to the phone that sent BH TC is neither stored nor sent (counted opted out); after BH DK the
    next run sends it."""
    from contextlib import AsyncExitStack
    from datetime import date

    from test_notices import SECRET, start_sinks

    from smsgw.notices import CARD_EXPIRY, notify

    today = date(2026, 11, 23)
    other = "84862345678"

    async def run():
        records = await open_records(db, create=True)
        async with records.transaction():
            await records.write(
                persons=[("0100000001", None, "Nguyễn Văn An", "1980-01-01", OWNER),
                         ("0100000002", None, "Trần Thị Bích", "1980-01-01", other)],
                cards=[("GD4790100000001", "0100000001", "2025-12-24", "2026-12-23", "BV"),
                       ("GD4790100000002", "0100000002", "2025-12-24", "2026-12-23", "BV")])
        await records.close()
        async with AsyncExitStack() as stack:
            sinks, servers = await start_sinks(stack, aggregator=200)
            carriers = {"aggregator": {"secret": SECRET, "mode": "sync", "networks": ["*"],
                                       "mt_url": str(servers["aggregator"].make_url("/mt"))},
                        "generic": {"secret": "s3cret", "mode": "sync"}}
            config = parse_config({"carriers": carriers, "notices": {"quiet_hours": ""}})   # any time of day
            async with gateway(db, carriers) as client:
                stopped = await post_mo(client, mo_body("tc", "BH TC"))
            first = await notify(CARD_EXPIRY, db, config, today=today, days=30, progress=False)
            sent_while_stopped = [mt["to"] for mt in sinks["aggregator"].received]
            async with gateway(db, carriers) as client:
                resumed = await post_mo(client, mo_body("dk", "BH DK"))
            second = await notify(CARD_EXPIRY, db, config, today=today, days=30, progress=False)
            return stopped, first, sent_while_stopped, resumed, second, [mt["to"] for mt in sinks["aggregator"].received]

    stopped, first, sent_while_stopped, resumed, second, sent = asyncio.run(run())
    assert stopped[0] == 200 and resumed[0] == 200
    assert sent_while_stopped == [other]
    assert (first.opted_out, sum(first.queued.values()), first.sent) == (1, 1, 1)
    assert "1 opted out (BH TC)" in str(first)
    assert (second.opted_out, sum(second.queued.values()), second.queued_before, second.sent) == (0, 1, 1, 1)
    assert sent == [other, OWNER]


# --- ratings and the satisfaction report ---------------------------------------------------------

def test_ratings_are_tied_to_the_last_answered_message_and_reported_with_the_targets(records_db):
    import subprocess
    import sys

    from test_gateway import SSN

    from smsgw.satisfaction import format_satisfaction, satisfaction
    from smsgw.store import open_reports

    async def run():
        async with gateway(records_db) as client:
            await post_mo(client, mo_body("r1", f"BH QT {SSN}"))
            await post_mo(client, mo_body("r2", "BH DG 4 Trả lời nhanh, cảm ơn"))        # of the QT
            await post_mo(client, mo_body("r2", "BH DG 4 Trả lời nhanh, cảm ơn"))        # a retry: not twice
            await post_mo(client, mo_body("r3", "BH DG 5", sender=STRANGER))             # nothing before: the service
            await post_mo(client, mo_body("r4", "BH QT 12345", sender=STRANGER))         # not understood: not rated
            await post_mo(client, mo_body("r5", "BH DG 2 chua ro", sender=STRANGER))     # still the service

    asyncio.run(run())
    month = datetime.now(VIETNAM).strftime("%Y-%m")
    reader = open_reports(records_db)
    try:
        report = satisfaction(reader, month)
    finally:
        reader.close()
    assert (report.count, round(report.mean, 2), round(report.index, 3)) == (3, 3.67, 0.667)
    assert dict(report.rated) == {"QT": 1, "service": 2}
    text = format_satisfaction(report)
    assert text.splitlines()[:3] == [f"satisfaction {month}: 3 ratings, mean 3.67 of 5",
                                     "  index (share of 4 and 5): 66.7%", "    5        1   33.3%"]
    assert "  agency targets: 80% by 2021, 85% by 2025, 90% by 2030 (none met)" in text
    assert "8491234****  4 (QT)  Trả lời nhanh, cảm ơn" in text and "8498765****  2 (service)  chua ro" in text
    assert OWNER not in text and STRANGER not in text
    printed = subprocess.run([sys.executable, "-m", "smsgw", "report", "satisfaction", "--month", month,
                              "--db", records_db], capture_output=True, text=True, timeout=60)
    assert printed.returncode == 0 and printed.stdout == text + "\n", printed.stderr
    bad = subprocess.run([sys.executable, "-m", "smsgw", "report", "satisfaction", "--month", "12/2026",
                          "--db", records_db], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and bad.stderr.startswith("smsgw: --month")


def test_the_ledger_charges_the_acknowledgment_only(records_db):
    """A question's acknowledgment is charged 1,000 VND; the FAQ's answer (3), the thanks for a
    rating and the confirmations of BH TC / BH DK (0) are free, each with its billing row."""
    from smsgw.ledger import totals
    from smsgw.store import open_reports

    async def run():
        async with gateway(records_db, faq=Faq.from_csv(FAQ)) as client:
            for n, text in enumerate(["BH HOI the bhyt ho gia dinh sap het han thi gia han o dau", "BH DG 5",
                                      "BH TC", "BH DK"]):
                assert (await post_mo(client, mo_body(f"b{n}", text)))[0] == 200

    asyncio.run(run())
    reader = open_reports(records_db)
    try:
        rows = totals(reader, datetime.now(VIETNAM).strftime("%Y-%m"))
    finally:
        reader.close()
    assert [(t.message_type, t.kind, t.rows, t.amount_vnd) for t in rows] == [
        (0, "charge", 3, 0), (1, "charge", 1, 1000), (3, "charge", 1, 0)]


def test_a_transcript_reply_may_leave_what_the_store_and_clock_decide_open():
    from smsgw.transcripts import matches

    expected = "BHXH da nhan cau hoi so Q{*}. Can bo se tra loi qua tin nhan {*}."
    assert matches(expected, "BHXH da nhan cau hoi so Q12. Can bo se tra loi qua tin nhan tu 08:00 ngay 02/12/2026.")
    assert not matches(expected, "BHXH da nhan cau hoi so R12. Can bo se tra loi qua tin nhan tu 08:00.")
    assert not matches(expected, "Thieu cau hoi.") and not matches(expected, None)
    assert matches("a.b", "a.b") and not matches("a.b", "axb")   # no {*}: the text itself, nothing else


def test_a_question_over_the_hourly_limit_gets_the_polite_reply_and_is_not_stored(records_db):
    """The protection's decision comes first, in the same transaction: a rate-limited HOI asks
    nothing of staff; another phone's HOI, screened too, is numbered; BH TC over the limit gets
    no reply but is recorded (the citizen's wish about notices stands)."""
    from aiohttp.test_utils import TestClient, TestServer
    from test_gateway import SECRET, SSN

    from smsgw.gateway import create_app

    config = parse_config({"carriers": {"generic": {"secret": SECRET, "mode": "sync"}},
                           "protection": {"lookups_per_hour": 1, "repeat_limit": 0}})

    async def run():
        app = create_app(config, db_path=records_db)
        async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
            await post_mo(client, mo_body("p1", f"BH QT {SSN}"))
            limited = await post_mo(client, mo_body("p2", "BH HOI toi co duoc huong luong huu khong"))
            other = await post_mo(client, mo_body("p3", "BH HOI toi co duoc huong luong huu khong", sender=STRANGER))
            stopped = await post_mo(client, mo_body("p4", "BH TC"))
            store = client.app[STORE]
            return limited, other, stopped, await store.questions(), await store.opted_out([OWNER])

    limited, other, stopped, questions, opted_out = asyncio.run(run())
    (reply,) = limited[1]["replies"]
    assert reply["message_type"] == 22 and "qua 1 tin nhan" in reply["text"]
    assert NUMBERED.search(other[1]["replies"][0]["text"])
    assert [q.sender for q in questions] == [STRANGER]
    assert stopped[1]["replies"] == [] and opted_out == {OWNER}   # over the limit again: silent, but it stands


def test_the_message_path_does_not_load_the_faq_library_unless_an_faq_is_given():
    """scikit-learn costs about a second of CPU to import: `smsgw parse`, `send` and `serve` without
    an FAQ never pay it."""
    import subprocess
    import sys

    loaded = subprocess.run([sys.executable, "-c", "import sys, smsgw.service, smsgw.gateway, smsgw.cli; "
                             "print('sklearn' in sys.modules)"], capture_output=True, text=True, timeout=60)
    assert loaded.stdout == "False\n", loaded.stderr


def test_sqlite_hands_an_mt_another_process_left_to_the_gateway_once(tmp_path):
    """An answer leased to the `questions answer` process is not the gateway's (pending, claim)
    until that process releases it or its lease runs out; then it is taken once."""
    import time

    from smsgw.billing import MessageType
    from smsgw.store import Effect, SqliteMessageStore
    from smsgw.wire import InboundMessage, OutboundMessage

    db = str(tmp_path / "records.db")

    async def run():
        store = await SqliteMessageStore.open(db)
        try:
            inbound = InboundMessage("generic", "q1", OWNER, "8079", "BH HOI ?", datetime.now(VIETNAM))

            def numbered(number):
                return [OutboundMessage(f"ack-{number}", "mo-q1", "q1", "generic", "8079", OWNER, number, "gsm7", 1,
                                        MessageType.CHARGED)]

            await store.store_mo(inbound, mo_id="mo-q1", mode="async", command="HOI", error=None, replies=[],
                                 now=time.time(), effect=Effect("question", text="?", numbered=numbered))
            own = await store.pending()

            def word(question):
                return OutboundMessage("answer-1", "", "", "generic", "8079", OWNER, "Tra loi", "gsm7", 1,
                                       MessageType.PUSH)

            answered = await store.answer_question("Q1", word, by="lan", now=time.time(), lease=60.0)
            leased = (await store.pending(), await store.claim())
            await store.release(["answer-1"])
            taken = [p.mt.id for p in await store.claim()]
            again = (await store.claim(), [p.mt.id for p in await store.pending()])
            return own, answered, leased, taken, again
        finally:
            await store.close()

    own, answered, leased, taken, again = asyncio.run(run())
    assert [p.mt.id for p in own] == ["ack-Q1"]
    assert answered.mt.id == "answer-1" and answered.question.number == "Q1"
    assert [p.mt.id for p in leased[0]] == ["ack-Q1"] and leased[1] == []   # the answering process's
    assert taken == ["answer-1"]
    assert again == ([], ["ack-Q1", "answer-1"])   # taken once; the gateway's own MTs are never claimed


def test_taking_the_question_as_typed_stays_linear_however_much_invisible_text_comes_first(monkeypatch):
    """A 64 KiB body of spaces and zero-width characters before (and inside) the command: the
    question is found with a few short normalisations, not one per character of the body."""
    from smsgw import language

    lengths: list[int] = []
    real = language.normalize

    def counted(text: str) -> str:
        lengths.append(len(text))
        return real(text)

    monkeypatch.setattr(language, "normalize", counted)
    text = "\u200b \u00a0" * 10_000 + "BH" + "\u200b" * 30_000 + " HỎI  Thẻ hết hạn?"
    assert language.parse(text) == HOI("Thẻ hết hạn?")
    long_ones = [n for n in lengths if n > 100]
    assert long_ones == [len(text)] and len(lengths) < 20   # the message once; then short prefixes


async def asked(store, text: str = "?") -> str:
    """A question stored as the gateway stores a BH HOI from OWNER; its number."""
    import time

    from smsgw.billing import MessageType
    from smsgw.store import Effect
    from smsgw.wire import InboundMessage, OutboundMessage

    inbound = InboundMessage("generic", "q1", OWNER, "8079", f"BH HOI {text}", datetime.now(VIETNAM))
    stored = await store.store_mo(
        inbound, mo_id="mo-q1", mode="sync", command="HOI", error=None, replies=[], now=time.time(),
        effect=Effect("question", text=text, numbered=lambda number: [OutboundMessage(
            "ack", "mo-q1", "q1", "generic", "8079", OWNER, f"so {number}", "gsm7", 1, MessageType.CHARGED)]))
    return stored.replies[0].text.split()[-1]


def test_two_answers_at_once_are_one_answer_and_one_refusal(db):
    """Two staff members answering the same question at the same moment (two stores, as two
    `questions answer` processes): one MT stored, the other refused naming the first."""
    import time

    from smsgw.billing import MessageType
    from smsgw.store import open_messages
    from smsgw.wire import OutboundMessage

    async def run():
        asker = await open_messages(db)
        number = await asked(asker)
        stores = [await open_messages(db) for _ in range(2)]
        try:
            def word(by):
                return lambda question: OutboundMessage(f"answer-{by}", "", "", "generic", "8079", question.sender,
                                                        f"by {by}", "gsm7", 1, MessageType.PUSH)

            results = await asyncio.gather(*(store.answer_question(number, word(by), by=by, now=time.time(), lease=60)
                                             for store, by in zip(stores, ("lan", "minh"))))
            return number, results, await asker.questions()
        finally:
            for store in (*stores, asker):
                await store.close()

    number, results, questions = asyncio.run(run())
    sent = [result for result in results if result.mt is not None]
    refused = [result for result in results if result.mt is None]
    assert len(sent) == 1 and len(refused) == 1
    winner = sent[0].mt.text.removeprefix("by ")
    assert refused[0].question.answered_by == winner and refused[0].question.answered_at is not None
    assert [(q.number, q.answered_by, q.answer) for q in questions] == [(number, winner, f"by {winner}")]


@pytest.mark.parametrize("length, invited", [(40, True), (110, False), (150, True), (280, False)])
def test_the_answer_invites_a_rating_only_when_it_fits_in_the_same_sms_parts(length, invited):
    from smsgw.answers import QuestionReply
    from smsgw.gsm import measure
    from smsgw.replies import reply

    text = ("a" * (length - 1) + ".")
    without = reply(QuestionReply("Q12", text), unicode=False)
    answered = reply(QuestionReply("Q12", text, invite=True), unicode=False)
    assert answered.text.startswith(f"Tra loi cau hoi Q12: {text}") and answered.message_type == 3
    assert answered.text.endswith(" Danh gia: soan BH DG <1-5> gui 8079.") is invited
    assert answered.segments == without.segments == measure(without.text).segments


def test_config_check_shows_the_questions_table_in_force():
    from smsgw.config_check import effective_tables, render_toml

    config = parse_config({"questions": {"days": ["Mon", "sat"], "holidays": ["2027-01-01"]}})
    assert effective_tables(config)["questions"] == {"days": ["mon", "sat"], "hours": "08:00-17:00",
                                                     "holidays": ["2027-01-01"]}
    assert '[questions]\ndays = ["mon", "sat"]\nhours = "08:00-17:00"\nholidays = ["2027-01-01"]' in render_toml(config)


def test_staff_close_a_question_without_an_sms_and_it_cannot_be_answered_after(db):
    """`smsgw questions close`: the question leaves the open list, nothing is sent or billed, and
    a later answer or close is refused naming who closed it."""
    import subprocess
    import sys

    from smsgw.store import open_messages

    async def ask() -> str:
        store = await open_messages(db)
        try:
            return await asked(store, "Cảm ơn, tôi đã được giải đáp qua điện thoại")
        finally:
            await store.close()

    def smsgw(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "smsgw", "questions", *args, "--db", db],
                              capture_output=True, text=True, timeout=60)

    async def stored():
        store = await open_messages(db)
        try:
            return await store.questions(), await store.billing()
        finally:
            await store.close()

    number = asyncio.run(ask())
    closed = smsgw("close", number.lower(), "--by", "lan")
    assert closed.returncode == 0 and closed.stdout == f"{number} closed by lan, no SMS sent\n", closed.stderr
    again = smsgw("close", number, "--by", "minh")
    answered = smsgw("answer", number, "Da giai dap", "--by", "minh")
    refusal = rf"smsgw: {number} was closed already by lan at \d{{4}}-\d\d-\d\d \d\d:\d\d \(Vietnam time\)\n"
    assert again.returncode == 1 and re.fullmatch(refusal, again.stderr), again.stderr
    assert answered.returncode == 1 and re.fullmatch(refusal, answered.stderr), answered.stderr
    unknown = smsgw("close", "Q999999999")
    assert unknown.returncode == 1 and unknown.stderr.startswith("smsgw: no question Q999999999 in ")
    listed, opened = smsgw("list"), smsgw("list", "--open")
    assert re.search(rf"^{number}\t.*\tclosed by lan at [^\t]+, no SMS\t", listed.stdout, re.M), listed.stdout
    assert opened.stdout == "" and opened.stderr == "questions: 0 open\n"
    questions, billing = asyncio.run(stored())
    assert [(q.answered_by, q.answer) for q in questions] == [("lan", None)]
    assert [(row.kind, row.mt_id) for row in billing] == [("charge", "ack")]   # the acknowledgment only
