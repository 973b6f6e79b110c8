"""Satisfaction arithmetic, from answer distributions (pure, so reports and tests agree)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal


def _ratio(part: int, whole: int) -> Decimal | None:
    return None if whole == 0 else (Decimal(part) / Decimal(whole)).quantize(Decimal("0.0001"), ROUND_HALF_UP)


def csat_average(distribution: Mapping[int, int]) -> Decimal | None:
    """Mean CSAT (1-5) of the answers, two decimals."""
    answers = sum(distribution.values())
    if answers == 0:
        return None
    total = sum(score * count for score, count in distribution.items())
    return (Decimal(total) / Decimal(answers)).quantize(Decimal("0.01"), ROUND_HALF_UP)


def nps(distribution: Mapping[int, int]) -> Decimal | None:
    """Net Promoter Score: % promoters (9-10) minus % detractors (0-6), from -100 to 100."""
    answers = sum(distribution.values())
    if answers == 0:
        return None
    promoters = sum(c for s, c in distribution.items() if s >= 9)
    detractors = sum(c for s, c in distribution.items() if s <= 6)
    return (Decimal(100) * (promoters - detractors) / Decimal(answers)).quantize(Decimal("0.1"), ROUND_HALF_UP)


def rate(part: int, whole: int) -> Decimal | None:
    """A share as a fraction with four decimals (0.1234 = 12.34 %); none of nothing."""
    return _ratio(part, whole)
