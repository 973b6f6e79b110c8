"""Sales reports: the funnel and the response to assigned leads."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request

from services.leads import handlers
from services.leads.api.router import Reader, Uow
from services.leads.api.sales_schemas import (
    FunnelRead,
    RepResponseRead,
    ResponseFiguresRead,
    ResponseReportRead,
    StageFiguresRead,
)
from services.leads.domain import LeadSource
from services.leads.domain.target import Period
from shared.api import DEFAULT_CURRENCY, CurrencyCode, SafeStr
from shared.errors import problem_responses

router = APIRouter(prefix="/v1/sales-reports", tags=["sales reports"])


@dataclass(frozen=True, slots=True)
class ReportFilters:
    """The filters every sales report takes; ``start``/``end`` bound the period (None: all time)."""

    period: str | None
    start: datetime | None
    end: datetime | None
    owner_id: str | None
    team: str | None
    region: str | None
    source: str | None


def report_filters(
    request: Request,
    period: Annotated[
        SafeStr | None, Query(pattern=r"^\d{4}(-(\d{2}|Q[1-4]))?$", description="2026-11, 2026-Q4 or 2026")
    ] = None,
    owner_id: Annotated[SafeStr | None, Query(max_length=255, description="The rep")] = None,
    team: Annotated[SafeStr | None, Query(max_length=200)] = None,
    region: Annotated[SafeStr | None, Query(max_length=100)] = None,
    source: LeadSource | None = None,
) -> ReportFilters:
    start = end = None
    if period is not None:
        start, end = Period.parse(period).bounds(ZoneInfo(request.app.state.settings.business_timezone))
    return ReportFilters(period, start, end, owner_id, team, region, source.value if source else None)


Filters = Annotated[ReportFilters, Depends(report_filters)]


@router.get("/funnel", response_model=FunnelRead, responses=problem_responses(400, 401, 403, 422))
async def funnel(
    principal: Reader,
    uow: Uow,
    filters: Filters,
    currency: Annotated[CurrencyCode, Query(description="Only opportunities in this currency")] = DEFAULT_CURRENCY,
) -> FunnelRead:
    """Counts and value by stage, how many reached each stage and the conversion to the next,
    average time in stage and the win rate, over the opportunities the caller may see (a rep
    their own, a manager their team's, a director their region's) in one currency."""
    result = await handlers.funnel_report(
        principal,
        uow,
        currency=currency,
        created_from=filters.start,
        created_to=filters.end,
        owner_id=filters.owner_id,
        team=filters.team,
        region=filters.region,
        source=filters.source,
    )
    return FunnelRead(
        currency=currency,
        period=filters.period,
        stages=[StageFiguresRead.model_validate(s) for s in result.stages],
        win_rate_pct=result.win_rate_pct,
        won_value=result.won_value,
        lost_value=result.lost_value,
    )


@router.get("/response", response_model=ResponseReportRead, responses=problem_responses(400, 401, 403, 422))
async def response_report(principal: Reader, uow: Uow, filters: Filters) -> ResponseReportRead:
    """How fast reps make the first contact on the leads they were assigned in the period (by the
    rules, by hand or by a claim), per rep and in total: contacted, median and 90th percentile of
    the hours to the first contact, the share contacted by the deadline, still uncontacted, and
    the pool returns (automatic for want of a contact, and released by hand). Over the
    assignments the caller may see: a rep their own, a manager their team's, a director their
    region's (the lead's), admin all."""
    result = await handlers.response_report(
        principal,
        uow,
        assigned_from=filters.start,
        assigned_to=filters.end,
        rep_id=filters.owner_id,
        team=filters.team,
        region=filters.region,
        source=filters.source,
    )
    return ResponseReportRead(
        period=filters.period,
        reps=[RepResponseRead(rep_id=rep, **asdict(figures)) for rep, figures in result.reps],
        total=ResponseFiguresRead(**asdict(result.total)),
    )
