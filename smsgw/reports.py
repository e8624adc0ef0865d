"""Operators' reports over the stored MOs: `smsgw report understanding`.

The share of citizens understood is the measure of the service. Counted: every MO from a phone
(short codes and brandnames are not citizens) for the insurance service, that is, with a
command of the language (commands.COMMAND_NAMES: the lookups, help, the conversation commands) or with a parse error; MOs taken by another
service of the short code (`[routes]`) are shown apart and left out of the share. An MO
counts once, whatever became of its reply (rate-limited ones included): the question is
whether the grammar understood what the citizen typed.

The shapes of the messages not understood are their normalised text (normalize.normalize: case,
spaces, diacritics, trailing punctuation) with every digit shown as 9, so that
`bh qt 011012942 2018` and `BH QT 791023456 2019` are one shape, `BH QT 999999999 9999`, and
no personal number appears in the report.

Corrections (CONTRACT §1b): an MO not understood whose reply quoted a corrected message is a
correction offered; it is taken up when the same phone sent that message (understood as the
same command) within 10 minutes after it. The correction is computed again from the stored
text, on the day the MO was taken (Vietnam time), with the `[routes]` keywords given.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby

from .commands import COMMAND_NAMES
from .language import ParseError, parse
from .clock import VIETNAM
from .normalize import normalize
from .store import MessageReports
from .syntax_replies import quoted_correction

MAX_SHAPE = 60
TAKE_UP_WINDOW = 600.0
"""Seconds after a correcting reply within which sending the corrected message takes it up."""
_DIGIT = re.compile(r"[0-9]")


def shape(text: str) -> str:
    """The shape of a message: normalised, digits masked as 9, at most MAX_SHAPE characters."""
    masked = _DIGIT.sub("9", normalize(text))
    if not masked:
        return "(empty)"
    return masked if len(masked) <= MAX_SHAPE else masked[:MAX_SHAPE] + "..."


@dataclass
class Understanding:
    understood: int = 0
    commands: Counter = field(default_factory=Counter)    # command -> MOs understood
    errors: Counter = field(default_factory=Counter)      # error code -> MOs
    routed: int = 0                                        # MOs of other services, not counted
    shapes: Counter = field(default_factory=Counter)      # shape -> MOs not understood
    corrections_offered: int = 0                           # MOs not understood answered with a correction
    corrections_taken: int = 0                             # ... after which the phone sent it (10 minutes)

    @property
    def total(self) -> int:
        return self.understood + sum(self.errors.values())

    @property
    def share(self) -> float:
        """Understood MOs over all MOs for the service (0 when there were none)."""
        return self.understood / self.total if self.total else 0.0


def count_outcomes(report: Understanding, rows: Iterable[tuple[str | None, str | None, int]]) -> Understanding:
    """`report` with the (command, error, MOs) rows counted: understood, errors by code, routed."""
    for command, error, count in rows:
        if error is not None:
            report.errors[error] += count
        elif command in COMMAND_NAMES:
            report.understood += count
            report.commands[command] += count
        elif command is not None:
            report.routed += count
    return report


def understanding(reader: MessageReports, since: float | None = None,
                  routes: frozenset[str] = frozenset()) -> Understanding:
    """Understanding of the MOs taken since `since` (Unix seconds; None: all of them);
    `routes` are the keywords of other services, which are never corrected."""
    report = count_outcomes(Understanding(), reader.mo_outcomes(since))
    for _, rows in groupby(reader.misunderstood_texts(since, TAKE_UP_WINDOW), key=lambda row: row[0]):
        rows = list(rows)
        report.shapes[shape(rows[0][2])] += 1
        taken = taken_up(rows, routes)
        if taken is not None:
            report.corrections_offered += 1
            report.corrections_taken += taken
    return report


def taken_up(rows: list[tuple[str, float, str, str | None]], routes: frozenset[str] = frozenset()) -> bool | None:
    """Whether the correction the reply to one MO not understood quoted was taken up; None when
    its reply offered none. `rows`: (MO id, taken at, text, a following text) of that MO, as
    `misunderstood_texts` gives them."""
    _, taken_at, text, _ = rows[0]
    day = datetime.fromtimestamp(taken_at, VIETNAM).date()
    error = parse(text, today=day, routes=routes)
    correction = quoted_correction(error) if isinstance(error, ParseError) else None
    if correction is None:
        return None
    corrected = parse(correction, today=day)
    return any(following is not None and parse(following, today=day) == corrected for *_, following in rows)


def format_understanding(report: Understanding, *, since: str | None = None, top: int = 20) -> str:
    """The text `smsgw report understanding` prints."""
    total = report.total
    lines = [f"understanding{' since ' + since if since else ''}: {total:,} messages for the service"
             f" (another {report.routed:,} went to other services of the short code)"]
    if not total:
        return lines[0]

    def percent(count: int) -> str:
        return f"{100 * count / total:5.1f}%"

    lines.append(f"  understood      {report.understood:>9,} {percent(report.understood)}")
    for command in COMMAND_NAMES:   # the lookups, help, then the conversation commands (questions, ratings, opt-outs)
        if report.commands[command]:
            lines.append(f"    {command:<16}{report.commands[command]:>7,} {percent(report.commands[command])}")
    lines.append(f"  not understood  {sum(report.errors.values()):>9,} {percent(sum(report.errors.values()))}")
    for error, count in sorted(report.errors.items(), key=lambda item: (-item[1], item[0])):
        lines.append(f"    {error:<16}{count:>7,} {percent(count)}")
    taken = f"{100 * report.corrections_taken / report.corrections_offered:.1f}%" if report.corrections_offered else "-"
    lines.append(f"  corrections offered {report.corrections_offered:>5,}, taken up within 10 minutes "
                 f"{report.corrections_taken:,} ({taken})")
    if report.shapes:
        lines.append(f"  most frequent shapes not understood (top {min(top, len(report.shapes))}):")
        for text, count in sorted(report.shapes.items(), key=lambda item: (-item[1], item[0]))[:top]:
            lines.append(f"    {count:>7,}  {text}")
    return "\n".join(lines)
