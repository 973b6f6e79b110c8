"""The repair flow: reported → inspecting → repairing → awaiting acceptance → accepted."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from services.service_desk import handlers
from services.service_desk.api.schemas import RepairRead, RepairReject, RepairStart
from shared.auth import ADMIN, SUPPORT_AGENT, SUPPORT_LEAD, Principal, require_roles
from shared.concurrency import set_etag
from shared.errors import problem_responses
from shared.idempotency import IdempotentRoute
from shared.pagination import Page, PageParams, page_params, paginated
from shared.service import expected_version, get_uow
from shared.uow import UnitOfWork

router = APIRouter(prefix="/v1/repairs", tags=["repairs"], route_class=IdempotentRoute)
ticket_repairs = APIRouter(prefix="/v1/tickets", tags=["repairs"], route_class=IdempotentRoute)

Support = Annotated[Principal, Depends(require_roles(SUPPORT_AGENT, SUPPORT_LEAD, ADMIN))]
Uow = Annotated[UnitOfWork, Depends(get_uow)]
ERRORS = problem_responses(400, 401, 403, 404, 409, 412, 422)


@ticket_repairs.post("/{ticket_id}/repairs", status_code=201, response_model=RepairRead, responses=ERRORS)
async def report_repair(ticket_id: uuid.UUID, response: Response, principal: Support, uow: Uow) -> RepairRead:
    """Report a repair for a repair or warranty-claim ticket (free of charge if under warranty now)."""
    repair = await handlers.report_repair(ticket_id, principal, uow)
    response.headers["Location"] = f"/v1/repairs/{repair.id}"
    set_etag(response, repair.version)
    return read_repair(repair)


@router.get("", response_model=Page[RepairRead], responses=problem_responses(400, 401, 403))
async def list_repairs(
    request: Request,
    response: Response,
    principal: Support,
    uow: Uow,
    page: Annotated[PageParams, Depends(page_params)],
    ticket_id: Annotated[uuid.UUID | None, Query()] = None,
) -> Page[RepairRead]:
    items, next_cursor = await handlers.list_repairs(principal, uow, page, ticket_id=ticket_id)
    return paginated(request, response, [read_repair(r) for r in items], next_cursor)


@router.get("/{repair_id}", response_model=RepairRead, responses=problem_responses(401, 403, 404))
async def get_repair(repair_id: uuid.UUID, response: Response, principal: Support, uow: Uow) -> RepairRead:
    repair = await handlers.get_repair(repair_id, principal, uow)
    set_etag(response, repair.version)
    return read_repair(repair)


async def _change(repair_id, request, response, principal, uow, action: str, **args) -> RepairRead:
    repair = await handlers.change_repair(repair_id, principal, uow, action, if_match=expected_version(request), **args)
    set_etag(response, repair.version)
    return read_repair(repair)


@router.post("/{repair_id}/inspect", response_model=RepairRead, responses=ERRORS)
async def inspect(repair_id: uuid.UUID, request: Request, response: Response, principal: Support, uow: Uow):
    return await _change(repair_id, request, response, principal, uow, "inspect")


@router.post("/{repair_id}/start-repair", response_model=RepairRead, responses=ERRORS)
async def start_repair(
    repair_id: uuid.UUID, body: RepairStart, request: Request, response: Response, principal: Support, uow: Uow
):
    """The inspection's findings, the parts and the labour; then the repair starts."""
    parts = [part.model_dump() for part in body.parts]
    return await _change(
        repair_id,
        request,
        response,
        principal,
        uow,
        "start_repair",
        findings=body.findings,
        parts=parts,
        labour_cost=body.labour_cost,
    )


@router.post("/{repair_id}/complete", response_model=RepairRead, responses=ERRORS)
async def complete(repair_id: uuid.UUID, request: Request, response: Response, principal: Support, uow: Uow):
    """Repaired: awaiting the customer's acceptance."""
    return await _change(repair_id, request, response, principal, uow, "complete")


@router.post("/{repair_id}/accept", response_model=RepairRead, responses=ERRORS)
async def accept(repair_id: uuid.UUID, request: Request, response: Response, principal: Support, uow: Uow):
    """The customer accepted the repair (recorded by the agent)."""
    return await _change(repair_id, request, response, principal, uow, "accept")


@router.post("/{repair_id}/reject", response_model=RepairRead, responses=ERRORS)
async def reject(
    repair_id: uuid.UUID, body: RepairReject, request: Request, response: Response, principal: Support, uow: Uow
):
    """The customer rejected the result: back to repairing."""
    return await _change(repair_id, request, response, principal, uow, "reject", reason=body.reason)


def read_repair(repair) -> RepairRead:
    return RepairRead.model_validate(
        {
            **repair.__dict__,
            "status": repair.status.value,
            "parts": [{**part.__dict__, "amount": part.amount} for part in repair.parts],
            "parts_cost": repair.parts_cost,
            "total_cost": repair.total_cost,
            "charged_amount": repair.charged_amount,
        }
    )
