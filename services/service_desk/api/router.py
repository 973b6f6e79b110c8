"""HTTP routes of the service desk."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from services.service_desk import handlers
from services.service_desk.api import articles, escalations, repair_page, repairs, reports, survey_page, tickets
from services.service_desk.api.schemas import CoverageRead, SurveyRead, WarrantyRead
from shared.api import SafeStr
from shared.auth import ADMIN, SALES_MANAGER, SALES_REP, SUPPORT_AGENT, SUPPORT_LEAD, Principal, require_roles
from shared.concurrency import set_etag
from shared.errors import Problem, problem_responses
from shared.pagination import Page, PageParams, page_params, paginated
from shared.service import get_uow
from shared.uow import UnitOfWork

survey_router = APIRouter(prefix="/v1/surveys", tags=["surveys"])
warranty_router = APIRouter(prefix="/v1/warranties", tags=["warranties"])

Reader = Annotated[Principal, Depends(require_roles(SUPPORT_AGENT, SUPPORT_LEAD, SALES_REP, SALES_MANAGER, ADMIN))]
Uow = Annotated[UnitOfWork, Depends(get_uow)]
SerialNumber = Annotated[SafeStr | None, Query(max_length=200, description="A delivered unit's serial number")]


@survey_router.get("", response_model=Page[SurveyRead], responses=problem_responses(400, 401, 403))
async def list_surveys(
    request: Request,
    response: Response,
    principal: Reader,
    uow: Uow,
    page: Annotated[PageParams, Depends(page_params)],
    order_id: Annotated[uuid.UUID | None, Query(description="The survey sent for this delivered order")] = None,
) -> Page[SurveyRead]:
    items, next_cursor = await handlers.list_surveys(principal, uow, page, order_id=order_id)
    return paginated(request, response, [_survey(s) for s in items], next_cursor)


@survey_router.get("/{survey_id}", response_model=SurveyRead, responses=problem_responses(401, 403, 404))
async def get_survey(survey_id: uuid.UUID, response: Response, principal: Reader, uow: Uow) -> SurveyRead:
    survey = await handlers.get_survey(survey_id, principal, uow)
    set_etag(response, survey.version)
    return _survey(survey)


@warranty_router.get("", response_model=Page[WarrantyRead], responses=problem_responses(400, 401, 403))
async def list_warranties(
    request: Request,
    response: Response,
    principal: Reader,
    uow: Uow,
    page: Annotated[PageParams, Depends(page_params)],
    serial_number: SerialNumber = None,
    order_id: Annotated[uuid.UUID | None, Query(description="The warranties registered for this order")] = None,
) -> Page[WarrantyRead]:
    items, next_cursor = await handlers.list_warranties(
        principal, uow, page, serial_number=serial_number, order_id=order_id
    )
    return paginated(request, response, [_warranty(w) for w in items], next_cursor)


@warranty_router.get("/coverage", response_model=CoverageRead, responses=problem_responses(400, 401, 403, 422))
async def check_coverage(
    principal: Reader,
    uow: Uow,
    serial_number: SerialNumber = None,
    order_id: Annotated[uuid.UUID | None, Query(description="With line_no: an unserialised order line")] = None,
    line_no: Annotated[int | None, Query(ge=1, le=100_000)] = None,
    at: Annotated[datetime | None, Query(description="When the fault occurred (default: now)")] = None,
) -> CoverageRead:
    """Whether a unit is under warranty, and why (or why not): by serial number or by order line."""
    if (serial_number is None) == (order_id is None) or (line_no is not None and order_id is None):
        raise Problem(422, "Say which unit", "give either serial_number, or order_id (and optionally line_no)")
    if at is not None and at.tzinfo is None:
        raise Problem(422, "Time zone required", "`at` must carry a UTC offset, e.g. 2026-01-01T00:00:00Z")
    coverage = await handlers.check_warranty(
        principal, uow, at=at or datetime.now(UTC), serial_number=serial_number, order_id=order_id, line_no=line_no
    )
    return CoverageRead(
        covered=coverage.covered,
        reason=coverage.reason,
        detail=coverage.detail,
        warranty=_warranty(coverage.warranty) if coverage.warranty else None,
    )


@warranty_router.get("/{warranty_id}", response_model=WarrantyRead, responses=problem_responses(401, 403, 404))
async def get_warranty(warranty_id: uuid.UUID, response: Response, principal: Reader, uow: Uow) -> WarrantyRead:
    warranty = await handlers.get_warranty(warranty_id, principal, uow)
    set_etag(response, warranty.version)
    return _warranty(warranty)


def _survey(survey) -> SurveyRead:
    return SurveyRead.model_validate(
        {
            **survey.__dict__,
            "status": survey.status.value,
            "contact": survey.contact.model_dump() if survey.contact else None,
        }
    )


def _warranty(warranty) -> WarrantyRead:
    return WarrantyRead.model_validate(warranty.__dict__)


routers = [
    survey_page.router,
    survey_router,
    warranty_router,
    tickets.confirm_router,
    tickets.ticket_router,
    tickets.agent_router,
    escalations.router,
    articles.suggestions,
    articles.router,
    reports.router,
    repairs.ticket_repairs,
    repair_page.router,
    repairs.router,
]
