"""Sales targets: a team target per period, decomposed over its reps, with achievement."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request, Response

from services.leads import handlers
from services.leads.api.router import Reader, Uow
from services.leads.api.sales_schemas import TargetRead, TeamTargetCreate
from services.leads.domain.target import Target, TargetScope, achievement_pct
from shared.api import SafeStr
from shared.auth import ADMIN, REGIONAL_DIRECTOR, SALES_MANAGER, Principal, require_roles
from shared.concurrency import set_etag
from shared.errors import problem_responses
from shared.idempotency import IdempotentRoute
from shared.pagination import Page, PageParams, page_params, paginated

router = APIRouter(prefix="/v1/targets", tags=["targets"], route_class=IdempotentRoute)
Setter = Annotated[Principal, Depends(require_roles(SALES_MANAGER, REGIONAL_DIRECTOR, ADMIN))]


def read_target(target: Target, achieved: Decimal) -> TargetRead:
    return TargetRead.model_validate(
        {
            **target.__dict__,
            "scope": target.scope.value,
            "period_kind": target.period_kind.value,
            "achieved_amount": achieved,
            "achievement_pct": achievement_pct(achieved, target.amount),
        }
    )


@router.post("", status_code=201, response_model=list[TargetRead], responses=problem_responses(400, 401, 403, 409, 422))
async def set_team_target(
    body: TeamTargetCreate, request: Request, response: Response, principal: Setter, uow: Uow
) -> list[TargetRead]:
    """Set a team's target for a month, quarter or year and decompose it over the reps by
    weight (equal by default; the rep targets add up to the team's to the cent). A manager sets
    their own team's (token claim `team`), a regional director any team of their region, admin
    any. One team target per team and period (409)."""
    created = await handlers.set_team_target(
        principal,
        uow,
        team=body.team,
        region=body.region,
        period=body.period,
        currency=body.currency,
        amount=body.amount,
        reps=[(r.rep_id, r.weight) for r in body.reps],
        tz=ZoneInfo(request.app.state.settings.business_timezone),
    )
    response.headers["Location"] = f"/v1/targets/{created[0].id}"
    return [read_target(t, Decimal(0)) for t in created]


@router.get("", response_model=Page[TargetRead], responses=problem_responses(400, 401, 403))
async def list_targets(
    request: Request,
    response: Response,
    principal: Reader,
    uow: Uow,
    page: Annotated[PageParams, Depends(page_params)],
    scope: TargetScope | None = None,
    team: Annotated[SafeStr | None, Query(max_length=200)] = None,
    owner_id: Annotated[SafeStr | None, Query(max_length=255, description="The rep")] = None,
    period: Annotated[SafeStr | None, Query(max_length=7)] = None,
    parent_id: uuid.UUID | None = None,
) -> Page[TargetRead]:
    """Targets the caller may see (a rep their own, a manager their team's, a director their
    region's), each with what was achieved so far."""
    items, next_cursor = await handlers.list_targets(
        principal,
        uow,
        page,
        scope=scope.value if scope else None,
        team=team,
        owner_id=owner_id,
        period=period,
        parent_id=parent_id,
    )
    return paginated(request, response, [read_target(t, a) for t, a in items], next_cursor)


@router.get("/{target_id}", response_model=TargetRead, responses=problem_responses(401, 403, 404))
async def get_target(target_id: uuid.UUID, response: Response, principal: Reader, uow: Uow) -> TargetRead:
    target, achieved = await handlers.get_target(target_id, principal, uow)
    set_etag(response, target.version)
    return read_target(target, achieved)
