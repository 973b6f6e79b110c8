"""HTTP route for merging a duplicate lead into another."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from services.leads import handlers
from services.leads.api.leads import _read
from services.leads.api.schemas import LeadMerge, LeadRead
from services.leads.config import behaviour_model
from shared.auth import ADMIN, REGIONAL_DIRECTOR, SALES_MANAGER, SALES_REP, Principal, require_roles
from shared.errors import problem_responses
from shared.idempotency import IdempotentRoute
from shared.service import expected_version, get_uow
from shared.uow import UnitOfWork

router = APIRouter(prefix="/v1/leads", tags=["leads"], route_class=IdempotentRoute)

Sales = Annotated[Principal, Depends(require_roles(SALES_REP, SALES_MANAGER, REGIONAL_DIRECTOR, ADMIN))]
Uow = Annotated[UnitOfWork, Depends(get_uow)]


@router.post(
    "/{lead_id}/merge", response_model=LeadRead, responses=problem_responses(400, 401, 403, 404, 409, 412, 422)
)
async def merge_lead(
    lead_id: uuid.UUID, body: LeadMerge, request: Request, response: Response, principal: Sales, uow: Uow
) -> LeadRead:
    """Merge the duplicate `duplicate_id` into this lead (list a lead's duplicates with
    `GET /v1/leads?duplicate_of_lead_id=`). Both histories stay: the duplicate is marked
    `merged_into_lead_id` and its activities show in this lead's list; its customer keys and
    behaviour points join this lead. Both must be in the caller's scope. Emits `lead.merged`.
    `If-Match` applies to this lead."""
    lead = await handlers.merge_leads(
        lead_id,
        body.duplicate_id,
        principal,
        uow,
        reason=body.reason,
        model=behaviour_model(request.app.state.settings),
        if_match=expected_version(request),
    )
    return _read(lead, response)
