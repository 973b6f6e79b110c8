"""Service desk reports for support leads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from services.service_desk import reports
from shared.api import SafeStr
from shared.auth import ADMIN, SUPPORT_LEAD, Principal, require_roles
from shared.errors import Problem, problem_responses
from shared.service import get_uow
from shared.uow import UnitOfWork

router = APIRouter(prefix="/v1/service-desk-reports", tags=["reports"])

Lead = Annotated[Principal, Depends(require_roles(SUPPORT_LEAD, ADMIN))]
MAX_PERIOD = timedelta(days=366)


@router.get("/summary", responses=problem_responses(400, 401, 403, 422))
async def summary(
    principal: Lead,
    uow: Annotated[UnitOfWork, Depends(get_uow)],
    start: Annotated[datetime | None, Query(alias="from", description="Default: 30 days before `to`")] = None,
    end: Annotated[datetime | None, Query(alias="to", description="Default: now")] = None,
    group: Annotated[SafeStr | None, Query(max_length=100, description="One team (group)")] = None,
) -> dict[str, Any]:
    """Tickets opened in the period (complaint and repeat-issue rates), SLA compliance per priority
    and group, first-response and resolution times, today's backlog by age, and CSAT/NPS with the
    response rate of the surveys sent in the period."""
    now = datetime.now(UTC)
    end = end or now
    start = start or end - timedelta(days=30)
    if start.tzinfo is None or end.tzinfo is None:
        raise Problem(422, "Time zone required", "`from` and `to` must carry a UTC offset")
    if not start < end or end - start > MAX_PERIOD:
        raise Problem(422, "Invalid period", "`from` must be before `to`, at most 366 days apart")
    return await reports.summary(uow, reports.Period(start, end), group=group, now=now)
