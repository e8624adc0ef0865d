"""Replies that correct the message (CONTRACT §1b): the one likely correction of a ParseError.

A correction is looked for only where the parser says what it expected, and only by re-parsing
with the grammar itself, never by a second pattern language beside it:

- the keyword: a head of the message one keystroke from a keyword (`BJ`, `B H`, `BHX`);
- the command: after a keyword as written, a word one keystroke from a command word, the
  command words being the terminals the parser accepts after the keyword (QT, HS, THE, HD,
  HELP and the §7 commands HOI, DG, TC, DK; a correction to HOI or DG is never made: it
  would put words in the citizen's mouth, a question or a rating they did not write);
- `bad_id`: the argument under each other command that takes an identifier (the terminals the
  parser accepts after that command are identifiers): the argument's shape names the command;
- `range_reversed`: the two bounds swapped.

A keystroke is a letter changed, added or dropped, two neighbouring letters swapped, or a space
put inside the word. Each candidate is parsed again: it counts only when the whole message is
then understood (a question or rating counts too, to make a guess ambiguous), so `BH TQ 7936491863` can
only be QT (TC takes no argument). Exactly one distinct corrected message is a correction;
two are a guess, and the reply shows the syntax instead. A word that is a keyword of another
service (`[routes]`) is never corrected, and a keyword typo whose message would be a help
request gets the help text it already has.

The corrected message is written in the official form: `BH`, the command, the identifier in
one piece, each bound as the citizen wrote it (upper case), single spaces, range words dropped;
a period up to now keeps `DEN NAY` and one from the start keeps `DEN <to>`, the only words
that say so.
"""

from __future__ import annotations

from collections.abc import Iterator

from lark import UnexpectedInput

from .commands import Help
from .language import ID_TERMINALS, PARSER, ParseError, build, read
from .periods import Refused, year_range_bounds

KEYWORDS = ("BH", "BHXH")
"""The keyword as the grammar's BH terminal spells it (`/BH(?:XH)?/`)."""


def _accepted_after(prefix: str) -> frozenset[str]:
    """The terminals the parser accepts after the normalised text `prefix`."""
    interactive = PARSER.parse_interactive(prefix)
    interactive.exhaust_lexer()
    return frozenset(interactive.accepts())


def _command_words() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(every command word, the words of the commands that take an identifier), from the grammar."""
    words = []
    for name in sorted(_accepted_after("BH") - {"$END"}):
        words.append(PARSER.get_terminal(name).pattern.value)
    with_id = tuple(word for word in words if _accepted_after(f"BH {word}") & ID_TERMINALS)
    return tuple(words), with_id


COMMAND_WORDS, IDENTIFIER_COMMANDS = _command_words()
_START_WORDS = frozenset(
    PARSER.get_terminal(name).pattern.value for name in _accepted_after("") if name != "BH") | set(KEYWORDS)
_LONGEST = max(len(word) for word in (*KEYWORDS, *COMMAND_WORDS)) + 1  # a space or a letter more


def one_keystroke(typed: str, word: str) -> bool:
    """Whether `typed` is `word` with one keystroke wrong: a letter changed, added or dropped,
    two neighbouring letters swapped, or one space put inside it."""
    if " " in typed:
        return typed.count(" ") == 1 and typed[0] != " " and typed[-1] != " " and typed.replace(" ", "") == word
    if not (typed.isascii() and typed.isalpha()) or typed == word:
        return False
    if len(typed) == len(word):
        diff = [i for i in range(len(word)) if typed[i] != word[i]]
        return len(diff) == 1 or (
            len(diff) == 2 and diff[1] == diff[0] + 1
            and typed[diff[0]] == word[diff[1]] and typed[diff[1]] == word[diff[0]])
    if abs(len(typed) - len(word)) != 1:
        return False
    longer, shorter = (typed, word) if len(typed) > len(word) else (word, typed)
    return any(longer[:i] + longer[i + 1:] == shorter for i in range(len(longer)))


def _after_keyword(text: str) -> Iterator[str]:
    """The rest of `text` after a keyword written exactly, for each keyword it starts with."""
    for keyword in KEYWORDS:
        if text.startswith(keyword):
            yield text[len(keyword):].lstrip(" ")


def _candidates(error: ParseError) -> Iterator[tuple[str, str, str]]:
    """(candidate message, the word it replaced, what it corrects) for every single correction
    of `error.text`; for one thing corrected, the longest replaced word comes first."""
    text = error.text
    if error.error == "range_reversed":
        swapped = _swapped(text)
        if swapped is not None:
            yield swapped, "", "range"
        return
    for end in range(min(len(text), _LONGEST), 0, -1):
        head = text[:end]
        if head not in _START_WORDS and any(one_keystroke(head, keyword) for keyword in KEYWORDS):
            yield f"BH {text[end:]}", head, "keyword"
    for rest in _after_keyword(text):
        for end in range(min(len(rest), _LONGEST), 0, -1):
            head = rest[:end]
            if rest[end:end + 1].isalpha() or head in COMMAND_WORDS:
                continue  # a word ends where its letters do (`HO|L XIN` is not HOI); HS is no typo of HD
            for word in COMMAND_WORDS:
                if one_keystroke(head, word):
                    yield f"BH {word} {rest[end:]}", head, word
        if error.error == "bad_id" and error.command is not None:
            written = next((word for word in IDENTIFIER_COMMANDS if rest.startswith(word)), None)
            for word in IDENTIFIER_COMMANDS:
                if written is not None and word != written:
                    yield f"BH {word} {rest[len(written):]}", "", word


def _swapped(text: str) -> str | None:
    """The message with the two bounds of its range swapped, written in the official form."""
    try:
        raw = read(text)
    except UnexpectedInput:
        return None
    if raw[0] != "QT" or raw[2] is None or raw[2][0] not in ("range", "year_range"):
        return None
    period = raw[2]
    first, second = year_range_bounds(period[1]) if period[0] == "year_range" else period[1:]
    return f"BH QT {raw[1]} {second} {first}"


def official_form(raw: tuple) -> str:
    """A raw command (language.read) written in the official form (see the module docstring)."""
    kind = raw[0]
    if kind == "HELP":
        return "BH" if raw[1] == "BH" else f"BH {raw[1]}"
    if kind in ("TC", "DK"):
        return f"BH {kind}"
    if kind == "HOI":
        return f"BH HOI {raw[1]}"
    if kind == "DG":
        return f"BH DG {raw[1]} {raw[2] or ''}".rstrip()
    if kind in ("HS", "THE"):
        return f"BH {kind} {raw[1]}"
    words = ["BH", "QT", str(raw[1])]
    period = raw[2] or ("whole",)
    bounds = [str(token) for token in period[1:]]
    if period[0] == "year_range":
        bounds = [str(token) for token in year_range_bounds(period[1])]
    elif period[0] == "since":
        bounds.append("DEN NAY")
    elif period[0] == "until":
        bounds.insert(0, "DEN")
    words += bounds
    return " ".join(words)


# Never a correction: a question or a rating the citizen did not write (`BJ HOI ...`, `BH DH 5`).
_NEVER_CORRECTED_TO = ("HOI", "DG")


def _understood(text: str, error: ParseError) -> tuple[str, bool, bool] | None:
    """(official form, is a help request, is a question or a rating) of `text` when the grammar
    understands all of it."""
    try:
        raw = read(text)
        command = build(raw, error.today)
    except (UnexpectedInput, Refused):
        return None
    return official_form(raw), isinstance(command, Help), raw[0] in _NEVER_CORRECTED_TO


def correct(error: ParseError) -> str | None:
    """The whole corrected message when `error` has exactly one likely correction, else None.

    This is data: whether a reply can quote it in one SMS is the wording's business
    (`syntax_replies.quoted_correction`)."""
    if not error.text or error.today is None or error.error == "empty":
        return None
    found: dict[str, str] = {}  # what is corrected -> the message; the longest replaced word wins
    reserved: set[str] = set()  # questions and ratings: they make a guess ambiguous, never a correction
    for candidate, replaced, corrects in _candidates(error):
        if corrects in found or replaced.replace(" ", "") in error.routes:
            continue
        understood = _understood(candidate.rstrip(" "), error)
        if understood is None:
            continue
        message, is_help, is_reserved = understood
        if is_help and error.error == "unknown_keyword":
            continue
        found[corrects] = message
        if is_reserved:
            reserved.add(message)
        if len(set(found.values())) > 1:
            return None
    if len(set(found.values())) != 1:
        return None
    message = next(iter(found.values()))
    if message in reserved:   # `BH HIO ...` is not made a question to staff, nor `BH DH 5` a rating
        return None
    return message
