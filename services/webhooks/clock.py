"""The dispatcher's clock: what "due" means, when an attempt happened, how long an endpoint failed.

Injectable so tests can drive the retry schedule (days of it) in seconds. Signatures always use
the wall clock (``webhook-timestamp`` must be within ±5 min of the receiver's clock), and leases
use the database's clock (they guard against a dead worker, in real time).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """Starts at the wall clock's now (or ``start``) and moves only when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float = 0, **delta: float) -> datetime:
        self._now += timedelta(seconds=seconds, **delta)
        return self._now
