"""The message language (CONTRACT §1): corpus, surface forms, error kinds, left-most rule."""

from __future__ import annotations

import json
import unicodedata
from datetime import date
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from smsgw.commands import HS, QT, THE, Help, IdKind, Month
from smsgw.gsm import measure
from smsgw.commands import COMMAND_NAMES, ERROR_CODES
from smsgw.language import ParseError, parse
from smsgw.normalize import normalize
from smsgw.service import parse_result
from smsgw.syntax_replies import syntax_reply_for

TODAY = date(2026, 11, 23)
CORPUS = Path(__file__).parent.parent / "fixtures" / "messages" / "corpus.jsonl"
ROWS = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_corpus_is_large_and_covers_every_outcome():
    assert len(ROWS) >= 300
    errors = {row["expect"].get("error") for row in ROWS if not row["expect"]["ok"]}
    assert errors == set(ERROR_CODES)
    commands = {row["expect"].get("command") for row in ROWS if row["expect"]["ok"]}
    assert commands == set(COMMAND_NAMES)


@pytest.mark.parametrize("row", ROWS, ids=[repr(r["text"])[:60] for r in ROWS])
def test_corpus_message_parses_as_expected(row):
    got = parse_result(row["text"], today=TODAY)
    reply = got.pop("reply", None)
    assert got == row["expect"]
    if not got["ok"]:
        assert reply and measure(reply).encoding == "gsm7" and measure(reply).segments == 1
    if "correction" in row:  # CONTRACT §1b: the reply ends with the whole corrected message
        assert reply.endswith(": " + row["correction"]), reply


def test_contract_examples():
    assert parse("BH QT 0110129425 2016 2017", today=TODAY) == QT(
        "0110129425", IdKind.SSN, Month(2016, 1), Month(2017, 12))
    assert parse("BH QT 12345 2018 2017", today=TODAY).error == "bad_id"
    assert parse("BH QT 0110129425 2018 2017 2019", today=TODAY).error == "range_reversed"
    assert parse("hc4010110129425") .error == "unknown_keyword"
    assert parse("BH THE hc4010110129425") == THE("HC4010110129425", IdKind.CARD)
    assert parse("HD abc").error == "trailing_input"


def test_a_single_bound_is_that_year_or_that_month_alone():
    assert parse("BH QT 0110129425 2016", today=TODAY) == QT("0110129425", IdKind.SSN, Month(2016, 1), Month(2016, 12))
    assert parse("BH QT 0110129425 022016", today=TODAY) == QT("0110129425", IdKind.SSN, Month(2016, 2), Month(2016, 2))


def test_year_bounds_follow_the_current_year():
    assert parse("BH QT 0110129425 2027", today=date(2027, 1, 1)).start == Month(2027, 1)
    assert parse("BH QT 0110129425 2027", today=TODAY).error == "bad_period"
    assert parse("BH QT 0110129425 1960", today=TODAY).start == Month(1960, 1)
    assert parse("BH QT 0110129425 1959", today=TODAY).error == "bad_period"


def test_the_recognised_command_travels_with_the_error():
    assert parse("BH THE 12345") == ParseError("bad_id", "THE", 7)
    assert parse("BH HS").command == "HS"
    assert parse("BH QT 0110129425 13/2016", today=TODAY).command == "QT"
    assert parse("BH XYZ").command is None
    assert parse("HELP me").command == "HELP"


@pytest.mark.parametrize("error", ERROR_CODES)
@pytest.mark.parametrize("command", [None, "QT", "HS", "THE", "HELP"])
def test_every_error_reply_is_gsm7_and_one_segment(error, command):
    reply = syntax_reply_for(ParseError(error, command))
    size = measure(reply)
    assert (size.encoding, size.segments) == ("gsm7", 1), reply
    assert "8079" in reply or "BH" in reply


def test_error_replies_show_the_syntax_of_what_was_tried():
    assert "HC4010110129425" in syntax_reply_for(parse("BH THE 12345"))
    assert "04486.G/2019/08708" in syntax_reply_for(parse("BH HS 1"))
    assert "0110129425" in syntax_reply_for(parse("BH QT 1"))
    period = syntax_reply_for(parse("BH QT 0110129425 13/2016", today=TODAY))
    assert "012016" in period


# --- hypothesis: tolerated surface forms parse back to the same command -----------------

SPACES = [" ", "\t", "\n", "\u00a0", "\u2002", "\u2009", "\u202f", "\u3000", "\r\n"]
ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"]
MARKS = ["\u0300", "\u0301", "\u0303", "\u0309", "\u0323"]
PUNCT = ".,!;:"

digits = st.text("0123456789", min_size=1, max_size=1)
ssn = st.text("0123456789", min_size=10, max_size=10)
personal_id = st.text("0123456789", min_size=12, max_size=12)
letters = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=1)


@st.composite
def card_codes(draw):
    return (draw(letters) + draw(letters) + draw(st.sampled_from("12345"))
            + draw(st.text("0123456789", min_size=12, max_size=12)))


@st.composite
def dossier_codes(draw):
    d = lambda n: draw(st.text("0123456789", min_size=n, max_size=n))  # noqa: E731
    return f"{d(5)}.{draw(letters)}/{d(4)}/{d(5)}"


@st.composite
def bound_text(draw, year, month):
    if month is None:
        return str(year)
    form = draw(st.sampled_from(["MMYYYY", "M/YYYY", "MM/YYYY", "M-YYYY", "MM-YYYY", "M.YYYY", "MM.YYYY"]))
    mm = f"{month:02d}" if form.startswith("MM") else str(month)
    sep = "" if form == "MMYYYY" else form[len(form.split("Y")[0]) - 1]
    return f"{mm}{sep}{year}"


@st.composite
def commands(draw):
    """(canonical command, list of words as a citizen would type them canonically)."""
    kind = draw(st.sampled_from(["QT", "HS", "THE", "HELP"]))
    if kind == "HELP":
        words = draw(st.sampled_from([["BH"], ["BH", "HD"], ["BH", "HELP"], ["HD"], ["HELP"], ["?"]]))
        return Help(), words
    if kind == "HS":
        code = draw(dossier_codes())
        return HS(code), ["BH", "HS", code]
    if kind == "THE":
        ident, id_kind = draw(st.one_of(
            card_codes().map(lambda c: (c, IdKind.CARD)),
            ssn.map(lambda s: (s, IdKind.SSN)),
            personal_id.map(lambda s: (s, IdKind.PERSONAL_ID)),
        ))
        return THE(ident, id_kind), ["BH", "THE", ident]
    person, id_kind = draw(st.one_of(ssn.map(lambda s: (s, IdKind.SSN)),
                                     personal_id.map(lambda s: (s, IdKind.PERSONAL_ID))))
    shape = draw(st.sampled_from(["none", "single", "range", "year_range"]))
    if shape == "none":
        return QT(person, id_kind), ["BH", "QT", person]
    months = st.one_of(st.none(), st.integers(1, 12))
    y1 = draw(st.integers(1960, TODAY.year))
    m1 = draw(months)
    if shape == "single":
        start = Month(y1, m1 or 1)
        end = Month(y1, m1 or 12)
        return QT(person, id_kind, start, end), ["BH", "QT", person, draw(bound_text(y1, m1))]
    y2 = draw(st.integers(y1, TODAY.year))
    if shape == "year_range":
        return QT(person, id_kind, Month(y1, 1), Month(y2, 12)), ["BH", "QT", person, f"{y1}-{y2}"]
    m2 = draw(months)
    if y1 == y2 and m1 and m2 and m1 > m2:
        m1, m2 = m2, m1  # y2 >= y1, so only this case could be reversed
    command = QT(person, id_kind, Month(y1, m1 or 1), Month(y2, m2 or 12))
    return command, ["BH", "QT", person, draw(bound_text(y1, m1)), draw(bound_text(y2, m2))]


@st.composite
def disguise(draw, words):
    """Render words in a random tolerated surface form."""
    out = []
    for i, word in enumerate(words):
        chars = []
        for ch in word:
            if ch.isalpha():
                ch = draw(st.sampled_from([ch, ch.lower()]))
                if i < 2 and ch.upper() in "BHQTSED" and draw(st.booleans()):
                    ch = unicodedata.normalize("NFC", ch + draw(st.sampled_from(MARKS)))
            if len(ch) == 1 and "!" <= ch <= "~" and draw(st.integers(0, 4)) == 0:
                ch = chr(ord(ch) + 0xFEE0)  # full-width form
            if draw(st.integers(0, 9)) == 0:
                ch += draw(st.sampled_from(ZERO_WIDTH))
            chars.append(ch)
        text = "".join(chars)
        # glue the keyword to the command and the command to its argument, sometimes
        glue = i in (1, 2) and words[0] == "BH" and draw(st.booleans())
        if i and not glue:
            text = "".join(draw(st.lists(st.sampled_from(SPACES), min_size=1, max_size=3))) + text
        out.append(text)
    message = "".join(out)
    if draw(st.booleans()):
        tail = draw(st.text(PUNCT + " ", min_size=1, max_size=4))
        message += tail
    return draw(st.sampled_from(["", " ", "\u200b"])) + message


@given(data=st.data())
@settings(max_examples=400)
def test_tolerated_surface_forms_parse_to_the_same_command(data):
    command, words = data.draw(commands())
    message = data.draw(disguise(words))
    assert parse(message, today=TODAY) == command, message


@given(st.text())
@settings(max_examples=500)
@example("\x00")
@example("BH QT 0110129425 \U0001F600")
@example("BH QT ٠١١٠١٢٩٤٢٥")  # Arabic-Indic digits are not digits of the language
def test_any_text_gives_a_command_or_one_of_our_errors(text):
    result = parse(text, today=TODAY)
    if isinstance(result, ParseError):
        assert result.error in ERROR_CODES
        assert measure(syntax_reply_for(result)).segments == 1
    else:
        assert isinstance(result, (Help, QT, HS, THE))


@given(st.text(alphabet=st.sampled_from(list("BHQTSEDLP?0123456789 ./-:!x")), max_size=40))
@settings(max_examples=500)
def test_near_miss_texts_never_escape_the_error_codes(text):
    result = parse(text, today=TODAY)
    assert not isinstance(result, ParseError) or result.error in ERROR_CODES


@given(st.text())
@settings(max_examples=300)
def test_normalisation_is_idempotent(text):
    once = normalize(text)
    assert normalize(once) == once
