"""Service desk commands and queries. Each opens the unit of work (and commits when it writes)."""

from __future__ import annotations

import uuid

from services.service_desk.db import SurveyRepository
from services.service_desk.domain import Survey
from shared.auth import Principal
from shared.pagination import PageParams
from shared.uow import UnitOfWork


async def get_survey(survey_id: uuid.UUID, principal: Principal, uow: UnitOfWork) -> Survey:
    async with uow:
        return await SurveyRepository(uow).get_visible(survey_id, principal)


async def list_surveys(
    principal: Principal, uow: UnitOfWork, page: PageParams, *, order_id: uuid.UUID | None = None
) -> tuple[list[Survey], str | None]:
    async with uow:
        return await SurveyRepository(uow).list(principal, page, filters={"order_id": order_id})
