"""Who gets the next lead: the assignment rules (pure Python).

Region and industry pick the eligible reps (active, not full, covering the lead); the one
with the lowest load relative to capacity wins; among equals the choice goes round-robin,
starting after the rep who got the previous lead of the same rule (the stored cursor), so
it is deterministic and even.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

from services.leads.domain.rep import SalesRep


def rule_key(region: str | None, industry: str | None) -> str:
    """The round-robin cursor's key: one rotation per (region, industry) rule."""
    return f"{region or '*'}|{industry or '*'}"


def eligible_reps(
    reps: Iterable[SalesRep],
    loads: Mapping[str, int],
    *,
    region: str | None,
    industry: str | None,
    exclude: Collection[str] = (),
) -> list[SalesRep]:
    return [
        rep
        for rep in reps
        if rep.receives_leads
        and rep.id not in exclude
        and loads.get(rep.id, 0) < rep.capacity
        and rep.covers(region, industry)
    ]


def choose_rep(
    reps: Iterable[SalesRep],
    loads: Mapping[str, int],
    *,
    region: str | None,
    industry: str | None,
    cursor: str | None = None,
    exclude: Collection[str] = (),
) -> SalesRep | None:
    """The rep who gets a lead of ``region``/``industry``, or None (the lead goes to the pool).

    ``cursor`` is the id of the rep who got this rule's previous lead; ``exclude`` the reps
    who must not get it (the one it was just taken from).
    """
    candidates = eligible_reps(reps, loads, region=region, industry=industry, exclude=exclude)
    if not candidates:
        return None
    share = {r.id: Fraction(loads.get(r.id, 0), r.capacity) for r in candidates}
    lowest = min(share.values())
    equals = sorted((r for r in candidates if share[r.id] == lowest), key=lambda r: r.id)
    if cursor is not None:
        for rep in equals:
            if rep.id > cursor:
                return rep
    return equals[0]


@dataclass(frozen=True, slots=True)
class AssignmentPolicy:
    """The configurable deadlines and limits around assignment (see LeadsSettings)."""

    first_contact: timedelta = timedelta(hours=24)
    account_contact: timedelta = timedelta(days=7)
    claims_per_day: int = 20
    timezone: str = "Asia/Shanghai"

    def day_start(self, now: datetime) -> datetime:
        """Midnight of ``now``'s calendar day in the business time zone (the claim limit's day)."""
        local = now.astimezone(ZoneInfo(self.timezone))
        return local.replace(hour=0, minute=0, second=0, microsecond=0)


class AssignmentRound:
    """Assignments made one after another from one reading of the reps, their loads and the
    round-robin cursors: each lead given counts towards the next choice, exactly as if each were
    assigned in its own transaction (a single registration uses one choice, an import chunk many).

    ``reps`` may include reps of other regions (``choose_rep`` keeps those covering the lead)."""

    def __init__(self, reps: Iterable[SalesRep], loads: Mapping[str, int], cursors: Mapping[str, str | None]) -> None:
        self.reps = list(reps)
        self.loads = dict(loads)
        self.cursors = dict(cursors)
        self.moved: dict[str, str] = {}  # rule -> the rep who got its last lead in this round

    def choose(self, region: str | None, industry: str | None, *, exclude: Collection[str] = ()) -> SalesRep | None:
        """The rep who gets the next lead of ``region``/``industry`` (counted), or None (the pool)."""
        rule = rule_key(region, industry)
        chosen = choose_rep(
            self.reps, self.loads, region=region, industry=industry, cursor=self.cursors.get(rule), exclude=exclude
        )
        if chosen is not None:
            self.cursors[rule] = self.moved[rule] = chosen.id
            self.count(chosen.id)
        return chosen

    def count(self, rep_id: str) -> None:
        """``rep_id`` got a lead another way (it already owned the customer)."""
        self.loads[rep_id] = self.loads.get(rep_id, 0) + 1
