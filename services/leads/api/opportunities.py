"""Lead conversion and opportunities: the sales funnel."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from services.leads import handlers
from services.leads.api.router import Reader, Uow, _read
from services.leads.api.sales_schemas import (
    ContactRead,
    ConversionRead,
    LeadConversion,
    OpportunityChange,
    OpportunityRead,
    StageChange,
)
from services.leads.config import assignment_policy
from services.leads.domain.conversion import ConversionRequest
from services.leads.domain.opportunity import Opportunity, Stage
from shared.api import SafeStr
from shared.concurrency import set_etag
from shared.errors import problem_responses
from shared.idempotency import IdempotentRoute
from shared.pagination import Page, PageParams, page_params, paginated
from shared.service import expected_version

conversion_router = APIRouter(prefix="/v1/leads", tags=["leads"], route_class=IdempotentRoute)
router = APIRouter(prefix="/v1/opportunities", tags=["opportunities"], route_class=IdempotentRoute)
WRITE_PROBLEMS = problem_responses(400, 401, 403, 404, 409, 412, 422)


def read_opportunity(opportunity: Opportunity, response: Response | None = None) -> OpportunityRead:
    if response is not None:
        set_etag(response, opportunity.version)
    return OpportunityRead.model_validate({**opportunity.__dict__, "weighted_value": opportunity.weighted_value})


@conversion_router.post(
    "/{lead_id}/convert",
    status_code=201,
    response_model=ConversionRead,
    responses={200: {"description": "The lead had been converted already: that conversion"}, **WRITE_PROBLEMS},
)
async def convert_lead(
    lead_id: uuid.UUID, body: LeadConversion, request: Request, response: Response, principal: Reader, uow: Uow
) -> ConversionRead:
    """Convert a qualified (grade A or B) lead into an account, a contact and an opportunity in
    one step; emits `lead.converted`. A lead that matched an existing account gets its contact
    and opportunity on that account. Converting a lead again (a double submission) changes
    nothing and answers 200 with the first conversion. `If-Match` with the lead's ETag honoured."""
    result = await handlers.convert_lead(
        lead_id,
        ConversionRequest(**body.model_dump()),
        principal,
        uow,
        policy=assignment_policy(request.app.state.settings),
        if_match=expected_version(request),
    )
    if result.created:
        response.headers["Location"] = f"/v1/opportunities/{result.opportunity.id}"
    else:
        response.status_code = 200
    return ConversionRead(
        lead_id=lead_id,
        account=_read(result.account),
        contact=ContactRead.model_validate(result.contact),
        opportunity=read_opportunity(result.opportunity),
    )


class OpportunityOrder(StrEnum):
    CREATED = "created"
    WEIGHTED_VALUE = "weighted_value"


@router.get("", response_model=Page[OpportunityRead], responses=problem_responses(400, 401, 403))
async def list_opportunities(
    request: Request,
    response: Response,
    principal: Reader,
    uow: Uow,
    page: Annotated[PageParams, Depends(page_params)],
    sort: Annotated[
        OpportunityOrder, Query(description="created: oldest first; weighted_value: highest first")
    ] = OpportunityOrder.CREATED,
    stage: Stage | None = None,
    owner_id: Annotated[SafeStr | None, Query(max_length=255)] = None,
    account_id: uuid.UUID | None = None,
) -> Page[OpportunityRead]:
    """The opportunities the caller may see (own; a manager's team; a director's region)."""
    items, next_cursor = await handlers.list_opportunities(
        principal,
        uow,
        page,
        by_weighted_value=sort is OpportunityOrder.WEIGHTED_VALUE,
        stage=stage.value if stage else None,
        owner_id=owner_id,
        account_id=account_id,
    )
    return paginated(request, response, [read_opportunity(o) for o in items], next_cursor)


@router.get("/{opportunity_id}", response_model=OpportunityRead, responses=problem_responses(401, 403, 404))
async def get_opportunity(
    opportunity_id: uuid.UUID, response: Response, principal: Reader, uow: Uow
) -> OpportunityRead:
    return read_opportunity(await handlers.get_opportunity(opportunity_id, principal, uow), response)


@router.patch("/{opportunity_id}", response_model=OpportunityRead, responses=WRITE_PROBLEMS)
async def change_opportunity(
    opportunity_id: uuid.UUID,
    body: OpportunityChange,
    request: Request,
    response: Response,
    principal: Reader,
    uow: Uow,
) -> OpportunityRead:
    """Name, amount, currency, probability, expected close date of an open opportunity."""
    opportunity = await handlers.update_opportunity(
        opportunity_id, principal, uow, if_match=expected_version(request), **body.model_dump(exclude_unset=True)
    )
    return read_opportunity(opportunity, response)


@router.post("/{opportunity_id}/stage", response_model=OpportunityRead, responses=WRITE_PROBLEMS)
async def change_stage(
    opportunity_id: uuid.UUID, body: StageChange, request: Request, response: Response, principal: Reader, uow: Uow
) -> OpportunityRead:
    """Forward one stage or back to an earlier open one (`opportunity.stage_changed`, with the
    stage's default probability); `lost` from any open stage with `lost_reason`
    (`opportunity.lost`); `won` from negotiation on the accepted quote (`opportunity.won`).
    Anything else is a 409; `If-Match` honoured."""
    opportunity = await handlers.change_stage(
        opportunity_id,
        principal,
        uow,
        stage=body.stage,
        lost_reason=body.lost_reason,
        if_match=expected_version(request),
    )
    return read_opportunity(opportunity, response)
