"""SLA escalations: the support lead's queue of breaches and each agent's warnings."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Request, Response

from services.service_desk import handlers
from services.service_desk.api.schemas import EscalationAcknowledge, EscalationRead
from services.service_desk.domain.escalation import Escalation, EscalationLevel, EscalationStatus
from shared.auth import ADMIN, SUPPORT_AGENT, SUPPORT_LEAD, Principal, require_roles
from shared.concurrency import set_etag
from shared.errors import problem_responses
from shared.pagination import Page, PageParams, page_params, paginated
from shared.service import expected_version, get_uow
from shared.uow import UnitOfWork

router = APIRouter(prefix="/v1/escalations", tags=["escalations"])

Support = Annotated[Principal, Depends(require_roles(SUPPORT_AGENT, SUPPORT_LEAD, ADMIN))]
Lead = Annotated[Principal, Depends(require_roles(SUPPORT_LEAD, ADMIN))]
Uow = Annotated[UnitOfWork, Depends(get_uow)]


@router.get("", response_model=Page[EscalationRead], responses=problem_responses(400, 401, 403))
async def list_escalations(
    request: Request,
    response: Response,
    principal: Support,
    uow: Uow,
    page: Annotated[PageParams, Depends(page_params)],
    status: Annotated[EscalationStatus | None, Query(description="open: not yet acknowledged")] = None,
    level: Annotated[EscalationLevel | None, Query(description="breach: the lead's queue")] = None,
    ticket_id: Annotated[uuid.UUID | None, Query()] = None,
) -> Page[EscalationRead]:
    """Oldest first. A lead sees every escalation; an agent those of the tickets assigned to them."""
    filters = {
        "status": status.value if status else None,
        "level": level.value if level else None,
        "ticket_id": ticket_id,
    }
    items, next_cursor = await handlers.list_escalations(principal, uow, page, **filters)
    return paginated(request, response, [read_escalation(e) for e in items], next_cursor)


@router.get("/{escalation_id}", response_model=EscalationRead, responses=problem_responses(401, 403, 404))
async def get_escalation(escalation_id: uuid.UUID, response: Response, principal: Support, uow: Uow):
    escalation = await handlers.get_escalation(escalation_id, principal, uow)
    set_etag(response, escalation.version)
    return read_escalation(escalation)


@router.post(
    "/{escalation_id}/acknowledge",
    response_model=EscalationRead,
    responses=problem_responses(400, 401, 403, 404, 409, 412, 422),
)
async def acknowledge(
    escalation_id: uuid.UUID,
    request: Request,
    response: Response,
    principal: Lead,
    uow: Uow,
    body: Annotated[EscalationAcknowledge | None, Body()] = None,
) -> EscalationRead:
    """A lead takes the escalation (with an optional note of what they did): it leaves the open queue."""
    escalation = await handlers.acknowledge_escalation(
        escalation_id, principal, uow, if_match=expected_version(request), note=body.note if body else None
    )
    set_etag(response, escalation.version)
    return read_escalation(escalation)


def read_escalation(escalation: Escalation) -> EscalationRead:
    return EscalationRead.model_validate(
        {**escalation.__dict__, "level": escalation.level.value, "status": escalation.status.value}
    )
