"""The period of a QT lookup: its bounds as written, turned into months and checked.

A bound is a year (`2016`), a month-year (`012016`, `1/2016`, `01-2016`, `1.2016`, or the
grammar's `thang 1 nam 2016`) or one side of a year range (`2016-2017`). A period is of one
kind: single, range, year_range, since (up to the current month), until (the whole history up
to a bound) or whole. `period_months` gives its (start, end) months inclusive, a year standing for
its January at the start and its December at the end, or raises `Refused`: a year before
MIN_YEAR or after this year, a month outside 1-12, a start after the current month in a period
up to now (`bad_period`), a start after its end (`range_reversed`). Bounds are checked left to
right, so that the left-most problem is the one reported.
"""

from __future__ import annotations

import re
from datetime import date

from lark import Token

from .commands import Month

MIN_YEAR = 1960


class Refused(Exception):
    """A complete parse whose values are wrong: a bad period, or digit groups read two ways
    (language.build). `error` is a CONTRACT §1 code, `position` an offset in the normalised text."""

    def __init__(self, error: str, position: int, detail: str | None = None):
        self.error = error
        self.position = position
        self.detail = detail


def _bound_months(token: Token) -> tuple[int, int]:
    """(year, month) of a YEAR or MONTH_YEAR token; the month is 0 for a year."""
    text = str(token)
    if token.type == "YEAR":
        return int(text), 0
    if text.isdigit():  # MMYYYY
        return int(text[2:]), int(text[:2])
    month, year = re.split(r"[/.\-]", text)
    return int(year), int(month)


def _month(token: Token, last: bool, this_year: int) -> Month:
    """The month a bound stands for; a year is its January (`last` False) or December."""
    year, month = _bound_months(token)
    if not MIN_YEAR <= year <= this_year or not 0 <= month <= 12 or (month == 0 and token.type != "YEAR"):
        raise Refused("bad_period", token.start_pos or 0)
    if month == 0:
        month = 12 if last else 1
    return Month(year, month)


def year_range_bounds(token: Token) -> tuple[Token, Token]:
    """The two YEAR tokens of a YEAR_RANGE token (`2016-2017`)."""
    first, second = str(token).split("-")
    pos = token.start_pos or 0
    return Token("YEAR", first, start_pos=pos), Token("YEAR", second, start_pos=pos + 5)


def period_months(kind: str, bounds: list[Token], today: date) -> tuple[Month | None, Month | None]:
    """(start, end) inclusive of a period of that kind, or raises Refused (left to right)."""
    this_year = today.year
    if kind == "whole":
        return None, None
    if kind == "year_range":
        bounds = list(year_range_bounds(bounds[0]))
        kind = "range"
    if kind == "until":
        return None, _month(bounds[0], True, this_year)
    start = _month(bounds[0], False, this_year)
    if kind == "since":
        current = Month(today.year, today.month)
        if start > current:
            raise Refused("bad_period", bounds[0].start_pos or 0)
        return start, current
    end = _month(bounds[-1], True, this_year)
    if start > end:
        raise Refused("range_reversed", bounds[-1].start_pos or 0)
    return start, end
