"""The message language: normalise what a citizen typed, parse it with grammar/sms.lark.

`parse(text)` returns a typed command (smsgw.commands) or a `ParseError` carrying one of the
error codes of CONTRACT §1 and the reply that shows the right syntax.

Normalisation does only what a grammar should not carry, in this order:
  1. NFKC (full-width letters, digits and punctuation become ASCII; ideographic and other
     compatibility spaces become plain spaces);
  2. format characters removed (zero-width space/joiners, word joiner, BOM, soft hyphen,
     bidi marks: Unicode category Cf);
  3. diacritics removed (NFD, combining marks dropped, đ/Đ -> D), so `BH THẺ` is `BH THE`;
  4. upper case (before 3, so that upper-casing cannot bring a mark back); every run of white
     space becomes one space; ends trimmed;
  5. trailing sentence punctuation removed: any run of `. , ! ; :` (spaces allowed) at the end.
Everything structural (keywords, commands, identifiers, bounds, glued forms) is the grammar's.

Errors are classified from the parser's own state: the terminals it expected where it stopped,
and the tokens it had accepted before. Bounds accepted before a syntax error are checked first,
so that the left-most problem wins.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date

from lark import Lark, Token, Transformer, UnexpectedInput, UnexpectedToken

from .commands import HS, QT, THE, Command, Help, IdKind, Month

ERROR_CODES = (
    "empty", "unknown_keyword", "unknown_command", "missing_argument",
    "bad_id", "bad_period", "range_reversed", "trailing_input",
)
MIN_YEAR = 1960

_TRAILING_PUNCT = re.compile(r"[\s.,!;:]+$")
_COMMAND_TOKENS = {"QT": "QT", "HS": "HS", "THE": "THE", "HD": "HELP", "HELP": "HELP", "QMARK": "HELP"}
_ID_TERMINALS = frozenset({"SSN", "PERSONAL_ID", "CARD", "DOSSIER"})
_BOUND_TERMINALS = frozenset({"YEAR", "MONTH_YEAR", "YEAR_RANGE"})
_ID_KINDS = {
    "SSN": IdKind.SSN, "PERSONAL_ID": IdKind.PERSONAL_ID,
    "CARD": IdKind.CARD, "DOSSIER": IdKind.DOSSIER,
}


@dataclass(frozen=True)
class ParseError:
    """A message that could not be understood.

    `error` is a CONTRACT §1 code; `command` is the command recognised before the problem
    (QT, HS, THE or HELP), or None; `position` is the offset in the normalised text.
    """

    error: str
    command: str | None = None
    position: int = 0

    @property
    def reply(self) -> str:
        from .replies import syntax_reply

        return syntax_reply(self.error, self.command)


class _PeriodError(Exception):
    def __init__(self, error: str, position: int):
        self.error = error
        self.position = position


def normalize(text: str) -> str:
    """The normalised form of `text` that the grammar parses (see the module docstring)."""
    if text.isascii():
        text = text.upper()
    else:
        text = unicodedata.normalize("NFKC", text).upper()
        text = "".join(ch for ch in unicodedata.normalize("NFD", text)
                       if unicodedata.category(ch) not in ("Cf", "Mn"))
        text = unicodedata.normalize("NFC", text.replace("Đ", "D").replace("Ð", "D"))
    text = " ".join(text.split())
    return _TRAILING_PUNCT.sub("", text)


def _bound_months(token: Token) -> tuple[int, int, int]:
    """(year, first month, last month) of a YEAR or MONTH_YEAR token; months are 0 for a year."""
    text = str(token)
    if token.type == "YEAR":
        return int(text), 0, 0
    if text.isdigit():  # MMYYYY
        return int(text[2:]), int(text[:2]), int(text[:2])
    month, year = re.split(r"[/.\-]", text)
    return int(year), int(month), int(month)


def _month(token: Token, last: bool, this_year: int) -> Month:
    """The month a bound stands for; a year is its January (`last` False) or December."""
    year, month, _ = _bound_months(token)
    if not MIN_YEAR <= year <= this_year or not 0 <= month <= 12 or (month == 0 and token.type != "YEAR"):
        raise _PeriodError("bad_period", token.start_pos or 0)
    if month == 0:
        month = 12 if last else 1
    return Month(year, month)


def _period(bounds: list[Token], this_year: int) -> tuple[Month, Month]:
    """Check bounds left to right; returns (start, end) inclusive or raises _PeriodError."""
    if len(bounds) == 1 and bounds[0].type == "YEAR_RANGE":
        first, second = str(bounds[0]).split("-")
        pos = bounds[0].start_pos or 0
        start = _month(Token("YEAR", first, start_pos=pos), False, this_year)
        end = _month(Token("YEAR", second, start_pos=pos + 5), True, this_year)
    elif len(bounds) == 1:
        start, end = _month(bounds[0], False, this_year), _month(bounds[0], True, this_year)
    else:
        start = _month(bounds[0], False, this_year)
        end = _month(bounds[1], True, this_year)
    if start > end:
        raise _PeriodError("range_reversed", bounds[-1].start_pos or 0)
    return start, end


class _ToCommand(Transformer):
    """Tree -> raw command tuples; bounds stay tokens until `_build` checks them."""

    def help(self, _):
        return ("HELP",)

    def bh(self, children):
        return children[1] if len(children) > 1 else ("HELP",)

    def bh_help(self, _):
        return ("HELP",)

    def person(self, children):
        return children[0]

    def qt(self, children):
        bounds = children[2] if len(children) > 2 else []
        return ("QT", children[1], bounds)

    def hs(self, children):
        return ("HS", children[1])

    def the(self, children):
        return ("THE", children[1])

    def single(self, children):
        return [children[0]]

    def range(self, children):
        return [children[0], children[1]]

    def year_range(self, children):
        return [children[0]]

    def bound(self, children):
        return children[0]


_PARSER = Lark.open_from_package(
    "smsgw.grammar", "sms.lark", parser="lalr", lexer="contextual", transformer=_ToCommand(),
)


def _build(raw: tuple, this_year: int) -> Command:
    kind = raw[0]
    if kind == "HELP":
        return Help()
    if kind == "HS":
        return HS(str(raw[1]))
    token = raw[1]
    if kind == "THE":
        return THE(str(token), _ID_KINDS[token.type])
    start = end = None
    if raw[2]:
        start, end = _period(raw[2], this_year)
    return QT(str(token), _ID_KINDS[token.type], start, end)


def parse(text: str, *, today: date | None = None) -> Command | ParseError:
    """Parse one message; never raises for any input text."""
    this_year = (today or date.today()).year
    normalized = normalize(text)
    try:
        raw = _PARSER.parse(normalized)
    except UnexpectedInput as exc:
        return _classify(normalized, exc, this_year)
    try:
        return _build(raw, this_year)
    except _PeriodError as exc:
        return ParseError(exc.error, "QT", exc.position)


def _accepted_tokens(exc: UnexpectedInput) -> list[Token]:
    """The tokens the parser had accepted when it stopped, left to right (from its value stack)."""
    tokens: list[Token] = []

    def collect(value: object) -> None:
        if isinstance(value, Token):
            tokens.append(value)
        elif isinstance(value, (list, tuple)):
            for item in value:
                collect(item)

    state = getattr(exc, "state", None)
    collect(list(state.value_stack) if state is not None else [])
    return tokens


def _classify(text: str, exc: UnexpectedInput, this_year: int) -> ParseError:
    tokens = _accepted_tokens(exc)
    command = next((_COMMAND_TOKENS[t.type] for t in tokens if t.type in _COMMAND_TOKENS), None)
    position = exc.pos_in_stream or 0
    at_end = isinstance(exc, UnexpectedToken) and exc.token.type == "$END"
    if at_end:
        position = len(text)
    bounds = [t for t in tokens if t.type in _BOUND_TERMINALS]
    if bounds:
        try:
            _period(bounds, this_year)
        except _PeriodError as period_error:
            return ParseError(period_error.error, command, period_error.position)
    expected = set(exc.expected) if hasattr(exc, "expected") else set(exc.allowed or ())
    if not tokens:
        return ParseError("empty" if at_end else "unknown_keyword", None, position)
    if "QT" in expected:
        return ParseError("unknown_command", None, position)
    if expected & _ID_TERMINALS:
        return ParseError("missing_argument" if at_end else "bad_id", command, position)
    if expected & _BOUND_TERMINALS and not text[position].isalpha():
        return ParseError("bad_period", command, position)
    return ParseError("trailing_input", command, position)
