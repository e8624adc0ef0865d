"""The FAQ: answers the agency has written once, matched against a citizen's `BH HOI` question.

An FAQ answer goes out at once only when it is the answer a person would give to the question
as asked (CONTRACT section 7); anything less goes to staff. So `Faq.match` says `confident`
only when the best entry is both close to the question (`MIN_SCORE`) and clearly ahead of the
runner-up (`MIN_MARGIN`); `Faq.suggest` gives staff the closest entries whatever their score.

Matching is on folded text: citizens type without diacritics, so both sides go through
`gsm.fold`, lower case, punctuation to spaces, and a small table of citizen shorthand (`ko`,
`dc`, `ntn`, `bao hiem y te` -> `bhyt`, ...). The ranking is scikit-learn's TF-IDF over
character n-grams within words (`char_wb`), cosine similarity against each entry's question and,
with a lower weight, its answer: n-grams absorb typos and dropped letters (`bhtyt`, `thatnghiep`)
that a word index would miss, and IDF weighs down what every question says (`bhxh`, `duoc ko`).

The thresholds were chosen on the tuning half of fixtures/faq/questions.csv only (`split_of`
puts each question in a half by a hash of its folded text); `python bench/faq.py` reports the
other half as the honest figures.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from typing import Literal

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from .gsm import fold
from .csvfile import BadRow, CsvFile, ImportFailed, read_rows, text

MIN_SCORE = 0.54      # cosine similarity of the best entry
MIN_MARGIN = 0.07     # over the runner-up
ANSWER_WEIGHT = 0.15  # share of the answer's similarity in an entry's score

# Citizen shorthand and spelled-out names, folded, to one form on both sides.
SHORTHAND = {
    "bao hiem y te": "bhyt", "bh y te": "bhyt", "bao hiem xa hoi": "bhxh", "bh xa hoi": "bhxh",
    "bao hiem that nghiep": "bhtn", "ho gia dinh": "hgd", "tu nguyen": "tn",
    "kham chua benh": "kcb", "kham benh": "kcb", "ban dau": "bd", "can cuoc cong dan": "cccd",
    "can cuoc": "cccd", "cong ty": "cty", "mot lan": "1 lan",
    "ko": "khong", "k": "khong", "hok": "khong", "kg": "khong", "dc": "duoc", "dk": "duoc",
    "ntn": "nhu the nao", "nhu the nao": "nhu the nao", "the nao": "nhu the nao", "lam sao": "nhu the nao",
    "bn": "bao nhieu", "bnhieu": "bao nhieu", "j": "gi", "z": "vay", "bh": "bhxh",
}
# Greetings and courtesy words that say nothing about the question.
FILLER = ("cho em hoi", "cho toi hoi", "cho minh hoi", "cho hoi", "ad oi", "a c oi", "ac oi",
          "admin", "ad", "xin hoi", "vay a", "a", "oi", "nhe", "voi", "giup", "em", "toi", "minh")

_PUNCTUATION = re.compile(r"[^0-9a-z]+")
_SHORTHAND = re.compile(r"\b(" + "|".join(sorted(map(re.escape, SHORTHAND), key=len, reverse=True)) + r")\b")
_FILLER = re.compile(r"\b(" + "|".join(sorted(map(re.escape, FILLER), key=len, reverse=True)) + r")\b")


class FaqImportError(ImportFailed, ValueError):
    """A bad FAQ file; `str()` is `file:line: reason`, like `smsgw db import`."""


def normalize(text: str) -> str:
    """The form both questions and entries are compared in: `Bảo hiểm y tế, hết hạn ko?` -> `bhyt het han khong`."""
    folded = _PUNCTUATION.sub(" ", fold(text).lower())
    folded = _SHORTHAND.sub(lambda m: SHORTHAND[m.group(1)], folded)
    return " ".join(_FILLER.sub(" ", folded).split())


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
class Match:
    entry: FaqEntry | None   # the best entry, None when nothing in the question is in the FAQ
    score: float             # its similarity, 0 to 1
    confident: bool          # True: answer at once; False: staff answers

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
    """The entries of one FAQ file, indexed for `match` and `suggest`."""

    def __init__(self, entries: list[FaqEntry]) -> None:
        if not entries:
            raise ValueError("an FAQ needs at least one entry")
        self.entries = tuple(entries)
        self._vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True,
                                           lowercase=False, dtype=np.float64)
        phrasings = [normalize(text) for entry in entries for text in entry.phrasings]
        answers = [normalize(entry.answer) for entry in entries]
        self._vectorizer.fit(phrasings + answers)
        self._phrasings = self._vectorizer.transform(phrasings).T.tocsr()
        self._answers = self._vectorizer.transform(answers).T.tocsr()
        # Where each entry's phrasings start among all phrasings (an entry scores its best one).
        self._starts = np.cumsum([0] + [len(entry.phrasings) for entry in entries[:-1]])

    @classmethod
    def from_csv(cls, path: str | os.PathLike[str]) -> Faq:
        """Read and check a whole file (CSV `id,question,answer`, UTF-8); FaqImportError on the first bad line."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FaqImportError(path, None, "no such file")
        rows, _ = _read(path, _FAQ_FILE)
        if not rows:
            raise FaqImportError(path, None, "no entries: expected rows id,question,answer after the header")
        return cls([FaqEntry(*row) for row in rows])

    def scores(self, question: str) -> np.ndarray:
        """Each entry's similarity to `question`, in entry order."""
        vector = self._vectorizer.transform([normalize(question)])
        by_question = np.maximum.reduceat((vector @ self._phrasings).toarray()[0], self._starts)
        by_answer = (vector @ self._answers).toarray()[0]
        return (1 - ANSWER_WEIGHT) * by_question + ANSWER_WEIGHT * by_answer

    def match(self, question: str, *, min_score: float = MIN_SCORE, min_margin: float = MIN_MARGIN) -> Match:
        """The best entry for `question`, confident when it may be sent without a person reading it."""
        scores = self.scores(question)
        order = np.argsort(-scores, kind="stable")
        best = float(scores[order[0]])
        if best <= 0.0:
            return Match(None, 0.0, False)
        runner_up = float(scores[order[1]]) if len(order) > 1 else 0.0
        confident = best >= min_score and best - runner_up >= min_margin
        return Match(self.entries[order[0]], best, confident)

    def suggest(self, question: str, k: int = 3) -> list[tuple[FaqEntry, float]]:
        """Up to `k` entries closest to `question`, best first, for a staff member to pick from."""
        scores = self.scores(question)
        order = np.argsort(-scores, kind="stable")[:max(k, 0)]
        return [(self.entries[i], float(scores[i])) for i in order if scores[i] > 0.0]


# -- the labelled questions ---------------------------------------------------------------


@dataclass(frozen=True)
class LabelledQuestion:
    question: str
    expected_id: str | None   # None: no entry answers it, it must go to staff


def split_of(question: str) -> Literal["tune", "test"]:
    """Which half of the labelled set a question is in, fixed by a hash of its normalized text."""
    digest = hashlib.sha256(normalize(question).encode("utf-8")).digest()
    return "tune" if digest[0] % 2 == 0 else "test"


def _labelled(fields: dict[str, str]) -> tuple:
    return text(fields["question"], "question", required=True), fields["expected_id"] or None


_LABELLED_FILE = CsvFile("questions.csv", ("question", "expected_id"), _labelled, ())


def read_labelled(path: str | os.PathLike[str], faq: Faq) -> list[LabelledQuestion]:
    """The labelled questions of `path` (CSV `question,expected_id`); every id must be an entry of `faq`."""
    path = os.fspath(path)
    known = {entry.id for entry in faq.entries}
    rows, lines = _read(path, _LABELLED_FILE)
    for (_, expected), line in zip(rows, lines):
        if expected is not None and expected not in known:
            raise FaqImportError(path, line, f"expected_id {expected!r} is not an entry of the FAQ")
    return [LabelledQuestion(question, expected) for question, expected in rows]


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


def evaluate(faq: Faq, labelled: list[LabelledQuestion], **thresholds: float) -> Figures:
    """Match every labelled question (`thresholds`: `min_score`, `min_margin` to try others)."""
    wrong = auto_answered = to_staff = 0
    for item in labelled:
        match = faq.match(item.question, **thresholds)
        answered_id = match.entry.id if match.confident and match.entry is not None else None
        if answered_id is None:
            to_staff += item.expected_id is None
        elif answered_id == item.expected_id:
            auto_answered += 1
        else:
            wrong += 1
    answerable = sum(item.expected_id is not None for item in labelled)
    return Figures(len(labelled), answerable, wrong, auto_answered, to_staff)
