"""FAQ examples: citizens' questions that staff labelled with the entry answering them
(`smsgw faq import FILE --examples EXAMPLES`), as more ways to ask that entry."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smsgw import faq as faq_module
from smsgw.cli import main
from smsgw.faq import Faq, FaqEntry, FaqExample, FaqImportError, read_examples, read_labelled
from smsgw.faq_store import load_faq

from test_faq import HELD_OUT_WHOLE
from test_faq_import import HEADER, LOST_CARD, PENSION, run, write

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures" / "faq"
RENEWAL = FaqEntry("gia-han", "Gia hạn thẻ BHYT hộ gia đình ở đâu?", "Tại đại lý thu BHXH hoặc qua VssID.")
LOST = FaqEntry("mat-the", "Mất thẻ BHYT thì làm thế nào?", "Nộp tờ khai TK1-TS tại cơ quan BHXH.")
# "ở Huế làm ruộng" (farming in Huế): words neither entry uses, as citizens write
# them (two of them: one alone would be forgiven as the asker's own detail, MAX_ASIDE).
GRANDFATHER = "the bhyt cua ong em o hue lam ruong het han thi gia han o dau"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_faq", ROOT / "bench" / "faq.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the matcher ------------------------------------------------------------------------


def test_an_example_teaches_its_entry_a_word_citizens_use():
    plain = Faq([RENEWAL, LOST]).match(GRANDFATHER)
    assert (plain.entry.id, plain.confident, plain.unknown) == ("gia-han", False, ("hue", "ruong"))
    taught = Faq([RENEWAL, LOST], [FaqExample("gia-han", "the bhyt cua ong o hue lam ruong het han gia han o dau")])
    match = taught.match(GRANDFATHER)
    assert (match.entry.id, match.confident, match.unknown) == ("gia-han", True, ())
    assert taught.unknown_words(GRANDFATHER, 0) == ()
    # The word is that entry's only: the other entry still does not speak of it.
    assert taught.unknown_words("ong o hue mat the bhyt", 1) == ("hue",)


# A close call: the entry on care outside the registered hospital says the rate "depends on the
# level and on in- or out-patient care"; the asker wants the out-patient figure, which it never gives.
OUT_PATIENT = "kham ngoai tru trai tuyen o benh vien tinh thi bhyt tra may phan tram vay"
NO_ENTRY_ANSWERS = ("kham ngoai tru trai tuyen o bv tinh thi bhyt co tra ko",
                    "di kham ngoai tru trai tuyen tuyen tinh duoc huong bao nhieu phan tram",
                    "ngoai tru trai tuyen benh vien tinh co duoc bhyt thanh toan khong a")


def test_questions_staff_said_no_entry_answers_send_a_close_call_to_staff():
    plain = Faq.from_csv(FIXTURES / "faq.csv")
    before = plain.rank(OUT_PATIENT)
    assert (plain.match(OUT_PATIENT).entry.id, plain.match(OUT_PATIENT).confident, before.unanswered) == (
        "kcb-trai-tuyen", True, 0.0)
    # Three such questions, none of them this one, labelled with no entry (id empty).
    taught = Faq(list(plain.entries), [FaqExample("", question) for question in NO_ENTRY_ANSWERS])
    after = taught.rank(OUT_PATIENT)
    assert after.unanswered >= faq_module.MAX_UNANSWERED
    assert (taught.match(OUT_PATIENT).entry.id, taught.match(OUT_PATIENT).confident) == ("kcb-trai-tuyen", False)
    assert after.decide(max_unanswered=1.0).confident   # the guard left out: answered, wrongly
    # What the entry does answer still is: an emergency in another hospital, another entry's question.
    for question, entry_id in (("cap cuu o benh vien khac noi dang ky co dc bhyt tra ko", "kcb-trai-tuyen"),
                               ("mat the bhyt thi lam lai o dau", "cap-lai-the-bhyt-mat")):
        match = taught.match(question)
        assert (match.entry.id, match.confident) == (entry_id, True)
        assert taught.rank(question).unanswered < faq_module.MAX_UNANSWERED
    assert taught.examples[0].unanswered and not FaqExample("mat-the", "x").unanswered


def test_a_question_no_entry_answers_teaches_no_entry_its_words():
    taught = Faq([RENEWAL, LOST], [FaqExample("", GRANDFATHER)])
    assert taught.unknown_words(GRANDFATHER, 0) == ("hue", "ruong")
    assert taught.rank(GRANDFATHER).unanswered > 0.5   # the classifier's class of its own
    assert not taught.match(GRANDFATHER).confident


def test_the_classifiers_likeliest_none_is_no_agreement():
    entries = (RENEWAL, LOST)

    def decide(probability: float, unanswered: float, **thresholds):
        ranking = faq_module.Ranking(entries, np.array([0.6, 0.1]), ((), ()),
                                     np.array([probability, 1 - probability - unanswered]), unanswered=unanswered)
        return ranking.decide(**thresholds)

    # 0.6: under MIN_SCORE, answered only when the classifier agrees (AGREE_MIN_PROBABILITY 0.5).
    assert decide(0.55, 0.0).confident
    assert not decide(0.55, faq_module.MAX_UNANSWERED).confident   # held: likely no entry's
    assert decide(0.55, 0.29).confident
    # Without the guard, and agreement from p 0.3: none likelier than the entry is no agreement.
    assert not decide(0.4, 0.45, max_unanswered=1.0, agree_probability=0.3).confident
    assert decide(0.45, 0.4, max_unanswered=1.0, agree_probability=0.3).confident


def test_a_hand_written_phrasing_outweighs_a_mislabelled_example(monkeypatch):
    # The example (labelled with the expiry entry) has the same text as the lost-card entry's own
    # phrasing: the phrasing wins, since an example weighs EXAMPLE_WEIGHT (< 1) of a phrasing.
    expiry = FaqEntry("het-han", "Thẻ BHYT hết hạn thì sao?", "Tại đại lý thu.")
    lost = FaqEntry("mat-the", "Mất thẻ BHYT thì làm thế nào?", "Tại cơ quan BHXH.")
    examples = [FaqExample("het-han", "mat the bhyt thi lam the nao")]
    assert Faq([expiry, lost], examples).match("mat the bhyt thi lam the nao").entry.id == "mat-the"
    monkeypatch.setattr(faq_module, "EXAMPLE_WEIGHT", 1.0)
    assert Faq([expiry, lost], examples).match("mat the bhyt thi lam the nao").entry.id == "het-han"


def test_examples_rank_for_suggestions_too():
    faq = Faq([LOST, RENEWAL], [FaqExample("gia-han", "nha em muon dong tiep bao hiem cho ca nha")])
    assert [entry.id for entry, _ in faq.suggest("muon dong tiep bao hiem cho ca nha", 1)] == ["gia-han"]


def test_an_example_of_an_unknown_entry_is_refused():
    with pytest.raises(ValueError, match="unknown entry: 'khong-co'"):
        Faq([RENEWAL], [FaqExample("khong-co", "hoi gi do")])


# -- the examples file ------------------------------------------------------------------


@pytest.mark.parametrize(("content", "line", "reason"), [
    ("question\nhoi gi\n", 1, "missing column 'id'"),
    ("id,question,answer\n", 1, "unknown column 'answer'"),
    ("id,question\nmat-the,mat the roi\nkhong-co,hoi gi\n", 3, "id 'khong-co' is not an entry of the FAQ"),
    ("id,question\nmat-the,\n", 2, "question is empty"),
    ("id,question\nmat-the\n", 2, "expected 2 fields, found 1"),
    ("", 1, "empty file"),
])
def test_a_bad_examples_file_is_refused_with_file_line_and_reason(tmp_path, content, line, reason):
    faq_file = write(tmp_path, HEADER + LOST_CARD)
    examples = write(tmp_path, content, "examples.csv")
    with pytest.raises(FaqImportError) as refused:
        Faq.from_csv(faq_file, examples)
    assert str(refused.value).startswith(f"{examples}:{line}: {reason}"), str(refused.value)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300)
       | st.text(alphabet="id,question\n\"mat-the xyz\r", max_size=120).map(lambda body: f"id,question\n{body}".encode()))
def test_any_examples_file_loads_or_is_refused_with_a_line(tmp_path, content):
    faq_file = write(tmp_path, HEADER + LOST_CARD)
    examples = tmp_path / "any.csv"
    examples.write_bytes(content)
    try:
        faq = Faq.from_csv(faq_file, examples)
    except FaqImportError as refused:
        assert str(refused).startswith(f"{examples}:") and refused.reason
    else:
        assert all(example.id in ("mat-the", "") and example.question for example in faq.examples)


def test_a_missing_examples_file_is_refused(tmp_path):
    with pytest.raises(FaqImportError, match="absent.csv: no such file"):
        Faq.from_csv(write(tmp_path, HEADER + LOST_CARD), tmp_path / "absent.csv")


def test_the_shipped_examples_are_the_tuning_half_questions_only():
    # Held-out questions must never be examples: the held-out figures of bench/faq.py count. The
    # answerable ones are examples of their entry, the others examples of no entry (id empty).
    faq = Faq.from_csv(FIXTURES / "faq.csv")
    examples = read_examples(FIXTURES / "examples.csv", faq.entries)
    labelled = [item for path in sorted(FIXTURES.glob("questions*.csv")) for item in read_labelled(path, faq)]
    # Each once: two writers may type the same question (rounds 16 and 17 share two).
    tuning = sorted({(item.expected_id or "", item.question) for item in labelled if item.half == "tune"})
    assert sorted((example.id, example.question) for example in examples) == tuning
    assert sum(example.unanswered for example in examples) >= 400 and len(examples) >= 1200


# -- stored with the FAQ ----------------------------------------------------------------


def faq_import(path: Path, db: str, capsys, examples: Path | None = None) -> tuple[int, str]:
    code = main(["faq", "import", str(path), "--db", db, *(["--examples", str(examples)] if examples else [])])
    return code, capsys.readouterr().err


def test_examples_are_stored_and_replaced_with_the_faq(db, tmp_path, capsys):
    faq_file = write(tmp_path, HEADER + PENSION + LOST_CARD)
    examples = write(tmp_path, "id,question\nmat-the,the bhyt cua ong noi bi mat\nluong-huu,may tuoi dc nhan luong huu\n"
                               ",luong huu cua ong em thang nay sao chua ve\n", "examples.csv")
    code, err = faq_import(faq_file, db, capsys, examples)
    assert (code, "2 FAQ entries, 3 examples" in err) == (0, True), err
    loaded = run(load_faq(db))
    assert loaded.examples == (FaqExample("mat-the", "the bhyt cua ong noi bi mat"),
                               FaqExample("luong-huu", "may tuoi dc nhan luong huu"),
                               FaqExample("", "luong huu cua ong em thang nay sao chua ve"))
    assert loaded.match("ong noi em mat the bhyt").entry.id == "mat-the"
    assert loaded.unknown_words("ong noi em mat the bhyt", 1) == ()

    # A bad examples file changes nothing stored: not the FAQ, not its examples.
    bad = write(tmp_path, "id,question\nmat-the,lam lai the\nthe-tre-em,tre em\n", "bad.csv")
    code, err = faq_import(write(tmp_path, HEADER + LOST_CARD, "other.csv"), db, capsys, bad)
    assert (code, err) == (1, f"smsgw: import refused, nothing loaded: {bad}:3: "
                              "id 'the-tre-em' is not an entry of the FAQ (empty: no entry answers it)\n")
    assert run(load_faq(db)).examples == loaded.examples and len(run(load_faq(db)).entries) == 2

    # An import without --examples keeps the examples of its entries (tests/test_faq_labelling.py);
    # with --replace-examples none are left.
    code, err = faq_import(faq_file, db, capsys)
    assert (code, "2 FAQ entries, 3 examples" in err) == (0, True), err
    assert run(load_faq(db)).examples == loaded.examples   # the one of no entry kept too
    assert main(["faq", "import", str(faq_file), "--db", db, "--replace-examples"]) == 0
    assert "2 FAQ entries, 0 examples (the previous FAQ and its examples replaced)" in capsys.readouterr().err
    assert run(load_faq(db)).examples == ()


def test_the_command_imports_the_shipped_faq_with_its_examples(tmp_path):
    db = tmp_path / "smsgw.db"
    done = subprocess.run([sys.executable, "-m", "smsgw", "faq", "import", str(FIXTURES / "faq.csv"),
                           "--examples", str(FIXTURES / "examples.csv"), "--db", str(db)],
                          capture_output=True, text=True, encoding="utf-8", timeout=120)
    examples = len(read_examples(FIXTURES / "examples.csv", Faq.from_csv(FIXTURES / "faq.csv").entries))
    assert (done.returncode, done.stdout) == (0, "")
    assert done.stderr == (f"imported into {db}: 41 FAQ entries, {examples} examples, {examples} of them from "
                           f"{FIXTURES / 'examples.csv'} (the previous FAQ replaced; its examples kept where their "
                           "entry id is still in the FAQ: 0 of 0; --replace-examples drops them)\n")
    bad = subprocess.run([sys.executable, "-m", "smsgw", "faq", "import", str(FIXTURES / "faq.csv"),
                          "--examples", str(FIXTURES / "faq.csv"), "--db", str(db)],
                         capture_output=True, text=True, encoding="utf-8", timeout=120)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr == (f"smsgw: import refused, nothing loaded: {FIXTURES / 'faq.csv'}:1: unknown column "
                          "'answer': expected the columns id,question in any order\n")


# -- the benchmark's protocol -----------------------------------------------------------


def test_the_bench_never_scores_a_question_against_itself():
    bench = _bench()
    taught = Faq([RENEWAL, LOST], [FaqExample("gia-han", GRANDFATHER.upper() + "?")])
    question = faq_module.LabelledQuestion(GRANDFATHER, "gia-han", "tune")
    assert taught.match(GRANDFATHER).confident   # its own example teaches it "hue" and "ruong"
    [(_, ranking)] = bench.rank_left_out(taught, [question])
    assert ranking.decide().unknown == ("hue", "ruong") and not ranking.decide().confident


def test_by_round_a_question_is_matched_without_the_examples_of_its_round():
    bench = _bench()
    other = "ong o hue lam ruong gia han the o dau"
    taught = Faq([RENEWAL, LOST], [FaqExample("gia-han", GRANDFATHER), FaqExample("gia-han", other)])
    first, second = (faq_module.LabelledQuestion(text, "gia-han", "tune") for text in (GRANDFATHER, other))
    # One round: neither example teaches the other's question "hue" and "ruong".
    [(_, ranking), _] = bench.rank_by_round(taught, {21: [first, second]})
    assert ranking.unknown[0] == ("hue", "ruong") and not ranking.decide().confident
    # Two rounds: each is taught by the other round's example.
    [(_, ranking), _] = bench.rank_by_round(taught, {21: [first], 22: [second]})
    assert ranking.unknown[0] == ()


def test_the_strict_folds_drop_the_phrasings_written_from_a_question_but_keep_the_titles():
    bench = _bench()
    copied = "the bhyt cua ong em o hue lam ruong het han gia han o dau"
    renewal = FaqEntry("gia-han", RENEWAL.question + " | " + copied, RENEWAL.answer)
    faq = Faq([renewal, LOST], [FaqExample("gia-han", GRANDFATHER)])
    question = faq_module.LabelledQuestion(GRANDFATHER, "gia-han", "tune")
    [(_, strict)] = bench.rank_strict(faq, [question])
    [(_, left_out)] = bench.rank_left_out(faq, [question])
    assert left_out.scores[0] > 0.85 and left_out.unknown[0] == ()   # the copied phrasing answers it
    assert strict.scores[0] < 0.8 and strict.unknown[0] == ("hue", "ruong")   # gone, with its words
    titles_only = Faq([RENEWAL, LOST])   # a question word for word the entry's title: the title stays
    [(_, titles)] = bench.rank_strict(titles_only, [faq_module.LabelledQuestion(RENEWAL.question, "gia-han", "tune")])
    assert titles.scores[0] == pytest.approx(titles_only.rank(RENEWAL.question).scores[0])


def test_the_learning_curve_matches_with_more_of_the_examples_at_each_step():
    bench = _bench()
    examples = [FaqExample("gia-han", GRANDFATHER), FaqExample("gia-han", "ong o hue lam ruong gia han the o dau"),
                FaqExample("mat-the", "ong lam mat the bhyt roi"), FaqExample("mat-the", "the bhyt bi mat lam lai o dau")]
    faq = Faq([RENEWAL, LOST], examples)
    question = faq_module.LabelledQuestion("ba o hue lam ruong, the bhyt het han thi gia han o dau", "gia-han", "test")
    curve = bench.learning_curve(faq, [question])
    assert [count for count, _ in curve] == [0, 1, 2, 3, 4]
    # Without examples "hue" and "ruong" are no entry's words: staff. With all of them, answered.
    assert (curve[0][1].auto_answered, curve[0][1].wrong) == (0, 0)
    assert (curve[-1][1].auto_answered, curve[-1][1].wrong) == (1, 0)


def test_held_out_figures_with_the_shipped_examples_do_not_fall_below_their_measured_ones():
    # Measured once for this design (look 9, with the examples of rounds 17 and 18's tuning
    # halves, 557 in all: /work/notes/s8/look9-newex.log). The held-out halves of rounds 1-4, 7,
    # 9, 10, 11 and 16-18, 828 questions: 20 wrong (2.4%), 237 of 254 unanswerable to staff
    # (93.3%), 369 of 574 answerable auto-answered (64.3%). Held out whole: round 5: 1 wrong, 51
    # of 52 to staff, 106 of 108; round 6: 4 wrong (3.3%), 36 of 39 to staff, 77 of 82; round 8:
    # 5 wrong (3.3%), 49 of 50 to staff, 81 of 100; rounds 12-15, each by a writer new to the FAQ
    # (12: a national mix of voices; 13: close calls among the unanswerable; 14: a provincial
    # office's inbox; 15: 36 close calls): 2, 5, 3 and 5 wrong, 48, 45, 47 and 45 of 50 to staff,
    # 63, 58, 52 and 61 of 100. Floors at the measurement, against a silent regression; not a
    # claim that every target is met on every set (they are not: BENCHMARKS.md section 8).
    # Look 10 (an entry never asked for a sum or a length of time gives none; teen-code "mn",
    # "v", "lun", "vk"; "ai" and "nop" function words; /work/notes/s8/look10.log): halves 18
    # wrong (2.2%), 239 to staff (94.1%), 373 answered (65.0%); round 5: 2 wrong, 50 to staff,
    # 106; round 6: 4, 36, 77; round 8: 5, 49, 81; rounds 12-15: 2, 4, 3 and 4 wrong, 48, 46, 47
    # and 46 to staff, 62, 57, 52 and 62 answered. All 1,859 held-out: 42 wrong (2.3%), 870 of
    # 1,264 answered (68.8%), 561 of 595 to staff (94.3%); at look 9, 45, 867 and 558. Rounds 19
    # and 20, held out whole (writers new to the FAQ: the central coast's fishermen, builders,
    # teachers and nurses, Khmer families; Red River farmers, veterans' families, factory workers,
    # families of workers abroad), first look on look 10: 3 and 1 wrong, 47 and 49 of 50 to
    # staff, 51 and 54 of 100 answered. Look 11 (an exact figure or a cap asked for too:
    # /work/notes/s8/firstlook-r19r20-look11.log): halves 17 wrong, 240 to staff, 373 answered;
    # rounds 13, 14 and 19: 3, 2 and 2 wrong, 47, 48 and 48 to staff; the others as at look 10.
    # All 2,159 held-out: 42 wrong (1.9%), 975 of 1,464 answered (66.6%), 661 of 695 to staff (95.1%).
    # Rounds 25 and 26, held out whole (Quang Ninh's miners, Hai Phong's dockers, seafarers, Nghe
    # An and Ha Tinh speech; Da Nang and Hue office workers, Hue speech), first look on look 11:
    # 3 and 7 wrong, 48 and 44 to staff, 49 and 57 answered. With the 394 examples of rounds
    # 21-24 (written to be labelled, tuning data whole; 949 examples in all;
    # /work/notes/s9/look11-newex.log): halves 20 wrong, 237 to staff, 417 answered; rounds 5,
    # 6, 8, 12-15, 19, 20, 25, 26 as below. All 2,459 held-out: 70 wrong (2.8%), 1,218 of 1,664
    # answered (73.2%), 735 of 795 to staff (92.5%): labelling buys coverage, and costs wrong answers.
    # Look 12 (the classifier reads words too, and the 481 unanswerable tuning questions are
    # examples of no entry: a question likely one of them goes to staff; firm and agreement
    # thresholds lower; chosen on the tuning data alone): halves 8 wrong, 249 to staff, 434
    # answered; the whole rounds as below but 74, 82, 68 and 69 answered in rounds 12, 15, 19 and
    # 25, 5 wrong in round 8. All 2,459 held-out: 29 wrong (1.2%), 1,273 of 1,664 answered
    # (76.5%), 777 of 795 to staff (97.7%) (/work/notes/s9/look12.log: each held-out question
    # that is also an example matched without the examples of its own text, one matcher built
    # per text). Since each is matched by one matcher without the examples of any held-out text
    # (`rank_left_out`, one build for all; /work/notes/s9/look12-floors.log): halves 8 wrong,
    # 249 to staff, 429 answered; all 2,459: 28 wrong (1.1%), 1,264 answered (76.0%), 777 to
    # staff (97.7%): the targets met.
    bench = _bench()
    plain = Faq.from_csv(FIXTURES / "faq.csv")
    faq = Faq(list(plain.entries), read_examples(FIXTURES / "examples.csv", plain.entries))
    whole = HELD_OUT_WHOLE   # rounds 5, 6, 8, 12-15, 19, 20, 25 and 26, in that order

    # Every held-out question ranked once, by the FAQ without the examples of any held-out text.
    names, questions = zip(*[(path.name, item) for path in sorted(FIXTURES.glob("questions*.csv"))
                             for item in read_labelled(path, faq) if item.half == "test"])
    ranked = bench.rank_left_out(faq, list(questions))

    def held_out(*wanted: str):
        return faq_module.evaluate_ranked([pair for name, pair in zip(names, ranked)
                                           if (name in wanted if wanted else name not in whole)])

    halves, *rounds = held_out(), *(held_out(name) for name in whole)
    assert [(figures.questions, figures.answerable) for figures in (halves, *rounds)] == [
        (828, 574), (160, 108), (121, 82), *[(150, 100)] * 9]
    for figures, wrong, to_staff, answered in zip((halves, *rounds), (8, 1, 3, 4, 1, 0, 3, 0, 2, 0, 2, 4),
                                                  (249, 51, 37, 50, 49, 50, 48, 50, 48, 50, 48, 47),
                                                  (429, 103, 78, 81, 73, 69, 67, 81, 67, 71, 68, 77)):
        assert (figures.wrong <= wrong and figures.to_staff >= to_staff
                and figures.auto_answered >= answered), (figures, wrong, to_staff, answered)


def test_the_tuning_halves_in_folds_do_not_fall_below_their_measured_figures():
    # Each of 10 folds of the tuning halves matched without the examples of its own questions
    # (`rank_folds`), look 8: 298 of 417 answerable auto-answered (71.5%), 3 wrong (0.5%), 198 of
    # 200 unanswerable to staff (99.0%); with round 16's tuning half (close calls only among its
    # unanswerable): 332 of 463 (71.7%), 8 wrong (1.2%), 219 of 225 to staff (97.3%); look 9
    # (central speech, the asker's own case to staff, the firm rule re-tuned): 336 of 463 (72.6%),
    # 5 wrong (0.7%), 222 of 225 to staff (98.7%): the targets met. With rounds 17 and 18's
    # tuning halves (153 questions: 38 of their 94 answerable ones answered and 9 wrong before their
    # examples were in), look 9: 378 of 557 (67.9%), 17 wrong (2.0%), 271 of 284 to staff
    # (95.4%): the coverage target missed, on the tuning data too. Look 10: 380 of 557 (68.2%),
    # 14 wrong (1.7%), 273 of 284 to staff (96.1%); look 11: 380, 12 wrong (1.4%), 275 (96.8%).
    # With rounds 21-24 (600 questions written to be labelled, tuning data whole), look 11: 666
    # of 957 (69.6%), 37 wrong (2.6%), 450 of 484 to staff (93.0%); look 12 (questions no entry
    # answers as examples too, the classifier's class of their own): 708 (74.0%), 9 wrong
    # (0.6%), 478 (98.8%) (/work/notes/s9/look12-folds.log).
    bench = _bench()
    faq = Faq.from_csv(FIXTURES / "faq.csv", FIXTURES / "examples.csv")
    tuning = [item for path in sorted(FIXTURES.glob("questions*.csv"))
              for item in read_labelled(path, faq) if item.half == "tune"]
    figures = faq_module.evaluate_ranked(bench.rank_folds(faq, tuning))
    assert (figures.questions, figures.wrong <= 9, figures.to_staff >= 478, figures.auto_answered >= 708) == (
        1441, True, True, True), figures


def test_the_firm_thresholds_are_the_best_worth_with_a_wrong_answer_costing_ten():
    bench = _bench()
    entries = (RENEWAL, LOST)

    def ranked(expected: str | None, probability: float, score: float):
        question = faq_module.LabelledQuestion("q", expected, "tune")
        ranking = faq_module.Ranking(entries, np.array([score, 0.1]), (("hue",), ()),
                                     np.array([probability, 1 - probability]))
        return question, ranking

    # An answerable question the firm rule answers from p = 0.9; an unanswerable one it answers
    # (wrongly) from p = 0.7: the strictest pair answering the first and not the second is chosen.
    rankings = [ranked("gia-han", 0.9, 0.8), ranked(None, 0.7, 0.8)]
    chosen, [found] = bench.tune_firm(rankings)
    assert chosen == {"firm_score": 0.7, "firm_probability": 0.9, "firm_unknown": 1}
    assert (found.auto_answered, found.wrong) == (1, 0)
    # Nothing to gain but a wrong answer: the firm rule stays out.
    chosen, _ = bench.tune_firm([ranked(None, 0.95, 0.9)])
    assert chosen["firm_score"] == bench.NEVER
