"""SMS encoding and segment counting, at the boundaries and against a naive reference encoder."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.gsm import fold, is_gsm7, measure, split

# The reference alphabet is written out again here, from the GSM 03.38 table, on purpose.
REF_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
REF_EXTENSION = "\f^{}\\[~]|€"
ESC = "<esc>"


def reference_cells(text: str) -> tuple[str, list[list[str]]]:
    """Each character as the list of cells (septets or UTF-16 units) it is sent as."""
    if all(char in REF_BASIC or char in REF_EXTENSION for char in text):
        return "gsm7", [[char] if char in REF_BASIC else [ESC, char] for char in text]
    cells = []
    for char in text:
        data = char.encode("utf-16-be", "surrogatepass")
        cells.append([data[i:i + 2].hex() for i in range(0, len(data), 2)])
    return "ucs2", cells


def reference_parts(text: str) -> list[int]:
    """How many characters each SMS part holds: fill a part until the next character won't fit."""
    encoding, cells = reference_cells(text)
    single, part = (160, 153) if encoding == "gsm7" else (70, 67)
    if sum(len(c) for c in cells) <= single:
        return [len(text)]
    parts: list[list[list[str]]] = [[]]
    for char_cells in cells:
        if sum(len(c) for c in parts[-1]) + len(char_cells) > part:
            parts.append([])
        parts[-1].append(char_cells)
    return [len(chars) for chars in parts]


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("", "gsm7", 0, 1),
        ("a" * 160, "gsm7", 160, 1),
        ("a" * 161, "gsm7", 161, 2),
        ("a" * 306, "gsm7", 306, 2),
        ("a" * 307, "gsm7", 307, 3),
        ("€" * 80, "gsm7", 160, 1),
        ("€" * 81, "gsm7", 162, 2),
        ("a" * 159 + "€", "gsm7", 161, 2),
        ("a" * 158 + "€", "gsm7", 160, 1),
        ("ă" * 70, "ucs2", 70, 1),
        ("ă" * 71, "ucs2", 71, 2),
        ("ă" * 134, "ucs2", 134, 2),
        ("ă" * 135, "ucs2", 135, 3),
        ("😀" * 35, "ucs2", 70, 1),
        ("😀" * 36, "ucs2", 72, 2),
        ("a" * 160 + "ă", "ucs2", 161, 3),
    ],
)
def test_measure_at_the_boundaries(text: str, encoding: str, units: int, segments: int) -> None:
    result = measure(text)
    assert (result.encoding, result.units, result.segments) == (encoding, units, segments)


@pytest.mark.parametrize(
    ("pair_at", "part_septets"),
    [
        (152, [153, 10]),   # the pair takes septets 152-153: the end of part one
        (153, [152, 11]),   # it would straddle parts one and two: it moves to part two
        (154, [153, 10]),   # it starts part two
    ],
)
def test_escape_pair_is_never_split_across_parts(pair_at: int, part_septets: list[int]) -> None:
    text = "a" * (pair_at - 1) + "€" + "a" * (162 - pair_at)
    parts = split(text)
    assert [measure(part).units for part in parts] == part_septets
    assert "".join(parts) == text
    assert measure(text).segments == 2


def test_escape_pair_straddling_a_later_part_boundary_moves_too() -> None:
    text = "a" * 305 + "~" + "a" * 10
    assert [measure(part).units for part in split(text)] == [153, 152, 12]
    assert measure(text).segments == 3


def test_escape_pair_at_the_single_sms_limit() -> None:
    assert measure("a" * 158 + "[").segments == 1     # pair at septets 159-160
    assert measure("a" * 159 + "[").segments == 2     # pair at septets 160-161: 161 septets
    assert split("a" * 159 + "[") == ["a" * 153, "a" * 6 + "["]


def test_surrogate_pair_is_never_split_across_parts() -> None:
    text = "ă" * 66 + "😀" + "ă" * 10
    parts = split(text)
    assert parts[0] == "ă" * 66
    assert parts[1].startswith("😀")
    assert measure(text).segments == 2


def test_ucs2_parts_hold_67_units() -> None:
    parts = split("ă" * 135)
    assert [len(part) for part in parts] == [67, 67, 1]


def test_empty_text_is_one_empty_part() -> None:
    assert split("") == [""]


def test_gsm7_alphabet_membership() -> None:
    assert is_gsm7("Hello @£$ ¡¿ ÄÖÑÜ äöñüà ΔΦΓΛΩΠΨΣΘΞ \n\r^{}\\[~]|€\f")
    assert not is_gsm7("ă")
    assert not is_gsm7("\x1b")       # the escape septet is not a character of the text
    assert not is_gsm7("ç")          # only the capital Ç is in the table
    assert not is_gsm7("`")


def test_fold_removes_vietnamese_diacritics() -> None:
    assert fold("Thẻ BHYT đã hết hạn, không tìm thấy, Ðà Nẵng, ĐƯỜNG") == (
        "The BHYT da het han, khong tim thay, Da Nang, DUONG"
    )
    assert fold("Tie\u0302\u0301ng") == "Tieng"  # decomposed input too


def test_fold_keeps_characters_without_diacritics() -> None:
    text = "€[]{}|~^ 한국어 हिन्दी 中文 😀 ø"
    assert fold(text) == text


gsm_text = st.text(alphabet=st.sampled_from(REF_BASIC + REF_EXTENSION), max_size=700)
# Long texts where escape pairs and surrogate pairs often land on a part boundary.
long_gsm_text = st.text(alphabet=st.sampled_from("a€[" + REF_BASIC[:20]), min_size=150, max_size=480)
long_ucs2_text = st.text(alphabet=st.sampled_from("ăa😀€𝄞"), min_size=60, max_size=220)
any_text = st.text(max_size=300)
mixed = st.lists(st.one_of(gsm_text, any_text), max_size=4).map("".join)


@st.composite
def near_a_limit(draw: st.DrawFn) -> str:
    """Text whose length in units is within 2 of a one-SMS or a part limit."""
    alphabet, limits = draw(st.sampled_from([("a€[", (160, 306, 459)), ("ăa😀", (70, 134, 201))]))
    target = draw(st.sampled_from(limits)) + draw(st.integers(-2, 2))
    text = ""
    while sum(len(c) for c in reference_cells(text)[1]) < target:
        text += draw(st.sampled_from(alphabet))
    return text


texts = st.one_of(gsm_text, long_gsm_text, long_ucs2_text, near_a_limit(), any_text, mixed)


@settings(max_examples=300)
@given(texts)
def test_measure_and_split_match_reference_encoder(text: str) -> None:
    encoding, cells = reference_cells(text)
    result = measure(text)
    assert result.encoding == encoding
    assert result.units == sum(len(c) for c in cells)
    expected_parts = reference_parts(text)
    assert result.segments == len(expected_parts)
    parts = split(text)
    assert [len(part) for part in parts] == expected_parts
    assert "".join(parts) == text
