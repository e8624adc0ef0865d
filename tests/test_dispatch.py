"""Dispatcher decisions: month arithmetic, owner policy, billing outcome."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.answers import (
    CardAnswer, DossierAnswer, HelpAnswer, NotFoundAnswer, NotOwnerAnswer, QTAnswer, SyntaxAnswer,
)
from smsgw.billing import Billing, MessageType
from smsgw.commands import Month
from smsgw.config import parse_config
from smsgw.dispatch import Dispatcher, covered_months, participation
from smsgw.language import parse
from smsgw.importer import import_directory
from smsgw.service import Service
from smsgw.store import Period, SqliteStore

spans = st.lists(
    st.tuples(st.integers(0, 240), st.integers(0, 60)).map(lambda t: (t[0], t[0] + t[1])),
    max_size=12,
)
bound = st.one_of(st.none(), st.integers(-5, 320))


@given(spans, bound, bound)
@settings(max_examples=500)
def test_covered_months_equals_brute_force_set_of_months(spans, start, end):
    months = {m for first, last in spans for m in range(first, last + 1)}
    if start is not None:
        months = {m for m in months if m >= start}
    if end is not None:
        months = {m for m in months if m <= end}
    assert covered_months(spans, start, end) == len(months)


def test_concurrent_jobs_count_once_and_gaps_do_not_count():
    jobs = [
        Period("0110129425", "BHXH", "A", Month(2010, 1), Month(2012, 12)),
        Period("0110129425", "BHXH", "B", Month(2012, 7), Month(2013, 6)),   # overlaps A
        Period("0110129425", "BHXH", "C", Month(2015, 1), Month(2015, 12)),  # after a gap
        Period("0110129425", "BHTN", "A", Month(2011, 1), Month(2011, 12)),
    ]
    whole = participation(jobs, None, None)
    assert (whole.bhxh_months, whole.bhtn_months) == (42 + 12, 12)
    within = participation(jobs, Month(2012, 1), Month(2015, 3))
    assert (within.bhxh_months, within.bhtn_months) == (18 + 3, 0)


# --- owner policy: no existence oracle ------------------------------------------------------
# Under `owner_only`, what a phone that is not the owner gets must not depend on whether the
# record exists: otherwise anyone can probe which BHXH numbers, personal ids and cards exist.

RECORDS = Path(__file__).resolve().parent.parent / "fixtures" / "records"
STRANGER = "84987654321"   # registered to another person of the reference records
OWNER = "84912345678"      # registered to 0110129425


@pytest.fixture(scope="module")
def records_db(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("owner") / "records.db")
    asyncio.run(import_directory(str(RECORDS), path))
    return path


def _replies(db: str, texts: list[str], sender: str, owner_only: list[str]) -> list[tuple[str, int]]:
    async def run():
        store = await SqliteStore.open(db)
        try:
            service = Service(store, parse_config({"policy": {"owner_only": owner_only}}),
                              today=lambda: date(2026, 11, 23))
            return [((o := await service.handle(text, sender)).reply.text, int(o.reply.message_type))
                    for text in texts]
        finally:
            await store.close()
    return asyncio.run(run())


@pytest.mark.parametrize("existing, unknown", [
    ("BH QT 0110129425", "BH QT 0199999999"),                      # BHXH number
    ("BH QT 001090012345", "BH QT 099999999999"),                  # personal id
    ("BH QT 3101234567 2016", "BH QT 0199999998 2016"),            # a person without a phone
    ("BH THE HC4010110129425", "BH THE HC4019999999999"),          # card
    ("BH THE 0110129425", "BH THE 0199999999"),                    # card by person
])
def test_a_stranger_cannot_tell_an_existing_record_from_an_unknown_one(records_db, existing, unknown):
    (known, _), (missing, _) = pairs = _replies(records_db, [existing, unknown], STRANGER, ["QT", "THE"])
    assert pairs[0] == pairs[1]
    assert pairs[0][1] == 22            # refunded for content, both
    assert "khong khop" in known and "khong tim thay" in known.lower()
    assert not any(ch.isdigit() for ch in known)


def test_hs_under_owner_only_is_covered_too(records_db):
    texts = ["BH HS 04486.G/2019/08708", "BH HS 99999.Z/2020/99999"]
    closed = _replies(records_db, texts, STRANGER, ["QT", "THE", "HS"])
    assert closed[0] == closed[1] and closed[0][1] == 22
    open_ = _replies(records_db, texts, STRANGER, ["QT", "THE"])   # HS open: anyone holding the code
    assert open_[0][1] == 1 and open_[1][0].startswith("Khong tim thay ho so 99999.Z/2020/99999")


def test_open_commands_still_say_not_found_with_the_id(records_db):
    [(text, message_type)] = _replies(records_db, ["BH QT 0199999999"], STRANGER, ["THE"])
    assert message_type == 22 and "0199999999" in text and "khong khop" not in text


def test_the_owner_still_gets_the_answer(records_db):
    [(text, message_type)] = _replies(records_db, ["BH THE HC4010110129425"], OWNER, ["QT", "THE"])
    assert message_type == 1 and "31/12/2099" in text


# --- billing outcome: what each answer costs the citizen (CONTRACT: message_type, 1,000 VND or 0) ------

TODAY = date(2026, 11, 23)
CARDLESS = "84362345678"   # registered to 4801234568, who has no card
EXPIRED = "84987654321"    # registered to 7910234567, whose only card ran out in 2020


def _answer(db: str, text: str, sender: str, owner_only: frozenset[str] = frozenset({"QT", "THE"})):
    async def run():
        store = await SqliteStore.open(db)
        try:
            return await Dispatcher(store, owner_only).answer(parse(text, today=TODAY), sender, TODAY)
        finally:
            await store.close()
    return asyncio.run(run())


@pytest.mark.parametrize("text, sender, kind, message_type", [
    ("BH", STRANGER, HelpAnswer, MessageType.FREE),                                # help is free
    ("BH HD", STRANGER, HelpAnswer, MessageType.FREE),
    ("", STRANGER, SyntaxAnswer, MessageType.REFUND_SYNTAX),                       # every parse error: refunded
    ("XYZ 123", STRANGER, SyntaxAnswer, MessageType.REFUND_SYNTAX),
    ("BH QT 123", STRANGER, SyntaxAnswer, MessageType.REFUND_SYNTAX),
    ("BH QT 0110129425 2017 2016", STRANGER, SyntaxAnswer, MessageType.REFUND_SYNTAX),
    ("BH QT 0110129425", OWNER, QTAnswer, MessageType.CHARGED),                    # an answer: charged
    ("BH QT 001090012345 2016 2017", OWNER, QTAnswer, MessageType.CHARGED),
    ("BH THE HC4010110129425", OWNER, CardAnswer, MessageType.CHARGED),
    ("BH THE 7910234567", EXPIRED, CardAnswer, MessageType.CHARGED),               # an expired card is an answer
    ("BH HS 04486.G/2019/08708", STRANGER, DossierAnswer, MessageType.CHARGED),
    ("BH HS 99999.Z/2020/99999", STRANGER, NotFoundAnswer, MessageType.REFUND_CONTENT),   # nothing found
    ("BH THE 4801234568", CARDLESS, NotFoundAnswer, MessageType.REFUND_CONTENT),   # the owner, but no card
    ("BH QT 0110129425", STRANGER, NotOwnerAnswer, MessageType.REFUND_CONTENT),    # not the owner's phone
    ("BH QT 0199999999", STRANGER, NotOwnerAnswer, MessageType.REFUND_CONTENT),
])
def test_each_outcome_carries_its_billing(records_db, text, sender, kind, message_type):
    answer = _answer(records_db, text, sender)
    assert type(answer) is kind
    assert answer.message_type is message_type
    assert Billing(answer.message_type).amount_vnd == (1_000 if message_type is MessageType.CHARGED else 0)


def test_an_expired_card_is_answered_as_expired_and_a_valid_one_not(records_db):
    assert _answer(records_db, "BH THE 7910234567", EXPIRED).expired
    assert not _answer(records_db, "BH THE HC4010110129425", OWNER).expired


def test_the_billing_outcome_reaches_the_reply_unchanged(records_db):
    """The service carries the dispatcher's message_type to the reply the carrier bills by."""
    texts = ["BH", "BH QT 123", "BH QT 0110129425", "BH QT 0199999999"]
    got = [message_type for _, message_type in _replies(records_db, texts, OWNER, ["THE"])]
    assert got == [0, 21, 1, 22]
