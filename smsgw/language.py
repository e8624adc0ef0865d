"""The message language: normalise what a citizen typed, parse it with grammar/sms.lark.

`parse(text)` returns a typed command (smsgw.commands) or a `ParseError` carrying one of the
error codes of CONTRACT §1 (`commands.ERROR_CODES`); the reply that shows the right syntax is
worded from it by `syntax_replies.syntax_reply_for`, never here.

The text is first normalised (normalize.py: NFKC, format characters and diacritics removed,
upper case, white space collapsed, trailing punctuation removed); everything structural
(keywords, commands, identifiers, bounds, glued forms) is the grammar's.

The forms written the way people write them (§1a: range words, dashes, brackets, BHXH, digit
groups, a card in its printed groups, spaces in a dossier code) are the grammar's too; the
transformer below only joins what the grammar delimited (digit groups, card groups), and `build`
turns the period's structure (single, range, since, until, whole) into months (periods.py).

Errors are classified from the parser's own state: the terminals it expected where it stopped,
and the tokens it had accepted before. Bounds accepted before a syntax error are checked first,
so that the left-most problem wins. A ParseError knows the normalised text, the day and the
keywords of other services, so that its correction (smsgw/corrections.py, CONTRACT §1b) is
computed when its reply is worded, never on the parse path.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from datetime import date

from lark import Lark, Token, Transformer, UnexpectedInput, UnexpectedToken

from .clock import vietnam_today
from .commands import CONVERSATIONS, DG, DK, HOI, HS, LOOKUPS, QT, TC, THE, Command, Help, IdKind
from .normalize import normalize
from .periods import Refused, period_months

# The grammar's terminal of each command word -> the command it names.
_COMMAND_TOKENS = {
    **{name: name for name in (*LOOKUPS, *CONVERSATIONS)}, "HD": Help.name, "HELP": Help.name, "QMARK": Help.name,
}
ID_TERMINALS = frozenset({
    "SSN", "PERSONAL_ID", "CARD", "DOSSIER", "SSN_GROUPS", "PERSONAL_ID_GROUPS", "AMBIGUOUS_GROUPS",
})
# The argument of a §7 command: missing, it is missing_argument; wrong, bad_id (`BH DG 6`).
_ARGUMENT_TERMINALS = ID_TERMINALS | {"QUESTION", "RATING"}
_BOUND_TERMINALS = frozenset({"YEAR", "MONTH_YEAR", "YEAR_RANGE"})
# After one of these a bound must follow: whatever else comes is a bad period (`tu`, `2016 den`).
_BEFORE_BOUND = frozenset({"_FROM", "_UNTIL", "_DASH", "_YEAR_WORD", "_MONTH_WORD", "MONTH"})
_ID_KINDS = {
    "SSN": IdKind.SSN, "PERSONAL_ID": IdKind.PERSONAL_ID,
    "CARD": IdKind.CARD, "DOSSIER": IdKind.DOSSIER,
}
_JOINED = {"SSN_GROUPS": "SSN", "PERSONAL_ID_GROUPS": "PERSONAL_ID"}
DIGIT_GROUPS = "digit_groups"
"""`ParseError.detail` of a number whose digit groups join both to 10 and to 12 digits."""


@dataclass(frozen=True)
class ParseError:
    """A message that could not be understood.

    `error` is a CONTRACT §1 code; `command` is the command recognised before the problem
    (QT, HS, THE or HELP), or None; `position` is the offset in the normalised text; `detail`
    says more where the reply must (DIGIT_GROUPS). `text` (the normalised message), `today`
    and `routes` (keywords of other services, never corrected) are what `correction` needs.
    """

    error: str
    command: str | None = None
    position: int = 0
    detail: str | None = None
    text: str = field(default="", compare=False, repr=False)
    today: date | None = field(default=None, compare=False, repr=False)
    routes: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @functools.cached_property
    def correction(self) -> str | None:
        """The whole corrected message when there is exactly one likely correction (§1b); the
        reply quotes it when a wording fits one SMS with it (`syntax_replies.quoted_correction`)."""
        from .corrections import correct

        return correct(self)


class _ToRaw(Transformer):
    """Tree -> raw command tuples; bounds stay tokens until `build` checks them.

    ("HELP", word) · ("QT", person, period) with period None or (kind, *bound tokens) ·
    ("HS", dossier) · ("THE", id) · ("HOI", question) · ("DG", rating, comment or None) ·
    ("TC",) · ("DK",). Identifiers are joined into one piece here (digit groups, card groups,
    spaces of a dossier code); the question and the comment stay tokens (their positions say
    where the text as typed begins: `as_typed`).
    """

    def help(self, children):
        return ("HELP", str(children[0]))

    def help_word(self, children):
        return children[0]

    def bh(self, children):
        return children[1] if len(children) > 1 else ("HELP", "BH")

    def bh_help(self, children):
        return ("HELP", str(children[0]))

    def person(self, children):
        token = children[0]
        if token.type in _JOINED:
            return Token.new_borrow_pos(_JOINED[token.type], re.sub(r"[ .]", "", token), token)
        return token

    def qt(self, children):
        return ("QT", children[1], children[2] if len(children) > 2 else None)

    def hs(self, children):
        return ("HS", Token.new_borrow_pos("DOSSIER", children[1].replace(" ", ""), children[1]))

    def the(self, children):
        token = children[1]
        if token.type == "CARD":
            token = Token.new_borrow_pos("CARD", token.replace(" ", ""), token)
        return ("THE", token)

    def hoi(self, children):   # the question as typed begins after the command word (brackets kept)
        return ("HOI", Token.new_borrow_pos("QUESTION", children[1], children[0]))

    def dg(self, children):
        return ("DG", children[1], children[2] if len(children) > 2 else None)

    def tc(self, _):
        return ("TC",)

    def dk(self, _):
        return ("DK",)

    def single(self, children):
        return ("single", children[0])

    def range(self, children):
        return ("range", children[0], children[1])

    def year_range(self, children):
        return ("year_range", children[0])

    def since(self, children):
        return ("since", children[0])

    def until(self, children):
        return ("until", children[0])

    def whole(self, _):
        return ("whole",)

    def bound(self, children):
        return children[0]

    def month_and_year(self, children):
        month, year = children
        return Token.new_borrow_pos("MONTH_YEAR", f"{month}/{year}", month)


PARSER = Lark.open_from_package(
    "smsgw.grammar", "sms.lark", parser="lalr", lexer="contextual", transformer=_ToRaw(),
)


def read(normalized: str) -> tuple:
    """The raw command of a normalised message; raises lark's UnexpectedInput on a syntax error."""
    return PARSER.parse(normalized)


def build(raw: tuple, today: date) -> Command:
    """The typed command of a raw one; raises Refused for a bad period or ambiguous groups.

    The question of HOI and the comment of DG are their normalised form here; `parse` gives
    them as typed."""
    kind = raw[0]
    if kind == "HELP":
        return Help()
    if kind == "HS":
        return HS(str(raw[1]))
    if kind == "HOI":
        return HOI(str(raw[1]))
    if kind == "DG":
        return DG(int(raw[1]), str(raw[2]) if raw[2] is not None else None)
    if kind == "TC":
        return TC()
    if kind == "DK":
        return DK()
    token = raw[1]
    if token.type == "AMBIGUOUS_GROUPS":
        raise Refused("bad_id", token.start_pos or 0, DIGIT_GROUPS)
    if kind == "THE":
        return THE(str(token), _ID_KINDS[token.type])
    period = raw[2]
    if period is None:
        return QT(str(token), _ID_KINDS[token.type])
    start, end = period_months(period[0], list(period[1:]), today)
    return QT(str(token), _ID_KINDS[token.type], start, end, until_now=period[0] == "since")


def understand(normalized: str, today: date, routes: frozenset[str] = frozenset(),
               typed: str | None = None) -> Command | ParseError:
    """Parse a normalised message; with `typed` (the message as typed), the question of HOI
    and the comment of DG are taken from it as typed."""
    try:
        raw = read(normalized)
    except UnexpectedInput as exc:
        error, command, position, detail = _classify(normalized, exc, today)
        return ParseError(error, command, position, detail, normalized, today, routes)
    try:
        command = build(raw, today)
    except Refused as exc:
        name = "THE" if raw[0] == "THE" else "QT"
        return ParseError(exc.error, name, exc.position, exc.detail, normalized, today, routes)
    if typed is not None and isinstance(command, HOI):
        return HOI(as_typed(typed, raw[1].end_pos))
    if typed is not None and isinstance(command, DG) and raw[2] is not None:
        return DG(command.rating, as_typed(typed, raw[1].end_pos).lstrip(")]>").strip() or None)
    return command


def as_typed(text: str, offset: int) -> str:
    """The end of `text` as typed, from where its normalised form reaches `offset` (white space
    around it trimmed): the free text of HOI and DG, diacritics, case and punctuation kept.

    Normalisation drops or merges characters (format characters, NFKC, runs of spaces) but
    never reorders them: the shortest prefix of `text` whose normalised form is `offset`
    characters long ends where the normalised text's offset is.
    """
    for end in range(len(text) + 1):
        if len(normalize(text[:end] + "x")) > offset:
            return text[end:].strip()
    return ""


def parse(text: str, *, today: date | None = None, routes: frozenset[str] = frozenset()) -> Command | ParseError:
    """Parse one message; never raises for any input text.

    `today` (default: today in Vietnam) bounds the years and is the current month of `tu 2016`;
    `routes` are the keywords of other services of the short code, which are never corrected.
    """
    today = today or vietnam_today()
    return understand(normalize(text), today, routes, typed=text)


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


def _partial_period(tokens: list[Token]) -> tuple[str, list[Token]] | None:
    """The period the accepted tokens began, to be checked before the error after it."""
    bounds = [t for t in tokens if t.type in _BOUND_TERMINALS]
    if not bounds:
        return None
    types = {t.type for t in tokens}
    if len(bounds) >= 2:
        return "range", bounds[:2]
    if bounds[0].type == "YEAR_RANGE":
        return "year_range", bounds
    if "NOW" in types or "_FROM" in types:
        return "since", bounds
    return "single", bounds


def _classify(text: str, exc: UnexpectedInput, today: date) -> tuple[str, str | None, int, str | None]:
    """(error, command, position, detail) of a syntax error, from the parser's state."""
    tokens = _accepted_tokens(exc)
    command = next((_COMMAND_TOKENS[t.type] for t in tokens if t.type in _COMMAND_TOKENS), None)
    position = exc.pos_in_stream or 0
    at_end = isinstance(exc, UnexpectedToken) and exc.token.type == "$END"
    if at_end:
        position = len(text)
    partial = _partial_period(tokens)
    if partial is not None:
        try:
            period_months(partial[0], partial[1], today)
        except Refused as refused:
            return refused.error, command, refused.position, None
    expected = set(exc.expected) if hasattr(exc, "expected") else set(exc.allowed or ())
    if not tokens:
        return ("empty" if at_end else "unknown_keyword"), None, position, None
    if "QT" in expected or (expected == {"QUESTION"} and not at_end):   # `BH HOIA ...` is no command
        return "unknown_command", None, position, None
    if expected & _ARGUMENT_TERMINALS:
        return ("missing_argument" if at_end else "bad_id"), command, position, None
    if tokens[-1].type in _BEFORE_BOUND or (
            expected & _BOUND_TERMINALS and (at_end or not text[position].isalpha())):
        return "bad_period", command, position, None
    return "trailing_input", command, position, None
