"""One message in, one reply out, over a real SQLite store: billing outcome and policy."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path

import pytest

from smsgw.billing import MessageType
from smsgw.config import parse_config
from smsgw.importer import import_directory
from smsgw.service import Service
from smsgw.store import SqliteStore

RECORDS = Path(__file__).resolve().parent.parent / "fixtures" / "records"
OWNER = "84912345678"      # registered phone of 0110129425
STRANGER = "84987654321"   # registered phone of another person


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("svc") / "records.db")
    asyncio.run(import_directory(str(RECORDS), path))
    return path


def handle(db: str, text: str, sender: str = OWNER, config: dict | None = None, today=date(2026, 11, 23)):
    async def run():
        store = await SqliteStore.open(db)
        try:
            return await Service(store, parse_config(config or {}), today=lambda: today).handle(text, sender)
        finally:
            await store.close()
    return asyncio.run(run())


@pytest.mark.parametrize("text, sender, message_type", [
    ("BH QT 0110129425", OWNER, MessageType.CHARGED),
    ("BH QT 4801234568", "84362345678", MessageType.CHARGED),     # no coverage is an answer too
    ("BH THE HC4010110129425", OWNER, MessageType.CHARGED),
    ("BH THE DN4010110129425", OWNER, MessageType.CHARGED),      # expired is an answer
    ("BH HS 04486.G/2019/08708", STRANGER, MessageType.CHARGED),  # HS answers anyone with the code
    ("BH", OWNER, MessageType.FREE),
    ("?", STRANGER, MessageType.FREE),
    ("BH QT 12345", OWNER, MessageType.REFUND_SYNTAX),
    ("XS MB", OWNER, MessageType.REFUND_SYNTAX),                  # unknown keyword too
    ("", OWNER, MessageType.REFUND_SYNTAX),
    ("BH QT 0199999999", OWNER, MessageType.REFUND_CONTENT),      # nothing found
    ("BH HS 99999.Z/2020/99999", OWNER, MessageType.REFUND_CONTENT),
    ("BH QT 0110129425", STRANGER, MessageType.REFUND_CONTENT),  # not the owner's phone
    ("BH THE 3101234567", OWNER, MessageType.REFUND_CONTENT),    # no phone on file
])
def test_billing_outcome(db, text, sender, message_type):
    assert handle(db, text, sender).reply.message_type is message_type


def test_not_the_owner_gets_no_personal_figure(db):
    reply = handle(db, "BH QT 0110129425 2016 2017", STRANGER).reply.text
    assert "khong khop" in reply
    assert not any(ch.isdigit() for ch in reply)


def test_owner_only_is_set_per_command(db):
    open_qt = {"policy": {"owner_only": ["THE"]}}
    assert handle(db, "BH QT 0110129425", STRANGER, open_qt).reply.message_type is MessageType.CHARGED
    closed_hs = {"policy": {"owner_only": ["QT", "THE", "HS"]}}
    outcome = handle(db, "BH HS 04486.G/2019/08708", STRANGER, closed_hs)
    assert outcome.reply.message_type is MessageType.REFUND_CONTENT
    assert handle(db, "BH HS 04486.G/2019/08708", OWNER, closed_hs).reply.message_type is MessageType.CHARGED


def test_card_expiry_is_judged_on_the_day(db):
    # DN4797910234567 is valid to 2020-12-31: valid that day, expired the next.
    assert "het han" not in handle(db, "BH THE DN4797910234567", STRANGER, today=date(2020, 12, 31)).reply.text
    assert "het han" in handle(db, "BH THE DN4797910234567", STRANGER, today=date(2021, 1, 1)).reply.text


def test_outcome_names_command_and_error(db):
    outcome = handle(db, "BH THE 12")
    assert (outcome.command, outcome.error) == ("THE", "bad_id")
    outcome = handle(db, "bh thẻ hc4010110129425")
    assert (outcome.command, outcome.error) == ("THE", None)


def test_unicode_mode_counts_ucs2_segments(db):
    outcome = handle(db, "BH THE DN4010110129425", config={"gateway": {"unicode": True}})
    assert outcome.reply.encoding == "ucs2" and "hết hạn" in outcome.reply.text
    assert outcome.reply.segments == (1 if len(outcome.reply.text) <= 70 else -(-len(outcome.reply.text) // 67))


def test_the_faq_stored_by_faq_import_answers_a_question_at_once(tmp_path):
    """`smsgw faq import` then the gateway's service (open_service, as serve and send open it):
    a question an entry answers gets the acknowledgment and that answer as a free push; without
    an import, the same question only gets the acknowledgment (it goes to staff)."""
    from smsgw.faq_store import import_faq
    from smsgw.service import open_service

    question = "BH HOI gia han the bhyt ho gia dinh o dau vay"
    config = parse_config({"questions": {"holidays": []}})

    async def ask(path: str):
        async with open_service(path, config) as service:
            return await service.handle(question, OWNER)

    async def run():
        bare = str(tmp_path / "bare.db")
        await import_directory(str(RECORDS), bare)
        without = await ask(bare)
        await import_faq(Path(__file__).resolve().parent.parent / "fixtures" / "faq" / "faq.csv", bare)
        return without, await ask(bare)

    without, with_faq = asyncio.run(run())
    assert [r.message_type for r in without.numbered("Q7")] == [MessageType.CHARGED]
    replies = with_faq.numbered("Q7")
    assert [r.message_type for r in replies] == [MessageType.CHARGED, MessageType.PUSH]
    assert "Q7" in replies[0].text and "VssID" in replies[1].text
