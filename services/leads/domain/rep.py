"""Sales reps and their teams: who may receive leads, where, and how many.

A rep is identified by their token's subject. ``region`` and ``industries`` say which leads
the assignment rules may give them (no region / no industries: any); ``capacity`` is how many
leads they may own at once; only an *active* rep receives leads (on leave or gone: never).
A team has a manager (who sees and manages the team's leads) and a region.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from shared.domain import Aggregate


class RepStatus(StrEnum):
    ACTIVE = "active"
    ON_LEAVE = "on_leave"
    INACTIVE = "inactive"


@dataclass(eq=False)
class SalesTeam(Aggregate):
    id: str
    name: str
    created_at: datetime
    region: str | None = None
    manager_id: str | None = None

    def update(self, *, name: str, region: str | None, manager_id: str | None) -> None:
        self.name, self.region, self.manager_id = name, region, manager_id
        self.version += 1


@dataclass(eq=False)
class SalesRep(Aggregate):
    id: str
    name: str
    created_at: datetime
    team_id: str | None = None
    region: str | None = None
    industries: tuple[str, ...] = ()
    capacity: int = 50
    status: RepStatus = RepStatus.ACTIVE

    def update(
        self,
        *,
        name: str,
        team_id: str | None,
        region: str | None,
        industries: Iterable[str],
        capacity: int,
        status: RepStatus,
    ) -> None:
        self.name, self.team_id, self.region = name, team_id, region
        self.industries = tuple(dict.fromkeys(industries))
        self.capacity, self.status = capacity, status
        self.version += 1

    @property
    def receives_leads(self) -> bool:
        return self.status is RepStatus.ACTIVE and self.capacity > 0

    def covers(self, region: str | None, industry: str | None) -> bool:
        """Whether the rules may give this rep a lead of ``region`` and ``industry``."""
        if region is not None and self.region is not None and region != self.region:
            return False
        return industry is None or not self.industries or industry in self.industries
