"""`smsgw report satisfaction --month YYYY-MM`: the ratings citizens gave (BH DG, CONTRACT §7).

The satisfaction index is the share of ratings of 4 and 5 among all ratings of the month (Vietnam
time), printed beside the agency's targets: 80% by 2021, 85% by 2025, 90% by 2030. Comments are
listed with the phone masked (phones.mask), oldest first.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from .clock import VIETNAM
from .ledger import month_bounds
from .phones import mask
from .store import MessageReports

TARGETS = ((2021, 0.80), (2025, 0.85), (2030, 0.90))
"""The agency's satisfaction index targets: (by the end of the year, share of 4 and 5)."""
SATISFIED = (4, 5)
SERVICE = "service"
"""What a rating is of when the phone had no answered message within 24 hours before it."""


@dataclass
class Satisfaction:
    month: str
    ratings: Counter = field(default_factory=Counter)                 # rating 1-5 -> how many
    rated: Counter = field(default_factory=Counter)                   # what was rated (a command, "service") -> how many
    comments: list[tuple[float, str, int, str, str]] = field(default_factory=list)
    """(at, masked phone, rating, what was rated, comment)"""

    @property
    def count(self) -> int:
        return sum(self.ratings.values())

    @property
    def mean(self) -> float | None:
        return sum(rating * n for rating, n in self.ratings.items()) / self.count if self.count else None

    @property
    def index(self) -> float | None:
        """The share of 4 and 5 among the ratings; None when there were none."""
        return sum(self.ratings[r] for r in SATISFIED) / self.count if self.count else None


def satisfaction(reader: MessageReports, month: str) -> Satisfaction:
    """The month's ratings (ValueError for a malformed month)."""
    start, end = month_bounds(month)
    report = Satisfaction(month)
    for at, phone, rating, comment, command in reader.ratings_between(start, end):
        report.ratings[rating] += 1
        report.rated[command or SERVICE] += 1
        if comment:
            report.comments.append((at, mask(phone), rating, command or SERVICE, comment))
    return report


def format_satisfaction(report: Satisfaction) -> str:
    """The text `smsgw report satisfaction` prints."""
    lines = [f"satisfaction {report.month}: {report.count:,} ratings"]
    if report.count:
        lines[0] += f", mean {report.mean:.2f} of 5"
        lines.append(f"  index (share of 4 and 5): {100 * report.index:.1f}%")
        for rating in range(5, 0, -1):
            lines.append(f"    {rating}  {report.ratings[rating]:>7,}  {100 * report.ratings[rating] / report.count:5.1f}%")
    else:
        lines.append("  index (share of 4 and 5): -")
    if report.rated:
        lines.append("  rated: " + ", ".join(f"{what} {n:,}" for what, n in sorted(report.rated.items(),
                                                                                  key=lambda item: (-item[1], item[0]))))
    targets = ", ".join(f"{100 * share:.0f}% by {year}" for year, share in TARGETS)
    met = [year for year, share in TARGETS if report.index is not None and report.index >= share]
    lines.append(f"  agency targets: {targets}" + (f" (met: the {', '.join(map(str, met))} target)" if met else
                                                   " (none met)" if report.count else ""))
    if report.comments:
        lines.append(f"  comments ({len(report.comments)}):")
        for at, phone, rating, what, comment in report.comments:
            when = datetime.fromtimestamp(at, VIETNAM).strftime("%Y-%m-%d %H:%M")
            lines.append(f"    {when}  {phone}  {rating} ({what})  {' '.join(comment.split())}")
    return "\n".join(lines)
