"""Business time: working hours in a time zone, minus breaks (e.g. lunch 12:00-13:30),
weekends, public holidays (the ``holidays`` package, which for CN also knows the make-up
working weekends of the holiday weeks) and company days off. SLA targets are counted in this
time, never wall-clock time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays

MAX_DAYS = 3660  # an SLA never spans ten years: stop rather than loop on a calendar with no working day


@dataclass(frozen=True)
class BusinessCalendar:
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))
    opens: time = time(9, 0)
    closes: time | None = time(18, 0)  # None: open until midnight
    weekdays: frozenset[int] = frozenset(range(5))  # Monday = 0
    country: str | None = "CN"
    days_off: frozenset[date] = frozenset()  # company-specific
    extra_working_days: frozenset[date] = frozenset()
    # Daily breaks (start, end) inside the working hours, e.g. ((time(12), time(13, 30)),).
    breaks: tuple[tuple[time, time], ...] = ()

    def __post_init__(self) -> None:
        if any(start >= end for start, end in self.breaks):
            raise ValueError("a break must end after it starts")
        public = holidays.country_holidays(self.country) if self.country else None  # "" or None: no holidays
        object.__setattr__(self, "_public", public)

    def is_working_day(self, day: date) -> bool:
        if day in self.days_off:
            return False
        if day in self.extra_working_days:
            return True
        public = self._public  # type: ignore[attr-defined]
        if public is not None:
            if day in public:
                return False
            if day in getattr(public, "weekend_workdays", ()):
                return True  # e.g. the Saturday worked to make the National Day week
        return day.weekday() in self.weekdays

    def _windows(self, start: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The working periods from the day of ``start`` on, as aware local datetimes."""
        day = start.astimezone(self.tz).date()
        for _ in range(MAX_DAYS):
            if self.is_working_day(day):
                begin = datetime.combine(day, self.opens, self.tz)
                end = (
                    datetime.combine(day, self.closes, self.tz)
                    if self.closes is not None
                    else datetime.combine(day + timedelta(days=1), time(0), self.tz)
                )
                for pause_start, pause_end in sorted(self.breaks):
                    pause_begin = datetime.combine(day, pause_start, self.tz)
                    if pause_begin > begin:
                        yield begin, min(pause_begin, end)
                    begin = max(begin, datetime.combine(day, pause_end, self.tz))
                if begin < end:
                    yield begin, end
            day += timedelta(days=1)
        raise ValueError("the business calendar has no working time in ten years")

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The moment ``duration`` of business time after ``start`` (UTC)."""
        remaining = duration
        for begin, end in self._windows(start):
            begin = max(begin, start)
            if begin >= end:
                continue
            if remaining <= end - begin:
                return (begin + remaining).astimezone(UTC)
            remaining -= end - begin
        raise AssertionError("unreachable")

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Business time elapsed from ``start`` to ``end`` (zero if ``end`` is not later)."""
        total = timedelta(0)
        if end <= start:
            return total
        for begin, close in self._windows(start):
            if begin >= end:
                break
            overlap = min(close, end) - max(begin, start)
            if overlap > timedelta(0):
                total += overlap
        return total
