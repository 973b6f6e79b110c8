"""HTTP routes for the public pool and assignment: list the pool, claim, release, assign by hand."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from services.leads import handlers
from services.leads.api.leads import _read, _settings
from services.leads.api.schemas import LeadAssign, LeadRead, LeadRelease
from services.leads.config import assignment_policy
from shared.api import SafeStr
from shared.auth import ADMIN, REGIONAL_DIRECTOR, SALES_MANAGER, SALES_REP, Principal, require_roles
from shared.errors import problem_responses
from shared.idempotency import IdempotentRoute
from shared.pagination import Page, PageParams, page_params, paginated
from shared.service import expected_version, get_uow
from shared.uow import UnitOfWork

pool_router = APIRouter(prefix="/v1/lead-pool", tags=["public pool"])
lead_router = APIRouter(prefix="/v1/leads", tags=["public pool"], route_class=IdempotentRoute)

Sales = Annotated[Principal, Depends(require_roles(SALES_REP, SALES_MANAGER, REGIONAL_DIRECTOR, ADMIN))]
Rep = Annotated[Principal, Depends(require_roles(SALES_REP))]
Manager = Annotated[Principal, Depends(require_roles(SALES_MANAGER, REGIONAL_DIRECTOR, ADMIN))]
Uow = Annotated[UnitOfWork, Depends(get_uow)]
WRITE_PROBLEMS = problem_responses(400, 401, 403, 404, 409, 412, 422)


@pool_router.get("", response_model=Page[LeadRead], responses=problem_responses(400, 401, 403))
async def list_pool(
    request: Request,
    response: Response,
    principal: Sales,
    uow: Uow,
    page: Annotated[PageParams, Depends(page_params)],
    region: Annotated[SafeStr | None, Query(max_length=100)] = None,
    industry: Annotated[SafeStr | None, Query(max_length=100)] = None,
) -> Page[LeadRead]:
    """The leads nobody owns, longest waiting first. Any rep may claim one."""
    items, next_cursor = await handlers.list_pool(principal, uow, page, region=region, industry=industry)
    return paginated(request, response, [_read(lead, Response()) for lead in items], next_cursor)


@lead_router.post("/{lead_id}/claim", response_model=LeadRead, responses=WRITE_PROBLEMS)
async def claim_lead(lead_id: uuid.UUID, request: Request, response: Response, principal: Rep, uow: Uow) -> LeadRead:
    """A rep takes a lead from the pool (`lead.assigned`, method `claim`); their first-contact
    clock starts. Refused (409) beyond the rep's daily claim limit or capacity, and for a lead
    taken from them for want of a first contact. Of concurrent claims of one lead exactly one
    wins; the others get 404 (it is no longer in the pool)."""
    lead = await handlers.claim_lead(lead_id, principal, uow, policy=assignment_policy(_settings(request)))
    return _read(lead, response)


@lead_router.post("/{lead_id}/release", response_model=LeadRead, responses=WRITE_PROBLEMS)
async def release_lead(
    lead_id: uuid.UUID, body: LeadRelease, request: Request, response: Response, principal: Sales, uow: Uow
) -> LeadRead:
    """Give a lead back to the pool with a reason (`lead.returned_to_pool`, reason `released`)."""
    lead = await handlers.release_lead(lead_id, principal, uow, reason=body.reason, if_match=expected_version(request))
    return _read(lead, response)


@lead_router.post("/{lead_id}/assign", response_model=LeadRead, responses=WRITE_PROBLEMS)
async def assign_lead(
    lead_id: uuid.UUID, body: LeadAssign, request: Request, response: Response, principal: Manager, uow: Uow
) -> LeadRead:
    """A manager assigns a lead by hand to an active rep they manage, or (no `owner_id`) has the
    rules choose a rep other than its current owner (`lead.assigned`)."""
    lead = await handlers.assign_lead(
        lead_id,
        principal,
        uow,
        owner_id=body.owner_id,
        policy=assignment_policy(_settings(request)),
        if_match=expected_version(request),
    )
    return _read(lead, response)
