"""Vietnam time, the clock of the service: the carriers' billing month, "today" in the language
(the current month and year of a period), the days of notices and reports.

Vietnam keeps UTC+07:00 all year (no daylight saving), so a fixed offset is exact.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

VIETNAM = timezone(timedelta(hours=7), "ICT")


def vietnam_today() -> date:
    """Today in Vietnam: the day that decides the current month and year."""
    return datetime.now(VIETNAM).date()
