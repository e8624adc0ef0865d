"""Quiet hours (CONTRACT §8): no notice reaches a phone between 21:00 and 07:00 Vietnam time.

`[notices] quiet_hours = "21:00-07:00"` (the default; `""` for none) gives the span, in Vietnam
time (clock.py), start included, end excluded; a span whose start is after its end runs over
midnight. A notice created inside it is stored held until the span's end, its `not_before`
(store/messages.py): the outbox sends it then, paced by the carrier's `tps` with every other MT,
after the replies. Replies to citizens and one-time codes are never held: only notices (lanes 1
and 2 of the outbox) are given a `not_before` from here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from .clock import VIETNAM

DEFAULT = "21:00-07:00"
_SPAN = re.compile(r"([0-9]{2}):([0-9]{2})-([0-9]{2}):([0-9]{2})", re.ASCII)


@dataclass(frozen=True)
class QuietHours:
    """A daily span of Vietnam time, [start, end), over midnight when start > end."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> QuietHours:
        """`HH:MM-HH:MM` (24-hour clock); ValueError saying what is wrong."""
        match = _SPAN.fullmatch(text.strip())
        if match is None:
            raise ValueError(f"{text!r} is not HH:MM-HH:MM (24-hour Vietnam time), e.g. {DEFAULT!r}")
        hours_1, minutes_1, hours_2, minutes_2 = (int(part) for part in match.groups())
        for hours, minutes in ((hours_1, minutes_1), (hours_2, minutes_2)):
            if hours > 23 or minutes > 59:
                raise ValueError(f"{text!r}: {hours:02d}:{minutes:02d} is not a time of day (00:00-23:59)")
        start, end = time(hours_1, minutes_1), time(hours_2, minutes_2)
        if start == end:
            raise ValueError(f"{text!r}: the start and the end are the same time")
        return cls(start, end)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def held_until(self, at: float) -> float | None:
        """The end of the quiet hours that the instant `at` (Unix seconds) falls in, as Unix
        seconds; None when `at` is outside them (a notice may go at once)."""
        local = datetime.fromtimestamp(at, VIETNAM)
        now = local.time()
        if self.start < self.end:
            inside, ends_tomorrow = self.start <= now < self.end, False
        else:
            inside, ends_tomorrow = now >= self.start or now < self.end, now >= self.start
        if not inside:
            return None
        day = local.date() + timedelta(days=1 if ends_tomorrow else 0)
        return datetime.combine(day, self.end, VIETNAM).timestamp()


def quiet_hours(setting: str) -> QuietHours | None:
    """The quiet hours of a `[notices] quiet_hours` value: None for `""` (no quiet hours)."""
    return QuietHours.parse(setting) if setting.strip() else None


def not_before(setting: str, at: float) -> float | None:
    """When a notice created at `at` may be sent, by the quiet hours of `setting`: None for at once."""
    span = quiet_hours(setting)
    return span.held_until(at) if span is not None else None
