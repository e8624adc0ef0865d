"""The FAQ matcher (smsgw/faq.py): import checks, folding, the shipped data against its targets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsgw import faq as faq_module
from smsgw.faq import (MIN_SCORE, SUGGEST_MIN_SCORE, Faq, FaqEntry, FaqExample, FaqImportError, evaluate, normalize,
                       read_labelled, split_of)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "faq"
ROUND_5 = "questions-round5.csv"
ROUND_6 = "questions-round6.csv"
ROUND_8 = "questions-round8.csv"
ROUND_12 = "questions-round12.csv"
ROUND_13 = "questions-round13.csv"
ROUND_14 = "questions-round14.csv"
ROUND_15 = "questions-round15.csv"
ROUND_19 = "questions-round19.csv"
ROUND_20 = "questions-round20.csv"
ROUND_25 = "questions-round25.csv"
ROUND_26 = "questions-round26.csv"
HELD_OUT_WHOLE = (ROUND_5, ROUND_6, ROUND_8, ROUND_12, ROUND_13, ROUND_14, ROUND_15, ROUND_19, ROUND_20,
                  ROUND_25, ROUND_26)   # written to judge the matcher as it stood: no tuning half
# Written to be labelled, as staff label the HOI log: tuning data whole (examples), never a test.
TUNING_WHOLE = tuple(f"questions-round{n}.csv" for n in (21, 22, 23, 24))
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


def test_citizen_words_for_a_visit_and_for_insurance_fold_to_the_entries_words(faq):
    # "đi khám" alone is the entries' "khám chữa bệnh"; a bare "bảo hiểm" says nothing the rest of
    # the question does not. Neither may send a question to staff.
    assert normalize("đi khám, khám bệnh, khám chữa bệnh") == "di kcb kcb kcb"
    assert faq.unknown_words("rut bao hiem 1 lan duoc bao nhieu tien",
                             [entry.id for entry in faq.entries].index("bhxh-mot-lan-muc-huong")) == ()
    for question, entry_id in [("lam mat the bhyt roi di kham duoc ko", "cap-lai-the-bhyt-mat"),
                               ("rut bao hiem mot lan duoc bao nhieu tien vay ad", "bhxh-mot-lan-muc-huong")]:
        match = faq.match(question)
        assert (match.entry.id, match.unknown, match.confident) == (entry_id, (), True), question


def test_the_word_score_keeps_a_question_with_an_entrys_words_in_its_own_order(faq, monkeypatch):
    # "gộp" and "mã số BHXH" are the entry's words, arranged the citizen's way: character n-grams
    # alone put it under MIN_SCORE; rapidfuzz's token_set_ratio on whole words lifts it over.
    question = "em co 3 ma so bhxh muon gop lam 1"
    match = faq.match(question)
    assert (match.entry.id, match.confident) == ("gop-so-bhxh", True)
    monkeypatch.setattr(faq_module, "WORD_WEIGHT", 0.0)
    assert faq.match(question).score < MIN_SCORE
    assert not faq.match(question, agree_score=2.0, firm_score=2.0).confident   # the classifier's agreement left out


def test_suggest_ranks_the_closest_entries_for_staff(faq):
    suggestions = faq.suggest("rut bhxh 1 lan duoc bao nhieu tien", k=3)
    assert [entry.id for entry, _ in suggestions][0] == "bhxh-mot-lan-muc-huong"
    assert len(suggestions) == 3
    scores = [score for _, score in suggestions]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize(("question", "shown"), [
    # near-misses left to staff: the entries a staff member would start from are among the three
    ("bhxh tu nguyen co duoc huong om dau ko", {"bhxh-tu-nguyen-thai-san", "om-dau"}),
    ("bhyt hgd co duoc huong thai san khong", {"thai-san-sinh-con"}),
    ("so bhxh bi sai nam sinh, cty da giai the thi sua o dau", {"sua-thong-tin-the-bhyt"}),
])
def test_suggest_shows_staff_the_entries_near_a_question_left_to_them(faq, question, shown):
    assert not faq.match(question).confident
    assert shown <= {entry.id for entry, _ in faq.suggest(question, k=3)}


def test_suggest_shows_nothing_for_noise_and_respects_k(faq):
    assert faq.suggest("alo alo") == [] and faq.suggest("xyz") == [] and faq.suggest("") == []
    assert faq.suggest("mat the bhyt", k=0) == []
    assert len(faq.suggest("mat the bhyt", k=1)) == 1
    assert all(score >= SUGGEST_MIN_SCORE for _, score in faq.suggest("bhxh", k=41))


def test_a_question_about_something_else_goes_to_staff(faq):
    for question in ("bao hiem xe may het han mua o dau", "dia chi bhxh quan cau giay o dau", "alo alo"):
        match = faq.match(question)
        assert not match.confident and match.answer is None


@pytest.mark.parametrize(("question", "close_to", "unknown"), [
    # each shares most of its words with an entry, and asks about something that entry never mentions
    ("bhyt hgd co duoc huong thai san khong", "bhxh-tu-nguyen-thai-san", ("bhyt", "hgd")),
    ("so bhxh bi sai nam sinh, cty da giai the thi sua o dau", "sua-thong-tin-the-bhyt", ("so", "cty", "giai")),
])
def test_a_question_asking_beyond_the_closest_entry_goes_to_staff_naming_what(faq, question, close_to, unknown):
    match = faq.match(question)
    assert (match.entry.id, match.unknown, match.confident, match.answer) == (close_to, unknown, False, None)
    assert match.score >= MIN_SCORE   # close enough by similarity alone: the unknown words decide


def test_the_answering_entry_is_the_closest_that_knows_every_word(faq):
    # The closest entry by similarity is about pensions; the sickness entry knows every word.
    question = "che do om dau duoc huong bao nhieu phan tram luong"
    closest = faq.suggest(question, k=1)[0][0]
    match = faq.match(question)
    assert closest.id == "huu-tri-muc-huong"
    assert faq.unknown_words(question, faq.entries.index(closest)) == ("om",)
    assert (match.entry.id, match.unknown) == ("om-dau", ())   # the entry staff see, or that answers when close


def test_the_classifiers_agreement_answers_a_question_the_similarity_alone_leaves_to_staff(faq):
    # 0.67: under MIN_SCORE, but the classifier's first choice is the same entry (p ~ 0.89).
    question = "rut bhxh 1 lan nop ho so o dau"
    ranking = faq.rank(question)
    match = ranking.decide()
    assert (match.entry.id, match.confident) == ("bhxh-mot-lan-ho-so", True)
    assert faq_module.AGREE_MIN_SCORE <= match.score < MIN_SCORE
    assert faq.entries[int(ranking.probabilities.argmax())].id == "bhxh-mot-lan-ho-so"
    assert not ranking.decide(agree_score=2.0, firm_score=2.0).confident   # the similarity alone: staff
    assert not ranking.decide(agree_probability=0.95, firm_score=2.0).confident


def test_the_classifiers_agreement_never_answers_a_question_with_a_word_the_entry_never_uses(faq):
    # The same question about a preschool teacher: close enough and the classifier agrees, but
    # the entry never speaks of teachers ("giao vien mam non"): the topic-word rule sends it to
    # staff. (One word that no entry uses at all is forgiven as the asker's own detail, MAX_ASIDE:
    # "nu giao vien" alone is answered with the general conditions, which do apply to teachers.)
    ranking = faq.rank("dieu kien nhan luong huu cua nu giao vien mam non")
    match = ranking.decide()
    assert match.entry.id.endswith("dieu-kien") and "giao" in match.unknown and not match.confident
    assert match.score >= faq_module.AGREE_MIN_SCORE
    assert ranking.probabilities.max() >= faq_module.AGREE_MIN_PROBABILITY


def test_the_classifiers_firm_choice_answers_despite_a_word_of_the_askers_own(faq):
    # Where they work ("hcm"): a word the closest entry never uses. It
    # answers only as the classifier's firm first choice: p >= FIRM_MIN_PROBABILITY, score >=
    # FIRM_MIN_SCORE, at most FIRM_MAX_UNKNOWN such words, and no question no entry answers likely.
    entries = faq.entries[:2]

    def decide(score: float, probability: float, unknown: tuple[str, ...], **thresholds):
        ranking = faq_module.Ranking(entries, np.array([score, 0.2]), (unknown, ()),
                                     np.array([probability, 1 - probability]))
        return ranking.decide(**thresholds)

    firm = decide(0.66, 0.9, ("hcm",))
    assert (firm.entry, firm.confident, firm.unknown) == (entries[0], True, ("hcm",))
    assert not decide(0.66, 0.9, ("hcm",), firm_score=2.0).confident   # the rule left out: staff
    assert not decide(0.66, faq_module.FIRM_MIN_PROBABILITY - 0.01, ("hcm",)).confident
    assert not decide(faq_module.FIRM_MIN_SCORE - 0.01, 0.9, ("hcm",)).confident
    assert decide(0.66, 0.9, ("hcm", "que")).confident   # FIRM_MAX_UNKNOWN (2) such words
    assert not decide(0.66, 0.9, ("hcm", "que", "xa")).confident   # more
    assert not decide(0.66, 0.9, ("hcm", "que"), firm_unknown=1).confident
    assert not decide(0.66, 0.9, ("giao", "vien", "mam", "non")).confident   # more than the asker's own
    assert not decide(0.66, 0.1, ("hcm",)).confident   # the classifier's first choice is another entry
    # On the shipped FAQ: the closest entry, 4 words it never uses, the classifier fairly sure: staff.
    four = faq.match("dieu kien nhan luong huu cua nu giao vien mam non")
    assert (four.entry.id, four.confident, len(four.unknown)) == ("huu-tri-dieu-kien", False, 4)


def test_mistyped_words_are_corrected_to_the_faqs_word_and_real_words_are_left_alone(faq):
    # A typo that makes a non-word is one edit from the word meant: swapped letters first.
    assert faq.fold("nghi omm co dc bh tra luong ko") == "nghi om co duoc bhxh tra luong khong"
    assert faq.fold("sinh doi thi nghi thai sna may thang") == "sinh doi thi nghi thai san bao nhieu thang"
    # A real syllable the FAQ lacks ("chuot": a mouse) and an abbreviation ("hcm") stay as typed:
    # corrected, they would become a topic the FAQ knows.
    assert faq.fold("chuot can o hcm") == "chuot can o hcm"
    # A real word is never split into two FAQ words ("trach" is not "tra ch").
    assert faq.fold("trach nhiem cua cty") == "trach nhiem cua cty"
    assert faq.fold("gopso bhxh") == "gop so bhxh"
    # "uu" is no key held down: "buu dien", "tra cuu" and "cap cuu" are the FAQ's own words.
    assert faq.fold("nop o buu dien, tra cuu, cap cuu") == "nop o buu dien tra cuu cap cuu"
    assert faq.fold("sinh conn") == "sinh con"


def test_a_misspelling_in_an_example_is_corrected_like_a_questions_not_learned_as_a_word(faq):
    # The FAQ's own text is what a typo is corrected to; a citizen's example that wrote "huog"
    # (huong) neither keeps "huog" as a word nor stops a question's "huog" from being corrected.
    taught = Faq(list(faq.entries), [faq_module.FaqExample("thai-san-sinh-con", "dieu kien huog thai san khi sinh con")])
    assert taught.fold("huog thai san") == faq.fold("huog thai san") == "huong thai san"
    entry = [entry.id for entry in faq.entries].index("thai-san-sinh-con")
    assert taught.unknown_words("dieu kien huog thai san", entry) == ()


def test_one_word_no_entry_uses_is_the_askers_own_detail_two_are_a_topic_for_staff(faq):
    renewal = [entry.id for entry in faq.entries].index("gia-han-the-bhyt-hgd")
    one = faq.rank("the bhyt cua bo em lam vuon het han thi gia han o dau")   # "vuon": no entry uses it
    assert one.unknown[renewal] == ()
    two = faq.rank("the bhyt cua bo em lam vuon nuoi trau het han thi gia han o dau")   # "vuon", "nuoi", "trau"
    assert two.unknown[renewal] == ("vuon", "nuoi", "trau") and not two.decide().confident
    # A word another entry uses is never forgiven: it is that entry's topic.
    assert faq.unknown_words("the bhyt het han thi gia han o dau, that nghiep", renewal) != ()


def test_southern_speech_teen_code_and_held_keys_are_read_as_meant(faq):
    assert faq.fold("nha tui ho can ngheo co ho tro mua the bhyt hông zay") == \
        "nha ho can ngheo co ho tro mua the bhyt hong vay"   # "hong": khong (a function word)
    assert faq.fold("mk dong bhxh dc 6 nam rut dc bn tien ak") == "dong bhxh duoc 6 nam rut duoc bao nhieu tien"
    assert faq.fold("quen mk vssid") == "quen mat khau vssid"   # "mk" is a password only there
    assert faq.fold("dieu kien huong thai san khi sinh conn, the nao") == \
        "dieu kien huong thai san khi sinh con nhu the nao"   # a key held down, not "cong"
    assert faq.fold("tham gia bhxh tunguyen") == "tham gia bhxh tn"   # joined, then the shorthand
    assert faq.fold("dong tu 2012 den 2020") == "dong tu 2012 den 2020"   # a year is never split


def test_southern_spellings_and_kin_by_side_are_read_as_meant():
    assert normalize("the bh het hang roi, gia hang o dau dzay, het bao nhiu") == \
        "the bhxh het han roi gia han o dau vay het bao nhieu"
    # "con trai", "ba ngoai": the person, not the side; "trai" alone stays (kham trai tuyen).
    assert normalize("con trai em, ba ngoai em") == "con ba"
    assert normalize("kham trai tuyen") == "kcb trai tuyen"


def test_central_speech_is_read_as_meant_and_teeth_stay_a_topic(faq):
    # "ở mô": where; "răng": how (a function word); "tốn": costs; southern "sanh": sinh.
    assert normalize("gia han the bhyt o mo, lam rang, co ton tien khong") == \
        "gia han the bhyt o dau lam rang co ton tien khong"
    assert normalize("sanh con") == "sinh con"
    renewal = [entry.id for entry in faq.entries].index("gia-han-the-bhyt-hgd")
    assert faq.unknown_words("gia han the bhyt o mo rang", renewal) == ()
    # "mổ" (surgery) is no "mô": it stays the asker's topic.
    assert "mo" in faq.unknown_words("bhyt co tra tien mo ruot thua khong", renewal)
    # Teeth, named by their phrases, are dentistry: a topic no entry speaks of, and a question
    # on braces goes to staff.
    assert normalize("nieng rang, lam rang su, nho rang khon") == "nhakhoa lam nhakhoa nhakhoa khon"
    braces = "bhyt co chi tra tien nieng rang cho con khong"
    benefit = [entry.id for entry in faq.entries].index("muc-huong-bhyt")
    assert "nhakhoa" in faq.unknown_words(braces, benefit) and not faq.match(braces).confident


def test_an_entry_never_asked_for_a_sum_or_a_length_of_time_does_not_answer_for_one():
    # The rate of the first person is no total for a family of four: an entry that no phrasing
    # or example asks "how much money" of is no answer to it, whatever the thresholds; the words
    # asking it are named to staff like a topic word the entry never uses.
    rate = FaqEntry("muc-dong", "Mức đóng BHYT hộ gia đình là bao nhiêu?",
                    "Người thứ nhất đóng 4,5% mức lương cơ sở; người thứ hai 70% mức người thứ nhất.")
    validity = FaqEntry("the-moi", "Thẻ BHYT mới mua bao lâu thì dùng được?", "Sau 30 ngày kể từ ngày đóng tiền.")
    two = Faq([rate, validity])
    loose = dict(min_score=0.0, min_margin=0.0, max_unknown=0, firm_score=2.0)
    total = "muc dong bhyt ho gia dinh 4 nguoi het bao nhieu tien"
    ranking = two.rank(total)
    assert ranking.unknown[0] == ("het bao nhieu",) and not ranking.decide(**loose).confident
    # "How long" of the entry on rates: the same. Of the entry that was asked it: answered.
    assert two.rank("muc dong bhyt ho gia dinh bao lau").unknown[0] == ("bao lau",)
    answered = two.rank("the bhyt moi mua bao lau thi dung duoc")
    assert answered.unknown[1] == () and answered.decide(**loose).entry.id == "the-moi"
    # Once staff label a question asking it as the entry's, the entry has been asked it.
    taught = Faq([rate, validity], [FaqExample("muc-dong", "ca nha 3 nguoi mua bhyt het bao nhieu tien")])
    assert taught.rank(total).unknown[0] == () and taught.rank(total).decide(**loose).entry.id == "muc-dong"
    # An exact figure or the cap ("cu the", "chinh xac", "muc tran") likewise.
    assert two.rank("muc dong bhyt ho gia dinh cu the la").unknown[0] == ("cu the",)
    assert two.rank("muc tran dong bhyt ho gia dinh").unknown[0] == ("muc tran",)
    # The switchboard ("tong dai") is no total: its words are topic words, not a sum asked for.
    assert two.rank("so tong dai bhyt ho gia dinh").unknown[0] == ("tong", "dai")


def test_teen_code_and_question_words_carry_no_topic(faq):
    # "mn" (everyone), "v" (vay), "lun" (luon), "vk" (vo, a wife); "ai" (who) and "nop" (hand in)
    # say nothing of what a question is about.
    assert normalize("mn oi vk e sinh doi v lun") == "moi nguoi vo sinh doi vay luon"
    lump_sum_papers = [entry.id for entry in faq.entries].index("bhxh-mot-lan-ho-so")
    assert faq.unknown_words("muon lanh bhxh 1 lan thi nop giay to cho ai mn", lump_sum_papers) == ()


def test_a_question_about_the_askers_own_case_goes_to_staff(faq):
    # Asking why something happened to them, or naming their BHXH number, phone or card code:
    # no FAQ answer knows their case, however close its words.
    for question in ("tai sao tien tro cap that nghiep thang nay cua toi bi cat",
                     "Vì sao thẻ BHYT của con em không dùng được?",
                     "ho so rut bhxh 1 lan bi tra ve, ly do la gi",
                     "tinh giup e rut bhxh 1 lan dc bao nhieu, ma so bhxh 7912345678",
                     "the HC4010110129425 con han khong"):
        ranking = faq.rank(question)
        assert ranking.own_case and not faq.match(question).confident, question
        assert not ranking.decide(min_score=0.0, min_margin=0.0, max_unknown=9).confident   # whatever the thresholds
    # The same words without the asker's case are answered.
    assert not faq.rank("tro cap that nghiep duoc huong bao nhieu").own_case
    assert faq.match("rut bhxh 1 lan duoc bao nhieu tien").confident


def test_e_is_the_pronoun_em(faq):
    assert normalize("e muon gia han the bhyt") == normalize("em muon gia han the bhyt") == "muon gia han the bhyt"


def test_words_typed_together_and_numbers_typed_onto_words_are_split(faq):
    assert faq.fold("giahan the bhyt o dau") == "gia han the bhyt o dau"
    assert faq.fold("rut bhxh 1lan") == "rut bhxh 1 lan"
    assert faq.fold("xyzxyz bhyt") == "xyzxyz bhyt"   # two FAQ words or nothing
    unemployment = [entry.id for entry in faq.entries].index("that-nghiep-muc-huong")
    assert faq.unknown_words("tro cap thatnghiep duoc huong may thang", unemployment) == ()
    assert faq.match("tro cap thatnghiep duoc huong may thang").entry.id == "that-nghiep-muc-huong"


def test_the_forms_name_is_not_read_as_an_abbreviation(faq):
    # "TS" alone is citizens' "thai san"; the form TK1-TS stays one word, so that every entry
    # whose answer names the form does not seem to speak of maternity.
    assert normalize("Mẫu TK1-TS") == "mau tk1ts" and normalize("nghỉ ts") == "nghi thai san"
    assert normalize("sdt bhxh") == "so dien thoai bhxh" and normalize("mat cmnd") == "mat cccd"


# -- the labelled set ---------------------------------------------------------------------


def test_every_labelled_question_has_a_stored_half_and_the_halves_are_not_lopsided(faq):
    # Rounds 1-4, 7, 9-11 and 16-18 were split by hash; rounds 5, 6, 8, 12-15, 19, 20, 25 and 26
    # were written to judge the matcher as it stood and are held out whole (no threshold or
    # phrasing may come from them); rounds 21-24 were written to be labelled: examples, whole.
    for path in sorted(FIXTURES.glob("questions*.csv")):
        halves = [item.half for item in read_labelled(path, faq)]
        if path.name in HELD_OUT_WHOLE:
            assert set(halves) == {"test"} and len(halves) >= 120
        elif path.name in TUNING_WHOLE:
            assert set(halves) == {"tune"} and len(halves) >= 120
        else:
            assert set(halves) == {"tune", "test"}
            assert 0.4 < halves.count("tune") / len(halves) < 0.6, path.name


def test_a_labelled_file_without_halves_gets_them_by_hash_and_a_bad_half_is_refused(tmp_path, faq):
    path = tmp_path / "questions.csv"
    path.write_text("question,expected_id\nmat the bhyt,cap-lai-the-bhyt-mat\nalo,\n", encoding="utf-8")
    assert [item.half for item in read_labelled(path, faq)] == [split_of("mat the bhyt"), split_of("alo")]
    path.write_text("question,expected_id,half\nalo,,both\n", encoding="utf-8")
    with pytest.raises(FaqImportError, match=r":2: bad half 'both'"):
        read_labelled(path, faq)


def test_held_out_halves_do_not_fall_below_their_measured_figures(faq):
    # The FAQ's phrasings alone (no examples), measured at look 8 (/work/notes/s6/floors8.log). The
    # held-out halves of rounds 1-4, 7, 9, 10 and 11, 602 questions: 7 wrong answers (1.2%, target
    # <= 2%), 185 of 188 unanswerable ones to staff (98.4%, target >= 95%), 222 of 414 answerable
    # ones auto-answered (53.6%: the coverage target of 70% is MISSED without the examples).
    # With round 16's held-out half (close calls only among its unanswerable), 681 questions: 9
    # wrong (1.3%), 208 of 213 to staff (97.7%), 249 of 468 (53.2%); look 9: 250 of 468. With
    # the held-out halves of rounds 17 and 18 (writers new to the FAQ; young parents, gig workers,
    # highland villagers; pensioners, teen-code, the Mekong delta), 828 questions, look 9: 14
    # wrong (1.7%), 245 of 254 to staff (96.5%), 293 of 574 (51.0%); look 10 (an entry never
    # asked for a sum or a length of time gives none): 14 wrong, 245 to staff, 295 answered;
    # round 5 then 1 wrong, 51 of 52 to staff, 94 of 108. Look 12 (the classifier reads words
    # too and has a class of its own for questions no entry answers, which phrasings alone never
    # teach it; the firm and agreement thresholds lower on the strength of that class;
    # /work/notes/s9/look12-phrasings-only.log): 19 wrong (2.3%), 241 to staff (94.9%), 350
    # answered (61.0%); round 5: 2 wrong, 50 to staff, 100 answered. All 2,459 held-out with
    # the phrasings alone: 49 wrong (2.0%), 956 of 1,664 answered (57.5%), 761 of 795 to staff.
    # Round 5, held out whole: 0 wrong, all 52 to staff, 93 of 108. These floors keep a change
    # to the matcher from making any figure worse unnoticed; they do not claim the targets
    # (tests/test_faq_examples.py holds the figures with the shipped examples).
    def held_out(round_5: bool):
        return evaluate(faq, [item for path in sorted(FIXTURES.glob("questions*.csv"))
                              if (path.name == ROUND_5 if round_5 else path.name not in HELD_OUT_WHOLE)
                              for item in read_labelled(path, faq) if item.half == "test"])

    earlier, round_5 = held_out(False), held_out(True)
    assert (earlier.questions, earlier.answerable, round_5.questions, round_5.answerable) == (828, 574, 160, 108)
    assert earlier.wrong <= 19 and round_5.wrong <= 2
    assert earlier.to_staff >= 241 and round_5.to_staff >= 50
    assert earlier.auto_answered >= 350 and round_5.auto_answered >= 100


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
