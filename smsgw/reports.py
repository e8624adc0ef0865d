"""Operators' reports over the stored MOs: `smsgw report understanding`.

The share of citizens understood is the measure of the service. Counted: every MO from a phone
(short codes and brandnames are not citizens) for the insurance service, that is, with a
command of the language (QT, HS, THE, HELP) or with a parse error; MOs taken by another
service of the short code (`[routes]`) are shown apart and left out of the share. An MO
counts once, whatever became of its reply (rate-limited ones included): the question is
whether the grammar understood what the citizen typed.

The shapes of the messages not understood are their normalised text (language.normalize: case,
spaces, diacritics, trailing punctuation) with every digit shown as 9, so that
`bh qt 011012942 2018` and `BH QT 791023456 2019` are one shape, `BH QT 999999999 9999`, and
no personal number appears in the report.
"""

from __future__ import annotations

import re
import sqlite3
from collections import Counter
from dataclasses import dataclass, field

from .language import normalize
from .messages import misunderstood_texts, mo_outcomes

COMMANDS = ("QT", "HS", "THE", "HELP")
MAX_SHAPE = 60
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
    errors: Counter = field(default_factory=Counter)      # error code -> MOs
    routed: int = 0                                        # MOs of other services, not counted
    shapes: Counter = field(default_factory=Counter)      # shape -> MOs not understood

    @property
    def total(self) -> int:
        return self.understood + sum(self.errors.values())

    @property
    def share(self) -> float:
        """Understood MOs over all MOs for the service (0 when there were none)."""
        return self.understood / self.total if self.total else 0.0


def understanding(conn: sqlite3.Connection, since: float | None = None) -> Understanding:
    """Understanding of the MOs taken since `since` (Unix seconds; None: all of them)."""
    report = Understanding()
    for command, error, count in mo_outcomes(conn, since):
        if error is not None:
            report.errors[error] += count
        elif command in COMMANDS:
            report.understood += count
        elif command is not None:
            report.routed += count
    for _, text in misunderstood_texts(conn, since):
        report.shapes[shape(text)] += 1
    return report


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
    lines.append(f"  not understood  {sum(report.errors.values()):>9,} {percent(sum(report.errors.values()))}")
    for error, count in sorted(report.errors.items(), key=lambda item: (-item[1], item[0])):
        lines.append(f"    {error:<16}{count:>7,} {percent(count)}")
    if report.shapes:
        lines.append(f"  most frequent shapes not understood (top {min(top, len(report.shapes))}):")
        for text, count in sorted(report.shapes.items(), key=lambda item: (-item[1], item[0]))[:top]:
            lines.append(f"    {count:>7,}  {text}")
    return "\n".join(lines)
