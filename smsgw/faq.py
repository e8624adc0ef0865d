"""The FAQ: answers the agency has written once, matched against a citizen's `BH HOI` question.

An FAQ answer goes out at once only when it is the answer a person would give to the question
as asked (CONTRACT section 7); anything less goes to staff. So `Faq.match` says `confident` only
when an entry knows every topic word of the question (`unknown_words`: its words other than
`FUNCTION_WORDS` and numbers, all used by the entry's phrasings or answer), is close to it
(`MIN_SCORE`) and is clearly ahead of the next entry that knows them all (`MIN_MARGIN`). A
question that shares most words with an entry but asks about something it never mentions
("sổ BHXH ghi sai" against the entry on the BHYT card) goes to staff, `Match.unknown` saying why.
`Faq.suggest` gives staff the closest entries.

Matching is on folded text: citizens type without diacritics, so both sides go through
`gsm.fold`, lower case, punctuation to spaces, and a table of citizen shorthand and synonyms
(`ko`, `dc`, `ntn`, `mấy`, `bao hiem y te` -> `bhyt`, ...). An entry's score mixes two rankings:
scikit-learn's TF-IDF over character n-grams within words (`char_wb`), cosine similarity against
each entry's phrasings and, with a lower weight, its answer: n-grams absorb typos and dropped
letters (`bhtyt`, `thatnghiep`) that a word index would miss, and IDF weighs down what every
question says (`bhxh`, `duoc ko`); and, for `WORD_WEIGHT` of it, rapidfuzz's token_set_ratio
against the closest phrasing, a word-level score that a question reordering an entry's words or
adding a few of its own (`bo em`, `thang sau`) keeps.

Examples (`FaqExample`, `smsgw faq import --examples`): citizens' questions that staff labelled
with the entry answering them. Each is one more phrasing of its entry for both rankings, weighed
`EXAMPLE_WEIGHT` (a written phrasing outweighs a mislabelled example), and its words are the
entry's own for the topic-word rule: how citizens actually write becomes what the entry knows.
An example with no entry (id empty) is a question staff said no entry answers: it teaches the
classifier below what the FAQ's close calls look like, and no entry its words.

A second opinion (`AGREE_MIN_SCORE`, `AGREE_MIN_PROBABILITY`): scikit-learn's logistic
regression over the same character n-grams and over words and word pairs, trained on every
phrasing and example labelled with its entry and on the questions no entry answers as a class
of their own, gives each entry a probability, and that class one (`Ranking.unanswered`). When
its first choice is the entry the similarity ranks first among those knowing every topic word,
with probability at least `AGREE_MIN_PROBABILITY`, a lower similarity (`AGREE_MIN_SCORE`) is
enough to answer: two rankers of different kinds agreeing is a confidence the similarity alone
does not show. The topic-word rule still applies to every answer. A question the classifier
finds at least `MAX_UNANSWERED` likely to be one no entry answers goes to staff, however close
an entry: the words that made a close call of the labelled ones ("ngoai tru" against the entry
on care out of the registered hospital, which gives no out-patient rate) make one of it.

Before ranking, `Faq.fold` also writes a number typed onto its word apart ("1lan"), a word the
FAQ lacks that is no Vietnamese syllable but two of its words typed together ("giahan",
"thatnghiep") as those words, and a mistyped non-word ("omm", "sna") as the FAQ's word one edit
away (`correct_typos`, rapidfuzz's optimal string alignment distance). A real syllable the FAQ
lacks ("chuot": a mouse) is never corrected or split: corrected, it would become a topic the FAQ knows.

One topic word that no entry uses at all (`MAX_ASIDE`: "chuot", "ruong", "lop 8") is the asker's
own detail, not held against any entry; two or more are a question the FAQ does not cover. A
word that another entry uses is never forgiven: it is that entry's topic.

The shorthand covers SMS teen-code and southern speech too (`hông`, `tui`, `zay`, `rui`, `mk`
for minh but in `quen mk`), central speech (`ở mô`, `răng`, `tau`, `eng`), a key held down
(`conn`, `naoo`) is read once, and the shorthand is applied again after words typed together
are split (`tunguyen` -> `tu nguyen` -> `tn`).

A question about the asker's own case, asking why something happened to them (`tại sao`, `vì
sao`, `lý do`) or naming their BHXH number, phone or card code, is never answered at once
(`Ranking.own_case`): no FAQ answer knows their case, however close its words. Nor is a question
asking for a sum of money, a length of time or an exact figure (`ASKS`) answered by an entry
that no phrasing or example has asked it of: that entry gives a rate or a rule, not the figure.

The thresholds were chosen on the tuning halves of fixtures/faq/questions*.csv only (each
question's half is stored in the file) by `python bench/faq.py --tune`; since round 9's tuning
half was added, no thresholds there give no wrong answer (three questions no threshold
separates, BENCHMARKS.md section 8) and those chosen before were kept. `MAX_UNANSWERED` and the
firm and agreement probabilities were chosen with the questions no entry answers, on the tuning
data in folds and round by round (`--by-round`). `python bench/faq.py` reports the held-out
halves and sets as the honest figures.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from dataclasses import dataclass
from collections.abc import Sequence
from typing import Literal

import numpy as np
from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA
from scipy.sparse import hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from .gsm import fold
from .csvfile import BadRow, CsvFile, ImportFailed, read_rows, text

MIN_SCORE = 0.72      # similarity of the best entry (see bench/faq.py --tune)
MIN_MARGIN = 0.05     # over the runner-up
ANSWER_WEIGHT = 0.15  # share of the answer's similarity in the character score
WORD_WEIGHT = 0.3     # share of the word-level score (rapidfuzz token_set_ratio) in an entry's score
MAX_UNKNOWN = 0       # topic words of the question that the best entry may leave unspoken of
MAX_ASIDE = 1         # ... not counting up to this many that no entry uses at all (`Faq.rank`)
EXAMPLE_WEIGHT = 0.85   # an example's similarity counts this much against a hand-written phrasing's
AGREE_MIN_SCORE = 0.52        # ... or this close when the classifier agrees (see bench/faq.py --tune)
AGREE_MIN_PROBABILITY = 0.5   # the classifier's probability of that entry, its first choice
# The classifier's firm agreement (see bench/faq.py --tune): the closest entry is also its first
# choice, with at least this probability, and at least this close. It answers even when the
# question has a word the entry never uses: it is the asker's own ("hcm", "trach").
FIRM_MIN_SCORE = 0.6
FIRM_MIN_PROBABILITY = 0.8
FIRM_MAX_UNKNOWN = 2     # ... at most this many of them: more is another question
# The classifier's probability that the question is one of those staff said no entry answers
# (`FaqExample.unanswered`): from this on, staff answers it, however close an entry is.
MAX_UNANSWERED = 0.3
CLASSIFIER_C = 10.0           # inverse regularisation of the classifier (scikit-learn's C)
SUGGEST_MIN_SCORE = 0.2   # below this an entry has nothing to do with the question: not shown to staff

# Citizen shorthand, spelled-out names and plain synonyms, folded, to one form on both sides.
SHORTHAND = {
    "bao hiem y te": "bhyt", "bh y te": "bhyt", "bao hiem xa hoi": "bhxh", "bh xa hoi": "bhxh",
    "bao hiem that nghiep": "bhtn", "ho gia dinh": "hgd", "tu nguyen": "tn",
    "kham chua benh": "kcb", "kham benh": "kcb", "ban dau": "bd", "can cuoc cong dan": "cccd",
    "can cuoc": "cccd", "cong ty": "cty", "mot lan": "1 lan",
    "ko": "khong", "k": "khong", "hok": "khong", "kg": "khong", "dc": "duoc", "dk": "duoc",
    "ntn": "nhu the nao", "nhu the nao": "nhu the nao", "the nao": "nhu the nao", "lam sao": "nhu the nao",
    "bn": "bao nhieu", "bnhieu": "bao nhieu", "may": "bao nhieu", "j": "gi", "z": "vay", "bh": "bhxh",
    "ho gd": "hgd", "hs": "hoc sinh", "sv": "sinh vien", "bv": "benh vien", "tg": "thoi gian",
    "lanh": "nhan", "linh": "nhan", "danh roi": "mat", "that lac": "mat",
    "sms": "tin nhan", "nhan tin": "tin nhan", "online": "truc tuyen", "chet": "qua doi",
    "kham": "kcb", "hu": "hong", "phan tram": "phantram",
    # The agency's and citizens' abbreviations (its forms and services, common SMS shorthand).
    "tk1 ts": "tk1ts", "ts": "thai san", "sdt": "so dien thoai", "dt": "dien thoai",
    "cmnd": "cccd", "cmt": "cccd", "chung minh nhan dan": "cccd", "chung minh thu": "cccd",
    "tk": "tai khoan", "tc": "tro cap", "nld": "nguoi lao dong",
    "hdld": "hop dong lao dong", "tnld": "tai nan lao dong", "bnn": "benh nghe nghiep",
    "dkkcb": "dang ky kcb", "ve huu": "nghi huu", "co bau": "mang thai", "bau": "mang thai",
    "app": "ung dung", "ck": "chuyen khoan", "dvvl": "dich vu viec lam", "dvc": "dich vu cong",
    "vss id": "vssid", "vss": "vssid", "vne id": "vneid", "lm": "lam", "vs": "voi", "r": "roi",
    "tctn": "tro cap that nghiep",
    # Southern speech and teen-code: "hong"/"hông" is khong (and "hỏng", broken: a function word
    # either way), "mk" is minh but for a password, "h" is gio.
    "zay": "vay", "rui": "roi", "coi": "xem", "xai": "dung", "chung nao": "khi nao",
    "quen mk": "quen mat khau", "doi mk": "doi mat khau", "mk vssid": "mat khau vssid", "mk": "minh",
    "h": "gio", "bik": "biet", "ms": "moi", "kq": "ket qua", "kqua": "ket qua", "check": "kiem tra",
    "dzay": "vay", "dzo": "vao", "nhiu": "nhieu", "het hang": "het han", "gia hang": "gia han", "sanh": "sinh",
    "mn": "moi nguoi", "v": "vay", "lun": "luon", "vk": "vo",   # teen-code: everyone, so, always, a wife
    "an luong": "nhan luong",   # "ăn lương": draws a wage or a pension
    # Central speech: "ở mô" is "ở đâu" ("mổ", surgery, stays a topic); "răng" is "sao" (a function
    # word), so teeth are named by their phrases, as dentistry: a topic no entry speaks of.
    "o mo": "o dau", "rang su": "nhakhoa", "nieng rang": "nhakhoa", "nho rang": "nhakhoa",
    "tram rang": "nhakhoa", "rang gia": "nhakhoa", "rang khon": "nhakhoa",
    "cao voi rang": "nhakhoa", "kham rang": "nhakhoa", "rang mieng": "nhakhoa",
    # Kin named by side and sex ("con trai", "ba ngoai"): the person is what counts, not the side.
    "con trai": "con", "con gai": "con", "em trai": "em", "em gai": "em", "anh trai": "anh", "chi gai": "chi",
    "ba noi": "ba", "ba ngoai": "ba", "ong noi": "ong", "ong ngoai": "ong", "chau noi": "chau", "chau ngoai": "chau",
}
# Greetings, courtesy words and hearsay ("nghe noi") that say nothing about the question.
FILLER = ("cho em hoi", "cho toi hoi", "cho minh hoi", "cho hoi", "ad oi", "a c oi", "ac oi",
          "admin", "ad", "alo", "xin hoi", "vay a", "a", "oi", "nhe", "voi", "giup", "em", "e", "toi", "tui", "minh", "ak", "c",
          "nghe nguoi ta noi", "nghe noi")
# Words that carry no topic (question words, particles, pronouns, common verbs): a question's
# other words must all be known to an entry for it to answer at once (see `Faq.match`).
FUNCTION_WORDS = frozenset("""
    khong co duoc thi la gi nao nhu the bao nhieu o dau ma va hay hoac cua cho de khi neu roi gio
    nay do day vay chua da dang se phai lam muon biet xin hoi a nhe nha anh chi ban tu trong tren
    sau truoc ra vao bi nhung cac moi mot cai lau sao cung con cach can den lay ve xem thay khac
    me bo be ba ong chau tien phi che do thu tuc tham gia thang nam ngay
    theo luc them vua xong ha luon nua rat vi tai nen thoi van cu nhanh it nhat het voi tuan hom hong
    tau eng hi ni chu dem dua qua di bua te rang ton
    xa huyen tinh phuong quan que
    hiem nguoi phantram ai nop
""".split())

# A question asking why something happened ("tại sao", "vì sao", "lý do"), or naming a person's
# number (a BHXH number or a phone, 10 digits; a health card code), is about the asker's own
# case, which no FAQ answer knows: staff reads it (`Ranking.own_case`). No entry's phrasing and
# no labelled tuning question that an entry answers asks why; 13 unanswerable ones do.
_OWN_CASE = re.compile(r"\b(tai sao|vi sao|sao lai|ly do|[0-9]{10}|[a-z]{2}[0-9]{13})\b")
# What a question asks for, when an entry must have been asked it before to answer it: a sum of
# money ("het bao nhieu tien", "tong cong"), a length of time ("bao lau", "may ngay") or an exact
# figure or the cap ("cu the", "muc tran"). An entry whose phrasings and examples never ask it
# gives a rule or a rate, not that figure: for it, the question's words asking it count as a topic
# word it never uses (`Faq.rank`). Its close calls ("4 nguoi tong cong het bao nhieu tien", "bao
# lau moi nhan duoc the") go to staff.
ASKS = {
    "money": re.compile(r"\b(bao nhieu tien|het bao nhieu|bao nhieu (ngan|nghin|trieu|dong)|tong cong|tong(?! dai))\b"),
    "duration": re.compile(r"\b(bao lau|bao nhieu (ngay|thang|tuan))\b"),
    # An exact figure or the cap: "cu the bao nhieu", "chinh xac", "muc tran". ("Tối đa", the
    # maximum, folds to "toi da", as "tôi đã", I have, does: "toi" is a courtesy word, gone.)
    "precise": re.compile(r"\b(cu the|chinh xac|muc tran)\b"),
}
_PUNCTUATION = re.compile(r"[^0-9a-z]+")
_NUMBER_THEN_WORD = re.compile(r"(?<=[0-9])(?=[a-z])")   # "1lan", "3thang": a number typed onto its word
_SHORTHAND = re.compile(r"\b(" + "|".join(sorted(map(re.escape, SHORTHAND), key=len, reverse=True)) + r")\b")
_FILLER = re.compile(r"\b(" + "|".join(sorted(map(re.escape, FILLER), key=len, reverse=True)) + r")\b")


class FaqImportError(ImportFailed, ValueError):
    """A bad FAQ file; `str()` is `file:line: reason`, like `smsgw db import`."""


def normalize(text: str) -> str:
    """The form both questions and entries are compared in: `Bảo hiểm y tế, hết hạn ko?` -> `bhyt het han khong`."""
    return _abbreviated(_plain(text))


def _plain(text: str) -> str:
    """Folded, lower case, punctuation to spaces, a number typed onto its word apart."""
    return _NUMBER_THEN_WORD.sub(" ", _PUNCTUATION.sub(" ", fold(text).lower()))


def _abbreviated(folded: str) -> str:
    """`folded` with the shorthand in one form (SHORTHAND) and the courtesy words (FILLER) gone."""
    folded = _SHORTHAND.sub(lambda m: SHORTHAND[m.group(1)], folded)
    return " ".join(_FILLER.sub(" ", folded).split())


def _topic_words(folded: str) -> list[str]:
    """The words of a normalized question that say what it is about: not function words, not numbers."""
    return [word for word in folded.split() if word not in FUNCTION_WORDS and not word.isdigit()]


# One Vietnamese syllable, folded: an onset, one group of vowels, a final consonant. A word that
# is none ("giahan", "omm", "sna") was typed together or mistyped; one that is ("trach") is a
# real word the FAQ does not use, and is left as it is.
_VOWEL = re.compile(r"[aeiouy]")
_DOUBLED = re.compile(r"([a-z])\1")
_SYLLABLE = re.compile(r"(ngh|ng|nh|ch|gh|gi|kh|ph|qu|th|tr|[bcdghklmnprstvx])?[aeiouy]{1,3}(ch|ng|nh|[cmnpt])?")


def split_joined(folded: str, vocabulary: frozenset[str]) -> str:
    """`folded` with each word that `vocabulary` lacks, that is no single syllable, but that is
    two of its words typed together ("giahan", "thatnghiep") written as those two words; other
    words kept."""
    words = []
    for word in folded.split():
        if word not in vocabulary and len(word) >= 4 and word.isalpha() and not _SYLLABLE.fullmatch(word):
            splits = [(word[:cut], word[cut:]) for cut in range(2, len(word) - 1)
                      if word[:cut] in vocabulary and word[cut:] in vocabulary]
            if splits:   # the most even split: "thatnghiep" -> "that nghiep", not "th atnghiep"
                words.extend(max(splits, key=lambda parts: min(map(len, parts))))
                continue
        words.append(word)
    return " ".join(words)


def correct_typos(folded: str, frequency: Counter[str]) -> str:
    """`folded` with each word that is no Vietnamese syllable and no word of the FAQ ("omm",
    "sna", "bhtyt") replaced by the FAQ's word one edit away (rapidfuzz's optimal string
    alignment distance: a letter dropped, added, changed or two swapped), preferring the same
    letters swapped, then the same length, then the word the FAQ uses most; kept when there is
    none. A real word the FAQ does not use ("trach", "chuot") is a syllable and stays unknown."""
    words = []
    for word in folded.split():
        single = _DOUBLED.sub(r"\1", word)   # "naoo", "conn": a key held down ("buu", "cuu" are words)
        if single != word and word not in frequency and single in frequency:
            word = single
        elif (len(word) >= 3 and word not in frequency and _VOWEL.search(word)   # "hcm", "gd4": abbreviations
                and not _SYLLABLE.fullmatch(word)):
            near = process.extract(word, frequency.keys(), scorer=OSA.distance, score_cutoff=1, limit=None)
            if near:
                word = max((choice for choice, _, _ in near), key=lambda choice: (
                    sorted(choice) == sorted(word), len(choice) == len(word), frequency[choice]))
        words.append(word)
    return " ".join(words)


@dataclass(frozen=True)
class FaqEntry:
    id: str
    question: str   # the question, then other ways citizens ask it, separated by `|`
    answer: str

    @property
    def phrasings(self) -> tuple[str, ...]:
        return tuple(part.strip() for part in self.question.split("|") if part.strip())

    @property
    def title(self) -> str:
        """The first phrasing: the question as a staff member sees it."""
        return self.phrasings[0]


@dataclass(frozen=True)
class FaqExample:
    """A citizen's question that staff labelled (from the HOI log): entry `id` answers it, one
    more way people ask it (it ranks like the entry's phrasings and its words count as the
    entry's own); or, `id` empty, no entry does (`unanswered`: staff answered it themselves). The
    classifier learns both (`Ranking.unanswered`)."""
    id: str
    question: str

    @property
    def unanswered(self) -> bool:
        return not self.id


@dataclass(frozen=True)
class Match:
    entry: FaqEntry | None   # the best entry, None when nothing in the question is in the FAQ
    score: float             # its similarity, 0 to 1
    confident: bool          # True: answer at once; False: staff answers
    unknown: tuple[str, ...] = ()   # the question's topic words the best entry never uses (folded)

    @property
    def answer(self) -> str | None:
        return self.entry.answer if self.confident and self.entry is not None else None


def _entry(fields: dict[str, str]) -> tuple:
    entry = tuple(text(fields[name], name, required=True) for name in ("id", "question", "answer"))
    if not any(part.strip() for part in entry[1].split("|")):
        raise BadRow("question is empty")
    return entry


_FAQ_FILE = CsvFile("faq.csv", ("id", "question", "answer"), _entry, (
    (lambda row: row[0], "duplicate id: already on line {line}"),
))


def _example(fields: dict[str, str]) -> tuple:
    return text(fields["id"], "id", required=False), text(fields["question"], "question", required=True)


_EXAMPLES_FILE = CsvFile("examples.csv", ("id", "question"), _example, ())


def read_examples(path: str | os.PathLike[str], entries: Sequence[FaqEntry]) -> list[FaqExample]:
    """The examples of `path` (CSV `id,question`), every `id` an entry of `entries` or empty (a
    question no entry answers); FaqImportError on the first bad line."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FaqImportError(path, None, "no such file")
    known = {entry.id for entry in entries}
    rows, lines = _read(path, _EXAMPLES_FILE)
    for (entry_id, _), line in zip(rows, lines):
        if entry_id and entry_id not in known:
            raise FaqImportError(path, line, f"id {entry_id!r} is not an entry of the FAQ (empty: no entry answers it)")
    return [FaqExample(*row) for row in rows]


def _read(path: str, spec: CsvFile) -> tuple[list[tuple], list[int]]:
    """Every row of a whole file and its line; FaqImportError on the first bad line."""
    try:
        rows, lines, failure = read_rows(path, spec)
    except ImportFailed as failed:
        raise FaqImportError(failed.file, failed.line, failed.reason) from None
    if failure is not None:
        raise FaqImportError(failure.file, failure.line, failure.reason)
    return rows, lines


class Faq:
    """The entries of one FAQ file and the labelled examples of its entries, indexed for `match`
    and `suggest`."""

    def __init__(self, entries: list[FaqEntry], examples: Sequence[FaqExample] = ()) -> None:
        if not entries:
            raise ValueError("an FAQ needs at least one entry")
        self.entries = tuple(entries)
        self.examples = tuple(examples)
        index = {entry.id: position for position, entry in enumerate(entries)}
        answers = [normalize(entry.answer) for entry in entries]
        plain = [[_plain(text) for text in entry.phrasings] for entry in entries]
        # Each entry's phrasings (normalized), then below its examples, folded as a question is (`fold`).
        by_entry: list[list[str]] = [[_abbreviated(text) for text in texts] for texts in plain]
        # How often the FAQ's own text (its phrasings and answers, spelled as the agency spells)
        # uses each word: what `correct_typos` corrects to, preferring the commonest. Citizens'
        # examples are not in it: their misspellings ("huog") are no words to keep or correct to.
        self._frequency = Counter(" ".join([*(text for texts in by_entry for text in texts), *answers]).split())
        # The words a word typed together may split into: also those the shorthand rewrites ("nguyen").
        self._joinable = frozenset(self._frequency) | frozenset(" ".join(text for texts in plain for text in texts).split())
        unanswered = []   # the questions staff said no entry answers, folded
        for example in self.examples:
            if example.unanswered:
                unanswered.append(self.fold(example.question))
            elif example.id not in index:
                raise ValueError(f"example of an unknown entry: {example.id!r}")
            else:
                by_entry[index[example.id]].append(self.fold(example.question))
        self._vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True,
                                           lowercase=False, dtype=np.float64)
        phrasings = [text for texts in by_entry for text in texts]
        self._vectorizer.fit(phrasings + answers)
        self._phrasings = self._vectorizer.transform(phrasings).T.tocsr()
        self._phrasing_texts = phrasings
        self._answers = self._vectorizer.transform(answers).T.tocsr()
        # Where each entry's phrasings (then its examples) start among all of them: an entry scores its best one.
        self._starts = np.cumsum([0] + [len(texts) for texts in by_entry[:-1]])
        self._weights = np.array([1.0 if k < len(entry.phrasings) else EXAMPLE_WEIGHT
                                  for texts, entry in zip(by_entry, entries) for k in range(len(texts))])
        # Every word each entry uses, in its phrasings, its examples or its answer (`unknown_words`),
        # and every word of any entry (`rank`: a word none uses is the asker's own).
        self._words = [set(" ".join((*texts, answer)).split()) for texts, answer in zip(by_entry, answers)]
        self._vocabulary = frozenset().union(*self._words)
        # What each entry has been asked for (`ASKS`), by its phrasings or examples (not its answer).
        self._asked = [{kind for kind, pattern in ASKS.items() if any(pattern.search(text) for text in texts)}
                       for texts in by_entry]
        # The second opinion: a classifier of the same character n-grams and of the words and
        # word pairs, trained on every phrasing and example labelled with its entry and, as one
        # class more, the questions no entry answers (`Ranking.probabilities`, `.unanswered`).
        trained = phrasings + unanswered
        self._word_vectorizer = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True,
                                                lowercase=False, token_pattern=r"\S+", dtype=np.float64)
        self._word_vectorizer.fit(trained)
        labels = [index for index, texts in enumerate(by_entry) for _ in texts] + [len(entries)] * len(unanswered)
        self._classifier = (LogisticRegression(C=CLASSIFIER_C, max_iter=3000).fit(
            self._features(self._vectorizer.transform(trained), trained), labels) if len(set(labels)) > 1 else None)

    def _features(self, characters, texts: list[str]):
        """The classifier's features of folded `texts`: their character n-grams (`characters`,
        already computed) beside their words and word pairs."""
        return hstack([characters, self._word_vectorizer.transform(texts)], format="csr")

    def fold(self, question: str) -> str:
        """`question` as it is compared: normalized, words typed together split on the FAQ's
        words, mistyped words (`correct_typos`) corrected."""
        # Split and corrected words may make shorthand ("tunguyen" -> "tu nguyen" -> "tn"): applied again.
        return _abbreviated(correct_typos(split_joined(normalize(question), self._joinable), self._frequency))

    @classmethod
    def from_csv(cls, path: str | os.PathLike[str], examples: str | os.PathLike[str] | None = None) -> Faq:
        """Read and check a whole file (CSV `id,question,answer`, UTF-8) and, when given, a file of
        examples (CSV `id,question`: a citizen's question and the entry that answers it);
        FaqImportError on the first bad line of either."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FaqImportError(path, None, "no such file")
        rows, _ = _read(path, _FAQ_FILE)
        if not rows:
            raise FaqImportError(path, None, "no entries: expected rows id,question,answer after the header")
        entries = [FaqEntry(*row) for row in rows]
        return cls(entries, read_examples(examples, entries) if examples is not None else ())

    def scores(self, question: str) -> np.ndarray:
        """Each entry's similarity to `question`, in entry order, 0 to 1: the character score
        (TF-IDF cosine to its closest phrasing and, weighed less, to its answer) mixed with the
        word score (`WORD_WEIGHT`)."""
        return self._scores(self.fold(question))

    def _scores(self, folded: str) -> np.ndarray:
        return self._scored(folded, self._vectorizer.transform([folded]))

    def _scored(self, folded: str, vector) -> np.ndarray:
        by_question = np.maximum.reduceat((vector @ self._phrasings).toarray()[0] * self._weights, self._starts)
        by_answer = (vector @ self._answers).toarray()[0]
        by_chars = (1 - ANSWER_WEIGHT) * by_question + ANSWER_WEIGHT * by_answer
        return (1 - WORD_WEIGHT) * by_chars + WORD_WEIGHT * self._word_scores(folded)

    def _word_scores(self, folded: str) -> np.ndarray:
        """Each entry's word-level similarity to a normalized question: rapidfuzz's
        token_set_ratio to its closest phrasing, 0 to 1. It compares the sets of whole words
        (order-free, the shared words against each side's rest), so a question that reorders an
        entry's words, or adds a few of its own, still scores high where character n-grams
        spread thin over the extra words."""
        if not folded:
            return np.zeros(len(self.entries))
        by_phrasing = process.cdist([folded], self._phrasing_texts, scorer=fuzz.token_set_ratio,
                                    dtype=np.float64, workers=1)[0] / 100.0
        return np.maximum.reduceat(by_phrasing * self._weights, self._starts)

    def unknown_words(self, question: str, index: int) -> tuple[str, ...]:
        """The words of `question` that say what it is about (not `FUNCTION_WORDS`, not numbers)
        and that entry `index` never uses: what the question asks beyond what the entry answers."""
        return self._unknown(_topic_words(self.fold(question)), index)

    def _unknown(self, topic_words: list[str], index: int) -> tuple[str, ...]:
        known = self._words[index]
        return tuple(word for word in topic_words if word not in known)

    def match(self, question: str, *, min_score: float = MIN_SCORE, min_margin: float = MIN_MARGIN,
              max_unknown: int = MAX_UNKNOWN, agree_score: float = AGREE_MIN_SCORE,
              agree_probability: float = AGREE_MIN_PROBABILITY, firm_score: float = FIRM_MIN_SCORE,
              firm_probability: float = FIRM_MIN_PROBABILITY, firm_unknown: int = FIRM_MAX_UNKNOWN,
              max_unanswered: float = MAX_UNANSWERED) -> Match:
        """The best entry for `question`, confident when it may be sent without a person reading it:
        close enough, clearly ahead of the runner-up, and asking about nothing the entry does not
        speak of (at most `max_unknown` such words); or the classifier's firm choice (`Ranking.decide`)."""
        return self.rank(question).decide(min_score=min_score, min_margin=min_margin, max_unknown=max_unknown,
                                          agree_score=agree_score, agree_probability=agree_probability,
                                          firm_score=firm_score, firm_probability=firm_probability,
                                          firm_unknown=firm_unknown, max_unanswered=max_unanswered)

    def rank(self, question: str) -> Ranking:
        """`question` against every entry: what `match` decides from, for any thresholds."""
        folded = self.fold(question)
        topic = _topic_words(folded)
        # A word no entry uses at all ("chuot", "ruong", "lop 8") is a detail of the asker's own
        # rather than a topic another entry speaks of: up to MAX_ASIDE of them are not held
        # against any entry. More of them is a question about something the FAQ does not cover.
        aside = [word for word in topic if word not in self._vocabulary]
        if len(aside) <= MAX_ASIDE:
            topic = [word for word in topic if word in self._vocabulary]
        asks = {kind: found.group(0) for kind, pattern in ASKS.items() if (found := pattern.search(folded))}
        vector = self._vectorizer.transform([folded])
        probabilities = (self._classifier.predict_proba(self._features(vector, [folded]))[0]
                         if self._classifier is not None and folded else np.zeros(len(self.entries)))
        entries = len(self.entries)   # a class more, when some example is of no entry
        return Ranking(self.entries, self._scored(folded, vector),
                       tuple(self._unknown(topic, index) + tuple(words for kind, words in asks.items()
                                                                 if kind not in self._asked[index])
                             for index in range(entries)), probabilities[:entries],
                       own_case=bool(_OWN_CASE.search(folded)),
                       unanswered=float(probabilities[entries]) if len(probabilities) > entries else 0.0)

    def suggest(self, question: str, k: int = 3) -> list[tuple[FaqEntry, float]]:
        """Up to `k` entries closest to `question`, best first, for a staff member to pick from
        (none scoring under SUGGEST_MIN_SCORE: "alo alo" gets no suggestion)."""
        scores = self.scores(question)
        order = np.argsort(-scores, kind="stable")[:max(k, 0)]
        return [(self.entries[i], float(scores[i])) for i in order if scores[i] >= SUGGEST_MIN_SCORE]


@dataclass(frozen=True)
class Ranking:
    """One question scored against every entry (`Faq.rank`), with the topic words each entry never uses."""
    entries: tuple[FaqEntry, ...]
    scores: np.ndarray
    unknown: tuple[tuple[str, ...], ...]   # per entry, in entry order
    probabilities: np.ndarray   # per entry: the classifier's probability that it answers the question
    own_case: bool = False      # it asks why, or names a person's number: never answered at once (`_OWN_CASE`)
    unanswered: float = 0.0     # the classifier's probability that no entry answers it (`FaqExample.unanswered`)

    def decide(self, *, min_score: float = MIN_SCORE, min_margin: float = MIN_MARGIN,
               max_unknown: int = MAX_UNKNOWN, agree_score: float = AGREE_MIN_SCORE,
               agree_probability: float = AGREE_MIN_PROBABILITY, firm_score: float = FIRM_MIN_SCORE,
               firm_probability: float = FIRM_MIN_PROBABILITY, firm_unknown: int = FIRM_MAX_UNKNOWN,
               max_unanswered: float = MAX_UNANSWERED) -> Match:
        """The `Match` these thresholds give (see `Faq.match`)."""
        scores = self.scores
        order = np.argsort(-scores, kind="stable")
        top = int(order[0])
        if scores[top] <= 0.0:
            return Match(None, 0.0, False)
        # The classifier's first choice: an entry, or none (-1) when a question no entry answers is likelier.
        first_choice = int(np.argmax(self.probabilities)) if self.probabilities.max() > self.unanswered else -1
        # Never at once: a question about the asker's own case, or one the classifier finds as
        # likely as `max_unanswered` to be one of those staff said no entry answers.
        held = self.own_case or self.unanswered >= max_unanswered
        # The closest entry, the classifier's firm first choice: a few words the entry never uses
        # are the asker's own (FIRM_MIN_PROBABILITY).
        firm = bool(first_choice == top and self.probabilities[top] >= firm_probability
                    and scores[top] >= firm_score and len(self.unknown[top]) <= firm_unknown and not held)
        # The entries that speak of everything the question asks, closest first: the best of
        # them answers when close enough and clearly ahead of the next one.
        covering = [int(i) for i in order if scores[i] > 0.0 and len(self.unknown[i]) <= max_unknown]
        if not covering:
            return Match(self.entries[top], float(scores[top]), firm, self.unknown[top])
        best = float(scores[covering[0]])
        runner_up = float(scores[covering[1]]) if len(covering) > 1 else 0.0
        chosen = covering[0]
        agreed = (first_choice == chosen and self.probabilities[chosen] >= agree_probability
                  and best >= agree_score)
        if ((best >= min_score and best - runner_up >= min_margin) or agreed) and not held:
            return Match(self.entries[chosen], best, True, self.unknown[chosen])
        if firm:
            return Match(self.entries[top], float(scores[top]), True, self.unknown[top])
        return Match(self.entries[chosen], best, False, self.unknown[chosen])


# -- the labelled questions ---------------------------------------------------------------


@dataclass(frozen=True)
class LabelledQuestion:
    question: str
    expected_id: str | None   # None: no entry answers it, it must go to staff
    half: Literal["tune", "test"] = "tune"   # thresholds and phrasings come from "tune" only


def split_of(question: str) -> Literal["tune", "test"]:
    """The half a new labelled question goes in, by a hash of its text folded and lower case.

    The labelled files store each question's half (column `half`), so that a change of
    `normalize` never moves a held-out question into the tuning half."""
    plain = " ".join(_PUNCTUATION.sub(" ", fold(question).lower()).split())
    digest = hashlib.sha256(plain.encode("utf-8")).digest()
    return "tune" if digest[0] % 2 == 0 else "test"


def _labelled(fields: dict[str, str]) -> tuple:
    question = text(fields["question"], "question", required=True)
    half = fields.get("half") or split_of(question)
    if half not in ("tune", "test"):
        raise BadRow(f"bad half {half!r}: expected tune or test")
    return question, fields["expected_id"] or None, half


_LABELLED_FILE = CsvFile("questions.csv", ("question", "expected_id", "half"), _labelled, (), optional=("half",))


def read_labelled(path: str | os.PathLike[str], faq: Faq) -> list[LabelledQuestion]:
    """The labelled questions of `path` (CSV `question,expected_id[,half]`); every id must be an entry of `faq`."""
    path = os.fspath(path)
    known = {entry.id for entry in faq.entries}
    rows, lines = _read(path, _LABELLED_FILE)
    for (_, expected, _), line in zip(rows, lines):
        if expected is not None and expected not in known:
            raise FaqImportError(path, line, f"expected_id {expected!r} is not an entry of the FAQ")
    return [LabelledQuestion(*row) for row in rows]


@dataclass(frozen=True)
class Figures:
    """How a set of labelled questions fares; the targets are those of issue 17."""

    questions: int
    answerable: int
    wrong: int           # auto-answered with an entry other than the expected one (or none expected)
    auto_answered: int   # answerable ones auto-answered with the expected entry
    to_staff: int        # unanswerable ones left to staff

    @property
    def wrong_share(self) -> float:          # target: at most 2% of all questions
        return self.wrong / self.questions if self.questions else 0.0

    @property
    def coverage(self) -> float:             # target: at least 70% of the answerable ones
        return self.auto_answered / self.answerable if self.answerable else 1.0

    @property
    def staff_share(self) -> float:          # target: at least 95% of the unanswerable ones
        unanswerable = self.questions - self.answerable
        return self.to_staff / unanswerable if unanswerable else 1.0

    @property
    def meets_targets(self) -> bool:
        return self.wrong_share <= 0.02 and self.coverage >= 0.70 and self.staff_share >= 0.95


def evaluate(faq: Faq, labelled: list[LabelledQuestion], **thresholds: float | int) -> Figures:
    """Match every labelled question (`thresholds`: `min_score`, `min_margin`, `max_unknown` to try others)."""
    return evaluate_ranked([(item, faq.rank(item.question)) for item in labelled], **thresholds)


def evaluate_ranked(ranked: Sequence[tuple[LabelledQuestion, Ranking]], **thresholds: float | int) -> Figures:
    """`evaluate` over questions already ranked (each by the index it is to be judged with)."""
    wrong = auto_answered = to_staff = 0
    for item, ranking in ranked:
        match = ranking.decide(**thresholds)
        answered_id = match.entry.id if match.confident and match.entry is not None else None
        if answered_id is None:
            to_staff += item.expected_id is None
        elif answered_id == item.expected_id:
            auto_answered += 1
        else:
            wrong += 1
    answerable = sum(item.expected_id is not None for item, _ in ranked)
    return Figures(len(ranked), answerable, wrong, auto_answered, to_staff)
