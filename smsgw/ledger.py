"""The billing ledger for reconciliation with the carriers: `smsgw billing export|summary`.

Every MT leaves billing rows, written in the transaction that stores it (store/sqlite_messages.py):

    charge   every reply: 1,000 VND when charged (message_type 1: an answer, a question's
             acknowledgment), 0 when free (0: help, a rating's thanks, BH TC/DK's confirmation),
             a free push in reply (3: the FAQ's answer to a question, sent with its
             acknowledgment) or refunded at once for syntax (21) or content (22)
    refund   a reply the carrier never took (delivery given up): the charge reversed
    push     a notice, or a staff answer to a question (message_type 3, no MO): 0 VND, the
             citizen pays nothing

A month is a calendar month of Vietnam time (UTC+07:00, no daylight saving), the carriers'
billing month; times in the export are Vietnam time. Phone numbers are masked in the ledger
itself and stay so in the export.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TextIO

from .clock import VIETNAM
from .store import MessageReports

COLUMNS = ("time", "carrier", "mo_id", "mt_id", "msisdn", "message_type", "amount_vnd", "kind")
MESSAGE_TYPES = {0: "free", 1: "charged", 3: "push", 21: "refunded (syntax)", 22: "refunded (content)"}


def month_bounds(month: str) -> tuple[float, float]:
    """[start, end) of a `YYYY-MM` month of Vietnam time, in Unix seconds; ValueError if malformed."""
    try:
        if len(month) != 7 or month[4] != "-":
            raise ValueError
        start = datetime(int(month[:4]), int(month[5:]), 1, tzinfo=VIETNAM)
    except ValueError:
        raise ValueError(f"not a YYYY-MM month: {month!r}") from None
    following = datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=VIETNAM)
    return start.timestamp(), following.timestamp()


def export_csv(reader: MessageReports, month: str, out: TextIO, *, carrier: str | None = None) -> int:
    """Write the month's billing rows as CSV (header `COLUMNS`) to `out`; the number of rows."""
    start, end = month_bounds(month)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    count = 0
    for row in reader.billing_rows_between(start, end, carrier):
        moment = datetime.fromisoformat(row.at).astimezone(VIETNAM).isoformat(timespec="seconds")
        writer.writerow((moment, row.carrier, row.mo_id, row.mt_id, row.msisdn, int(row.message_type),
                         row.amount_vnd, row.kind))
        count += 1
    return count


@dataclass(frozen=True)
class Total:
    carrier: str
    message_type: int
    kind: str
    rows: int
    amount_vnd: int


def totals(reader: MessageReports, month: str, *, carrier: str | None = None) -> list[Total]:
    """The month's billing rows summed per carrier, message_type and kind."""
    start, end = month_bounds(month)
    return [Total(*row) for row in reader.billing_totals_between(start, end, carrier)]


def format_summary(month: str, rows: Iterable[Total]) -> str:
    """The table `smsgw billing summary` prints: a line per carrier, message_type and kind, a
    subtotal per carrier and the grand total."""
    rows = list(rows)
    lines = [f"billing {month} (Vietnam time, UTC+07:00)",
             f"{'carrier':<16} {'message_type':<22} {'kind':<7} {'rows':>9} {'amount_vnd':>13}"]

    def line(carrier: str, label: str, kind: str, count: int, amount: int) -> str:
        return f"{carrier:<16} {label:<22} {kind:<7} {count:>9,} {amount:>13,}"

    for name in sorted({row.carrier for row in rows}):
        mine = [row for row in rows if row.carrier == name]
        for row in mine:
            label = f"{row.message_type} {MESSAGE_TYPES.get(row.message_type, '')}".strip()
            lines.append(line(name, label, row.kind, row.rows, row.amount_vnd))
        lines.append(line(name, "all", "", sum(r.rows for r in mine), sum(r.amount_vnd for r in mine)))
    lines.append(line("TOTAL", "", "", sum(r.rows for r in rows), sum(r.amount_vnd for r in rows)))
    return "\n".join(lines)
