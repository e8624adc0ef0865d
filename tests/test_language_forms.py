"""Messages written the way people write them (CONTRACT §1a): understood as the official form."""

from __future__ import annotations

import unicodedata
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.commands import HS, QT, THE, IdKind, Month
from smsgw.gsm import measure
from smsgw.language import ParseError, parse
from smsgw.service import parse_result
from smsgw.syntax_replies import syntax_reply_for

TODAY = date(2026, 11, 23)
NOW = Month(2026, 11)
SSN = "0110129425"


def same(loose: str, official: str) -> None:
    """`loose` gives exactly the JSON of `official` through `smsgw parse`."""
    got, want = parse_result(loose, today=TODAY), parse_result(official, today=TODAY)
    assert want["ok"], official
    assert got == want, loose


@pytest.mark.parametrize("loose, official", [
    ("BHXH QT 0110129425", "BH QT 0110129425"),
    ("bhxh the HC4010110129425", "BH THE HC4010110129425"),
    ("BHXHQT 0110129425", "BHQT 0110129425"),
    ("BHXH", "BH"),
    ("BHXH HD", "BH HD"),
    ("BH QT 0110129425 tu 2016 den 2017", "BH QT 0110129425 2016 2017"),
    ("BH QT 0110129425 từ 01/2016 đến 12/2017", "BH QT 0110129425 01/2016 12/2017"),
    ("BH QT 0110129425 2016 den 2017", "BH QT 0110129425 2016 2017"),
    ("BH QT 0110129425 tu 2016 2017", "BH QT 0110129425 2016 2017"),
    ("BH QT 0110129425 2016 tới 2017", "BH QT 0110129425 2016 2017"),
    ("BH QT 0110129425 tu thang 3/2020 den thang 5/2021", "BH QT 0110129425 3/2020 5/2021"),
    ("BH QT 0110129425 từ năm 2016 đến năm 2017", "BH QT 0110129425 2016 2017"),
    ("BH QT 0110129425 01/2016-12/2017", "BH QT 0110129425 01/2016 12/2017"),
    ("BH QT 0110129425 012016 - 122017", "BH QT 0110129425 012016 122017"),
    ("BH QT 0110129425 2016 - 2017", "BH QT 0110129425 2016 2017"),
    ("BH QT 0110129425 2016–2017", "BH QT 0110129425 2016 2017"),
    ("BH QT 0110129425 2016 — 2017", "BH QT 0110129425 2016 2017"),
    ("BH QT (0110129425)", "BH QT 0110129425"),
    ("BH THE [HC4010110129425]", "BH THE HC4010110129425"),
    ('BH QT "0110129425"', "BH QT 0110129425"),
    ("BH QT 0110129425 (2016 2017)", "BH QT 0110129425 2016 2017"),
    ("BH QT <0110129425>", "BH QT 0110129425"),
    ("BH QT “0110129425”", "BH QT 0110129425"),
    ("BH QT '0110129425", "BH QT 0110129425"),
    ("BH THE HC 4 01 0110129425", "BH THE HC4010110129425"),
    ("BH THE HC4 01 0110129425", "BH THE HC4010110129425"),
    ("BH QT 0110 129 425", "BH QT 0110129425"),
    ("BH QT 0110.129.425", "BH QT 0110129425"),
    ("BH THE 001 089 012 345", "BH THE 001089012345"),
    ("BH QT 0010 8901 2345", "BH QT 001089012345"),
    ("BH QT 0110 129 425 2016 2017", "BH QT 0110129425 2016 2017"),
    ("BH HS 04486.G / 2019 / 08708", "BH HS 04486.G/2019/08708"),
    ("BH HS 04486 .G/2019/08708", "BH HS 04486.G/2019/08708"),
])
def test_contract_1a_examples_are_the_official_form(loose, official):
    same(loose, official)


@pytest.mark.parametrize("text", [
    "BH QT 0110129425 tu 2016", "BH QT 0110129425 tu 2016 den nay", "BH QT 0110129425 2016 den nay",
    "BH QT 0110129425 từ 2016 đến hiện nay", "BH QT 0110129425 tu 2016 den bay gio",
])
def test_from_a_bound_to_the_current_month(text):
    assert parse(text, today=TODAY) == QT(SSN, IdKind.SSN, Month(2016, 1), NOW, until_now=True)
    assert parse_result(text, today=TODAY)["to"] == "2026-11"


def test_the_current_month_is_vietnam_time_by_default(monkeypatch):
    import smsgw.language as language

    monkeypatch.setattr(language, "vietnam_today", lambda: date(2027, 1, 1))
    assert parse("BH QT 0110129425 tu 3/2020 den hien nay").end == Month(2027, 1)


def test_up_to_a_bound_is_the_whole_history_up_to_it():
    assert parse("BH QT 0110129425 den 2016", today=TODAY) == QT(SSN, IdKind.SSN, None, Month(2016, 12))
    assert parse("BH QT 0110129425 đến 06/2016", today=TODAY) == QT(SSN, IdKind.SSN, None, Month(2016, 6))
    assert parse_result("BH QT 0110129425 den 2016", today=TODAY)["from"] is None
    assert parse("BH QT 0110129425 den nay", today=TODAY) == QT(SSN, IdKind.SSN)


@pytest.mark.parametrize("text", [
    "BH QT 0110129425 tu", "BH QT 0110129425 tu 2016 den", "BH QT 0110129425 den", "BH QT 0110129425 2016 -",
    "BH QT 0110129425 tu abc", "BH QT 0110129425 tu 12/2026", "BH QT 0110129425 12/2026 den nay",
    "BH QT 0110129425 tu 2027", "BH QT 0110129425 thang 3",
])
def test_a_range_word_without_a_bound_or_a_from_after_now_is_bad_period(text):
    assert parse(text, today=TODAY).error == "bad_period"


@pytest.mark.parametrize("text", [
    "BH QT 0110129425 tu 2018 den 2016", "BH QT 0110129425 2018 - 2016", "BH QT 0110129425 12/2017-01/2017",
])
def test_range_reversed_applies_to_every_form(text):
    assert parse(text, today=TODAY).error == "range_reversed"


@pytest.mark.parametrize("text, error", [
    ("BH QT 0110129425 tu 2016 den 2017", None), ("BH QT 0110129425 01/2016-12/2017", None),
    ("BH QT 0110129425 2016 den nay", None), ("BHXH QT 0110129425", None), ("BH THE HC 4 01 0110129425", None),
    ("BH QT (0110129425)", None), ("BH QT 0110 129 425", None), ("BH HS 04486.G / 2019 / 08708", None),
])
def test_the_issue_examples_are_understood(text, error):
    assert not isinstance(parse(text, today=TODAY), ParseError)


# --- nothing a person would read as an error is accepted -------------------------------

@pytest.mark.parametrize("text", [
    "BH QT 0110 129 42",            # 9 digits
    "BH QT 0110 1294 251",          # 11 digits
    "BH QT 0010 8901 2345 6",       # 13 digits
    "BH QT 001 089 012 345 6",      # 13 digits
    "BH QT 01101 29425",            # a group of 5 is never joined
    "BH QT 0 110 129 425",          # a group of 1
    "BH QT 0110  129 425X",         # junk glued to the last group
    "BH QT 0110-129-425",           # dashes do not separate groups
    "BH THE HC40 10110129425",      # not a printed grouping of a card
    "BH THE HC 4 010110129425",
    "BH THE H C4010110129425",
    "BH HS 04486 . G/2019/08708 9",
    "BH QT 0110129425 2016 2015-2016",  # YYYY-YYYY is never one of two bounds
    "BH QT 0110129425 tu tu 2016",
    "BH QT 0110129425 den 2016 den 2017",
    "BH QT 0110129425 2016 den nay 2017",
])
def test_no_false_accepts(text):
    assert isinstance(parse(text, today=TODAY), ParseError), text


@pytest.mark.parametrize("text", ["BH QT 7936 4918 63 20", "BH QT 0110 129 425 12", "BH THE 79 36 49 18 63 20"])
def test_digit_groups_that_read_two_ways_are_bad_id_asking_for_the_number_without_spaces(text):
    error = parse(text, today=TODAY)
    assert error.error == "bad_id"
    reply = syntax_reply_for(error)
    assert "khong dau cach" in reply and measure(reply).segments == 1


def test_a_group_of_five_or_more_is_the_number_and_a_bad_bound_as_before():
    assert parse("BH QT 0110129425 12", today=TODAY).error == "bad_period"


# --- hypothesis: random valid commands in random §1a styles parse back to the same command ---

digits = lambda n: st.text("0123456789", min_size=n, max_size=n)  # noqa: E731
letters = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=2)
FROM_WORDS = ["tu", "từ", "TU", "Từ"]
UNTIL_WORDS = ["den", "đến", "toi", "tới", "DEN", "ĐẾN"]
DASHES = ["-", " - ", "–", " — ", "- ", " -"]
NOW_WORDS = ["nay", "hien nay", "hiện nay", "bay gio", "bây giờ"]
BRACKETS = [("(", ")"), ("[", "]"), ('"', '"'), ("<", ">"), ("“", "”"), ("'", "'"), ("(", ""), ("", ")")]


@st.composite
def groups(draw, number: str) -> str:
    """`number` in printed groups of 2-4 digits; a 12-digit one never passes through 10 digits."""
    while True:
        sizes, total = [], 0
        while total < len(number):
            size = draw(st.integers(2, 4))
            sizes.append(size)
            total += size
        sums = [sum(sizes[:i + 1]) for i in range(len(sizes))]
        if total == len(number) and len(sizes) > 1 and (len(number) == 10 or 10 not in sums):
            break
    sep = draw(st.sampled_from([" ", "."]))
    parts, at = [], 0
    for size in sizes:
        parts.append(number[at:at + size])
        at += size
    return sep.join(parts)


@st.composite
def person(draw):
    number = draw(st.one_of(digits(10), digits(12)))
    kind = IdKind.SSN if len(number) == 10 else IdKind.PERSONAL_ID
    written = draw(st.one_of(st.just(number), groups(number)))
    return number, kind, written


@st.composite
def bound(draw, year: int, month: int | None) -> str:
    if month is None:
        return draw(st.sampled_from(["", "nam ", "năm "])) + str(year)
    form = draw(st.sampled_from(["{mm}{y}", "{m}/{y}", "{mm}/{y}", "{m}-{y}", "{mm}-{y}", "{m}.{y}", "{mm}.{y}",
                                 "thang {m}/{y}", "tháng {mm}/{y}", "thang {m} nam {y}"]))
    return form.format(m=month, mm=f"{month:02d}", y=year)


def bracketed(draw, text: str) -> str:
    if draw(st.integers(0, 3)):
        return text
    left, right = draw(st.sampled_from(BRACKETS))
    return left + text + right


@st.composite
def loose_commands(draw):
    """(command, message written in random §1a styles)."""
    keyword = draw(st.sampled_from(["BH", "bh", "BHXH", "bhxh", "Bhxh"]))
    kind = draw(st.sampled_from(["QT", "THE", "HS"]))
    if kind == "HS":
        code = f"{draw(digits(5))}.{draw(letters)[0]}/{draw(digits(4))}/{draw(digits(5))}"
        written = code
        for sep in (".", "/"):
            written = written.replace(sep, draw(st.sampled_from([sep, f" {sep}", f"{sep} ", f" {sep} "])), 1)
        written = written[::-1].replace("/", draw(st.sampled_from(["/", " /", "/ ", " / "]))[::-1], 1)[::-1]
        return HS(code), f"{keyword} HS {bracketed(draw, written)}"
    if kind == "THE":
        if draw(st.booleans()):
            group, level, province, ssn = draw(letters), draw(st.sampled_from("12345")), draw(digits(2)), draw(digits(10))
            card = f"{group}{level}{province}{ssn}"
            written = draw(st.sampled_from([card, f"{group} {level} {province} {ssn}", f"{group}{level} {province} {ssn}"]))
            return THE(card, IdKind.CARD), f"{keyword} THE {bracketed(draw, written)}"
        number, id_kind, written = draw(person())
        return THE(number, id_kind), f"{keyword} THE {bracketed(draw, written)}"
    number, id_kind, written = draw(person())
    head = f"{keyword} QT {bracketed(draw, written)}"
    shape = draw(st.sampled_from(["range", "since", "until", "whole"]))
    months = st.one_of(st.none(), st.integers(1, 12))
    y1, m1 = draw(st.integers(1960, TODAY.year)), draw(months)
    if shape == "whole":
        return QT(number, id_kind), f"{head} {draw(st.sampled_from(UNTIL_WORDS))} {draw(st.sampled_from(NOW_WORDS))}"
    if shape == "until":
        end = Month(y1, m1 or 12)
        return QT(number, id_kind, None, end), f"{head} {draw(st.sampled_from(UNTIL_WORDS))} {draw(bound(y1, m1))}"
    if shape == "since":
        if (y1, m1 or 1) > (NOW.year, NOW.month):
            m1 = NOW.month
        command = QT(number, id_kind, Month(y1, m1 or 1), NOW, until_now=True)
        first = draw(bound(y1, m1))
        form = draw(st.sampled_from(["{f} {b}", "{f} {b} {u} {n}", "{b} {u} {n}"]))
        return command, f"{head} " + form.format(
            f=draw(st.sampled_from(FROM_WORDS)), b=first, u=draw(st.sampled_from(UNTIL_WORDS)),
            n=draw(st.sampled_from(NOW_WORDS)))
    y2, m2 = draw(st.integers(y1, TODAY.year)), draw(months)
    if y1 == y2 and m1 and m2 and m1 > m2:
        m1, m2 = m2, m1
    command = QT(number, id_kind, Month(y1, m1 or 1), Month(y2, m2 or 12))
    first, second = draw(bound(y1, m1)), draw(bound(y2, m2))
    between = draw(st.one_of(st.sampled_from(UNTIL_WORDS).map(lambda w: f" {w} "), st.sampled_from(DASHES),
                             st.just(" ")))
    if between.strip() in ("-", "–", "—") and (first[:1].isalpha() or second[:1].isalpha()):
        between = " - "
    start = draw(st.sampled_from(["", *(f"{w} " for w in FROM_WORDS)]))
    period = f"{start}{first}{between}{second}"
    if draw(st.integers(0, 4)) == 0:
        period = f"({period})"
    return command, f"{head} {period}"


def diacritics_and_case(draw, text: str) -> str:
    if draw(st.booleans()):
        text = text.lower() if draw(st.booleans()) else text.upper()
    return unicodedata.normalize("NFC" if draw(st.booleans()) else "NFD", text)


@given(data=st.data())
@settings(max_examples=600)
def test_random_commands_in_random_1a_styles_parse_to_the_same_command(data):
    command, message = data.draw(loose_commands())
    message = diacritics_and_case(data.draw, message)
    assert parse(message, today=TODAY) == command, message
