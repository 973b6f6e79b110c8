"""HTTP routes for a lead's behaviour: interactions in, a decaying 0-100 score out."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from services.leads import handlers
from services.leads.api.schemas import BehaviourRead, InteractionCreate, InteractionRead
from services.leads.config import behaviour_model
from shared.auth import (
    ADMIN,
    INTEGRATION,
    MARKETING_DIRECTOR,
    REGIONAL_DIRECTOR,
    SALES_MANAGER,
    SALES_REP,
    Principal,
    require_roles,
)
from shared.errors import problem_responses
from shared.idempotency import IdempotentRoute
from shared.pagination import PageParams, page_params, set_next_link
from shared.service import get_uow
from shared.uow import UnitOfWork

router = APIRouter(prefix="/v1/leads", tags=["behaviour score"], route_class=IdempotentRoute)

Recorder = Annotated[
    Principal,
    Depends(require_roles(SALES_REP, SALES_MANAGER, REGIONAL_DIRECTOR, MARKETING_DIRECTOR, ADMIN, INTEGRATION)),
]
Uow = Annotated[UnitOfWork, Depends(get_uow)]


@router.post(
    "/{lead_id}/interactions",
    status_code=201,
    response_model=BehaviourRead,
    responses=problem_responses(400, 401, 403, 404, 409, 422),
)
async def record_interaction(
    lead_id: uuid.UUID, body: InteractionCreate, request: Request, principal: Recorder, uow: Uow
) -> BehaviourRead:
    """Record an interaction (form submitted, e-mail opened or clicked, site visit, download, call
    connected, meeting held); answers the lead's behaviour score now. Points per type and their
    half-life are configuration. Marketing automation (`integration`) may report on any lead.
    Send `Idempotency-Key` so a retried report counts once."""
    score = await handlers.record_interaction(
        lead_id, body.type, body.occurred_at, principal, uow, model=behaviour_model(request.app.state.settings)
    )
    return BehaviourRead(lead_id=lead_id, behaviour_score=score)


@router.get("/{lead_id}/interactions", response_model=BehaviourRead, responses=problem_responses(400, 401, 403, 404))
async def behaviour(
    lead_id: uuid.UUID,
    request: Request,
    response: Response,
    principal: Recorder,
    uow: Uow,
    page: Annotated[PageParams, Depends(page_params)],
) -> BehaviourRead:
    """The behaviour score now and the interactions behind it (cursor-paginated)."""
    score, rows, next_cursor = await handlers.behaviour(
        lead_id, principal, uow, page, model=behaviour_model(request.app.state.settings)
    )
    set_next_link(request, response, next_cursor)
    return BehaviourRead(
        lead_id=lead_id,
        behaviour_score=score,
        interactions=[InteractionRead.model_validate(r._mapping) for r in rows],
        next_cursor=next_cursor,
    )
