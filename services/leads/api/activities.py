"""HTTP routes for activities on leads and accounts (calls, visits, e-mails, meetings, notes)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from services.leads import handlers
from services.leads.api.schemas import ActivityCreate, ActivityRead, VisitReport, VisitReview
from services.leads.domain import Activity
from shared.auth import ADMIN, REGIONAL_DIRECTOR, SALES_MANAGER, SALES_REP, Principal, require_roles
from shared.errors import problem_responses
from shared.idempotency import IdempotentRoute
from shared.pagination import Page, PageParams, page_params, paginated
from shared.service import get_uow
from shared.uow import UnitOfWork

router = APIRouter(tags=["activities"], route_class=IdempotentRoute)

Sales = Annotated[Principal, Depends(require_roles(SALES_REP, SALES_MANAGER, REGIONAL_DIRECTOR, ADMIN))]
Manager = Annotated[Principal, Depends(require_roles(SALES_MANAGER, REGIONAL_DIRECTOR, ADMIN))]
Uow = Annotated[UnitOfWork, Depends(get_uow)]
CREATE_PROBLEMS = problem_responses(400, 401, 403, 404, 409, 422)
LIST_PROBLEMS = problem_responses(400, 401, 403, 404)


@router.post("/v1/leads/{lead_id}/activities", status_code=201, response_model=ActivityRead, responses=CREATE_PROBLEMS)
async def log_lead_activity(
    lead_id: uuid.UUID, body: ActivityCreate, response: Response, principal: Sales, uow: Uow
) -> ActivityRead:
    """Log an activity on a lead. A call, visit, e-mail or meeting is a contact: the owner's
    first one stops the lead's first-contact clock. `next_follow_up_at` raises
    `activity.follow_up_due` when due. Emits `activity.logged`. Send `Idempotency-Key`."""
    return await _log(body, response, principal, uow, f"/v1/leads/{lead_id}/activities", lead_id=lead_id)


@router.get("/v1/leads/{lead_id}/activities", response_model=Page[ActivityRead], responses=LIST_PROBLEMS)
async def list_lead_activities(
    lead_id: uuid.UUID,
    request: Request,
    response: Response,
    principal: Sales,
    uow: Uow,
    page: Annotated[PageParams, Depends(page_params)],
) -> Page[ActivityRead]:
    return await _list(request, response, principal, uow, page, lead_id=lead_id)


@router.post(
    "/v1/accounts/{account_id}/activities", status_code=201, response_model=ActivityRead, responses=CREATE_PROBLEMS
)
async def log_account_activity(
    account_id: uuid.UUID, body: ActivityCreate, response: Response, principal: Sales, uow: Uow
) -> ActivityRead:
    """Log an activity on an account. A contact within the new account's deadline (7 days by
    default) keeps `account.contact_overdue` from being raised. Send `Idempotency-Key`."""
    location = f"/v1/accounts/{account_id}/activities"
    return await _log(body, response, principal, uow, location, account_id=account_id)


@router.get("/v1/accounts/{account_id}/activities", response_model=Page[ActivityRead], responses=LIST_PROBLEMS)
async def list_account_activities(
    account_id: uuid.UUID,
    request: Request,
    response: Response,
    principal: Sales,
    uow: Uow,
    page: Annotated[PageParams, Depends(page_params)],
) -> Page[ActivityRead]:
    return await _list(request, response, principal, uow, page, account_id=account_id)


async def _log(
    body: ActivityCreate, response: Response, principal: Principal, uow: UnitOfWork, location: str, **parent: uuid.UUID
) -> ActivityRead:
    cmd = handlers.LogActivity(
        kind=body.kind,
        occurred_at=body.occurred_at,
        outcome=body.outcome,
        notes=body.notes,
        next_follow_up_at=body.next_follow_up_at,
        planned=body.planned,
        **parent,
    )
    activity = await handlers.log_activity(cmd, principal, uow)
    response.headers["Location"] = location
    return _read(activity)


async def _list(
    request: Request, response: Response, principal: Principal, uow: UnitOfWork, page: PageParams, **parent: uuid.UUID
) -> Page[ActivityRead]:
    items, next_cursor = await handlers.list_activities(principal, uow, page, **parent)
    return paginated(request, response, [_read(a) for a in items], next_cursor)


@router.post("/v1/activities/{activity_id}/review", response_model=ActivityRead, responses=CREATE_PROBLEMS)
async def review_visit(activity_id: uuid.UUID, body: VisitReview, principal: Manager, uow: Uow) -> ActivityRead:
    """A manager approves (or turns down) a planned visit of their team (`activity.visit_reviewed`)."""
    return _read(await handlers.review_visit(activity_id, principal, uow, approved=body.approved, note=body.note))


@router.post("/v1/activities/{activity_id}/report", response_model=ActivityRead, responses=CREATE_PROBLEMS)
async def report_visit(activity_id: uuid.UUID, body: VisitReport, principal: Sales, uow: Uow) -> ActivityRead:
    """The report of an approved visit once it happened (`activity.visit_reported`); it then counts
    as a contact (the lead owner's first one stops the first-contact clock). 409 before approval
    or before the visit's time."""
    activity = await handlers.report_visit(activity_id, principal, uow, outcome=body.outcome, notes=body.notes)
    return _read(activity)


def _read(activity: Activity) -> ActivityRead:
    return ActivityRead.model_validate(
        {**activity.__dict__, "kind": activity.kind.value, "status": activity.status.value}
    )
