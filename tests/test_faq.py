"""The FAQ matcher (smsgw/faq.py): import checks, folding, the shipped data against its targets."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsgw.faq import Faq, FaqImportError, evaluate, normalize, read_labelled, split_of

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "faq"
HEADER = "id,question,answer\n"
GOOD_ROW = 'mat-the,Mất thẻ BHYT thì làm thế nào?,"Nộp tờ khai TK1-TS tại cơ quan BHXH."\n'


@pytest.fixture(scope="module")
def faq() -> Faq:
    return Faq.from_csv(FIXTURES / "faq.csv")


@pytest.fixture(scope="module")
def labelled(faq: Faq):
    return read_labelled(FIXTURES / "questions.csv", faq)


def _write(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "faq.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


# -- import -------------------------------------------------------------------------------


@pytest.mark.parametrize(("content", "line", "reason"), [
    ("id,question\nx,Hỏi?\n", 1, "missing column 'answer'"),
    ("id,question,answer,extra\n", 1, "unknown column 'extra'"),
    ("id,question,question\n", 1, "duplicated column 'question'"),
    (HEADER + GOOD_ROW + "the-tre-em,,Miễn phí.\n", 3, "question is empty"),
    (HEADER + "the-tre-em,Trẻ em?,\n", 2, "answer is empty"),
    (HEADER + ",Trẻ em?,Miễn phí.\n", 2, "id is empty"),
    (HEADER + "the-tre-em, | ,Miễn phí.\n", 2, "question is empty"),
    (HEADER + GOOD_ROW + GOOD_ROW, 3, "duplicate id: already on line 2"),
    (HEADER + "a,b\n", 2, "expected 3 fields, found 2"),
    ("", 1, "empty file"),
])
def test_a_bad_file_is_refused_with_file_line_and_reason(tmp_path, content, line, reason):
    path = _write(tmp_path, content)
    with pytest.raises(FaqImportError) as raised:
        Faq.from_csv(path)
    assert str(raised.value).startswith(f"{path}:{line}: {reason}")
    assert isinstance(raised.value, ValueError)


def test_invalid_utf8_names_its_line(tmp_path):
    path = _write(tmp_path, (HEADER + GOOD_ROW).encode() + b"x,Th\xe9,\xd0\xfang\n")
    with pytest.raises(FaqImportError, match=rf"^{path}:3: not valid UTF-8"):
        Faq.from_csv(path)


def test_a_header_alone_or_a_missing_file_is_refused(tmp_path):
    with pytest.raises(FaqImportError, match="no entries"):
        Faq.from_csv(_write(tmp_path, HEADER))
    with pytest.raises(FaqImportError, match="no such file"):
        Faq.from_csv(tmp_path / "absent.csv")


def test_columns_in_any_order_and_a_bom_are_accepted(tmp_path):
    path = _write(tmp_path, "\ufeffanswer,id,question\n"
                            '"Nộp tờ khai TK1-TS.",mat-the,Mất thẻ BHYT thì làm thế nào? | Làm lại thẻ BHYT bị mất\n')
    faq = Faq.from_csv(path)
    (entry,) = faq.entries
    assert (entry.id, entry.title, entry.answer) == ("mat-the", "Mất thẻ BHYT thì làm thế nào?", "Nộp tờ khai TK1-TS.")
    assert entry.phrasings[1] == "Làm lại thẻ BHYT bị mất"


def test_shipped_faq_is_realistic_in_size_and_answers_fit_two_sms(faq, labelled):
    assert len(faq.entries) >= 30
    assert all(len(entry.answer) <= 300 for entry in faq.entries)
    assert len(labelled) >= 150
    assert sum(item.expected_id is None for item in labelled) >= len(labelled) / 3


# -- folding ------------------------------------------------------------------------------


def test_normalize_folds_diacritics_case_punctuation_and_shorthand():
    assert normalize("Bảo hiểm Y tế, hết hạn KO??") == normalize("bhyt het han khong") == "bhyt het han khong"
    assert normalize("Cho em hỏi: đóng BHXH tự nguyện ntn ạ") == "dong bhxh tn nhu the nao"
    assert normalize("thẻ đc ko") == normalize("the duoc k") == "the duoc khong"


@pytest.mark.parametrize("question", [
    "Mất thẻ bảo hiểm y tế thì làm sao để cấp lại?",
    "mat the bao hiem y te thi lam sao de cap lai",
    "MAT THE BHYT THI LAM THE NAO DE DC CAP LAI",
    "cho em hoi mat the bhyt thi cap lai ntn a",
])
def test_diacritics_case_and_shorthand_give_the_same_confident_match(faq, question):
    match = faq.match(question)
    assert match.confident and match.entry.id == "cap-lai-the-bhyt-mat"
    assert match.answer == match.entry.answer


def test_suggest_ranks_the_closest_entries_for_staff(faq):
    suggestions = faq.suggest("rut bhxh 1 lan duoc bao nhieu tien", k=3)
    assert [entry.id for entry, _ in suggestions][0] == "bhxh-mot-lan-muc-huong"
    assert len(suggestions) == 3
    scores = [score for _, score in suggestions]
    assert scores == sorted(scores, reverse=True)


def test_a_question_about_something_else_goes_to_staff(faq):
    for question in ("bao hiem xe may het han mua o dau", "dia chi bhxh quan cau giay o dau", "alo alo"):
        match = faq.match(question)
        assert not match.confident and match.answer is None


# -- the labelled set ---------------------------------------------------------------------


def test_the_split_is_deterministic_and_not_lopsided(labelled):
    halves = [split_of(item.question) for item in labelled]
    assert halves == [split_of(item.question) for item in labelled]
    assert 0.35 < halves.count("tune") / len(halves) < 0.65


def test_tuning_half_meets_the_targets(faq, labelled):
    figures = evaluate(faq, [item for item in labelled if split_of(item.question) == "tune"])
    assert figures.wrong_share <= 0.02
    assert figures.coverage >= 0.70
    assert figures.staff_share >= 0.95


def test_held_out_half_does_not_fall_below_its_measured_figures(faq, labelled):
    # The held-out half MISSES the wrong-answer and to-staff targets (7.8% wrong, 82.9% to
    # staff; see /work/notes/faq.md). This guards the figures measured at the commit that set
    # the thresholds, so that a change to the matcher cannot make them worse unnoticed.
    figures = evaluate(faq, [item for item in labelled if split_of(item.question) == "test"])
    assert figures.wrong <= 8
    assert figures.auto_answered >= 51
    assert figures.to_staff >= 29


# -- arbitrary text -----------------------------------------------------------------------


@given(st.text(max_size=300))
def test_arbitrary_text_never_raises(text):
    faq = _shipped()
    match = faq.match(text)
    assert 0.0 <= match.score <= 1.0 + 1e-9
    faq.suggest(text)


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("L",)), max_size=200)
       | st.text(alphabet="qwxzfjv0123456789 ", max_size=60))
def test_gibberish_is_never_auto_answered(text):
    assert not _shipped().match(text).confident


_CACHE: dict[str, Faq] = {}


def _shipped() -> Faq:
    if "faq" not in _CACHE:
        _CACHE["faq"] = Faq.from_csv(FIXTURES / "faq.csv")
    return _CACHE["faq"]
