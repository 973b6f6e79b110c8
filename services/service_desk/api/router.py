"""HTTP routes of the service desk."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from services.service_desk import handlers
from services.service_desk.api.schemas import SurveyRead
from shared.auth import ADMIN, SALES_MANAGER, SALES_REP, SUPPORT_AGENT, SUPPORT_LEAD, Principal, require_roles
from shared.concurrency import set_etag
from shared.errors import problem_responses
from shared.pagination import Page, PageParams, page_params, paginated
from shared.service import get_uow
from shared.uow import UnitOfWork

router = APIRouter(prefix="/v1/surveys", tags=["surveys"])

Reader = Annotated[Principal, Depends(require_roles(SUPPORT_AGENT, SUPPORT_LEAD, SALES_REP, SALES_MANAGER, ADMIN))]
Uow = Annotated[UnitOfWork, Depends(get_uow)]


@router.get("", response_model=Page[SurveyRead], responses=problem_responses(400, 401, 403))
async def list_surveys(
    request: Request,
    response: Response,
    principal: Reader,
    uow: Uow,
    page: Annotated[PageParams, Depends(page_params)],
    order_id: Annotated[uuid.UUID | None, Query(description="The survey sent for this delivered order")] = None,
) -> Page[SurveyRead]:
    items, next_cursor = await handlers.list_surveys(principal, uow, page, order_id=order_id)
    return paginated(request, response, [_read(s) for s in items], next_cursor)


@router.get("/{survey_id}", response_model=SurveyRead, responses=problem_responses(401, 403, 404))
async def get_survey(survey_id: uuid.UUID, response: Response, principal: Reader, uow: Uow) -> SurveyRead:
    survey = await handlers.get_survey(survey_id, principal, uow)
    set_etag(response, survey.version)
    return _read(survey)


def _read(survey) -> SurveyRead:
    return SurveyRead.model_validate(
        {
            **survey.__dict__,
            "status": survey.status.value,
            "contact": survey.contact.model_dump() if survey.contact else None,
        }
    )
