"""What happens after an attempt: the published retry schedule, with jitter and Retry-After.

Only a 2xx is a success. After the n-th failed attempt of a run, the next one waits
``schedule[n]`` (0 s, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h by default: attempt
1 is immediate, the tenth comes about 3 days and 3 hours after the event), times a random
factor in ``[1 - jitter, 1 + jitter]``. A 429 or 503 with ``Retry-After`` waits at least that
long (never less than the schedule, never more than ``max_retry_after``). When the schedule
is used up the delivery has failed; it can still be replayed.

A 410 Gone ends the delivery and disables the subscription at once. A redirect is not
followed (the target was never checked against the address rules): it is a failure like any
other non-2xx.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

RETRY_AFTER_STATUSES = frozenset({429, 503})
GONE = 410


@dataclass(frozen=True)
class Outcome:
    """One attempt as the dispatcher saw it."""

    status_code: int | None = None
    error_class: str | None = None  # None for a response; see sender.ErrorClass otherwise
    retry_after: float | None = None  # seconds, when the response carried Retry-After

    @property
    def succeeded(self) -> bool:
        return self.error_class is None and self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        return self.status_code == GONE


@dataclass(frozen=True)
class Decision:
    next_attempt_at: datetime | None  # None: the run is over (succeeded, gone, or schedule used up)
    delay: float | None = None


@dataclass(frozen=True)
class RetryPolicy:
    schedule: Sequence[float]
    jitter: float = 0.1
    max_retry_after: float = 86400.0
    random: Callable[[], float] = random.random

    @property
    def max_attempts(self) -> int:
        return len(self.schedule)

    def first_attempt_at(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self._jittered(self.schedule[0]))

    def after(self, outcome: Outcome, attempts_in_run: int, now: datetime, *, retry: bool = True) -> Decision:
        """``attempts_in_run`` counts the attempt just made. ``retry=False`` (pings): one attempt only."""
        if outcome.succeeded or outcome.gone or not retry or attempts_in_run >= len(self.schedule):
            return Decision(None)
        delay = self._jittered(self.schedule[attempts_in_run])
        if outcome.status_code in RETRY_AFTER_STATUSES and outcome.retry_after is not None:
            delay = max(delay, min(outcome.retry_after, self.max_retry_after))
        return Decision(now + timedelta(seconds=delay), delay)

    def _jittered(self, seconds: float) -> float:
        if seconds <= 0 or self.jitter <= 0:
            return max(seconds, 0.0)
        return seconds * (1 - self.jitter + 2 * self.jitter * self.random())
