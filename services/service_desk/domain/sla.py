"""SLA clocks: a target in business time that runs, pauses and stops with the ticket.

A clock keeps the business time used before its current run (``used_seconds``) and when the
current run started (``running_since``), so "time used", "time left" and the deadline are
computed for any ``now`` with the calendar; a paused clock has no deadline.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from services.service_desk.domain.calendar import BusinessCalendar

FIRST_RESPONSE = "first_response"
RESOLUTION = "resolution"


@dataclass
class SlaClock:
    kind: str
    target_seconds: float
    used_seconds: float = 0.0
    running_since: datetime | None = None
    met_at: datetime | None = None
    warned_at: datetime | None = None
    breached_at: datetime | None = None

    @property
    def running(self) -> bool:
        return self.running_since is not None

    @property
    def paused(self) -> bool:
        return self.running_since is None and self.met_at is None

    def used(self, calendar: BusinessCalendar, now: datetime) -> timedelta:
        used = timedelta(seconds=self.used_seconds)
        if self.running_since is not None:
            used += calendar.between(self.running_since, now)
        return used

    def left(self, calendar: BusinessCalendar, now: datetime) -> timedelta:
        return timedelta(seconds=self.target_seconds) - self.used(calendar, now)

    def _when_used(self, calendar: BusinessCalendar, seconds: float) -> datetime | None:
        if self.running_since is None:
            return None
        return calendar.add(self.running_since, timedelta(seconds=max(0.0, seconds - self.used_seconds)))

    def deadline(self, calendar: BusinessCalendar) -> datetime | None:
        return self._when_used(calendar, self.target_seconds)

    def warning_at(self, calendar: BusinessCalendar, fraction: float) -> datetime | None:
        return self._when_used(calendar, self.target_seconds * fraction)

    def pause(self, calendar: BusinessCalendar, now: datetime) -> None:
        if self.running_since is not None:
            self.used_seconds += calendar.between(self.running_since, now).total_seconds()
            self.running_since = None

    def resume(self, now: datetime) -> None:
        if self.running_since is None and self.met_at is None:
            self.running_since = now

    def stop(self, calendar: BusinessCalendar, now: datetime) -> None:
        """The target is met (or no longer applies): the clock keeps its final time used."""
        if self.met_at is None:
            self.pause(calendar, now)
            self.met_at = now

    def restart(self, now: datetime) -> None:
        """A new pending target (a customer replied): counted from zero, may breach again."""
        self.used_seconds, self.running_since, self.met_at = 0.0, now, None
        self.warned_at = self.breached_at = None
