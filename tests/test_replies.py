"""Reply wording: contract substrings, GSM-7 default form, lengths, and the diacritic form."""

from __future__ import annotations

import re
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw import replies
from smsgw.answers import (
    CardAnswer, DossierAnswer, HelpAnswer, NotFoundAnswer, NotOwnerAnswer, QTAnswer, SyntaxAnswer,
    Totals,
)
from smsgw.commands import Month
from smsgw.gsm import fold, is_gsm7, measure
from smsgw.replies import MAX_SEGMENTS, render
from smsgw.syntax_replies import help_text, syntax_reply

SSN = "0110129425"
CARD = "HC4010110129425"
DOSSIER = "04486.G/2019/08708"

STATUS_WORDS = {
    "received": ("da tiep nhan", "đã tiếp nhận"),
    "processing": ("dang xu ly", "đang xử lý"),
    "needs_more": ("can bo sung", "cần bổ sung"),
    "approved": ("da duyet", "đã duyệt"),
    "rejected": ("tu choi", "từ chối"),
    "returned": ("da tra ket qua", "đã trả kết quả"),
}

ANSWERS = [
    HelpAnswer(),
    NotFoundAnswer("QT", SSN),
    NotFoundAnswer("THE", CARD),
    NotFoundAnswer("HS", DOSSIER),
    NotOwnerAnswer("QT"),
    NotOwnerAnswer("THE"),
    QTAnswer(SSN, None, None, Totals(148, 60), None),
    QTAnswer(SSN, Month(2016, 1), Month(2017, 12), Totals(18, 12), Totals(148, 60)),
    QTAnswer(SSN, Month(2016, 1), Month(2016, 1), Totals(0, 0), Totals(0, 0)),
    CardAnswer(CARD, date(2099, 12, 31), expired=False),
    CardAnswer(CARD, date(2023, 6, 30), expired=True),
    *[DossierAnswer(DOSSIER, status, date(2024, 3, 5)) for status in STATUS_WORDS],
]
SYNTAX_CASES = [
    ("empty", None), ("unknown_keyword", None), ("unknown_command", None),
    *[(error, command) for error in ("missing_argument", "bad_id", "trailing_input")
      for command in ("QT", "HS", "THE")],
    ("bad_period", "QT"), ("range_reversed", "QT"), ("trailing_input", "HELP"),
]
ALL_ANSWERS = ANSWERS + [SyntaxAnswer(error, command) for error, command in SYNTAX_CASES]


@pytest.mark.parametrize("answer", ALL_ANSWERS, ids=repr)
def test_default_form_is_folded_gsm7_within_limit(answer) -> None:
    text = render(answer)
    assert is_gsm7(text)
    assert fold(text) == text
    assert measure(text).encoding == "gsm7"
    assert measure(text).segments <= MAX_SEGMENTS


@pytest.mark.parametrize("answer", ALL_ANSWERS, ids=repr)
def test_unicode_form_folds_to_the_default_form(answer) -> None:
    text = render(answer, unicode=True)
    assert fold(text) == render(answer)
    assert measure(text).segments <= MAX_SEGMENTS


@pytest.mark.parametrize("answer", ANSWERS, ids=repr)
def test_current_answers_fit_one_sms_in_default_form(answer) -> None:
    assert measure(render(answer)).segments == 1


@pytest.mark.parametrize(("error", "command"), SYNTAX_CASES)
def test_syntax_reply_fits_one_sms_and_shows_an_example(error: str, command: str | None) -> None:
    text = syntax_reply(error, command)
    assert measure(text).encoding == "gsm7"
    assert measure(text).segments == 1
    assert "8079" in text
    assert re.search(r"BH (QT|THE|HS|HD) ", text + " ")
    assert render(SyntaxAnswer(error, command)) == text


@pytest.mark.parametrize(
    ("error", "command", "expected"),
    [
        ("bad_id", "QT", ["10", "12", "BH QT 0110129425"]),
        ("missing_argument", "QT", ["BH QT 0110129425"]),
        ("bad_id", "THE", ["15 ky tu", "2 chu cai", "1-5", "2 so tinh", "10 so", "BH THE HC4010110129425"]),
        ("missing_argument", "THE", ["BH THE HC4010110129425"]),
        ("bad_id", "HS", ["BH HS 04486.G/2019/08708"]),
        ("missing_argument", "HS", ["BH HS 04486.G/2019/08708"]),
        ("bad_period", "QT", ["2016", "012016", "1/2016", "01-2016", "1.2016", "2016-2017",
                              "BH QT 0110129425 012016 122017"]),
        ("range_reversed", "QT", ["BH QT 0110129425 012016 122017"]),
        ("trailing_input", "QT", ["BH QT 0110129425"]),
        ("trailing_input", "THE", ["BH THE HC4010110129425"]),
        ("trailing_input", "HS", ["BH HS 04486.G/2019/08708"]),
        ("trailing_input", "HELP", ["soan BH HD"]),
        ("unknown_command", None, ["BH QT", "BH THE", "BH HS"]),
    ],
)
def test_syntax_reply_tells_how_to_fix(error: str, command: str | None, expected: list[str]) -> None:
    text = syntax_reply(error, command)
    for fragment in expected:
        assert fragment in text


@pytest.mark.parametrize("error", ["empty", "unknown_keyword"])
def test_empty_and_unknown_keyword_get_the_help_text(error: str) -> None:
    assert syntax_reply(error, None) == help_text()
    assert syntax_reply(error, None, unicode=True) == help_text(unicode=True)


def test_help_text_covers_the_three_commands_in_one_sms() -> None:
    text = help_text()
    assert all(usage in text for usage in ("BH QT", "BH THE", "BH HS", "8079"))
    assert measure(text).segments == 1
    assert render(HelpAnswer()) == text
    assert measure(help_text(unicode=True)).encoding == "ucs2"


def test_syntax_reply_rejects_unknown_codes() -> None:
    with pytest.raises(ValueError):
        syntax_reply("no_such_error", "QT")
    with pytest.raises(ValueError):
        syntax_reply("bad_id", "XYZ")


def test_qt_whole_history() -> None:
    text = render(QTAnswer(SSN, None, None, Totals(148, 60), None))
    assert "BHXH: 12 nam 04 thang" in text
    assert "BHTN: 05 nam 00 thang" in text
    assert "Tong" not in text


def test_qt_period_first_then_whole_history() -> None:
    text = render(QTAnswer(SSN, Month(2016, 1), Month(2017, 12), Totals(18, 12), Totals(148, 60)))
    assert "01/2016-12/2017" in text
    period = text.index("BHXH: 01 nam 06 thang")
    assert text.index("BHTN: 01 nam 00 thang") > period
    total = text.index("Tong: BHXH: 12 nam 04 thang, BHTN: 05 nam 00 thang")
    assert total > period
    unicode = render(QTAnswer(SSN, Month(2016, 1), Month(2017, 12), Totals(18, 12), Totals(148, 60)),
                     unicode=True)
    assert "BHXH: 01 năm 06 tháng" in unicode


def test_qt_single_month_names_it_once() -> None:
    text = render(QTAnswer(SSN, Month(2016, 3), Month(2016, 3), Totals(1, 0), Totals(5, 0)))
    assert "03/2016:" in text
    assert "BHXH: 00 nam 01 thang" in text


def test_qt_without_coverage_is_an_answer() -> None:
    text = render(QTAnswer(SSN, None, None, Totals(0, 0), None))
    assert "BHXH: 00 nam 00 thang" in text and "BHTN: 00 nam 00 thang" in text


@settings(max_examples=200)
@given(
    st.tuples(st.integers(0, 999), st.integers(0, 999)),
    st.one_of(st.none(), st.tuples(st.integers(0, 999), st.integers(0, 999))),
    st.integers(1960 * 12, 2025 * 12 + 11),
    st.integers(0, 120),
    st.booleans(),
)
def test_qt_fields_are_two_digit_years_and_months(asked, whole, start, length, unicode) -> None:
    period = (Month.from_index(start), Month.from_index(start + length)) if whole else (None, None)
    answer = QTAnswer(SSN, *period, Totals(*asked), Totals(*whole) if whole else None)
    text = render(answer, unicode=unicode)
    year_word, month_word = ("năm", "tháng") if unicode else ("nam", "thang")
    fields = re.findall(rf"(BHXH|BHTN): (\d+) {year_word} (\d+) {month_word}", text)
    expected = [asked, whole] if whole else [asked]
    assert fields == [
        (scheme, f"{months // 12:02d}", f"{months % 12:02d}")
        for totals in expected for scheme, months in zip(("BHXH", "BHTN"), totals)
    ]
    assert measure(text).segments <= MAX_SEGMENTS
    if not unicode:
        assert measure(text).segments == 1


def test_card_valid_and_expired() -> None:
    valid = render(CardAnswer(CARD, date(2099, 12, 31), expired=False))
    assert CARD in valid and "den 31/12/2099" in valid and "het han" not in valid
    expired = render(CardAnswer(CARD, date(2023, 6, 30), expired=True))
    assert CARD in expired and "den 30/06/2023" in expired and "het han" in expired
    assert "hết hạn" in render(CardAnswer(CARD, date(2023, 6, 30), expired=True), unicode=True)


@pytest.mark.parametrize("status", list(STATUS_WORDS))
def test_dossier_status_words(status: str) -> None:
    answer = DossierAnswer(DOSSIER, status, date(2024, 3, 5))
    default, diacritic = STATUS_WORDS[status]
    assert DOSSIER in render(answer) and default in render(answer) and "05/03/2024" in render(answer)
    assert diacritic in render(answer, unicode=True)


def test_dossier_unknown_status_is_an_error() -> None:
    with pytest.raises(ValueError):
        render(DossierAnswer(DOSSIER, "lost", date(2024, 3, 5)))


@pytest.mark.parametrize(("command", "ident"), [("QT", SSN), ("THE", CARD), ("HS", DOSSIER)])
def test_not_found_names_the_id(command: str, ident: str) -> None:
    text = render(NotFoundAnswer(command, ident))
    assert "khong tim thay" in text.lower() and ident in text
    assert "không tìm thấy" in render(NotFoundAnswer(command, ident), unicode=True).lower()


@pytest.mark.parametrize("command", ["QT", "THE"])
def test_not_owner_gives_no_personal_figure(command: str) -> None:
    text = render(NotOwnerAnswer(command))
    assert "khong khop" in text
    assert "da dang ky" in text
    assert not re.search(r"\d", text)
    assert "không khớp" in render(NotOwnerAnswer(command), unicode=True)


def test_every_template_folds_to_gsm7() -> None:
    for template in replies.TEMPLATES:
        assert is_gsm7(fold(template)), template


def test_overlong_answer_is_shortened_at_a_word() -> None:
    long_id = " ".join(f"W{i:04d}" for i in range(400))
    full_words = set(f"W{i:04d}" for i in range(400)) | set(render(NotFoundAnswer("HS", "X")).split())
    text = render(NotFoundAnswer("HS", long_id))
    assert measure(text).segments == MAX_SEGMENTS
    assert text.endswith(" ...")
    assert all(word in full_words for word in text.removesuffix(" ...").split())


def test_values_outside_gsm7_are_replaced_in_default_form() -> None:
    text = render(NotFoundAnswer("HS", "ĐÀ-中"))
    assert is_gsm7(text) and "DA-?" in text
