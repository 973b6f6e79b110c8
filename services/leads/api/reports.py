"""Sales reports: the funnel."""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request

from services.leads import handlers
from services.leads.api.router import Reader, Uow
from services.leads.api.sales_schemas import FunnelRead, StageFiguresRead
from services.leads.domain import LeadSource
from services.leads.domain.target import Period
from shared.api import DEFAULT_CURRENCY, CurrencyCode, SafeStr
from shared.errors import problem_responses

router = APIRouter(prefix="/v1/sales-reports", tags=["sales reports"])


@router.get("/funnel", response_model=FunnelRead, responses=problem_responses(400, 401, 403, 422))
async def funnel(
    request: Request,
    principal: Reader,
    uow: Uow,
    currency: Annotated[CurrencyCode, Query(description="Only opportunities in this currency")] = DEFAULT_CURRENCY,
    period: Annotated[
        SafeStr | None,
        Query(pattern=r"^\d{4}(-(\d{2}|Q[1-4]))?$", description="Opportunities created in 2026-11, 2026-Q4 or 2026"),
    ] = None,
    owner_id: Annotated[SafeStr | None, Query(max_length=255, description="The rep")] = None,
    team: Annotated[SafeStr | None, Query(max_length=200)] = None,
    region: Annotated[SafeStr | None, Query(max_length=100)] = None,
    source: LeadSource | None = None,
) -> FunnelRead:
    """Counts and value by stage, how many reached each stage and the conversion to the next,
    average time in stage and the win rate, over the opportunities the caller may see (a rep
    their own, a manager their team's, a director their region's) in one currency."""
    bounds = (None, None)
    if period is not None:
        bounds = Period.parse(period).bounds(ZoneInfo(request.app.state.settings.business_timezone))
    result = await handlers.funnel_report(
        principal,
        uow,
        currency=currency,
        created_from=bounds[0],
        created_to=bounds[1],
        owner_id=owner_id,
        team=team,
        region=region,
        source=source.value if source else None,
    )
    return FunnelRead(
        currency=currency,
        period=period,
        stages=[StageFiguresRead.model_validate(s) for s in result.stages],
        win_rate_pct=result.win_rate_pct,
        won_value=result.won_value,
        lost_value=result.lost_value,
    )
