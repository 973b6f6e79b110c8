"""Sales targets: a team's target for a period, decomposed into its reps' targets.

A period is a month (``2026-11``), a quarter (``2026-Q4``) or a year (``2026``), in the
business time zone. The team amount is split over the reps by weight (equal by default); the
rep amounts add up to the team amount to the cent (the cents left over by rounding go to the
largest remainders first). Achievement is what the reps signed in the period, in the target's
currency, from ``contract.signed`` (computed when read, so a contract signed before its
target was set still counts).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import ROUND_DOWN, Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo

from services.leads.domain.opportunity import HUNDRED
from shared.domain import Aggregate, DomainError
from shared.money import CENT, money

_PERIOD = re.compile(r"^(?P<year>\d{4})(?:-(?:(?P<month>\d{2})|Q(?P<quarter>[1-4])))?$")


class PeriodKind(StrEnum):
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


@dataclass(frozen=True, slots=True)
class Period:
    kind: PeriodKind
    name: str
    starts_on: date
    ends_on: date  # exclusive

    def bounds(self, tz: ZoneInfo) -> tuple[datetime, datetime]:
        """The period's first and first-after instants in the business time zone."""
        return datetime.combine(self.starts_on, time(), tz), datetime.combine(self.ends_on, time(), tz)

    @classmethod
    def parse(cls, name: str) -> Period:
        match = _PERIOD.match(name)
        if match is None or not (2000 <= int(match["year"]) <= 2999):
            raise DomainError(f"{name!r} is not a period: use 2026-11 (month), 2026-Q4 (quarter) or 2026 (year)")
        year = int(match["year"])
        if match["month"]:
            month = int(match["month"])
            if not 1 <= month <= 12:
                raise DomainError(f"{name!r}: no month {month}")
            kind, first, months = PeriodKind.MONTH, month, 1
        elif match["quarter"]:
            kind, first, months = PeriodKind.QUARTER, 3 * int(match["quarter"]) - 2, 3
        else:
            kind, first, months = PeriodKind.YEAR, 1, 12
        end_month = first + months
        ends_on = date(year + 1, 1, 1) if end_month > 12 else date(year, end_month, 1)
        return cls(kind, name, date(year, first, 1), ends_on)


def split(amount: Decimal, weights: list[Decimal]) -> list[Decimal]:
    """``amount`` over ``weights``, each to the cent, adding up to ``amount`` exactly."""
    if not weights or any(w <= 0 for w in weights):
        raise DomainError("every rep needs a positive weight")
    total = sum(weights, Decimal(0))
    exact = [amount * w / total for w in weights]
    shares = [x.quantize(CENT, rounding=ROUND_DOWN) for x in exact]
    left = int((amount - sum(shares, Decimal(0))) / CENT)
    for i in sorted(range(len(shares)), key=lambda i: exact[i] - shares[i], reverse=True)[:left]:
        shares[i] += CENT
    return shares


class NotYourTeam(DomainError):
    status = 403
    title = "Forbidden"


def may_set_target(
    roles: frozenset[str], *, sub_team: str | None, sub_region: str | None, team: str, region: str | None
) -> None:
    """Admin: any team; a regional director: teams of their region; a manager: their own team."""
    if "admin" in roles:
        return
    if "regional_director" in roles and sub_region and region == sub_region:
        return
    if "sales_manager" in roles and sub_team and team == sub_team:
        return
    raise NotYourTeam(f"you may not set targets for team {team!r} in region {region!r}")


class TargetScope(StrEnum):
    TEAM = "team"
    REP = "rep"


@dataclass(eq=False)
class Target(Aggregate):
    id: uuid.UUID
    scope: TargetScope
    team: str
    owner_id: str  # the rep (rep targets) or who set the team target
    period_kind: PeriodKind
    period: str
    starts_on: date
    ends_on: date
    currency: str
    amount: Decimal
    starts_at: datetime
    ends_at: datetime
    created_by: str
    created_at: datetime
    region: str | None = None
    parent_id: uuid.UUID | None = None

    @classmethod
    def for_team(
        cls,
        *,
        team: str,
        region: str | None,
        period: Period,
        currency: str,
        amount: Decimal,
        reps: list[tuple[str, Decimal]],
        tz: ZoneInfo,
        by: str,
        now: datetime,
    ) -> list[Target]:
        """The team target followed by one target per rep (``reps``: rep id and weight)."""
        if amount <= 0:
            raise DomainError("a target is a positive amount")
        rep_ids = [rep for rep, _ in reps]
        if len(set(rep_ids)) != len(rep_ids):
            raise DomainError("a rep is listed twice")
        common = {
            "team": team,
            "region": region,
            "period_kind": period.kind,
            "period": period.name,
            "starts_on": period.starts_on,
            "ends_on": period.ends_on,
            "starts_at": period.bounds(tz)[0],
            "ends_at": period.bounds(tz)[1],
            "currency": currency,
            "created_by": by,
            "created_at": now,
        }
        team_target = cls(id=uuid.uuid4(), scope=TargetScope.TEAM, owner_id=by, amount=money(amount), **common)
        shares = split(team_target.amount, [weight for _, weight in reps])
        return [
            team_target,
            *(
                cls(
                    id=uuid.uuid4(),
                    scope=TargetScope.REP,
                    owner_id=rep,
                    amount=share,
                    parent_id=team_target.id,
                    **common,
                )
                for rep, share in zip(rep_ids, shares, strict=True)
            ),
        ]


def achievement_pct(achieved: Decimal, target: Decimal) -> Decimal:
    return money(achieved * HUNDRED / target)
