"""Behaviour score 0-100 from a lead's interactions, decaying over time (pure Python).

Each interaction type is worth points (configurable); points halve every ``half_life``. The
score is the decayed sum, capped at 100, rounded. Exponential decay lets the sum be kept as one
number and a time: decayed to a later moment it is the same as decaying every interaction, so an
interaction arriving late (older than the last one) is simply added decayed to that time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

MAX_SCORE = 100


class InteractionType(StrEnum):
    FORM_SUBMITTED = "form_submitted"
    EMAIL_OPENED = "email_opened"
    EMAIL_CLICKED = "email_clicked"
    SITE_VISIT = "site_visit"
    CONTENT_DOWNLOADED = "content_downloaded"
    CALL_CONNECTED = "call_connected"
    MEETING_HELD = "meeting_held"


DEFAULT_POINTS: dict[str, float] = {
    "form_submitted": 20,
    "email_opened": 3,
    "email_clicked": 6,
    "site_visit": 4,
    "content_downloaded": 10,
    "call_connected": 15,
    "meeting_held": 30,
}


@dataclass(frozen=True, slots=True)
class BehaviourModel:
    points: Mapping[str, float]
    half_life: timedelta = timedelta(days=14)

    def decay(self, points: float, elapsed: timedelta) -> float:
        return points * 0.5 ** (elapsed / self.half_life)

    def add(self, total: float, as_of: datetime | None, kind: InteractionType, at: datetime) -> tuple[float, datetime]:
        """``total`` points as of ``as_of`` plus an interaction at ``at``: the new (total, as of)."""
        worth = float(self.points.get(kind.value, 0))
        if as_of is None:
            return worth, at
        if at >= as_of:
            return self.decay(total, at - as_of) + worth, at
        return total + self.decay(worth, as_of - at), as_of

    def combine(
        self, a: float, a_as_of: datetime | None, b: float, b_as_of: datetime | None
    ) -> tuple[float, datetime | None]:
        """Two running totals as one (a merged lead's score joins its survivor's)."""
        if a_as_of is None or b_as_of is None:
            return (b, b_as_of) if a_as_of is None else (a, a_as_of)
        at = max(a_as_of, b_as_of)
        return self.decay(a, at - a_as_of) + self.decay(b, at - b_as_of), at

    def score(self, total: float, as_of: datetime | None, now: datetime) -> int:
        if as_of is None:
            return 0
        return min(MAX_SCORE, round(self.decay(total, max(now - as_of, timedelta(0)))))
