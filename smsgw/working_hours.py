"""When the agency's staff answer questions (`[questions]`, CONTRACT §7): working days, hours, holidays.

A `BH HOI` question's acknowledgment says when to expect an answer: within working hours when
it is asked during them, else from the next working morning. Times are Vietnam time (clock.py).

    [questions]
    days = ["mon", "tue", "wed", "thu", "fri"]   # the working days
    hours = "08:00-17:00"                          # opening and closing, Vietnam time
    holidays = ["2026-01-01", "2026-04-30"]        # days off, YYYY-MM-DD
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from pydantic import field_validator

from .clock import VIETNAM
from .settings import Table

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SEARCH_DAYS = 400   # a year of holidays at most is searched for the next working day


class QuestionsConfig(Table):
    """The staff's working hours for questions; defaults: Monday-Friday 08:00-17:00, no holidays."""

    days: tuple[str, ...] = WEEKDAYS[:5]
    hours: str = "08:00-17:00"
    holidays: frozenset[date] = frozenset()

    @field_validator("days", mode="before")
    @classmethod
    def _days(cls, value: Any) -> tuple[str, ...]:
        if not isinstance(value, (list, tuple)) or not value:
            raise ValueError(f"must be a non-empty list of days ({', '.join(WEEKDAYS)})")
        days = []
        for day in value:
            if not isinstance(day, str) or day.lower() not in WEEKDAYS:
                raise ValueError(f"unknown day {day!r} (known: {', '.join(WEEKDAYS)})")
            days.append(day.lower())
        return tuple(days)

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        opening, closing = _span(value)
        if opening >= closing:
            raise ValueError(f"{value!r}: the opening must be before the closing")
        return value

    @field_validator("holidays", mode="before")
    @classmethod
    def _holidays(cls, value: Any) -> frozenset[date]:
        if not isinstance(value, (list, tuple)):
            raise ValueError("must be a list of dates YYYY-MM-DD")
        days = set()
        for item in value:
            if isinstance(item, date) and not isinstance(item, datetime):
                days.add(item)
                continue
            try:
                days.add(date.fromisoformat(item))
            except (TypeError, ValueError):
                raise ValueError(f"{item!r} is not a date YYYY-MM-DD") from None
        return frozenset(days)

    @property
    def opening(self) -> time:
        return _span(self.hours)[0]

    @property
    def closing(self) -> time:
        return _span(self.hours)[1]

    def working_day(self, day: date) -> bool:
        return WEEKDAYS[day.weekday()] in self.days and day not in self.holidays

    def working(self, at: datetime) -> bool:
        """Whether `at` (any time zone) is within working hours, Vietnam time."""
        local = at.astimezone(VIETNAM)
        return self.working_day(local.date()) and self.opening <= local.time() < self.closing

    def next_opening(self, at: datetime) -> datetime:
        """The first opening (Vietnam time) after `at`: today's when `at` is before it on a working day."""
        local = at.astimezone(VIETNAM)
        day = local.date()
        if local.time() >= self.opening:
            day += timedelta(days=1)
        for _ in range(_SEARCH_DAYS):
            if self.working_day(day):
                return datetime.combine(day, self.opening, VIETNAM)
            day += timedelta(days=1)
        raise ValueError("no working day within a year: check [questions] days and holidays")

    def expected_answer(self, at: datetime) -> datetime | None:
        """When to expect an answer to a question asked at `at`: None within working hours (during
        them), else the next working morning."""
        return None if self.working(at) else self.next_opening(at)


def _span(value: str) -> tuple[time, time]:
    parts = value.split("-") if isinstance(value, str) else []
    try:
        if len(parts) != 2 or not all(len(part.strip()) == 5 for part in parts):
            raise ValueError
        return time.fromisoformat(parts[0].strip()), time.fromisoformat(parts[1].strip())
    except ValueError:
        raise ValueError(f"{value!r} is not HH:MM-HH:MM") from None
